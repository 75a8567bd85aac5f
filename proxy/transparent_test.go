package proxy

import (
	"path/filepath"
	"syscall"

	"os"

	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/proxy/internal/relay"
	"github.com/azegress/azegress/proxy/internal/tlshello/tlshellotest"
)

// The names of the transparent tests resolve to documentation addresses;
// test dials of those are routed to loopback origins (routeDials). The
// transparent listeners run on 127.0.0.1, the "original destination" of a
// client connecting straight to them: an address no name resolves to, like
// a forged server name's real destination.
const (
	allowedIP = "192.0.2.10"
	otherIP   = "192.0.2.11"
	deniedIP  = "192.0.2.12"
	publicIP  = "192.0.2.13"
)

func transparentNames() *fakeResolver {
	return newResolver(map[string]string{
		"allowed.example": allowedIP, "a.wild.example": allowedIP,
		"other.example": otherIP, "denied.example": deniedIP, "public.example": publicIP,
	})
}

// transparentPolicy allows allowed.example and *.wild.example on the TLS
// listener's port, allowed.example and other.example on the HTTP listener's
// port, for 127.0.0.1 only. TLSPORT in extra stands for the TLS port.
func transparentPolicy(extra string) func(tlsPort, httpPort uint16) string {
	return func(tlsPort, httpPort uint16) string {
		return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.1/32"]
  allow "tls" {
    hosts = ["allowed.example", "*.wild.example"]
    ports = [%d]
  }
  allow "web" {
    hosts = ["allowed.example", "other.example"]
    ports = [%d]
  }
%s
}
`, tlsPort, httpPort, strings.ReplaceAll(extra, "TLSPORT", fmt.Sprint(tlsPort)))
	}
}

type transparentProxy struct {
	*testProxy
	tlsAddr, httpAddr string
	tlsPort, httpPort uint16
}

// startTransparent binds the transparent listeners first, so that the
// policy can name their ports, then serves them next to the forward proxy.
// routes maps a dialed IP to the loopback address that stands in for it.
func startTransparent(t *testing.T, policyFor func(tlsPort, httpPort uint16) string, routes map[string]string, opts ...proxyOpt) *transparentProxy {
	t.Helper()
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	errs := make(chan error, 2)
	// Registered first, so it runs after startProxy's Shutdown.
	t.Cleanup(func() {
		for range started {
			if err := <-errs; err != nil {
				t.Errorf("transparent listener: %v", err)
			}
		}
		tln.Close()
		hln.Close()
	})
	var tp *testProxy
	opts = append([]proxyOpt{routeDials(&tp, routes)}, opts...)
	tp = startProxy(t, policyFor(portOf(t, tln.Addr()), portOf(t, hln.Addr())), transparentNames(), opts...)
	started = 2
	go func() { errs <- tp.ServeTransparentTLS(tln) }()
	go func() { errs <- tp.ServeTransparentHTTP(hln) }()
	return &transparentProxy{testProxy: tp,
		tlsAddr: tln.Addr().String(), httpAddr: hln.Addr().String(),
		tlsPort: portOf(t, tln.Addr()), httpPort: portOf(t, hln.Addr())}
}

// routeDials reports every address the proxy dials and connects it to the
// address routes gives its IP; an IP without a route is unreachable.
func routeDials(tp **testProxy, routes map[string]string) proxyOpt {
	return func(c *Config) {
		c.engineDial = func(ap netip.AddrPort) netip.AddrPort {
			if target, ok := routes[ap.Addr().String()]; ok {
				return netip.MustParseAddrPort(target)
			}
			return closedLoopbackPort() // no route: the dial fails, as Dial's does
		}
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			(*tp).dials <- addr
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			target, ok := routes[ap.Addr().String()]
			if !ok {
				return nil, fmt.Errorf("test: no route to %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}
	}
}

// dialed returns the addresses the proxy dialed so far.
func (tp *testProxy) dialed() []string {
	var out []string
	for {
		select {
		case a := <-tp.dials:
			out = append(out, a)
		default:
			return out
		}
	}
}

// lastRecord returns the newest log record with msg, failing if there is none.
func (tp *testProxy) lastRecord(msg string) map[string]any {
	tp.t.Helper()
	recs := tp.logs.records(msg)
	if len(recs) == 0 {
		tp.t.Fatalf("no %q record logged", msg)
	}
	return recs[len(recs)-1]
}

func checkRecord(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("record %s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
}

// httpsVia returns a client whose every connection goes to addr, with the
// URL's host as SNI: a workload whose packets a route table sends to the
// proxy.
func httpsVia(addr string, split bool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil && split {
					c = &byteWriter{Conn: c}
				}
				return c, err
			},
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the proxy is under test, not TLS
			DisableKeepAlives: true,
		},
	}
}

// byteWriter writes its first KiB one byte per write: with TCP_NODELAY,
// one TCP segment per byte, so the ClientHello arrives in pieces.
type byteWriter struct {
	net.Conn
	n int
}

func (c *byteWriter) Write(b []byte) (int, error) {
	total := 0
	for len(b) > 0 && c.n < 1024 {
		n, err := c.Conn.Write(b[:1])
		total += n
		c.n += n
		if err != nil {
			return total, err
		}
		b = b[1:]
	}
	n, err := c.Conn.Write(b)
	return total + n, err
}

func getBody(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawTLS sends b to addr and returns what comes back until the proxy closes.
func rawExchange(t *testing.T, addr string, b []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading the proxy's answer: %v", err)
	}
	return got
}

// capturedHello returns a ClientHello recorded from a real client, from
// tlshello's testdata.
func capturedHello(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("internal", "tlshello", "testdata", "clienthello", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransparentTLSAllowed(t *testing.T) {
	t.Parallel()
	origin, _ := tlsOrigin(t, "allowed")
	tp := startTransparent(t, transparentPolicy(""), map[string]string{allowedIP: origin.Listener.Addr().String()})

	for _, tt := range []struct {
		name  string
		split bool
		host  string
	}{
		{"one write", false, "allowed.example"},
		{"wildcard", false, "a.wild.example"},
		{"ClientHello in 1-byte TCP segments", true, "allowed.example"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := getBody(t, httpsVia(tp.tlsAddr, tt.split), fmt.Sprintf("https://%s:%d/x", tt.host, tp.tlsPort))
			if want := "hello from allowed /x"; body != want {
				t.Errorf("body = %q, want %q", body, want)
			}
			// The proxy dialed the name's address on the original port.
			if got, want := tp.dialed(), []string{fmt.Sprintf("%s:%d", allowedIP, tp.tlsPort)}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("dialed %v, want %v", got, want)
			}
		})
	}
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) == 3 }, "three tunnel closed records")
	// Tunnels close in their own time, so records are matched by host, not order.
	hosts := map[any]int{}
	for _, rec := range tp.logs.records("tunnel closed") {
		hosts[rec["host"]]++
		checkRecord(t, rec, map[string]any{
			"kind": "transparent_tls", "port": float64(tp.tlsPort), "rule": "tls", "client_block": "local",
		})
	}
	if hosts["allowed.example"] != 2 || hosts["a.wild.example"] != 1 {
		t.Errorf("tunnel closed records by host: %v", hosts)
	}
	if n := len(tp.logs.records("deny")); n != 0 {
		t.Errorf("%d deny records, want none: %v", n, tp.logs.records("deny"))
	}
}

// A client that forges an allowed server name towards another address
// reaches the allowed name's server, never the address it connected to.
func TestTransparentTLSForgedSNI(t *testing.T) {
	t.Parallel()
	allowed, _ := tlsOrigin(t, "allowed")
	tp := startTransparent(t, transparentPolicy(""), map[string]string{allowedIP: allowed.Listener.Addr().String()})

	// The listener's address, 127.0.0.1, plays the denied destination.
	body := getBody(t, httpsVia(tp.tlsAddr, false), fmt.Sprintf("https://allowed.example:%d/", tp.tlsPort))
	if body != "hello from allowed /" {
		t.Errorf("body = %q, want the allowed name's server", body)
	}
	if got, want := tp.dialed(), []string{fmt.Sprintf("%s:%d", allowedIP, tp.tlsPort)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dialed %v, want only %v (never the original destination %s)", got, want, tp.tlsAddr)
	}
	checkRecord(t, tp.lastRecord("original destination is not an address of the name"), map[string]any{
		"kind": "transparent_tls", "host": "allowed.example", "orig_dst": tp.tlsAddr, "resolved": allowedIP, "level": "INFO",
	})
}

func TestTransparentTLSRefused(t *testing.T) {
	t.Parallel()
	origin, _ := tlsOrigin(t, "origin")
	echList, _ := tlshellotest.ECHConfig(t, "public.example")
	tp := startTransparent(t, transparentPolicy(""), map[string]string{
		allowedIP: origin.Listener.Addr().String(), deniedIP: origin.Listener.Addr().String(), publicIP: origin.Listener.Addr().String(),
	})

	handshake := func(cfg *tls.Config, src string) error {
		d := net.Dialer{Timeout: 5 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("tcp", tp.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		cfg.InsecureSkipVerify = true
		return tls.Client(c, cfg).Handshake()
	}

	for _, tt := range []struct {
		name    string
		cfg     *tls.Config
		src     string
		raw     []byte // sent instead of a handshake
		reason  string
		alert   string // in the client's error
		answer  []byte // for raw: the exact bytes the proxy sends back
		host    any
		details string
	}{
		{name: "denied name", cfg: &tls.Config{ServerName: "denied.example"}, reason: "no_rule", alert: "access denied", host: "denied.example"},
		{name: "no SNI", cfg: &tls.Config{}, reason: "no_sni", alert: "unrecognized name", details: "no server name"},
		{name: "no SNI, recorded from openssl", raw: capturedHello(t, "openssl-nosni.bin"), reason: "no_sni", answer: tlshellotest.Alert(alertUnrecognizedName)},
		{name: "IP literal SNI", raw: tlshellotest.Hello(tlshellotest.SNI("192.0.2.10")), reason: "no_sni", answer: tlshellotest.Alert(alertUnrecognizedName), details: "RFC 6066"},
		{name: "Unicode SNI", cfg: &tls.Config{ServerName: "\uff41llowed.example"}, reason: "bad_request", alert: "unrecognized name", details: "not a valid host name"},
		{name: "unknown client", cfg: &tls.Config{ServerName: "allowed.example"}, src: "127.0.0.2", reason: "client_unknown", alert: "access denied"},
		{name: "ECH with a denied public name", cfg: &tls.Config{ServerName: "secret.example", MinVersion: tls.VersionTLS13, EncryptedClientHelloConfigList: echList},
			reason: "ech", alert: "access denied", host: "public.example", details: "Encrypted Client Hello"},
		{name: "malformed ClientHello", raw: tlshellotest.Hello(tlshellotest.SNI("a.example", "b.example")), reason: "bad_request", answer: tlshellotest.Alert(alertDecodeError)},
		{name: "ClientHello in several records", raw: tlshellotest.Fragment(tlshellotest.Hello(tlshellotest.SNI("denied.example")), 9), reason: "no_rule", answer: tlshellotest.Alert(alertAccessDenied), host: "denied.example"},
		{name: "not TLS", raw: []byte("GET / HTTP/1.1\r\nHost: allowed.example\r\n\r\n"), reason: "bad_request", answer: []byte{}, details: "not TLS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tp.logs.records("deny"))
			if tt.raw != nil {
				if got := rawExchange(t, tp.tlsAddr, tt.raw); !bytes.Equal(got, tt.answer) {
					t.Errorf("the proxy answered %x, want %x", got, tt.answer)
				}
			} else if err := handshake(tt.cfg, tt.src); err == nil || !strings.Contains(err.Error(), tt.alert) {
				t.Errorf("handshake error = %v, want the TLS alert %q", err, tt.alert)
			}
			waitFor(t, func() bool { return len(tp.logs.records("deny")) > before }, "a deny record")
			rec := tp.lastDeny()
			checkRecord(t, rec, map[string]any{"reason": tt.reason, "kind": "transparent_tls", "level": "WARN", "status": float64(0)})
			if tt.host != nil {
				checkRecord(t, rec, map[string]any{"host": tt.host, "port": float64(tp.tlsPort)})
			}
			if d, _ := rec["detail"].(string); !strings.Contains(d, tt.details) {
				t.Errorf("detail %q lacks %q", d, tt.details)
			}
		})
	}
	if got := tp.dialed(); len(got) != 0 {
		t.Errorf("the proxy dialed %v for refused connections", got)
	}
}

// An ECH ClientHello whose outer name is allowed goes through; the inner
// name stays hidden, and that is logged.
func TestTransparentTLSECHAllowed(t *testing.T) {
	t.Parallel()
	origin, _ := tlsOrigin(t, "public")
	echList, _ := tlshellotest.ECHConfig(t, "public.example")
	tp := startTransparent(t, transparentPolicy(`
  allow "ech-public-name" {
    hosts = ["public.example"]
    ports = [TLSPORT]
  }`), map[string]string{publicIP: origin.Listener.Addr().String()})

	c, err := net.DialTimeout("tcp", tp.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	err = tls.Client(c, &tls.Config{ServerName: "secret.example", MinVersion: tls.VersionTLS13,
		EncryptedClientHelloConfigList: echList, InsecureSkipVerify: true}).Handshake()
	// The origin has no ECH keys, so it answers with its own certificate
	// (httptest's, for example.com) and the client gives up on ECH, after
	// checking that certificate against the public name: the proxy let the
	// handshake through.
	var rej *tls.ECHRejectionError
	if !errors.As(err, &rej) && (err == nil || !strings.Contains(err.Error(), "certificate is valid for example.com")) {
		t.Fatalf("handshake error = %v, want the origin's certificate or ECH rejection (the proxy let it through)", err)
	}
	if got, want := tp.dialed(), []string{fmt.Sprintf("%s:%d", publicIP, tp.tlsPort)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dialed %v, want %v", got, want)
	}
	checkRecord(t, tp.lastRecord("encrypted client hello"), map[string]any{
		"kind": "transparent_tls", "host": "public.example", "rule": "ech-public-name", "level": "INFO",
	})
}

// The bytes a transparent TLS connection sent before it was decided reach
// the origin exactly, however they were split into records.
func TestTransparentTLSReplay(t *testing.T) {
	t.Parallel()
	capture, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	tp := startTransparent(t, transparentPolicy(""), map[string]string{allowedIP: capture.Addr().String()})

	for _, size := range []int{1 << 14, 5} {
		hello := tlshellotest.Fragment(tlshellotest.Hello(tlshellotest.SNI("allowed.example"), tlshellotest.ALPN("h2")), size)
		hello = append(hello, []byte("early bytes after the ClientHello")...)
		c, err := net.Dial("tcp", tp.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
		o, err := capture.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = o.SetDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(hello))
		if _, err := io.ReadFull(o, got); err != nil {
			t.Fatalf("origin read %d bytes: %v", len(got), err)
		}
		if !bytes.Equal(got, hello) {
			t.Errorf("records of %d: origin got %x, want %x", size, got, hello)
		}
		// And the tunnel carries the answer back.
		if _, err := o.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		ans := make([]byte, 6)
		if _, err := io.ReadFull(c, ans); err != nil || string(ans) != "answer" {
			t.Errorf("client got %q, %v", ans, err)
		}
		o.Close()
	}
}

func TestTransparentHTTP(t *testing.T) {
	t.Parallel()
	allowed, _ := httpOrigin(t, "allowed")
	other, _ := httpOrigin(t, "other")
	tp := startTransparent(t, transparentPolicy(""), map[string]string{
		allowedIP: allowed.Listener.Addr().String(), otherIP: other.Listener.Addr().String(), deniedIP: other.Listener.Addr().String(),
	})

	c, err := net.Dial("tcp", tp.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	// One kept-alive connection, each request decided on its own Host.
	for i, tt := range []struct {
		host   string
		status int
		body   string
		dial   string
	}{
		{"allowed.example", 200, "hello from allowed host=allowed.example path=/p0", allowedIP},
		{"denied.example", 403, "azegress denied GET denied.example:", ""},
		{"other.example", 200, "hello from other host=other.example path=/p2", otherIP},
		// The same destination as the first request, spelled differently:
		// it may reuse that request's upstream connection.
		{fmt.Sprintf("Allowed.Example:%d", tp.httpPort), 200, fmt.Sprintf("hello from allowed host=Allowed.Example:%d path=/p3", tp.httpPort), "pooled"},
	} {
		fmt.Fprintf(c, "GET /p%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, tt.host)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, tt.host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.HasPrefix(string(b), tt.body) {
			t.Errorf("request %d (%s): %d %q, want %d %q", i, tt.host, resp.StatusCode, b, tt.status, tt.body)
		}
		if tt.status == 403 {
			if r := resp.Header.Get("X-Azegress-Reason"); r != "no_rule" {
				t.Errorf("X-Azegress-Reason = %q", r)
			}
			checkRecord(t, tp.lastDeny(), map[string]any{"kind": "transparent_http", "reason": "no_rule", "host": "denied.example", "port": float64(tp.httpPort)})
		}
		var want []string
		if tt.dial == "pooled" {
			if got := tp.dialed(); len(got) > 1 || len(got) == 1 && got[0] != fmt.Sprintf("%s:%d", allowedIP, tp.httpPort) {
				t.Errorf("request %d (%s): dialed %v", i, tt.host, got)
			}
			continue
		}
		if tt.dial != "" {
			want = []string{fmt.Sprintf("%s:%d", tt.dial, tp.httpPort)}
		}
		if got := tp.dialed(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("request %d (%s): dialed %v, want %v", i, tt.host, got, want)
		}
	}
	checkRecord(t, tp.lastRecord("request"), map[string]any{"kind": "transparent_http", "host": "allowed.example", "rule": "web"})
	// The Host named the allowed name; the connection went to 127.0.0.1.
	checkRecord(t, tp.lastRecord("original destination is not an address of the name"), map[string]any{
		"kind": "transparent_http", "orig_dst": tp.httpAddr,
	})
}

func TestTransparentHTTPRefused(t *testing.T) {
	t.Parallel()
	allowed, _ := httpOrigin(t, "allowed")
	tp := startTransparent(t, transparentPolicy(""), map[string]string{allowedIP: allowed.Listener.Addr().String()})
	for _, tt := range []struct {
		name, request string
		status        int
		detail        string
	}{
		{"no Host, HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 400, "no Host header"},
		{"no Host, HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400, "malformed request"}, // net/http refuses it itself
		{"two Hosts", "GET / HTTP/1.1\r\nHost: allowed.example\r\nHost: denied.example\r\n\r\n", 400, ""},
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: allowed.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, ""},
		{"absolute form", "GET http://allowed.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n", 400, "origin-form"},
		{"CONNECT", "CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n", 400, "CONNECT"},
		{"Host with another port", "GET / HTTP/1.1\r\nHost: allowed.example:8080\r\n\r\n", 400, "port 8080"},
		{"fragment", "GET /x#frag HTTP/1.1\r\nHost: allowed.example\r\n\r\n", 400, "fragment"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tp.logs.records("deny"))
			c, err := net.Dial("tcp", tp.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tt.request)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			c.Close()
			waitFor(t, func() bool { return len(tp.logs.records("deny")) > before }, "a deny record")
			rec := tp.lastDeny()
			checkRecord(t, rec, map[string]any{"reason": "bad_request"})
			if d, _ := rec["detail"].(string); !strings.Contains(d, tt.detail) {
				t.Errorf("detail %q lacks %q", d, tt.detail)
			}
		})
	}
	if got := tp.dialed(); len(got) != 0 {
		t.Errorf("dialed %v for refused requests", got)
	}
	// Origin-form stays illegal on the forward proxy's listener.
	resp, _, _ := tp.raw("", "GET / HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Errorf("origin-form on the forward listener: %d, want 400", resp.StatusCode)
	}
}

func frontingPolicy(port uint16, extra string) string {
	return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
%s
  allow "cdn" {
    hosts = ["allowed.example", "*.wild.example"]
    ports = [%d]
  }
}
`, extra, port)
}

// tlsOverConnect opens a CONNECT tunnel to target and runs a TLS handshake
// with sni through it.
func tlsOverConnect(tp *testProxy, target, sni string) error {
	tp.t.Helper()
	resp, c, br := tp.raw("", "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if resp.StatusCode != 200 {
		tp.t.Fatalf("CONNECT %s: %d", target, resp.StatusCode)
	}
	if br.Buffered() > 0 {
		tp.t.Fatalf("bytes after the 200")
	}
	tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return err
	}
	// A request proves the tunnel carries data both ways.
	fmt.Fprintf(tc, "GET /f HTTP/1.1\r\nHost: %s\r\n\r\n", sni)
	r, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(r.Body)
	if string(b) != "hello from cdn /f" {
		return fmt.Errorf("body %q", b)
	}
	return nil
}

func TestConnectDomainFronting(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "cdn")
	var tp *testProxy
	target := fmt.Sprintf("allowed.example:%d", port)
	learnDeny := fmt.Sprintf("mode = \"learn\"\n  deny \"no\" {\n    hosts = [\"denied.example\"]\n    ports = [%d]\n  }", port)
	for _, tt := range []struct {
		name, extra, sni string
		ok               bool
		record           string
		reason, detail   string // if not sni_mismatch and the SNI
	}{
		{"SNI is the CONNECT host", "", "allowed.example", true, "", "", ""},
		{"SNI differs only in case", "", "ALLOWED.example", true, "", "", ""},
		{"SNI another allowed host", "", "b.wild.example", true, "", "", ""},
		{"SNI a denied host", "", "denied.example", false, "deny", "", ""},
		{"SNI in Unicode", "", "\uff41llowed.example", false, "deny", "", "not a valid host name"},
		{"allow_sni_mismatch", "allow_sni_mismatch = true", "denied.example", true, "", "", ""},
		{"learn mode", `mode = "learn"`, "denied.example", true, "would deny", "", ""},
		{"learn mode, SNI a deny rule names", learnDeny, "denied.example", false, "deny", "", ""},
		{"learn mode, SNI not a host name", `mode = "learn"`, "denied..example", false, "deny", "", "not a valid host name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp = startProxy(t, frontingPolicy(port, tt.extra), newResolver(map[string]string{"allowed.example": allowedIP}),
				routeDials(&tp, map[string]string{allowedIP: origin.Listener.Addr().String()}))
			err := tlsOverConnect(tp, target, tt.sni)
			if tt.ok && err != nil {
				t.Fatalf("TLS with SNI %s through CONNECT %s: %v", tt.sni, target, err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("TLS with SNI %s through CONNECT %s worked; the tunnel must close", tt.sni, target)
			}
			if tt.record == "" {
				if recs := tp.logs.records("deny"); len(recs) != 0 {
					t.Errorf("deny records: %v", recs)
				}
				return
			}
			waitFor(t, func() bool { return len(tp.logs.records(tt.record)) > 0 }, tt.record)
			rec := tp.lastRecord(tt.record)
			reason, detail := cmp.Or(tt.reason, "sni_mismatch"), cmp.Or(tt.detail, tt.sni)
			checkRecord(t, rec, map[string]any{"reason": reason, "kind": "connect", "host": "allowed.example"})
			if d, _ := rec["detail"].(string); !strings.Contains(d, detail) {
				t.Errorf("detail %q lacks %q", d, detail)
			}
		})
	}
}

// A protocol whose server speaks first passes through a CONNECT tunnel at
// once: with an hour's header timeout, waiting for a ClientHello first would
// run into the test's deadline.
func TestConnectServerSpeaksFirst(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { ln.Close(); wg.Wait() }()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "220 smtp.example ESMTP\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "250 you said "+line)
	})
	port := portOf(t, ln.Addr())
	var tp *testProxy
	tp = startProxy(t, frontingPolicy(port, ""), newResolver(map[string]string{"allowed.example": allowedIP}),
		routeDials(&tp, map[string]string{allowedIP: ln.Addr().String()}),
		func(c *Config) { c.ReadHeaderTimeout = time.Hour })
	resp, c, br := tp.raw("", fmt.Sprintf("CONNECT allowed.example:%d HTTP/1.1\r\n\r\n", port))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	banner, err := br.ReadString('\n')
	if err != nil || banner != "220 smtp.example ESMTP\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	io.WriteString(c, "EHLO me\r\n")
	if reply, err := br.ReadString('\n'); err != nil || reply != "250 you said EHLO me\r\n" {
		t.Fatalf("reply %q, %v", reply, err)
	}
}

func TestOriginalDstFallback(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", network)
		if err != nil {
			t.Logf("%s: %v (no IPv6?)", network, err)
			continue
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Not redirected: conntrack, if loaded, reports the same address, and
		// without it the local address stands in.
		tc := originalDst(s)
		if want := netip.MustParseAddrPort(ln.Addr().String()); tc.origDst != want {
			t.Errorf("%s: original destination %v (conntrack %v), want the listener's %v", network, tc.origDst, tc.conntrack, want)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := sockoptOriginalDst(a); err == nil {
		t.Error("SO_ORIGINAL_DST of a pipe succeeded")
	}
	if tc := originalDst(a); tc.conntrack || tc.origDst.IsValid() {
		t.Errorf("pipe: %+v, want no original destination", tc)
	}
}

// Transparent tunnels are drained like CONNECT tunnels: Shutdown closes
// the listeners at once and, at its deadline, the tunnels still open.
func TestTransparentShutdown(t *testing.T) {
	t.Parallel()
	capture, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	tp := startTransparent(t, transparentPolicy(""), map[string]string{allowedIP: capture.Addr().String()})

	c, err := net.Dial("tcp", tp.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello := tlshellotest.Hello(tlshellotest.SNI("allowed.example"))
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	o, err := capture.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// The origin's accept can come before the proxy's dial returns; the
	// replayed ClientHello arriving means the tunnel is up.
	_ = o.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(o, make([]byte, len(hello))); err != nil {
		t.Fatalf("the ClientHello was not replayed to the origin: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: open tunnels are closed
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown waited for the tunnel: it has already ended and been logged.
	checkRecord(t, tp.lastRecord("tunnel closed"), map[string]any{"kind": "transparent_tls", "close_reason": "canceled"})
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("tunnel still open after Shutdown: %d, %v", n, err)
	}
	for _, addr := range []string{tp.tlsAddr, tp.httpAddr} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Shutdown", addr)
		}
	}
}

// The global connection cap counts connections on every listener together.
func TestGlobalCapSharedAcrossListeners(t *testing.T) {
	t.Parallel()
	tp := startTransparent(t, transparentPolicy(""), nil, func(c *Config) { c.MaxConnections = 1 })
	held, err := net.Dial("tcp", tp.addr) // the forward-proxy listener's one slot
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.connsActive) == 1 }, "the first connection to be counted")
	for _, addr := range []string{tp.httpAddr, tp.tlsAddr} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
		b, _ := io.ReadAll(c) // shed: a 503 (HTTP) or an alert (TLS), then the close
		c.Close()
		if addr == tp.httpAddr && !strings.HasPrefix(string(b), "HTTP/1.1 503") {
			t.Errorf("transparent HTTP over the cap: %q", b)
		}
	}
	if got := testutil.ToFloat64(tp.m.connsShed); got != 2 {
		t.Errorf("shed = %v, want 2 (one per transparent listener)", got)
	}
}

// replay, the write of what the checks read before the tunnel started, must
// not cost the client the origin's bytes when the write towards the origin
// fails: the client gets them, then a FIN, not a reset.
func TestReplayWriteFailureKeepsOtherSide(t *testing.T) {
	t.Parallel()
	clientLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer clientLn.Close()
	client, err := net.Dial("tcp", clientLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	proxySide, err := clientLn.Accept()
	if err != nil {
		t.Fatal(err)
	}
	op := &opening{toUpstream: []byte("EHLO client\r\n"), toClient: []byte("220 origin banner\r\n")}
	why, _ := replay(proxySide, failingConn{}, op)
	if why != relay.ReasonError {
		t.Errorf("replay ended as %q, want %q", why, relay.ReasonError)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "220 origin banner\r\n" {
		t.Errorf("client read %q, %v; want the banner, then EOF", got, err)
	}
}

// failingConn is an upstream whose writes fail.
type failingConn struct{ net.Conn }

func (failingConn) Write([]byte) (int, error)        { return 0, syscall.ECONNRESET }
func (failingConn) Close() error                     { return nil }
func (failingConn) SetWriteDeadline(time.Time) error { return nil }
