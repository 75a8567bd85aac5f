package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/internal/testcert"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// tlsProxy is a proxy with a TLS listener whose certificate a fresh CA
// signed for 127.0.0.1.
type tlsProxy struct {
	*testProxy
	ca   *testcert.CA
	pair testcert.Pair
	dir  string
}

func startTLSProxy(t *testing.T, src string, res *fakeResolver, opts ...proxyOpt) *tlsProxy {
	t.Helper()
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	pair := ca.Issue(t, dir, "proxy", time.Now().Add(24*time.Hour), "127.0.0.1")
	opts = append(opts, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = pair.CertFile, pair.KeyFile })
	return &tlsProxy{testProxy: startProxy(t, src, res, opts...), ca: ca, pair: pair, dir: dir}
}

// dial makes a TLS connection to the TLS listener, trusting the test CA, and
// returns it with the certificate the proxy presented.
func (tp *tlsProxy) dial(cfg *tls.Config) (*tls.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.RootCAs == nil {
		cfg.RootCAs = tp.ca.Pool
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", tp.tlsAddr, cfg)
}

// servedSerial is the serial number of the certificate a new connection to
// the TLS listener gets.
func (tp *tlsProxy) servedSerial() string {
	tp.t.Helper()
	c, err := tp.dial(nil)
	if err != nil {
		tp.t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func tlsOriginsPolicy(ports ...uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = fmt.Sprint(p)
	}
	return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "origins" {
    hosts     = ["allowed.example.com"]
    ports     = [%s]
    addresses = ["127.0.0.0/8"]
  }
}`, strings.Join(ps, ", "))
}

// TestTLSListenerGoClient: Go's net/http with an https:// proxy URL tunnels
// to a TLS origin and forwards plain HTTP through the TLS listener, and a
// denied request gets the 403 with its fix; decisions are counted as on the
// plain listener.
func TestTLSListenerGoClient(t *testing.T) {
	t.Parallel()
	tlsSrv, tlsPort := tlsOrigin(t, "tls-origin")
	_, httpPort := httpOrigin(t, "http-origin")
	tp := startTLSProxy(t, tlsOriginsPolicy(tlsPort, httpPort), loopbackNames("allowed.example.com", "denied.example.com"))

	// One pool for both handshakes: the proxy's (its CA) and the origin's
	// inside the tunnel (httptest's certificate, which names *.example.com).
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(tp.ca.PEM)
	roots.AddCert(tlsSrv.Certificate())
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:             http.ProxyURL(&url.URL{Scheme: "https", Host: tp.tlsAddr}),
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true, // offers h2 to the proxy too: it must pick http/1.1
		DisableKeepAlives: true,
	}}
	get := func(u string) (int, string, error) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	if code, body, err := get(fmt.Sprintf("https://allowed.example.com:%d/tunnel", tlsPort)); err != nil || code != 200 || body != "hello from tls-origin /tunnel" {
		t.Errorf("CONNECT over TLS: %d %q %v", code, body, err)
	}
	if code, body, err := get(fmt.Sprintf("http://allowed.example.com:%d/plain", httpPort)); err != nil || code != 200 || !strings.HasPrefix(body, "hello from http-origin host=allowed.example.com") {
		t.Errorf("plain HTTP over TLS: %d %q %v", code, body, err)
	}
	code, body, err := get(fmt.Sprintf("http://denied.example.com:%d/", httpPort))
	if err != nil || code != 403 || !strings.Contains(body, `hosts = ["denied.example.com"]`) {
		t.Errorf("denied plain HTTP over TLS: %d %q %v; want 403 with the fix", code, body, err)
	}
	if _, _, err := get(fmt.Sprintf("https://denied.example.com:%d/", tlsPort)); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("denied CONNECT over TLS: %v; want the 403", err)
	}
	if rec := tp.lastDeny(); rec["kind"] != "connect" || rec["reason"] != ReasonNoRule || rec["host"] != "denied.example.com" {
		t.Errorf("deny record %v", rec)
	}
	want := `
# HELP azegress_decisions_total Policy decisions by request kind (connect, http), decision (allow, deny, would_deny), reason, mode and client block.
# TYPE azegress_decisions_total counter
azegress_decisions_total{client_block="local",decision="allow",kind="connect",mode="enforce",reason="allowed"} 1
azegress_decisions_total{client_block="local",decision="allow",kind="http",mode="enforce",reason="allowed"} 1
azegress_decisions_total{client_block="local",decision="deny",kind="connect",mode="enforce",reason="no_rule"} 1
azegress_decisions_total{client_block="local",decision="deny",kind="http",mode="enforce",reason="no_rule"} 1
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_decisions_total"); err != nil {
		t.Error(err)
	}
}

// TestTLSListenerCurl: curl with an https:// proxy URL, as the README says.
func TestTLSListenerCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	_, tlsPort := tlsOrigin(t, "tls-origin")
	_, httpPort := httpOrigin(t, "http-origin")
	tp := startTLSProxy(t, tlsOriginsPolicy(tlsPort, httpPort), loopbackNames("allowed.example.com", "denied.example.com"))
	caFile := filepath.Join(tp.dir, "ca.pem")
	testcert.WriteFile(t, caFile, tp.ca.PEM)

	run := func(args ...string) (string, string, int) {
		return runCurl(t, curl, append([]string{"--proxy", "https://" + tp.tlsAddr, "--proxy-cacert", caFile}, args...)...)
	}
	curlAllowDeny(t, run, tlsPort, httpPort)
	// Without the CA, curl refuses the proxy's certificate.
	if out, errs, code := runCurl(t, curl, "--proxy", "https://"+tp.tlsAddr, fmt.Sprintf("http://allowed.example.com:%d/", httpPort)); code != 60 {
		t.Errorf("without the CA: exit %d out %q err %q; want curl's 60", code, out, errs)
	}
	waitFor(t, func() bool { return len(tp.logs.records("TLS handshake failed")) == 1 }, "the handshake failure record")
	if rec := tp.logs.records("TLS handshake failed")[0]; rec[keyReason] != tlsClientAlert {
		t.Errorf("curl refusing the certificate: %v; want reason %s", rec, tlsClientAlert)
	}
}

// TestTLSListenerTunnel: a tunnel whose client side is TLS is relayed by the
// generic copy, half-closes included: the client's close_notify reaches the
// echo origin as EOF, and the echo and the origin's close reach the client.
func TestTLSListenerTunnel(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startTLSProxy(t, tlsOriginsPolicy(port), loopbackNames("allowed.example.com"))

	c, err := tp.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", port, port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(c, "hello over TLS")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "hello over TLS" {
		t.Fatalf("through the tunnel: %q %v", got, err)
	}
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) == 1 }, "the tunnel closed record")
	if rec := tp.logs.records("tunnel closed")[0]; rec[keyCloseReason] != relay.ReasonEOF || rec[keyBytesUp] != float64(len("hello over TLS")) {
		t.Errorf("tunnel closed record %v", rec)
	}
}

// TestTLSListenerRefusals: what is not a TLS 1.2+ HTTP/1.1 client is
// refused at the handshake, cleanly, and each refusal is counted with a
// stable reason; a client speaking plain HTTP is told in HTTP.
func TestTLSListenerRefusals(t *testing.T) {
	t.Parallel()
	tp := startTLSProxy(t, tlsOriginsPolicy(443), loopbackNames("allowed.example.com"))
	waitFailures := func(n int) {
		t.Helper()
		waitFor(t, func() bool { return len(tp.logs.records("TLS handshake failed")) == n }, fmt.Sprintf("%d handshake failure records", n))
	}

	// Plain HTTP to the TLS port: a 400 that says what to do.
	c, err := net.Dial("tcp", tp.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "CONNECT allowed.example.com:443 HTTP/1.1\r\nHost: allowed.example.com:443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("plain CONNECT to the TLS port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Azegress-Reason") != ReasonBadRequest || !strings.Contains(string(body), "https://") ||
		resp.Header.Get("Proxy-Status") != `azegress; error=http_request_error; details="bad_request"` {
		t.Errorf("plain CONNECT to the TLS port: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	waitFailures(1)
	if rec := tp.logs.records("TLS handshake failed")[0]; rec[keyReason] != tlsNotTLS || rec["level"] != "WARN" || !strings.Contains(fmt.Sprint(rec[keyFix]), "https:// proxy URL") || rec[keyClient] == nil {
		t.Errorf("record %v", rec)
	}

	for _, tt := range []struct {
		name   string
		cfg    *tls.Config
		reason string
	}{
		{"h2 only", &tls.Config{NextProtos: []string{"h2"}}, tlsProtocol},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, tlsProtocol},
		{"untrusted certificate", &tls.Config{RootCAs: x509.NewCertPool()}, tlsClientAlert},
	} {
		n := len(tp.logs.records("TLS handshake failed")) + 1
		c, err := tp.dial(tt.cfg)
		if err == nil {
			c.Close()
			t.Fatalf("%s: the handshake succeeded", tt.name)
		}
		waitFailures(n)
		if rec := tp.logs.records("TLS handshake failed")[n-1]; rec[keyReason] != tt.reason {
			t.Errorf("%s: reason %v, want %s (%v)", tt.name, rec[keyReason], tt.reason, rec)
		}
	}

	// A client that connects and goes away, like a load balancer's probe:
	// counted, logged at Debug only.
	c, err = net.Dial("tcp", tp.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFailures(5)
	if rec := tp.logs.records("TLS handshake failed")[4]; rec[keyReason] != tlsClosed || rec["level"] != "DEBUG" {
		t.Errorf("probe record %v", rec)
	}

	// A client that offers h2 and http/1.1 gets http/1.1.
	tc, err := tp.dial(&tls.Config{NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN: %q, want http/1.1", p)
	}
	tc.Close()

	want := `
# HELP azegress_tls_handshake_failures_total Failed TLS handshakes on the TLS listener by reason (closed, timeout, not_tls, client_alert, protocol).
# TYPE azegress_tls_handshake_failures_total counter
azegress_tls_handshake_failures_total{reason="client_alert"} 1
azegress_tls_handshake_failures_total{reason="closed"} 1
azegress_tls_handshake_failures_total{reason="not_tls"} 1
azegress_tls_handshake_failures_total{reason="protocol"} 2
azegress_tls_handshake_failures_total{reason="timeout"} 0
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_tls_handshake_failures_total"); err != nil {
		t.Error(err)
	}
}

// TestTLSListenerLimits: a connection holds its slot under -max-conns from
// accept, handshake included; over the cap a TLS connection is closed
// without a handshake; a handshake not done within the header timeout is
// closed and logged.
func TestTLSListenerLimits(t *testing.T) {
	t.Parallel()
	tp := startTLSProxy(t, tlsOriginsPolicy(443), loopbackNames("allowed.example.com"), func(c *Config) {
		c.MaxConnections = 1
		c.ReadHeaderTimeout = 500 * time.Millisecond
	})
	silent, err := net.Dial("tcp", tp.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, func() bool { return tp.conns.Load() == 1 }, "the silent connection to take the slot")
	if c, err := tp.dial(nil); err == nil {
		c.Close()
		t.Fatal("a second connection was served over -max-conns 1")
	}
	if got := testutil.ToFloat64(tp.m.connsShed); got != 1 {
		t.Errorf("shed %v, want 1", got)
	}
	// The silent client is closed at the header timeout.
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client: read %d, %v; want EOF", n, err)
	}
	waitFor(t, func() bool { return len(tp.logs.records("TLS handshake failed")) == 1 }, "the timeout record")
	if rec := tp.logs.records("TLS handshake failed")[0]; rec[keyReason] != tlsTimeout {
		t.Errorf("record %v", rec)
	}
	waitFor(t, func() bool { return tp.conns.Load() == 0 }, "the slot to be given back")
	c, err := tp.dial(nil)
	if err != nil {
		t.Fatalf("after the slot was given back: %v", err)
	}
	c.Close()
}

// TestTLSListenerReload: Reload swaps a new pair in for new connections; a
// pair that does not load, or has expired, keeps the one being served.
func TestTLSListenerReload(t *testing.T) {
	t.Parallel()
	src := tlsOriginsPolicy(443)
	tp := startTLSProxy(t, src, loopbackNames("allowed.example.com"))
	load := func() (*policy.Policy, hcl.Diagnostics) { return policy.Load("test.hcl", []byte(src)) }
	first := tp.servedSerial()
	if first != tp.pair.Leaf.SerialNumber.String() {
		t.Fatalf("served %s, want the first pair's %s", first, tp.pair.Leaf.SerialNumber)
	}

	// A new pair over the same files.
	next := tp.ca.Issue(t, tp.dir, "proxy", time.Now().Add(48*time.Hour), "127.0.0.1")
	if !tp.Reload(load) {
		t.Fatal("the policy reload failed")
	}
	if got := tp.servedSerial(); got != next.Leaf.SerialNumber.String() {
		t.Fatalf("after a reload served %s, want the new pair's %s", got, next.Leaf.SerialNumber)
	}
	rec := tp.logs.records("TLS certificate reloaded")
	if len(rec) != 1 || rec[0][keyTLSCert] != tp.pair.CertFile || rec[0][keyExpires] != next.Leaf.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("reload records %v", rec)
	}

	// Bad pairs: each rejected with the file and why; the pair served stays.
	other := tp.ca.Issue(t, t.TempDir(), "other", time.Now().Add(time.Hour), "127.0.0.1")
	expired := tp.ca.Issue(t, t.TempDir(), "expired", time.Now().Add(-time.Minute), "127.0.0.1")
	certPEM, _ := os.ReadFile(next.CertFile)
	keyPEM, _ := os.ReadFile(next.KeyFile)
	for _, tt := range []struct {
		name      string
		cert, key string // files to copy over the pair; "" leaves it
		certPEM   []byte
		want      string
	}{
		{name: "key of another certificate", key: other.KeyFile, want: "private key does not match public key"},
		{name: "not PEM", certPEM: []byte("not a certificate\n"), want: "failed to find any PEM data in certificate input"},
		{name: "expired", cert: expired.CertFile, key: expired.KeyFile, want: "expired at"},
	} {
		testcert.WriteFile(t, tp.pair.CertFile, certPEM)
		testcert.WriteFile(t, tp.pair.KeyFile, keyPEM)
		if tt.cert != "" {
			b, _ := os.ReadFile(tt.cert)
			testcert.WriteFile(t, tp.pair.CertFile, b)
		}
		if tt.key != "" {
			b, _ := os.ReadFile(tt.key)
			testcert.WriteFile(t, tp.pair.KeyFile, b)
		}
		if tt.certPEM != nil {
			testcert.WriteFile(t, tp.pair.CertFile, tt.certPEM)
		}
		tp.Reload(load)
		recs := tp.logs.records("TLS certificate reload rejected; the previous certificate keeps serving")
		if len(recs) == 0 {
			t.Fatalf("%s: no rejection record", tt.name)
		}
		if rec := recs[len(recs)-1]; rec["level"] != "ERROR" || !strings.Contains(fmt.Sprint(rec[keyError]), tp.pair.CertFile) || !strings.Contains(fmt.Sprint(rec[keyError]), tt.want) {
			t.Errorf("%s: record %v; want the file and %q", tt.name, rec, tt.want)
		}
		if got := tp.servedSerial(); got != next.Leaf.SerialNumber.String() {
			t.Errorf("%s: after a bad reload served %s, want the pair before it, %s", tt.name, got, next.Leaf.SerialNumber)
		}
	}
	want := fmt.Sprintf(`
# HELP azegress_tls_cert_expiry_timestamp_seconds Unix time at which the certificate the TLS listener presents expires (its not-after).
# TYPE azegress_tls_cert_expiry_timestamp_seconds gauge
azegress_tls_cert_expiry_timestamp_seconds %d
# HELP azegress_tls_cert_reloads_total Reloads of the TLS listener's certificate and key by result (success, failure).
# TYPE azegress_tls_cert_reloads_total counter
azegress_tls_cert_reloads_total{result="failure"} 3
azegress_tls_cert_reloads_total{result="success"} 1
`, next.Leaf.NotAfter.Unix())
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_tls_cert_expiry_timestamp_seconds", "azegress_tls_cert_reloads_total"); err != nil {
		t.Error(err)
	}
}

// TestTLSListenerConfig: New refuses a pair that does not load, naming the
// files and the reason; without a pair there is no TLS listener and no TLS
// metric.
func TestTLSListenerConfig(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	good := ca.Issue(t, dir, "good", time.Now().Add(time.Hour), "127.0.0.1")
	other := ca.Issue(t, dir, "other", time.Now().Add(time.Hour), "127.0.0.1")
	expired := ca.Issue(t, dir, "expired", time.Now().Add(-time.Minute), "127.0.0.1")
	missing := filepath.Join(dir, "missing.crt")
	pol := loadPolicy(t, tlsOriginsPolicy(443))
	for _, tt := range []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"missing certificate", missing, good.KeyFile, []string{"TLS certificate " + missing + ": no such file or directory"}},
		{"key of another certificate", good.CertFile, other.KeyFile, []string{good.CertFile, other.KeyFile, "private key does not match public key"}},
		{"key for certificate", good.KeyFile, good.KeyFile, []string{good.KeyFile, "certificate input"}},
		{"expired", expired.CertFile, expired.KeyFile, []string{expired.CertFile, "expired at", "renew it"}},
		{"key without certificate", "", good.KeyFile, []string{"TLSCertFile and Config.TLSKeyFile go together"}},
	} {
		_, err := New(Config{Policy: pol, TLSCertFile: tt.cert, TLSKeyFile: tt.key})
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want %q", tt.name, err, w)
			}
		}
	}

	tp := startProxy(t, tlsOriginsPolicy(443), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ServeTLS(ln); err == nil || !strings.Contains(err.Error(), "Config.TLSCertFile") {
		t.Errorf("ServeTLS without a pair: %v", err)
	}
	if n, err := testutil.GatherAndCount(tp.reg, "azegress_tls_cert_expiry_timestamp_seconds", "azegress_tls_cert_reloads_total"); err != nil || n != 0 {
		t.Errorf("TLS metrics without a TLS listener: %d %v", n, err)
	}
}

// TestTLSListenerPythonRequests: Python requests (Debian's, the Azure CLI's)
// with HTTPS_PROXY=https://... and one CA bundle for the proxy and the
// destinations, as the README says.
func TestTLSListenerPythonRequests(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import requests").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import requests; `make test` installs python3-azure, which has it", python)
		}
		t.Skipf("%s cannot import requests: %v", python, err)
	}
	tlsSrv, tlsPort := tlsOrigin(t, "tls-origin")
	_, httpPort := httpOrigin(t, "http-origin")
	tp := startTLSProxy(t, tlsOriginsPolicy(tlsPort, httpPort), loopbackNames("allowed.example.com", "denied.example.com"))
	bundle := filepath.Join(tp.dir, "bundle.pem")
	originPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	testcert.WriteFile(t, bundle, append(append([]byte(nil), tp.ca.PEM...), originPEM...))

	script := `
import sys, requests
for url in sys.argv[1:]:
    try:
        r = requests.get(url, timeout=10)
        print(r.status_code, r.text.splitlines()[0] if r.text else "")
    except requests.exceptions.ProxyError as e:
        print("proxy error", "403" in str(e))
`
	cmd := exec.Command(python, "-c", script,
		fmt.Sprintf("https://allowed.example.com:%d/tunnel", tlsPort),
		fmt.Sprintf("http://allowed.example.com:%d/plain", httpPort),
		fmt.Sprintf("https://denied.example.com:%d/", tlsPort),
		fmt.Sprintf("http://denied.example.com:%d/", httpPort))
	proxyURL := "https://" + tp.tlsAddr
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HTTPS_PROXY=" + proxyURL, "HTTP_PROXY=" + proxyURL, "REQUESTS_CA_BUNDLE=" + bundle, "PYTHONWARNINGS=ignore"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := []string{
		"200 hello from tls-origin /tunnel",
		"200 hello from http-origin host=allowed.example.com",
		"proxy error True",
		"403 azegress denied GET denied.example.com:",
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want prefix %q; output:\n%s", i+1, w, out)
		}
	}
}

// A tunnel whose origin speaks first and whose client neither speaks nor
// reads ends at the idle timeout, on the TLS listener (the relay copies)
// and on the plain one (it splices): a write stuck on the client is no
// activity, and the domain-fronting check, still waiting for the client's
// first bytes, must not wait forever.
func TestStuckClientIdles(t *testing.T) {
	t.Parallel()
	flood := scriptOrigin(t, func(_ int, c net.Conn, br *bufio.Reader) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	idle := func(c *Config) { c.TunnelIdleTimeout = 500 * time.Millisecond }
	names := loopbackNames("allowed.example.com")
	tlsProxy := startTLSProxy(t, tlsOriginsPolicy(flood.port), names, idle)
	plain := startProxy(t, tlsOriginsPolicy(flood.port), names, idle)
	for _, tt := range []struct {
		name string
		tp   *testProxy
		dial func() (net.Conn, error)
	}{
		{"TLS listener", tlsProxy.testProxy, func() (net.Conn, error) { return tlsProxy.dial(nil) }},
		{"plain listener", plain, func() (net.Conn, error) { return net.Dial("tcp", plain.addr) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(c, "CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", flood.port, flood.port)
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			// The client reads nothing more: buffers fill and the relay's write blocks.
			waitFor(t, func() bool { return len(tt.tp.logs.records("tunnel closed")) == 1 }, "the stuck tunnel to end")
			if rec := tt.tp.logs.records("tunnel closed")[0]; rec[keyCloseReason] != relay.ReasonIdleTimeout {
				t.Errorf("tunnel closed record %v, want close_reason %s", rec, relay.ReasonIdleTimeout)
			}
		})
	}
}
