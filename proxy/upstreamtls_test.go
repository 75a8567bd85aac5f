package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// httpsOrigin is an HTTPS origin on 127.0.0.1 with httptest's certificate
// (example.com, *.example.com, 127.0.0.1, ::1). It answers with what it saw
// and counts the TLS handshakes it began.
type httpsOrigin struct {
	port       uint16
	roots      *x509.CertPool // trusts its certificate
	handshakes atomic.Int32
}

func startHTTPSOrigin(t *testing.T) *httpsOrigin {
	t.Helper()
	o := &httpsOrigin{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var sni, alpn string
		if r.TLS != nil {
			sni, alpn = r.TLS.ServerName, r.TLS.NegotiatedProtocol
		}
		fmt.Fprintf(w, "tls=%v sni=%q alpn=%q %s %s body=%q auth=%q", r.TLS != nil, sni, alpn, r.Method, r.URL.Path, body, r.Header.Get("Authorization"))
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		o.handshakes.Add(1)
		return nil, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	o.port = portOf(t, srv.Listener.Addr())
	o.roots = x509.NewCertPool()
	o.roots.AddCert(srv.Certificate())
	return o
}

func httpsPolicy(ports ...uint16) string {
	var ps []string
	for _, p := range ports {
		ps = append(ps, fmt.Sprint(p))
	}
	return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "web" {
    hosts     = ["allowed.example.com", "other.example"]
    ports     = [%s]
    addresses = ["127.0.0.0/8"]
  }
}`, strings.Join(ps, ", "))
}

func trustRoots(roots *x509.CertPool) proxyOpt {
	return func(c *Config) { c.UpstreamRootCAs = roots }
}

// absRequest is an absolute-form request for scheme://host:port/path with
// an Authorization header, and a body if body is not empty.
func absRequest(method, scheme, host string, port uint16, path, extra, body string) string {
	req := fmt.Sprintf("%s %s://%s:%d%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer secret\r\n%s", method, scheme, host, port, path, host, port, extra)
	if body != "" {
		req += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	return req + "\r\n" + body
}

// final sends request on a connection of its own and returns the final
// (non-1xx) response and its body.
func (tp *testProxy) final(request string) (*http.Response, string) {
	tp.t.Helper()
	resp, c, br := tp.raw("", request)
	defer c.Close()
	for resp.StatusCode < 200 {
		var err error
		if resp, err = http.ReadResponse(br, nil); err != nil {
			tp.t.Fatalf("reading the response after a %d: %v", resp.StatusCode, err)
		}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tp.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// An absolute-form https:// request is forwarded over TLS, verified, on
// every path: the origin pool (bodiless) and http.Transport (a body,
// Expect, Upgrade). The SNI is the request's host name, never an IP.
func TestHTTPSAbsoluteForm(t *testing.T) {
	t.Parallel()
	o := startHTTPSOrigin(t)
	tp := startProxy(t, httpsPolicy(o.port), loopbackNames("allowed.example.com"), trustRoots(o.roots))
	for _, tt := range []struct {
		name string
		req  string
		want string
	}{
		{"bodiless GET, origin pool", absRequest("GET", "https", "allowed.example.com", o.port, "/a", "", ""),
			`tls=true sni="allowed.example.com" alpn="http/1.1" GET /a body="" auth="Bearer secret"`},
		{"POST with a body, http.Transport", absRequest("POST", "https", "allowed.example.com", o.port, "/b", "", "data"),
			`tls=true sni="allowed.example.com" alpn="http/1.1" POST /b body="data" auth="Bearer secret"`},
		{"Expect: 100-continue", absRequest("PUT", "https", "allowed.example.com", o.port, "/c", "Expect: 100-continue\r\n", "more"),
			`tls=true sni="allowed.example.com" alpn="http/1.1" PUT /c body="more" auth="Bearer secret"`},
		{"Upgrade", absRequest("GET", "https", "allowed.example.com", o.port, "/d", "Connection: Upgrade\r\nUpgrade: websocket\r\n", ""),
			`tls=true sni="allowed.example.com" alpn="http/1.1" GET /d body="" auth="Bearer secret"`},
		{"IP literal: no SNI, verified against the IP address", absRequest("GET", "https", "127.0.0.1", o.port, "/e", "", ""),
			`tls=true sni="" alpn="http/1.1" GET /e body="" auth="Bearer secret"`},
		{"IP literal with a body", absRequest("POST", "https", "127.0.0.1", o.port, "/f", "", "x"),
			`tls=true sni="" alpn="http/1.1" POST /f body="x" auth="Bearer secret"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tp.final(tt.req)
			if resp.StatusCode != http.StatusOK || body != tt.want {
				t.Errorf("%d %q\nwant 200 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

// The origin pool keeps a TLS connection for the next bodiless https://
// request, and never gives an https:// request a plain connection to the
// same host and port.
func TestHTTPSAbsoluteFormReuse(t *testing.T) {
	t.Parallel()
	o := startHTTPSOrigin(t)
	var firstBytes sync.Map // connection index -> first byte
	plain := scriptOrigin(t, func(i int, c net.Conn, br *bufio.Reader) {
		if b, err := br.Peek(1); err == nil {
			firstBytes.Store(i, b[0])
		}
		answerAll(okResponse)(i, c, br)
		c.Close() // a ClientHello is not a request: hang up
	})
	tp := startProxy(t, httpsPolicy(o.port, plain.port), loopbackNames("allowed.example.com"), trustRoots(o.roots), quietLogs)

	for i := range 3 {
		resp, body := tp.final(absRequest("GET", "https", "allowed.example.com", o.port, "/", "", ""))
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "tls=true") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if got := o.handshakes.Load(); got != 1 {
		t.Errorf("%d TLS handshakes for three bodiless requests, want 1: the pool did not reuse the connection", got)
	}

	// A pooled plain connection to host:port is not an https:// connection.
	resp, body := tp.final(absRequest("GET", "http", "allowed.example.com", plain.port, "/", "", ""))
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("http://: %d %q", resp.StatusCode, body)
	}
	resp, body = tp.final(absRequest("GET", "https", "allowed.example.com", plain.port, "/", "", ""))
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Azegress-Reason") != ReasonUpstreamTLS {
		t.Errorf("https:// to a plain-HTTP port: %d %q, want 502 %s", resp.StatusCode, body, ReasonUpstreamTLS)
	}
	if got := plain.accepted.Load(); got != 2 {
		t.Errorf("plain origin accepted %d connections, want 2 (one per scheme)", got)
	}
	if b, _ := firstBytes.Load(1); b != byte(0x16) {
		t.Errorf("the https:// connection began with %#v, want a TLS handshake record (0x16)", b)
	}
}

// A destination that fails the TLS handshake is refused with
// upstream_tls, a detail naming the host and the cause in words, and a
// fix, on both paths; the request itself never leaves the proxy.
func TestHTTPSAbsoluteFormRefused(t *testing.T) {
	t.Parallel()
	o := startHTTPSOrigin(t)
	var (
		mu    sync.Mutex
		heard []string // what non-TLS origins received first
	)
	record := func(br *bufio.Reader) {
		b, _ := br.Peek(5)
		mu.Lock()
		heard = append(heard, string(b))
		mu.Unlock()
	}
	closer := scriptOrigin(t, func(_ int, c net.Conn, br *bufio.Reader) {
		record(br)
		c.Close()
	})
	plainHTTP := scriptOrigin(t, func(_ int, c net.Conn, br *bufio.Reader) {
		record(br)
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
		c.Close()
	})
	silent := scriptOrigin(t, func(_ int, c net.Conn, br *bufio.Reader) {
		record(br)
		_, _ = io.Copy(io.Discard, br) // never answers the ClientHello
	})
	pol := httpsPolicy(o.port, closer.port, plainHTTP.port, silent.port)
	res := func() *fakeResolver { return loopbackNames("allowed.example.com", "other.example") }
	trusting := startProxy(t, pol, res(), trustRoots(o.roots))
	// Only the timeout row gets a short dial timeout: on a loaded machine a
	// real handshake can take longer than a second.
	impatient := startProxy(t, pol, res(), trustRoots(o.roots), func(c *Config) { c.DialTimeout = time.Second })
	systemRoots := startProxy(t, pol, res())

	for _, tt := range []struct {
		name   string
		tp     *testProxy
		host   string
		port   uint16
		status int
		detail string
		fix    string
	}{
		{"untrusted CA", systemRoots, "allowed.example.com", o.port, 502,
			"certificate for allowed.example.com is not trusted: signed by unknown authority", "SSL_CERT_FILE"},
		{"certificate for another name", trusting, "other.example", o.port, 502,
			"certificate for other.example does not name it: it is for example.com, *.example.com, 127.0.0.1, ::1", "resolves, on the proxy host"},
		{"plain HTTP server", trusting, "allowed.example.com", plainHTTP.port, 502,
			fmt.Sprintf("allowed.example.com:%d (127.0.0.1) did not answer with TLS", plainHTTP.port), "use http://"},
		{"closed during the handshake", trusting, "allowed.example.com", closer.port, 502,
			fmt.Sprintf("allowed.example.com:%d (127.0.0.1) closed the connection during the TLS handshake", closer.port), "serves TLS"},
		{"handshake timeout", impatient, "allowed.example.com", silent.port, 504,
			fmt.Sprintf("the TLS handshake with allowed.example.com:%d (127.0.0.1) did not complete within 1s", silent.port), "-dial-timeout"},
	} {
		for _, m := range []struct{ method, body string }{{"GET", ""}, {"POST", "secret body"}} {
			t.Run(tt.name+"/"+m.method, func(t *testing.T) {
				resp, body := tt.tp.final(absRequest(m.method, "https", tt.host, tt.port, "/", "", m.body))
				if resp.StatusCode != tt.status || resp.Header.Get("X-Azegress-Reason") != ReasonUpstreamTLS {
					t.Fatalf("%d %s %q, want %d %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body, tt.status, ReasonUpstreamTLS)
				}
				if !strings.Contains(body, "reason:  upstream_tls: "+tt.detail+"\n") || !strings.Contains(body, tt.fix) {
					t.Errorf("body %q\nwant detail %q and a fix with %q", body, tt.detail, tt.fix)
				}
				for _, raw := range []string{"x509", "tls: ", "remote error", "EOF", "i/o timeout", "deadline exceeded"} {
					if strings.Contains(strings.Replace(body, "upstream_tls: ", "", 1), raw) {
						t.Errorf("body carries Go's error text %q: %q", raw, body)
					}
				}
				checkRecord(t, tt.tp.lastDeny(), map[string]any{"reason": ReasonUpstreamTLS, "detail": tt.detail, "dst_ip": "127.0.0.1"})
			})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range heard {
		if !strings.HasPrefix(h, "\x16\x03") {
			t.Errorf("an origin received %q first, want a TLS handshake record", h)
		}
	}
}

// Bytes an origin sends after its answer on a TLS connection are not read
// as the next request's answer, even when they arrive in the same segment
// as the answer: tls.Conn then holds them, out of a socket peek's sight.
func TestHTTPSOriginPoolStrayBytes(t *testing.T) {
	t.Parallel()
	cert, roots := httptestCert(t)
	o := scriptOrigin(t, func(i int, c net.Conn, _ *bufio.Reader) {
		hc := &heldConn{Conn: c}
		tc := tls.Server(hc, &tls.Config{Certificates: []tls.Certificate{cert}})
		defer tc.Close()
		br := bufio.NewReader(tc)
		if i == 0 {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			hc.hold()
			_, _ = io.WriteString(tc, okResponse) // two TLS records, one segment
			_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
			if hc.release() != nil {
				return
			}
		}
		for answer(tc, br, okResponse) {
		}
	})
	tp := startProxy(t, httpsPolicy(o.port), loopbackNames("allowed.example.com"), trustRoots(roots), quietLogs)
	for i := range 2 {
		resp, body := tp.final(absRequest("GET", "https", "allowed.example.com", o.port, "/", "", ""))
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("request %d: %d %q, want 200 \"ok\"", i, resp.StatusCode, body)
		}
	}
	if got := o.accepted.Load(); got != 2 {
		t.Errorf("origin accepted %d connections, want 2: the one with stray bytes must not be reused", got)
	}
}

// httptestCert returns httptest's server certificate and a pool that
// trusts it.
func httptestCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv.TLS.Certificates[0], roots
}

// heldConn keeps what is written to it between hold and release, and then
// sends it in one write.
type heldConn struct {
	net.Conn
	held *bytes.Buffer
}

func (h *heldConn) hold() { h.held = new(bytes.Buffer) }

func (h *heldConn) Write(p []byte) (int, error) {
	if h.held != nil {
		return h.held.Write(p)
	}
	return h.Conn.Write(p)
}

func (h *heldConn) release() error {
	b := h.held
	h.held = nil
	_, err := h.Conn.Write(b.Bytes())
	return err
}

// Idle TLS origin connections are closed at a reload and at Shutdown, as
// plain ones are.
func TestHTTPSOriginPoolClosedByReloadAndShutdown(t *testing.T) {
	t.Parallel()
	cert, roots := httptestCert(t)
	o := scriptOrigin(t, func(i int, c net.Conn, _ *bufio.Reader) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		answerAll(okResponse)(i, tc, bufio.NewReader(tc)) // until the proxy closes
	})
	t.Cleanup(func() { // runs after the proxy's Shutdown, registered below
		waitFor(t, func() bool { return o.eofs.Load() == 2 }, "Shutdown to close the idle TLS origin connection")
	})
	tp := startProxy(t, httpsPolicy(o.port), loopbackNames("allowed.example.com"), trustRoots(roots), quietLogs)
	get := func() {
		t.Helper()
		if resp, body := tp.final(absRequest("GET", "https", "allowed.example.com", o.port, "/", "", "")); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	get()
	tp.SetPolicy(loadPolicy(t, httpsPolicy(o.port)))
	waitFor(t, func() bool { return o.eofs.Load() == 1 }, "the reload to close the idle TLS origin connection")
	get()
	get()
	if got := o.accepted.Load(); got != 2 {
		t.Errorf("origin accepted %d connections, want 2: one per policy", got)
	}
}
