package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/proxy/internal/tlshello"
	"github.com/azegress/azegress/proxy/internal/tlshello/tlshellotest"
)

// frontingProxy starts a proxy under frontingPolicy(port, extra), whose
// dials of allowed.example go to origin.
func frontingProxy(t *testing.T, port uint16, extra, origin string, opts ...proxyOpt) *testProxy {
	t.Helper()
	var tp *testProxy
	tp = startProxy(t, frontingPolicy(port, extra), newResolver(map[string]string{"allowed.example": allowedIP}),
		append([]proxyOpt{routeDials(&tp, map[string]string{allowedIP: origin})}, opts...)...)
	return tp
}

// connectTunnel opens a CONNECT tunnel to allowed.example:port and returns
// its connection.
func connectTunnel(tp *testProxy, port uint16) net.Conn {
	tp.t.Helper()
	resp, c, br := tp.raw("", fmt.Sprintf("CONNECT allowed.example:%d HTTP/1.1\r\n\r\n", port))
	if resp.StatusCode != 200 {
		tp.t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	return &tunnelConn{Conn: c, r: br}
}

// tunnelConn reads through the reader of the CONNECT response, which may
// hold the origin's first bytes.
type tunnelConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *tunnelConn) Read(b []byte) (int, error) { return c.r.Read(b) }
func (c *tunnelConn) CloseWrite() error          { return c.Conn.(*net.TCPConn).CloseWrite() }

// prefixWriter sends prefix before the first write, or edits it (a TLS
// client's first write is its ClientHello).
type prefixWriter struct {
	net.Conn
	prefix []byte
	edit   func([]byte) []byte
	done   bool
}

func (c *prefixWriter) Write(b []byte) (int, error) {
	if c.done {
		return c.Conn.Write(b)
	}
	c.done = true
	out := slices.Concat(c.prefix, b)
	if c.edit != nil {
		out = c.edit(out)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// closed reports whether the proxy closed c: a read ends with EOF or a
// reset, rather than the test's deadline.
func closed(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("the tunnel is still open")
	}
	return nil
}

// TLS that servers read as a ClientHello but the check used to pass as
// "not TLS" is refused.
func TestConnectFrontingFirstBytes(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "cdn")
	for _, tt := range []struct {
		name   string
		sni    string
		prefix []byte
		edit   func([]byte) []byte
		reason string // "" if the handshake must work
		detail string
	}{
		{name: "warning alert, then a denied name", sni: "denied.example", prefix: tlshellotest.Record(21, []byte{1, 112}),
			reason: "bad_request", detail: "alert record before the ClientHello"},
		{name: "warning alert, then the CONNECT host", sni: "allowed.example", prefix: tlshellotest.Record(21, []byte{1, 112}),
			reason: "bad_request", detail: "alert record before the ClientHello"},
		{name: "change_cipher_spec first", sni: "allowed.example", prefix: tlshellotest.Record(20, []byte{1}),
			reason: "bad_request", detail: "change_cipher_spec record before"},
		{name: "record version 2.0, denied name", sni: "denied.example", edit: func(b []byte) []byte { return tlshellotest.WithRecordVersion(b, 0x0200) },
			reason: "bad_request", detail: "record version outside 3.0 to 3.4"},
		{name: "record version 3.0, denied name", sni: "denied.example", edit: func(b []byte) []byte { return tlshellotest.WithRecordVersion(b, 0x0300) },
			reason: "sni_mismatch", detail: "denied.example"},
		{name: "record version 3.0, the CONNECT host", sni: "allowed.example", edit: func(b []byte) []byte { return tlshellotest.WithRecordVersion(b, 0x0300) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := frontingProxy(t, port, "", origin.Listener.Addr().String())
			c := connectTunnel(tp, port)
			tc := tls.Client(&prefixWriter{Conn: c, prefix: tt.prefix, edit: tt.edit}, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			err := tc.Handshake()
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if n := len(tp.logs.records("deny")); n != 0 {
					t.Errorf("%d deny records", n)
				}
				return
			}
			if err == nil {
				t.Fatalf("TLS handshake for %s through the tunnel worked; the tunnel must close", tt.sni)
			}
			waitFor(t, func() bool { return len(tp.logs.records("deny")) > 0 }, "a deny record")
			rec := tp.lastDeny()
			checkRecord(t, rec, map[string]any{"reason": tt.reason, "kind": "connect", "host": "allowed.example", "status": float64(0)})
			if d, _ := rec["detail"].(string); !strings.Contains(d, tt.detail) {
				t.Errorf("detail %q lacks %q", d, tt.detail)
			}
		})
	}
}

// The header timeout bounds the wait for the client's first bytes, not
// the check: a tunnel in which nobody speaks in time is closed, so a
// ClientHello sent later never reaches the origin unchecked.
func TestConnectFrontingSilence(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "cdn")
	for _, tt := range []struct {
		name, extra string
		deny        bool
	}{
		{"enforce", "", true},
		{"learn mode too", `mode = "learn"`, true},
		{"allow_sni_mismatch", "allow_sni_mismatch = true", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp := frontingProxy(t, port, tt.extra, origin.Listener.Addr().String(),
				func(c *Config) { c.ReadHeaderTimeout = 200 * time.Millisecond })
			c := connectTunnel(tp, port)
			if !tt.deny {
				// Unchecked, the tunnel waits for the client however long.
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read from the silent tunnel: %v, want the test's deadline", err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tls.Client(c, &tls.Config{ServerName: "denied.example", InsecureSkipVerify: true}).Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				return
			}
			if err := closed(c); err != nil {
				t.Fatal(err)
			}
			if err := tls.Client(c, &tls.Config{ServerName: "denied.example", InsecureSkipVerify: true}).Handshake(); err == nil {
				t.Fatal("a late ClientHello got a TLS session")
			}
			waitFor(t, func() bool { return len(tp.logs.records("deny")) > 0 }, "a deny record")
			rec := tp.lastDeny()
			checkRecord(t, rec, map[string]any{"reason": "bad_request", "kind": "connect", "host": "allowed.example"})
			if d, _ := rec["detail"].(string); !strings.Contains(d, "neither the client nor the origin sent anything within 200ms") {
				t.Errorf("detail %q", d)
			}
		})
	}
}

// serveConns runs handle on each connection ln accepts, each on its own
// goroutine with a deadline, until the test ends.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
}

// listenLocal listens on a fresh loopback port.
func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// bannerOrigin sends banner on each connection, and reports on got
// everything it then reads until the client closes.
func bannerOrigin(t *testing.T, banner string) (addr string, got <-chan string) {
	t.Helper()
	ln := listenLocal(t)
	ch := make(chan string, 1)
	serveConns(t, ln, func(c net.Conn) {
		io.WriteString(c, banner)
		b, _ := io.ReadAll(c)
		ch <- string(b)
	})
	return ln.Addr().String(), ch
}

// An origin that speaks first is relayed at once, but what the client
// sends, whenever it sends it, is still checked before the origin sees it.
func TestConnectFrontingServerFirst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		send    func(c net.Conn) // after the banner
		reaches string           // what the origin must read
		reason  string           // the refusal, if any
	}{
		{"a ClientHello for a denied name", func(c net.Conn) {
			_ = tls.Client(c, &tls.Config{ServerName: "denied.example", InsecureSkipVerify: true}).Handshake()
		}, "", "sni_mismatch"},
		{"a warning alert and a ClientHello", func(c net.Conn) {
			_ = tls.Client(&prefixWriter{Conn: c, prefix: tlshellotest.Record(21, []byte{1, 112})}, &tls.Config{ServerName: "denied.example", InsecureSkipVerify: true}).Handshake()
		}, "", "bad_request"},
		{"SMTP after the header timeout", func(c net.Conn) {
			time.Sleep(300 * time.Millisecond) // past the 100ms header timeout: the banner lifted it
			io.WriteString(c, "EHLO me\r\n")
			c.(*tunnelConn).CloseWrite()
		}, "EHLO me\r\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, got := bannerOrigin(t, "220 smtp.example ESMTP\r\n")
			port := uint16(2525)
			tp := frontingProxy(t, port, "", addr,
				func(c *Config) { c.ReadHeaderTimeout = 100 * time.Millisecond })
			c := connectTunnel(tp, port)
			if banner, err := c.(*tunnelConn).r.ReadString('\n'); err != nil || banner != "220 smtp.example ESMTP\r\n" {
				t.Fatalf("banner %q, %v", banner, err)
			}
			tt.send(c)
			if tt.reason != "" {
				if err := closed(c); err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool { return len(tp.logs.records("deny")) > 0 }, "a deny record")
				checkRecord(t, tp.lastDeny(), map[string]any{"reason": tt.reason, "host": "allowed.example"})
			}
			c.Close()
			if s := <-got; s != tt.reaches {
				t.Errorf("the origin read %q, want %q", s, tt.reaches)
			}
		})
	}
}

// While the client has not spoken after an origin's banner, the tunnel's
// idle timeout applies.
func TestConnectFrontingServerFirstIdle(t *testing.T) {
	t.Parallel()
	addr, got := bannerOrigin(t, "220 smtp.example ESMTP\r\n")
	port := uint16(2525)
	tp := frontingProxy(t, port, "", addr,
		func(c *Config) { c.ReadHeaderTimeout, c.TunnelIdleTimeout = 100*time.Millisecond, 300*time.Millisecond })
	c := connectTunnel(tp, port)
	if err := closed(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) > 0 }, "a tunnel closed record")
	rec := tp.lastRecord("tunnel closed")
	checkRecord(t, rec, map[string]any{"close_reason": "idle_timeout", "bytes_down": float64(len("220 smtp.example ESMTP\r\n")), "bytes_up": float64(0)})
	if s := <-got; s != "" {
		t.Errorf("the origin read %q", s)
	}
}

// An origin that closes its side before the client's first ClientHello is
// checked, or before answering it, ends the tunnel: a half-closed origin
// still reads, and what the client sends next would reach it unchecked.
func TestConnectFrontingOriginClosesFirst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		banner string
		hello  bool // the origin half-closes after reading a ClientHello
	}{
		{name: "before anything"},
		{name: "after a banner", banner: "220 smtp.example ESMTP\r\n"},
		{name: "after the first ClientHello", hello: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listenLocal(t)
			got := make(chan []byte, 1)
			serveConns(t, ln, func(c net.Conn) {
				io.WriteString(c, tt.banner)
				var first []byte
				if tt.hello {
					first, _, _, _ = readRecords(c, nil, tlshello.Parse)
				}
				c.(*net.TCPConn).CloseWrite()
				rest, _ := io.ReadAll(c)
				got <- slices.Concat(first, rest)
			})
			port := uint16(8443)
			tp := frontingProxy(t, port, "", ln.Addr().String())
			c := connectTunnel(tp, port)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			hello := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"})
			if tt.hello {
				if _, err := c.Write(hello); err != nil {
					t.Fatal(err)
				}
			}
			if b, err := io.ReadAll(c); err != nil || string(b) != tt.banner {
				t.Fatalf("the tunnel gave %q, %v; want the banner %q, then EOF", b, err, tt.banner)
			}
			// Now a ClientHello that the check would refuse.
			denied := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "denied.example"})
			if tt.hello {
				denied = slices.Concat(tlshellotest.WithRecordVersion(tlshellotest.Record(20, []byte{1}), 0x0303), tlshellotest.WithRecordVersion(denied, 0x0303))
			}
			_, _ = c.Write(denied)
			c.Close()
			want := []byte{}
			if tt.hello {
				want = hello
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Errorf("the origin read %d bytes, want %d: nothing the client sent after the origin closed", len(b), len(want))
			}
		})
	}
}

// retryOrigin is a TLS origin that answers every default crypto/tls
// ClientHello with a HelloRetryRequest, then serves "hello from retry".
// Each connection's handshake error is reported on errs.
func retryOrigin(t *testing.T) (addr string, errs <-chan error) {
	t.Helper()
	ln := tls.NewListener(listenLocal(t), tlshellotest.RetryConfig(t, "allowed.example", "denied.example"))
	ch := make(chan error, 16)
	serveConns(t, ln, func(c net.Conn) {
		tc := c.(*tls.Conn)
		err := tc.Handshake()
		ch <- err
		if err == nil {
			io.WriteString(tc, "hello from retry "+tc.ConnectionState().ServerName)
		}
	})
	return ln.Addr().String(), ch
}

// forgeRetry runs a handshake whose second ClientHello is second, on c:
// the first ClientHello for allowed.example, the HelloRetryRequest, then
// a change_cipher_spec and second.
func forgeRetry(t *testing.T, c net.Conn, second []byte) {
	t.Helper()
	if _, err := c.Write(tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"})); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, sh, perr, err := readRecords(c, newHelloBuf(nil), tlshello.ParseServerHello)
	if perr != nil || !sh.Retry {
		t.Fatalf("the origin's answer: %v %v, retry %v; want a HelloRetryRequest", perr, err, sh.Retry)
	}
	// In records of version 3.3, as a TLS 1.3 client sends them after a
	// HelloRetryRequest.
	ccs := tlshellotest.WithRecordVersion(tlshellotest.Record(20, []byte{1}), 0x0303)
	if _, err := c.Write(slices.Concat(ccs, tlshellotest.WithRecordVersion(second, 0x0303))); err != nil {
		t.Fatal(err)
	}
}

// After a HelloRetryRequest, the second ClientHello must name the same
// server as the first, on a CONNECT tunnel and on the transparent listener.
func TestFrontingRetry(t *testing.T) {
	t.Parallel()
	denied := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "denied.example"})
	for _, tt := range []struct {
		name        string
		transparent bool
		extra       string
		second      []byte // nil: a real crypto/tls client
		reason      string
		record      string // "deny" or "would deny"
	}{
		{name: "CONNECT, one client", reason: ""},
		{name: "CONNECT, another name", second: denied, reason: "sni_mismatch", record: "deny"},
		{name: "CONNECT, no server name", second: tlshellotest.GoClientHello(t, &tls.Config{InsecureSkipVerify: true}), reason: "sni_mismatch", record: "deny"},
		{name: "CONNECT, an alert", second: tlshellotest.Alert(alertAccessDenied), reason: "bad_request", record: "deny"},
		{name: "CONNECT, another name, learn mode", extra: `mode = "learn"`, second: denied, reason: "sni_mismatch", record: "would deny"},
		{name: "CONNECT, a name a deny rule names, learn mode", extra: "mode = \"learn\"\n  deny \"no\" {\n    hosts = [\"denied.example\"]\n    ports = [8443]\n  }",
			second: denied, reason: "sni_mismatch", record: "deny"},
		{name: "CONNECT, no server name, learn mode", extra: `mode = "learn"`, second: tlshellotest.GoClientHello(t, &tls.Config{InsecureSkipVerify: true}), reason: "sni_mismatch", record: "deny"},
		{name: "transparent, one client", transparent: true},
		{name: "transparent, another name", transparent: true, second: denied, reason: "sni_mismatch", record: "deny"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, errs := retryOrigin(t)
			var c net.Conn
			var tp *testProxy
			if tt.transparent {
				ttp := startTransparent(t, transparentPolicy(tt.extra), map[string]string{allowedIP: addr})
				tp = ttp.testProxy
				var err error
				if c, err = net.DialTimeout("tcp", ttp.tlsAddr, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			} else {
				port := uint16(8443)
				tp = frontingProxy(t, port, tt.extra, addr)
				c = connectTunnel(tp, port)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))

			if tt.second == nil {
				tc := tls.Client(c, &tls.Config{ServerName: "allowed.example", InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if !tc.ConnectionState().HelloRetryRequest {
					t.Fatal("the origin sent no HelloRetryRequest")
				}
				if b, err := io.ReadAll(tc); err != nil || string(b) != "hello from retry allowed.example" {
					t.Fatalf("read %q, %v", b, err)
				}
				if n := len(tp.logs.records("deny")) + len(tp.logs.records("would deny")); n != 0 {
					t.Errorf("%d deny and would deny records", n)
				}
				return
			}
			forgeRetry(t, c, tt.second)
			waitFor(t, func() bool { return len(tp.logs.records(tt.record)) > 0 }, tt.record)
			rec := tp.lastRecord(tt.record)
			checkRecord(t, rec, map[string]any{"reason": tt.reason, "host": "allowed.example"})
			if d, _ := rec["detail"].(string); !strings.Contains(d, "HelloRetryRequest") {
				t.Errorf("detail %q does not name the HelloRetryRequest", d)
			}
			if tt.record == "would deny" {
				// Passed on: the origin reads the forged second ClientHello
				// and refuses it itself.
				if err := <-errs; err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("origin's handshake: %v, want its refusal of the second ClientHello", err)
				}
				return
			}
			if err := closed(c); err != nil {
				t.Fatal(err)
			}
			// The origin never read the second ClientHello: the proxy closed
			// the connection (a reset, if the origin's change_cipher_spec
			// was still unread).
			if err := <-errs; !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("origin's handshake: %v, want EOF or a reset", err)
			}
		})
	}
}

// An origin that does not answer a TLS 1.3 ClientHello within the header
// timeout cannot be told from one about to send a HelloRetryRequest.
func TestFrontingRetryOriginSilent(t *testing.T) {
	t.Parallel()
	ln := listenLocal(t)
	serveConns(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	port := uint16(8443)
	tp := frontingProxy(t, port, "", ln.Addr().String(),
		func(c *Config) { c.ReadHeaderTimeout = 200 * time.Millisecond })
	c := connectTunnel(tp, port)
	if _, err := c.Write(tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"})); err != nil {
		t.Fatal(err)
	}
	if err := closed(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(tp.logs.records("deny")) > 0 }, "a deny record")
	checkRecord(t, tp.lastDeny(), map[string]any{"reason": "dial_failed", "host": "allowed.example"})
}

// The refusals of a tunnel whose client stops before its ClientHello is
// whole, through real sockets: the same texts before and after the check's
// decisions moved into openingCheck.
func TestFrontingDenialTexts(t *testing.T) {
	t.Parallel()
	partial := tlshellotest.Hello(tlshellotest.SNI("allowed.example"))[:10]
	const badFix = `A TLS client must send its ClientHello first and whole, in TLS records of versions 3.0 to 3.4, within -header-timeout. A client that speaks another protocol starting with such a byte needs allow_sni_mismatch = true for client "local" in test.hcl.`
	for _, tt := range []struct {
		name   string
		origin func(t *testing.T) string
		run    func(t *testing.T, c net.Conn)
		detail string
		fix    string
	}{
		{name: "the client closes mid-hello",
			origin: func(t *testing.T) string { a, _ := bannerOrigin(t, ""); return a },
			run: func(t *testing.T, c net.Conn) {
				c.Write(partial)
				c.(*tunnelConn).CloseWrite()
			},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client closed the connection", fix: badFix},
		{name: "the client stops mid-hello",
			origin: func(t *testing.T) string { a, _ := bannerOrigin(t, ""); return a },
			run:    func(t *testing.T, c net.Conn) { c.Write(partial) },
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client sent nothing more within 200ms", fix: badFix},
		{name: "the client stops mid-hello after a banner",
			origin: func(t *testing.T) string { a, _ := bannerOrigin(t, "220 hi\r\n"); return a },
			run: func(t *testing.T, c net.Conn) {
				if b, err := c.(*tunnelConn).r.ReadString('\n'); err != nil {
					t.Fatalf("banner %q: %v", b, err)
				}
				c.Write(partial)
			},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client was idle for 400ms", fix: badFix},
		{name: "the origin does not answer",
			origin: func(t *testing.T) string { a, _ := bannerOrigin(t, ""); return a },
			run: func(t *testing.T, c net.Conn) {
				c.Write(tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"}))
			},
			detail: "the origin of the tunnel to allowed.example:8443 did not answer the TLS ClientHello within 200ms, so a HelloRetryRequest could not be ruled out",
			fix:    "The origin must answer a TLS ClientHello within -header-timeout, with a first handshake message of at most 16 KiB."},
		{name: "the client closes after a HelloRetryRequest",
			origin: func(t *testing.T) string { a, _ := retryOrigin(t); return a },
			run: func(t *testing.T, c net.Conn) {
				c.Write(tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"}))
				if _, sh, perr, err := readRecords(c, newHelloBuf(nil), tlshello.ParseServerHello); perr != nil || !sh.Retry {
					t.Fatalf("the origin's answer: %v %v, retry %v; want a HelloRetryRequest", perr, err, sh.Retry)
				}
				c.Write(tlshellotest.Record(20, []byte{1}))
				c.(*tunnelConn).CloseWrite()
			},
			detail: "tunnel to allowed.example:8443: after the origin's HelloRetryRequest, incomplete TLS ClientHello (6 bytes) when the client closed the connection",
			fix:    "After a HelloRetryRequest, the client must send its second ClientHello, for the same server name, within -header-timeout."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port := uint16(8443)
			tp := frontingProxy(t, port, "", tt.origin(t),
				func(c *Config) { c.ReadHeaderTimeout, c.TunnelIdleTimeout = 200*time.Millisecond, 400*time.Millisecond })
			c := connectTunnel(tp, port)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			tt.run(t, c)
			if err := closed(c); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(tp.logs.records("deny")) > 0 }, "a deny record")
			rec := tp.lastDeny()
			if d, _ := rec["detail"].(string); d != tt.detail {
				t.Errorf("detail:\n\t%s\nwant:\n\t%s", d, tt.detail)
			}
			if f, _ := rec["fix"].(string); f != tt.fix {
				t.Errorf("fix:\n\t%s\nwant:\n\t%s", f, tt.fix)
			}
		})
	}
}
