package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/nettest"
)

// fakeResolver answers from a table, in turn: the i-th lookup of a name gets
// answers[min(i, len-1)], so a test can make a name change its address
// between lookups (DNS rebinding).
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
	cnames  map[string]string // optional canonical names, for LookupCNAME
}

func newResolver(m map[string]string) *fakeResolver {
	r := &fakeResolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
	for name, addrs := range m {
		r.set(name, addrs)
	}
	return r
}

// set gives name its successive answers; each answer is a comma-separated list.
func (r *fakeResolver) set(name string, answers ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var seq [][]netip.Addr
	for _, a := range answers {
		var addrs []netip.Addr
		for _, s := range strings.Split(a, ",") {
			addrs = append(addrs, netip.MustParseAddr(strings.TrimSpace(s)))
		}
		seq = append(seq, addrs)
	}
	r.answers[name] = seq
}

// LookupNetIP answers fully qualified names only (with the trailing dot),
// as the proxy must ask them: a relative name would go through
// resolv.conf's search list.
func (r *fakeResolver) LookupNetIP(_ context.Context, _, fqdn string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host, ok := strings.CutSuffix(fqdn, ".")
	if !ok && strings.Contains(fqdn, ".") {
		return nil, &net.DNSError{Err: "relative name asked (search list applies)", Name: fqdn}
	}
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.calls[host], len(seq)-1)
	r.calls[host]++
	return seq[i], nil
}

// LookupCNAME answers like *net.Resolver: the canonical name, with a
// trailing dot, or the name itself if it has no CNAME but resolves.
func (r *fakeResolver) LookupCNAME(_ context.Context, fqdn string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host, ok := strings.CutSuffix(fqdn, ".")
	if !ok && strings.Contains(fqdn, ".") {
		return "", &net.DNSError{Err: "relative name asked (search list applies)", Name: fqdn}
	}
	if c, ok := r.cnames[host]; ok {
		return c + ".", nil
	}
	if _, ok := r.answers[host]; ok {
		return host + ".", nil
	}
	return "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *fakeResolver) lookups(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// records returns the JSON log records whose msg is msg.
func (b *syncBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			panic(fmt.Sprintf("log line is not JSON: %q", line))
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type testProxy struct {
	*Server
	t       *testing.T
	addr    string // host:port of the proxy listener
	tlsAddr string // host:port of the TLS listener, with Config.TLSCertFile
	url     *url.URL
	reg     *prometheus.Registry
	logs    *syncBuffer
	res     *fakeResolver
	dials   chan string // every address the proxy dialed
}

type proxyOpt func(*Config)

// loadPolicy compiles src or fails the test with its diagnostics.
func loadPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Load("test.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("test policy does not load:\n%s", policy.FormatDiagnostics(diags))
	}
	return p
}

// startProxy serves src on 127.0.0.1:0 with a fake resolver. Dials are
// real, but each dialed address is reported on tp.dials; with redirect set,
// every dial goes to redirect instead (so tests can use non-loopback
// addresses without sending a packet anywhere but loopback).
func startProxy(t *testing.T, src string, res *fakeResolver, opts ...proxyOpt) *testProxy {
	t.Helper()
	if res == nil {
		res = newResolver(nil)
	}
	tp := &testProxy{t: t, reg: prometheus.NewRegistry(), logs: &syncBuffer{}, res: res, dials: make(chan string, 1000)}
	cfg := Config{
		Policy: loadPolicy(t, src),
		// Serve's JSON log, whose per-flow records skip slog (flowlog.go),
		// written through at once.
		Logger:     slog.New(NewLogWriter(tp.logs, -1).JSONHandler(slog.LevelDebug)),
		Registerer: tp.reg,
		Resolver:   res,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tp.dials <- addr
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if testEngine {
		// The explicit listener on the event-loop engine, which dials
		// itself: the addresses it is told to dial are recorded (while
		// tp.dials has room) and redirected as the options' Dial would.
		cfg.Engine = true
		redirect := cfg.engineDial
		cfg.engineDial = func(ap netip.AddrPort) netip.AddrPort {
			select {
			case tp.dials <- ap.String():
			default:
			}
			if redirect != nil {
				return redirect(ap)
			}
			return ap
		}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.Server = s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp.addr = ln.Addr().String()
	tp.url = &url.URL{Scheme: "http", Host: tp.addr}
	done := make(chan error, 2)
	go func() { done <- s.Serve(ln) }()
	serving := 1
	if cfg.TLSCertFile != "" {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tp.tlsAddr = tln.Addr().String()
		go func() { done <- s.ServeTLS(tln) }()
		serving++
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range serving {
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	return tp
}

// closedLoopbackPort is a loopback port nothing listens on: where the
// engine's redirected dials go that must fail.
var closedLoopbackPort = sync.OnceValue(func() netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String())
})

// testEngine runs the tests' proxies with Config.Engine
// (AZEGRESS_TEST_ENGINE=1; make test runs the proxy package both ways).
var testEngine = os.Getenv("AZEGRESS_TEST_ENGINE") != ""

// redirectDials makes the proxy's dialer connect every address to target,
// while still reporting the address it was asked for.
func redirectDials(tp **testProxy, target string) proxyOpt {
	return func(c *Config) {
		to := netip.MustParseAddrPort(target)
		c.engineDial = func(netip.AddrPort) netip.AddrPort { return to }
		c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			(*tp).dials <- addr
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}
	}
}

// client returns an http.Client that uses the proxy and trusts the httptest
// certificate, dialing from the given local loopback source address ("" =
// any).
func (tp *testProxy) client(src string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:             http.ProxyURL(tp.url),
			DialContext:       d.DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the proxy is under test, not TLS
			DisableKeepAlives: true,
		},
	}
}

// raw sends a raw request to the proxy from src and returns the response,
// the connection (for tunnels) and its reader.
func (tp *testProxy) raw(src, request string) (*http.Response, net.Conn, *bufio.Reader) {
	tp.t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", tp.addr)
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		tp.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(request)[0]})
	if err != nil {
		tp.t.Fatalf("reading response to %q: %v", strings.SplitN(request, "\r\n", 2)[0], err)
	}
	return resp, c, br
}

// connect sends CONNECT target and returns the response; the body is read.
func (tp *testProxy) connect(src, target string) (*http.Response, string) {
	tp.t.Helper()
	resp, _, _ := tp.raw(src, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if resp.StatusCode == http.StatusOK {
		return resp, "" // a tunnel: what follows is the origin's
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// lastDeny returns the newest deny record, failing if there is none.
func (tp *testProxy) lastDeny() map[string]any {
	tp.t.Helper()
	recs := tp.logs.records("deny")
	if len(recs) == 0 {
		tp.t.Fatalf("no deny record logged")
	}
	return recs[len(recs)-1]
}

func (tp *testProxy) noDial() {
	tp.t.Helper()
	select {
	case a := <-tp.dials:
		tp.t.Fatalf("proxy dialed %s; it must not dial at all", a)
	default:
	}
}

// tlsOrigin starts an HTTPS origin on 127.0.0.1 answering "hello from NAME".
func tlsOrigin(t *testing.T, name string) (*httptest.Server, uint16) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s %s", name, r.URL.Path)
	}))
	// Tests open tunnels they never speak TLS over; that is not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, portOf(t, srv.Listener.Addr())
}

// httpOrigin starts a plain-HTTP origin on 127.0.0.1 that echoes the Host it
// saw and the headers named X-Echo.
func httpOrigin(t *testing.T, name string) (*httptest.Server, uint16) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Azegress-Reason", "forged-by-origin")
		fmt.Fprintf(w, "hello from %s host=%s path=%s body=%s xff=%q via=%q", name, r.Host, r.URL.Path, body, r.Header.Get("X-Forwarded-For"), r.Header.Get("Via"))
	}))
	t.Cleanup(srv.Close)
	return srv, portOf(t, srv.Listener.Addr())
}

func portOf(t *testing.T, a net.Addr) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// needTool returns the path of a command the test drives; without it the
// test is skipped, except in CI, where `make test` must have installed it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; `make test` installs it", name)
		}
		t.Skipf("%s is not installed (make deps installs it)", name)
	}
	return p
}

// waitFor polls cond for up to 5s: for effects that happen after a response
// was written (log records at connection close), never for readiness.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	nettest.WaitFor(t, cond, what)
}
