package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/tokensource"
)

// upstream is a stand-in for the egress proxy: it records each request's
// Proxy-Authorization, refuses deny.test with 403 and auth.test with 407,
// and sends everything else to the origins.
type upstream struct {
	srv     *httptest.Server
	origin  *httptest.Server // TLS, for CONNECT
	plainOr *httptest.Server // plain HTTP
	mu      sync.Mutex
	seen    []string
}

func newUpstream(t *testing.T, tlsUpstream bool) *upstream {
	t.Helper()
	u := &upstream{}
	u.origin = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls origin: %s %s", r.Method, r.URL.Path)
	}))
	u.plainOr = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "plain origin: %s %s auth=%q", r.Method, r.URL.Path, r.Header.Get("Proxy-Authorization"))
	}))
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	if tlsUpstream {
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(func() { u.srv.Close(); u.origin.Close(); u.plainOr.Close() })
	return u
}

func (u *upstream) record(s string) {
	u.mu.Lock()
	u.seen = append(u.seen, s)
	u.mu.Unlock()
}

func (u *upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.String()
	}
	u.record(r.Method + " " + target + " " + r.Header.Get("Proxy-Authorization"))
	switch r.URL.Hostname() {
	case "deny.test":
		w.Header().Set("X-Azegress-Reason", "not_allowed")
		http.Error(w, "azegress: deny.test is not allowed for client block \"workload\"", http.StatusForbidden)
		return
	case "auth.test":
		w.Header().Set("Proxy-Authenticate", `Basic realm="azegress"`)
		w.Header().Set("X-Azegress-Reason", "missing")
		http.Error(w, "azegress: proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method != http.MethodConnect {
		r.Header.Del("Proxy-Authorization") // as the real proxy does
		resp, err := (&http.Transport{Proxy: nil}).RoundTrip(mustReq(r.Method, u.plainOr.URL+r.URL.Path, r.Header))
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	origin, err := net.Dial("tcp", u.origin.Listener.Addr().String())
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	defer origin.Close()
	w.WriteHeader(http.StatusOK)
	c, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	go func() { io.Copy(origin, buf); origin.(*net.TCPConn).CloseWrite() }()
	io.Copy(c, origin)
}

func mustReq(method, u string, h http.Header) *http.Request {
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		panic(err)
	}
	r.Header = h.Clone()
	return r
}

// logBuffer collects an agent's log.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor returns the log once it holds every one of subs, or fails the
// test after 10 s.
func (l *logBuffer) waitFor(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := l.String()
		missing := ""
		for _, s := range subs {
			if !strings.Contains(out, s) {
				missing = s
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %s:\n%s", missing, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testAgent runs an Agent in front of up with the token *tok, and returns
// its address and its log.
func testAgent(t *testing.T, up *upstream, tok *atomic.Pointer[string]) (*Agent, string, *logBuffer) {
	t.Helper()
	u, _ := url.Parse(up.srv.URL)
	logs := &logBuffer{}
	cfg := Config{
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Upstream: u,
		Token: func() (tokensource.Token, error) {
			if p := tok.Load(); p != nil {
				return tokensource.Token{Value: *p, Expires: time.Now().Add(time.Hour)}, nil
			}
			return tokensource.Token{}, errors.New("the token source fails: IMDS (http://169.254.169.254/...): 503")
		},
	}
	if u.Scheme == "https" {
		pool := x509.NewCertPool()
		pool.AddCert(up.srv.Certificate())
		cfg.TLSConfig = &tls.Config{RootCAs: pool}
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return a, ln.Addr().String(), logs
}

func tokenPtr(s string) *atomic.Pointer[string] {
	var p atomic.Pointer[string]
	p.Store(&s)
	return &p
}

func basic(tok string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("azegress:"+tok))
}

// client is an HTTP client whose proxy is the agent, with credentials of
// its own that must never reach the upstream, trusting up's TLS origin.
func client(agent string, up *upstream) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(up.origin.Certificate())
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: agent, User: url.UserPassword("client", "its-own")}),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, u string, h map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestForward(t *testing.T) {
	for _, tlsUp := range []bool{false, true} {
		t.Run(map[bool]string{false: "http upstream", true: "https upstream"}[tlsUp], func(t *testing.T) {
			up := newUpstream(t, tlsUp)
			tok := tokenPtr("tok.one.x")
			_, addr, logs := testAgent(t, up, tok)
			c := client(addr, up)

			status, _, body := get(t, c, "https://example.com/hello", nil)
			if status != 200 || body != "tls origin: GET /hello" {
				t.Fatalf("HTTPS through the agent: %d %q", status, body)
			}
			status, _, body = get(t, c, "http://plain.test/p", map[string]string{"Proxy-Authorization": "Basic Y2xpZW50OmZvcmdlZA=="})
			if status != 200 || body != `plain origin: GET /p auth=""` {
				t.Fatalf("plain HTTP through the agent: %d %q (the origin must not see credentials)", status, body)
			}
			// The token changes (a refresh): the next tunnel and request carry the new one.
			tok.Store(ptr("tok.two.x"))
			c.CloseIdleConnections() // a new tunnel
			get(t, c, "https://example.com/again", nil)
			get(t, c, "http://plain.test/q", nil) // on the agent's kept-alive upstream connection
			c.CloseIdleConnections()

			want := []string{
				"CONNECT example.com:443 " + basic("tok.one.x"),
				"GET http://plain.test/p " + basic("tok.one.x"),
				"CONNECT example.com:443 " + basic("tok.two.x"),
				"GET http://plain.test/q " + basic("tok.two.x"),
			}
			if got := up.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the upstream saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			fp := tokensource.Token{Value: "tok.two.x"}.Fingerprint()
			// Records are written once a tunnel or request has ended,
			// which the client may not wait for.
			out := logs.waitFor(t, `"msg":"tunnel closed"`, `"token_fp":"`+fp+`"`)
			for _, want := range []string{`"msg":"tunnel closed"`, `"msg":"request"`, `"token_fp":"` + fp + `"`, `"host":"plain.test"`} {
				if !strings.Contains(out, want) {
					t.Errorf("the log lacks %s:\n%s", want, out)
				}
			}
			for _, secret := range []string{"tok.one.x", "tok.two.x", basic("tok.two.x")[6:], "/hello", "its-own"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q:\n%s", secret, out)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// rawConnect sends a CONNECT to the agent and returns its answer's head
// and body.
func rawConnect(t *testing.T, agent, target string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", agent)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestUpstreamRefusal: the upstream's 403 and 407 reach the client with
// their bodies and reasons; a 407's challenge does not (only the agent
// could answer it).
func TestUpstreamRefusal(t *testing.T) {
	up := newUpstream(t, false)
	_, addr, _ := testAgent(t, up, tokenPtr("tok.x.y"))
	for _, tt := range []struct {
		target string
		status int
		reason string
		body   string
	}{
		{"deny.test:443", 403, "not_allowed", "deny.test is not allowed"},
		{"auth.test:443", 407, "missing", "proxy authentication required"},
	} {
		resp, body := rawConnect(t, addr, tt.target)
		if resp.StatusCode != tt.status || resp.Header.Get("X-Azegress-Reason") != tt.reason || !strings.Contains(body, tt.body) {
			t.Errorf("CONNECT %s: %d %q %q, want %d %s %q", tt.target, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body, tt.status, tt.reason, tt.body)
		}
		if h := resp.Header.Get("Proxy-Authenticate"); h != "" {
			t.Errorf("CONNECT %s: the challenge %q was passed on", tt.target, h)
		}
	}
	status, h, body := get(t, client(addr, up), "http://deny.test/x", nil)
	if status != 403 || h.Get("X-Azegress-Reason") != "not_allowed" || !strings.Contains(body, "not allowed") {
		t.Errorf("plain HTTP refused upstream: %d %v %q", status, h, body)
	}
}

// TestLocalDestinations: IMDS, WireServer, Arc and loopback are refused
// by the agent itself, in any spelling, and never reach the upstream.
func TestLocalDestinations(t *testing.T) {
	up := newUpstream(t, false)
	_, addr, _ := testAgent(t, up, tokenPtr("tok.x.y"))
	for _, target := range []string{
		"169.254.169.254:80", "169.254.169.254:443", "[::ffff:169.254.169.254]:80", "2852039166:80", "0xa9.0xfe.0xa9.0xfe:80",
		"168.63.129.16:32526", "localhost:40342", "127.0.0.1:40343", "127.0.0.1:8080", "[::1]:443", "foo.localhost:443",
	} {
		resp, body := rawConnect(t, addr, target)
		if resp.StatusCode != 403 || !strings.Contains(body, "NO_PROXY") {
			t.Errorf("CONNECT %s: %d %q, want 403 naming NO_PROXY", target, resp.StatusCode, body)
		}
	}
	status, h, body := get(t, client(addr, up), "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=api://azegress",
		map[string]string{"Metadata": "true"})
	if status != 403 || h.Get("X-Azegress-Agent-Reason") != "local_endpoint" || !strings.Contains(body, "IMDS") || !strings.Contains(body, "NO_PROXY") {
		t.Errorf("IMDS over plain HTTP: %d %v %q, want 403 local_endpoint naming IMDS and NO_PROXY", status, h, body)
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("the upstream saw %q, want nothing", got)
	}
}

func TestRefusals(t *testing.T) {
	up := newUpstream(t, false)
	var none atomic.Pointer[string]
	_, addr, _ := testAgent(t, up, &none)
	c := client(addr, up)
	if status, h, body := get(t, c, "http://plain.test/x", nil); status != 503 || h.Get("X-Azegress-Agent-Reason") != "no_token" || !strings.Contains(body, "the token source fails: IMDS") {
		t.Errorf("no token, plain: %d %q", status, body)
	}
	if resp, body := rawConnect(t, addr, "example.com:443"); resp.StatusCode != 503 || !strings.Contains(body, "no token for the upstream proxy") {
		t.Errorf("no token, CONNECT: %d %q", resp.StatusCode, body)
	}
	if resp, _ := rawConnect(t, addr, "example.com"); resp.StatusCode != 400 {
		t.Errorf("CONNECT without a port: %d, want 400", resp.StatusCode)
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("the upstream saw %q, want nothing", got)
	}

	// Not a proxy request, and https:// in absolute form.
	none.Store(ptr("tok.x.y"))
	for _, req := range []string{"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", "GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, req)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("%q: %v %v, want 400", req, resp, err)
		}
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	up := newUpstream(t, false)
	up.srv.URL = "http://" + deadAddr
	_, addr, _ := testAgent(t, up, tokenPtr("tok.x.y"))
	if resp, body := rawConnect(t, addr, "example.com:443"); resp.StatusCode != 502 || !strings.Contains(body, "the upstream proxy "+deadAddr) {
		t.Errorf("CONNECT: %d %q, want 502 naming the upstream", resp.StatusCode, body)
	}
	if status, _, body := get(t, client(addr, up), "http://plain.test/", nil); status != 502 || !strings.Contains(body, deadAddr) {
		t.Errorf("plain: %d %q, want 502 naming the upstream", status, body)
	}
}

// TestHTTPSUpstreamVerified: an https:// upstream whose certificate the
// agent does not trust is not sent the token.
func TestHTTPSUpstreamVerified(t *testing.T) {
	up := newUpstream(t, true)
	u, _ := url.Parse(up.srv.URL)
	a, err := New(Config{Upstream: u, Token: func() (tokensource.Token, error) { return tokensource.Token{Value: "tok.x.y"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go a.Serve(ln)
	defer a.Shutdown(context.Background())
	if resp, body := rawConnect(t, ln.Addr().String(), "example.com:443"); resp.StatusCode != 502 || !strings.Contains(body, "certificate") {
		t.Errorf("untrusted upstream: %d %q, want 502 about its certificate", resp.StatusCode, body)
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("the upstream saw %q", got)
	}
}

// TestShutdown: an open tunnel keeps Shutdown waiting until its context
// ends, then is closed.
func TestShutdown(t *testing.T) {
	up := newUpstream(t, false)
	a, addr, _ := testAgent(t, up, tokenPtr("tok.x.y"))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a tunnel open: %v, want the context's deadline", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the tunnel is still open after Shutdown: %v", err)
	}
}

func TestNewChecksUpstream(t *testing.T) {
	tok := func() (tokensource.Token, error) { return tokensource.Token{}, nil }
	for _, u := range []string{"socks5://proxy:1080", "http://user:pw@proxy:3128", "http://proxy:3128/path", "http://:3128", "http://proxy:3128?x=1"} {
		pu, _ := url.Parse(u)
		if _, err := New(Config{Upstream: pu, Token: tok}); err == nil {
			t.Errorf("upstream %s: want an error", u)
		}
	}
	pu, _ := url.Parse("https://proxy.example")
	a, err := New(Config{Upstream: pu, Token: tok})
	if err != nil || a.upstream.Host != "proxy.example:443" {
		t.Errorf("https upstream without a port: %v %v, want port 443", a, err)
	}
}
