package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/azegress/azegress/proxy/internal/evloop"
	"github.com/azegress/azegress/proxy/internal/nettest"
)

// With Config.Engine the explicit listener's CONNECTs go through the
// event-loop engine, whatever AZEGRESS_TEST_ENGINE says: the tunnel works,
// is refused and logged as on the goroutine path, and the engine dialed it
// (the goroutine path never asks engineDial).
func TestEngineServesConnect(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	res := loopbackNames("allowed.example.com", "denied.example.com")
	var engineDials atomic.Int32
	tp := startProxy(t, basePolicy(port, ""), res, func(c *Config) {
		c.Engine = true
		c.engineDial = func(ap netip.AddrPort) netip.AddrPort { engineDials.Add(1); return ap }
	})
	if tp.engine == nil {
		t.Fatal("Config.Engine set, but the server has no engine")
	}
	c := tp.client("")
	resp, err := c.Get(fmt.Sprintf("https://allowed.example.com:%d/path", port))
	if err != nil {
		t.Fatalf("GET through the engine: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from origin /path"; string(b) != want {
		t.Fatalf("body = %q, want %q", b, want)
	}
	if n := engineDials.Load(); n != 1 {
		t.Errorf("the engine dialed %d times; want 1 (the CONNECT took the goroutine path?)", n)
	}
	if _, err := c.Get(fmt.Sprintf("https://denied.example.com:%d/path", port)); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("denied.example.com: %v; want the proxy's 403", err)
	}
	c.CloseIdleConnections()
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) == 1 }, "the tunnel's closed record")
	checkRecord(t, tp.lastRecord("tunnel closed"), map[string]any{"host": "allowed.example.com", "close_reason": "eof"})
	if rec := tp.lastRecord("deny"); rec["reason"] != ReasonNoRule {
		t.Errorf("deny record %v; want reason %s", rec, ReasonNoRule)
	}
	hr, err := c.Get(fmt.Sprintf("http://denied.example.com:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 403 {
		t.Errorf("plain GET: %d; want 403", hr.StatusCode)
	}
}

// The engine serves a plain, bodiless HTTP/1.1 request itself: decided per
// request, the proxy's credentials and hop-by-hop fields not sent on, the
// origin's forged verdict dropped, one origin connection kept for the
// client's next requests, a refusal answered on the same connection, and a
// request the loop does not serve (a body) handed to net/http mid-connection.
func TestEngineServesHTTP(t *testing.T) {
	t.Parallel()
	var originConns atomic.Int32
	var seen atomic.Pointer[http.Header]
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		seen.Store(&h)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Azegress-Reason", "forged-by-origin")
		w.Header().Set("Keep-Alive", "timeout=5")
		fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.RequestURI(), body)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			originConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	port := portOf(t, srv.Listener.Addr())
	tp, c, engineDials := loopProxy(t, port, loopbackNames("allowed.example.com", "other.example.com", "denied.example.com"))
	br := bufio.NewReader(c)
	bodies := 0
	for i, tt := range []struct {
		req, status, body string
	}{
		{"GET http://allowed.example.com:%d/a?x=1 HTTP/1.1\r\nHost: allowed.example.com:%d\r\nProxy-Authorization: Basic c2VjcmV0\r\nConnection: X-Hop\r\nX-Hop: 1\r\nX-Kept: yes\r\n\r\n", "200", "GET /a?x=1 body="},
		{"GET http://allowed.example.com:%d/b HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", "200", "GET /b body="},
		{"GET http://denied.example.com:%d/c HTTP/1.1\r\nHost: denied.example.com:%d\r\n\r\n", "403", "azegress denied GET denied.example.com"},
		{"POST http://allowed.example.com:%d/d HTTP/1.1\r\nHost: allowed.example.com:%d\r\nContent-Length: 3\r\n\r\nabc", "200", "POST /d body=abc"},
	} {
		fmt.Fprintf(c, tt.req, port, port)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if got := strconv.Itoa(resp.StatusCode); got != tt.status || !strings.Contains(string(b), tt.body) {
			t.Fatalf("request %d: %s %q; want %s with %q", i, got, b, tt.status, tt.body)
		}
		if i < 2 {
			bodies += len(b)
		}
		if i == 1 {
			if n, m := engineDials.Load(), originConns.Load(); n != 2 || m != 1 {
				t.Errorf("after two requests: the engine decided %d dials and the origin saw %d connections; want 2 and 1 (one kept)", n, m)
			}
			// One connect, observed as the goroutine path's transport does.
			if n := histogramCount(t, tp.m.dialSeconds); n != 1 {
				t.Errorf("dial_duration_seconds counted %d dials after two requests on one origin connection; want 1", n)
			}
			// Downstream bytes are the bodies', as the goroutine path counts them.
			waitFor(t, func() bool { return testutil.ToFloat64(tp.m.bytesDown) >= float64(bodies) }, "the bodies counted")
			if got := testutil.ToFloat64(tp.m.bytesDown); got != float64(bodies) {
				t.Errorf("downstream bytes %v after two responses; want their bodies' %d", got, bodies)
			}
		}
		if i == 0 {
			h := *seen.Load()
			for _, f := range []string{"Proxy-Authorization", "X-Hop", "Connection"} {
				if v, ok := h[f]; ok {
					t.Errorf("the origin got %s: %q", f, v)
				}
			}
			if h.Get("X-Kept") != "yes" {
				t.Errorf("the origin did not get X-Kept: %v", h)
			}
			for _, f := range []string{"X-Azegress-Reason", "Keep-Alive"} {
				if v := resp.Header.Get(f); v != "" {
					t.Errorf("the client got the origin's %s: %q", f, v)
				}
			}
		}
	}
	if n := len(tp.logs.records(msgRequest)); n < 3 {
		t.Errorf("%d request records; want 3", n)
	}
}

// loopProxy starts a proxy on the engine for httpPolicy(port) and opens a
// client connection to it, closed when the test ends; dials counts the
// addresses the engine was told to dial, which only the loop does.
func loopProxy(t *testing.T, port uint16, res *fakeResolver, opts ...proxyOpt) (tp *testProxy, c net.Conn, dials *atomic.Int32) {
	t.Helper()
	dials = new(atomic.Int32)
	opts = append(opts, func(c *Config) {
		c.Engine = true
		c.engineDial = func(ap netip.AddrPort) netip.AddrPort { dials.Add(1); return ap }
	})
	tp = startProxy(t, httpPolicy(port), res, opts...)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return tp, c, dials
}

// histogramCount is how many observations h has.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// An origin that fails a plain-HTTP request on the loop gets the refusal
// forward makes of the round trip's error: 504 when it sends nothing for
// the exchange's idle time, 502 when it closes first or sends a head larger
// than the loop's response buffer; each with its Proxy-Status and the
// connection closed after it.
func TestEngineHTTPOriginFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		origin func(c net.Conn) // after the request head was read
		status int
		ps     string // the Proxy-Status error
		detail string
	}{
		{"silent", func(c net.Conn) { time.Sleep(2 * time.Second) }, 504, psResponseTimeout, "sent no byte of its response for 300ms"},
		{"closes", func(c net.Conn) {}, 502, psConnTerminated, "request to allowed.example.com"},
		{"huge head", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", evloop.ResponseBufSize)+"\r\n\r\n")
		}, 502, psHTTPProtocol, fmt.Sprintf("larger than %d bytes", evloop.ResponseBufSize)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := nettest.Serve(t, func(c net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					tt.origin(c)
				}
			})
			port := portOf(t, ln.Addr())
			tp, c, engineDials := loopProxy(t, port, loopbackNames("allowed.example.com"),
				func(c *Config) { c.TunnelIdleTimeout = 300 * time.Millisecond })
			fmt.Fprintf(c, "GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", port, port)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(resp.Header.Get("Proxy-Status"), "error="+tt.ps) || !strings.Contains(string(b), tt.detail) {
				t.Errorf("%d, Proxy-Status %q, body %q; want %d, error=%s and %q", resp.StatusCode, resp.Header.Get("Proxy-Status"), b, tt.status, tt.ps, tt.detail)
			}
			if !resp.Close {
				t.Error("the refusal did not say Connection: close")
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after the refusal: %v; want the connection closed", err)
			}
			waitFor(t, func() bool { return tp.engine.Conns() == 0 }, "the loop's connections gone")
			if engineDials.Load() == 0 {
				t.Error("the request was not served on the loop")
			}
		})
	}
}
