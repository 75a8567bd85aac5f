package asim_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
	"github.com/azegress/azegress/internal/asim"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy"
)

var update = flag.Bool("update", false, "rewrite testdata/records.golden")

// goldenFile holds, per record kind, the Web Session records a real proxy
// writes through the Handler, with times and client ports normalized. It
// is the one source of truth for the field set: the e2e deploy tests check
// the data collection rule against it.
const goldenFile = "testdata/records.golden"

const goldenPolicy = `client "workloads" {
  sources = ["127.0.0.1/32"]

  deny "no-paste" {
    hosts = ["paste.example"]
  }

  allow "origin" {
    hosts = ["allowed.example"]
    ports = [80, 443]
  }

  allow "private" {
    hosts = ["private.example", "missing.example"]
    ports = [80]
  }
}

client "learners" {
  sources = ["127.0.0.3/32"]
  mode    = "learn"
}
`

// goldenIdentityPolicy has an entra block for the test identity provider
// and one identity block; under an entra block a refusal of a request
// without credentials is a 407, so it is a proxy of its own.
func goldenIdentityPolicy(idp *identitytest.IdP) string {
	return fmt.Sprintf(`entra {
  tenant_id = %q
  audiences = [%q]
  authority = %q
}

client "mi" {
  identity {
    object_ids = [%q]
  }

  allow "origin" {
    hosts = ["allowed.example"]
  }
}
`, idp.TenantID, identitytest.ClientID, idp.Authority(), identitytest.ObjectID)
}

// resolver answers from a fixed table of fully qualified names.
type resolver map[string]string

func (r resolver) LookupNetIP(_ context.Context, _, fqdn string) ([]netip.Addr, error) {
	a, ok := r[strings.TrimSuffix(fqdn, ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: fqdn, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// lines is a log sink that signals each write.
type lines struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

// decisions returns the Web Session records written so far.
func (l *lines) decisions(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		if m["EventSchema"] == asim.Schema {
			out = append(out, m)
		}
	}
	return out
}

// wait returns the records after the first from once there are n of them.
func (l *lines) wait(t *testing.T, from, n int) []map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if recs := l.decisions(t); len(recs) >= from+n {
			return recs[from:]
		}
		select {
		case <-l.changed:
		case <-timeout:
			t.Fatalf("want %d records, have %v", n, l.decisions(t)[from:])
		}
	}
}

type goldenEnv struct {
	proxyAddr string // the proxy of goldenPolicy
	idAddr    string // the proxy of goldenIdentityPolicy
	idp       *identitytest.IdP
}

// client is an HTTP client through the proxy from the loopback address src.
func (e *goldenEnv) client(src string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: e.proxyAddr}), DialContext: d.DialContext, DisableKeepAlives: true}}
}

// raw sends head on a new connection from 127.0.0.1 and returns the
// connection and the status line of the answer.
func (e *goldenEnv) raw(t *testing.T, head string) (net.Conn, string) {
	t.Helper()
	return rawTo(t, e.proxyAddr, head)
}

func rawTo(t *testing.T, addr, head string) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	return c, strings.TrimSpace(status)
}

func (e *goldenEnv) get(t *testing.T, src, u string, want int) {
	t.Helper()
	resp, err := e.client(src).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s from %s: %d, want %d", u, src, resp.StatusCode, want)
	}
}

// goldenCases are the record kinds: what to do, and how many records it
// writes.
var goldenCases = []struct {
	name string
	n    int
	do   func(t *testing.T, e *goldenEnv)
}{
	{"allow CONNECT", 1, func(t *testing.T, e *goldenEnv) {
		c, status := e.raw(t, "CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n")
		if !strings.Contains(status, " 200 ") {
			t.Fatalf("CONNECT: %s", status)
		}
		c.Close()
	}},
	{"allow HTTP", 1, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.1", "http://allowed.example/", 200) }},
	{"would_deny (learn mode)", 2, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.3", "http://unlisted.example/", 200) }},
	{"deny no_rule", 1, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.1", "http://other.example/", 403) }},
	{"deny deny_rule", 1, func(t *testing.T, e *goldenEnv) {
		if _, status := e.raw(t, "CONNECT paste.example:443 HTTP/1.1\r\n\r\n"); !strings.Contains(status, " 403 ") {
			t.Fatalf("CONNECT: %s", status)
		}
	}},
	{"deny client_unknown", 1, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.2", "http://allowed.example/", 403) }},
	{"deny bad_request", 1, func(t *testing.T, e *goldenEnv) {
		if _, status := e.raw(t, "GET /relative HTTP/1.1\r\nHost: allowed.example\r\n\r\n"); !strings.Contains(status, " 400 ") {
			t.Fatalf("GET: %s", status)
		}
	}},
	{"deny local_endpoint", 1, func(t *testing.T, e *goldenEnv) {
		e.get(t, "127.0.0.1", "http://169.254.169.254/metadata/instance", 403)
	}},
	{"deny blocked_address", 1, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.1", "http://private.example/", 403) }},
	{"deny dial_failed", 1, func(t *testing.T, e *goldenEnv) { e.get(t, "127.0.0.1", "http://missing.example/", 502) }},
	{"deny sni_mismatch", 1, func(t *testing.T, e *goldenEnv) {
		c, status := e.raw(t, "CONNECT allowed.example:443 HTTP/1.1\r\n\r\n")
		if !strings.Contains(status, " 200 ") {
			t.Fatalf("CONNECT: %s", status)
		}
		tc := tls.Client(c, &tls.Config{ServerName: "paste.example", InsecureSkipVerify: true}) // the proxy is under test, not TLS
		if err := tc.Handshake(); err == nil {
			t.Fatal("a ClientHello for another host went through the tunnel")
		}
	}},
	{"allow CONNECT with a token (identity block)", 1, func(t *testing.T, e *goldenEnv) {
		auth := identitytest.BasicAuth("azegress", e.idp.Mint(t, identitytest.Token{}))
		c, status := rawTo(t, e.idAddr, "CONNECT allowed.example:443 HTTP/1.1\r\nProxy-Authorization: "+auth+"\r\n\r\n")
		if !strings.Contains(status, " 200 ") {
			t.Fatalf("CONNECT: %s", status)
		}
		c.Close()
	}},
	{"deny expired token (407)", 1, func(t *testing.T, e *goldenEnv) {
		expired := e.idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}})
		auth := identitytest.BasicAuth("azegress", expired)
		if _, status := rawTo(t, e.idAddr, "CONNECT allowed.example:443 HTTP/1.1\r\nProxy-Authorization: "+auth+"\r\n\r\n"); !strings.Contains(status, " 407 ") {
			t.Fatalf("CONNECT: %s", status)
		}
	}},
}

// startGoldenProxy serves src with the Handler writing to out, every name
// of the resolver dialed at origin.
func startGoldenProxy(t *testing.T, src string, out *lines, origin string) (*proxy.Server, string) {
	t.Helper()
	pol, diags := policy.Load("golden.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	srv, err := proxy.New(proxy.Config{
		Policy: pol,
		Logger: slog.New(asim.NewHandler(out, asim.Options{Dvc: "proxy-1", ProductVersion: "test"})),
		Resolver: resolver{"allowed.example": "20.0.0.10", "paste.example": "20.0.0.11", "unlisted.example": "20.0.0.12",
			"private.example": "10.0.0.1"},
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, origin)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return srv, ln.Addr().String()
}

// TestGolden runs a real proxy with the Handler, produces each record kind
// and compares the records with testdata/records.golden (-update rewrites
// it).
func TestGolden(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") }))
	t.Cleanup(origin.Close)
	out := &lines{changed: make(chan struct{}, 1)}
	env := &goldenEnv{idp: identitytest.New(t)}
	_, env.proxyAddr = startGoldenProxy(t, goldenPolicy, out, origin.Listener.Addr().String())
	idSrv, idAddr := startGoldenProxy(t, goldenIdentityPolicy(env.idp), out, origin.Listener.Addr().String())
	env.idAddr = idAddr
	waitReady(t, idSrv)

	var got bytes.Buffer
	seen := 0
	for _, c := range goldenCases {
		c.do(t, env)
		recs := out.wait(t, seen, c.n)
		if len(recs) != c.n {
			t.Fatalf("%s: %d records, want %d: %v", c.name, len(recs), c.n, recs)
		}
		seen += c.n
		fmt.Fprintf(&got, "# %s\n", c.name)
		for _, r := range recs {
			b, err := json.MarshalIndent(normalize(r), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got.Write(append(b, '\n'))
		}
	}
	if *update {
		if err := os.WriteFile(goldenFile, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("records differ from %s (go test ./internal/asim -run TestGolden -update rewrites it):\n%s", goldenFile, got.String())
	}
}

var rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// waitReady waits until srv has loaded its entra block's signing keys.
func waitReady(t *testing.T, srv *proxy.Server) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		ok, why := srv.Readiness()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the identity proxy is not ready: %s", why)
		}
	}
}

// normalize replaces what changes from run to run: times, the client's
// port, durations, and in AdditionalFields what the test identity
// provider makes anew each run (its address is in the policy, so the
// policy's hash too).
func normalize(r map[string]any) map[string]any {
	if add, ok := r["AdditionalFields"].(map[string]any); ok {
		for _, k := range []string{"token_exp", "token_fp", "tid", "policy_sha256"} {
			if _, ok := add[k]; ok {
				add[k] = "X"
			}
		}
	}
	if m, ok := r["EventMessage"].(string); ok {
		r["EventMessage"] = rfc3339.ReplaceAllString(m, "TIME")
	}
	for _, k := range []string{"TimeGenerated", "EventStartTime", "EventEndTime"} {
		if s, ok := r[k].(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
				r[k] = "TIME"
			}
		}
	}
	for _, k := range []string{"SrcPortNumber", "NetworkDuration"} {
		if _, ok := r[k].(float64); ok {
			r[k] = "N"
		}
	}
	return r
}
