package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/identity/identitytest"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/dnscache/dnstest"
	"github.com/azegress/azegress/proxy/internal/nettest"
)

// benchRules returns n allow rules, exact names and wildcards mixed, for the
// body of a client block.
func benchRules(n int) string {
	var b strings.Builder
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  allow \"r%d\" {\n    hosts = [\"svc%d.region%d.example.com\"]\n  }\n", i, i, i%50)
		} else {
			fmt.Fprintf(&b, "  allow \"r%d\" {\n    hosts = [\"*.tenant%d.example.net\"]\n  }\n", i, i)
		}
	}
	return b.String()
}

// benchProxy serves a policy of about 1,000 rules that allows
// allowed.example.com on port, logging every record as serve does (JSON,
// through a LogWriter) to io.Discard.
func benchProxy(b *testing.B, port uint16) string {
	b.Helper()
	addr, _ := benchServe(b, basePolicy(port, benchRules(998)))
	return addr
}

// benchServe serves the policy src as benchProxy does, its Config changed
// by opts.
func benchServe(b *testing.B, src string, opts ...proxyOpt) (string, *Server) {
	b.Helper()
	p, diags := policy.Load("bench.hcl", []byte(src))
	if diags.HasErrors() {
		b.Fatal(policy.FormatDiagnostics(diags))
	}
	cfg := Config{
		Policy:     p,
		Logger:     slog.New(NewLogWriter(io.Discard, 0).JSONHandler(nil)),
		Registerer: prometheus.NewRegistry(),
		Resolver:   loopbackNames("allowed.example.com"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln := nettest.Listen(b)
	go s.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return ln.Addr().String(), s
}

// echoServer echoes on every connection ln accepts.
func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go nettest.Echo(c)
	}
}

// BenchmarkConnectSetup is one tunnel's life through the proxy in this
// process: connect, CONNECT and its 200, one byte echoed by the origin,
// close. Allocations are the proxy's and the client's together.
func BenchmarkConnectSetup(b *testing.B) {
	origin := nettest.Listen(b)
	go echoServer(origin)
	addr := benchProxy(b, portOf2(b, origin.Addr()))
	req := []byte(fmt.Sprintf("CONNECT allowed.example.com:%[1]d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", portOf2(b, origin.Addr())))
	benchTunnels(b, addr, req)
}

// BenchmarkConnectSetupDNS is BenchmarkConnectSetup with the name resolved
// by Go's resolver from a DNS server on loopback (A and AAAA over UDP, TTL
// 300), with the proxy's DNS cache (the default) and without it
// (-dns-cache-size 0): the difference is what a lookup costs a tunnel,
// less the server's round trip in Azure.
func BenchmarkConnectSetupDNS(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"cache", 0}, {"nocache", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			origin := nettest.Listen(b)
			go echoServer(origin)
			port := portOf2(b, origin.Addr())
			dns := dnstest.New(b)
			dns.Set("allowed.example.com", dnstest.Answer{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TTL: 300})
			addr, _ := benchServe(b, basePolicy(port, benchRules(998)), func(c *Config) {
				c.Resolver, c.DNSCacheSize, c.DNSDial = nil, bc.size, dns.Dial
			})
			req := []byte(fmt.Sprintf("CONNECT allowed.example.com:%[1]d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", port))
			benchTunnels(b, addr, req)
		})
	}
}

// BenchmarkConnectSetupIdentity is BenchmarkConnectSetup's tunnel for a
// managed identity: the CONNECT carries a valid token (Basic, as curl, Go
// and Python send it), already verified, which selects an identity block
// of the same rules. The difference to BenchmarkConnectSetup is the cost
// of identity-keyed selection with a cached token.
func BenchmarkConnectSetupIdentity(b *testing.B) {
	origin := nettest.Listen(b)
	go echoServer(origin)
	port := portOf2(b, origin.Addr())
	idp := identitytest.New(b)
	addr, s := benchServe(b, benchIdentityPolicy(idp, port))
	req, v := benchIdentityRequest(b, s, idp, port)
	benchTunnels(b, addr, req)
	if st := v.Stats(); st.Misses != 1 {
		b.Fatalf("token verified %d times; the benchmark measures cache hits", st.Misses)
	}
}

// BenchmarkEngineConnectSetup is BenchmarkConnectSetup ("cidr") beside
// BenchmarkConnectSetupIdentity ("token") on the event-loop engine
// (Config.Engine), the name answered from the DNS cache, so that both are
// decided on the loop. Their difference is what a cached token costs a
// tunnel there; the client's work is in both.
func BenchmarkEngineConnectSetup(b *testing.B) {
	for _, name := range []string{"cidr", "token"} {
		b.Run(name, func(b *testing.B) {
			origin := nettest.Listen(b)
			go echoServer(origin)
			port := portOf2(b, origin.Addr())
			dns := dnstest.New(b)
			dns.Set("allowed.example.com", dnstest.Answer{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TTL: 300})
			engine := func(c *Config) { c.Engine, c.Resolver, c.DNSDial = true, nil, dns.Dial }
			req := []byte(fmt.Sprintf("CONNECT allowed.example.com:%[1]d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", port))
			src := basePolicy(port, benchRules(998))
			var idp *identitytest.IdP
			if name == "token" {
				idp = identitytest.New(b)
				src = benchIdentityPolicy(idp, port)
			}
			addr, s := benchServe(b, src, engine)
			if s.engine == nil {
				b.Skip("no event-loop engine on this platform")
			}
			var v *identity.Validator
			if idp != nil {
				req, v = benchIdentityRequest(b, s, idp, port)
			}
			benchTunnels(b, addr, req)
			if v != nil {
				if st := v.Stats(); st.Misses != 1 {
					b.Fatalf("token verified %d times; the benchmark measures cache hits", st.Misses)
				}
			}
		})
	}
}

// benchIdentityPolicy is benchProxy's policy for a managed identity of
// idp: the same rules in a client block its token selects.
func benchIdentityPolicy(idp *identitytest.IdP, port uint16) string {
	return fmt.Sprintf(`
entra {
  tenant_id = %[1]q
  audiences = [%[2]q]
  authority = %[3]q
}
client "mi" {
  identity {
    object_ids = [%[4]q]
  }
  allow "allowed" {
    hosts     = ["allowed.example.com"]
    ports     = [%[5]d]
    addresses = ["127.0.0.0/8"]
  }
%[6]s
}
`, idp.TenantID, identitytest.ClientID, idp.Authority(), identitytest.ObjectID, port, benchRules(998))
}

// benchIdentityRequest loads s's keys from idp and returns a CONNECT to
// allowed.example.com:port with a token of idp's that s has verified
// already, and the validator that keeps it.
func benchIdentityRequest(b *testing.B, s *Server, idp *identitytest.IdP, port uint16) ([]byte, *identity.Validator) {
	b.Helper()
	if err := s.gen.Load().entra.keys.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	token := idp.Mint(b, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(24 * time.Hour).Unix()}})
	v := s.gen.Load().entra.v
	if _, err := v.Validate(b.Context(), token); err != nil { // verified once, before the clock runs
		b.Fatal(err)
	}
	return []byte(fmt.Sprintf("CONNECT allowed.example.com:%[1]d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\nProxy-Authorization: %[2]s\r\n\r\n",
		port, identitytest.BasicAuth("azegress", token))), v
}

// benchTunnels runs one tunnel per iteration, in parallel: connect to the
// proxy at addr, send req (a CONNECT), read its 200, echo one byte, close.
// The clock starts here: the caller's setup (a policy of 1,000 rules, an
// identity provider's RSA key) is not a tunnel's cost.
func benchTunnels(b *testing.B, addr string, req []byte) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		one := []byte{'x'}
		for pb.Next() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			br := bufio.NewReader(c)
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, " 200 ") {
				b.Fatalf("CONNECT: %q %v", line, err)
			}
			for line != "\r\n" {
				if line, err = br.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.Write(one); err != nil {
				b.Fatal(err)
			}
			if _, err := br.ReadByte(); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// BenchmarkHTTPForward is one plain-HTTP request forwarded on a kept-alive
// client connection, with a kept-alive upstream connection.
func BenchmarkHTTPForward(b *testing.B) {
	origin := nettest.Listen(b)
	go func() {
		for {
			c, err := origin.Accept()
			if err != nil {
				return
			}
			go func() { // a minimal HTTP/1.1 origin: "ok\n" to every request
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	port := portOf2(b, origin.Addr())
	addr := benchProxy(b, port)
	req := []byte(fmt.Sprintf("GET http://allowed.example.com:%[1]d/x HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", port))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		body := make([]byte, 3)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, " 200 ") {
				b.Fatalf("GET: %q %v", line, err)
			}
			for line != "\r\n" {
				if line, err = br.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := io.ReadFull(br, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReload is a policy reload as SIGHUP does it: load (parse,
// validate, compile) and swap in, with 1,000 and 100,000 rules.
func BenchmarkReload(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			src := []byte(basePolicy(443, benchRules(n-2)))
			s, err := New(Config{Policy: loadPolicy(b, string(src))})
			if err != nil {
				b.Fatal(err)
			}
			load := func() (*policy.Policy, hcl.Diagnostics) { return policy.Load("bench.hcl", src) }
			b.ReportAllocs()
			for b.Loop() {
				if !s.Reload(load) {
					b.Fatal("reload rejected")
				}
			}
		})
	}
}

func portOf2(tb testing.TB, a net.Addr) uint16 {
	tb.Helper()
	return uint16(a.(*net.TCPAddr).Port)
}
