package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy/host"
)

// TestProxyStatusEveryReason checks the Proxy-Status of a refusal for
// every reason: the package's Reason constants (found in its source, so
// that a new reason fails here until it is mapped) and every
// identity.Reason.
func TestProxyStatusEveryReason(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"no_rule":              "http_request_denied",
		"deny_rule":            "http_request_denied",
		"client_unknown":       "http_request_denied",
		"identity_unknown":     "http_request_denied",
		"identity_source":      "http_request_denied",
		"rate_limited":         "http_request_denied",
		"too_many_tunnels":     "http_request_denied",
		"too_many_connections": "http_request_denied",
		"no_sni":               "http_request_denied",
		"ech":                  "http_request_denied",
		"sni_mismatch":         "http_request_denied",
		"blocked_address":      "destination_ip_prohibited",
		"local_endpoint":       "destination_ip_prohibited",
		"bad_request":          "http_request_error",
		"dial_failed":          "destination_unavailable",
		"upstream_tls":         "tls_protocol_error",
		// Refused credentials (407), and the two that are not.
		"missing":          "http_request_denied",
		"malformed":        "http_request_denied",
		"bad_signature":    "http_request_denied",
		"unknown_key":      "http_request_denied",
		"expired":          "http_request_denied",
		"not_yet_valid":    "http_request_denied",
		"wrong_issuer":     "http_request_denied",
		"wrong_tenant":     "http_request_denied",
		"wrong_audience":   "http_request_denied",
		"delegated_token":  "http_request_denied",
		"no_oid":           "http_request_denied",
		"header_too_large": "http_request_error",
		"keys_unavailable": "proxy_internal_error",
	}
	reasons := reasonConstants(t)
	for _, r := range identity.Reasons() {
		reasons = append(reasons, string(r))
	}
	for _, r := range reasons {
		t.Run(r, func(t *testing.T) {
			w, ok := want[r]
			if !ok {
				t.Fatalf("reason %q has no expected Proxy-Status error type: map it in proxyErrors (reason.go), the README's table and this test", r)
			}
			got := (&denial{status: http.StatusForbidden, reason: r}).proxyStatus()
			if exp := `azegress; error=` + w + `; details="` + r + `"`; got != exp {
				t.Errorf("Proxy-Status %s, want %s", got, exp)
			}
		})
	}
	if len(reasons) != len(want) {
		t.Errorf("%d reasons, %d expected error types: the test lists a reason that no longer exists", len(reasons), len(want))
	}
}

// reasonConstants returns the values of the package's Reason* string
// constants (but ReasonAllowed, which refuses nothing).
func reasonConstants(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Reason") || name.Name == "ReasonAllowed" || i >= len(vs.Values) {
					continue
				}
				switch v := vs.Values[i].(type) {
				case *ast.BasicLit:
					s, err := strconv.Unquote(v.Value)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, s)
				default: // string(identity.Reason...): listed through identity.Reasons
				}
			}
			return false
		})
	}
	if len(out) < 15 {
		t.Fatalf("found %d Reason constants, want at least 15: %q", len(out), out)
	}
	return out
}

// TestProxyStatusByCause checks the error types that a refusal's cause
// picks over its reason's.
func TestProxyStatusByCause(t *testing.T) {
	t.Parallel()
	h, err := host.Parse("api.example.com")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flow{host: h, port: 443}
	ip := netip.MustParseAddr("20.1.2.3")
	cert := &x509.Certificate{DNSNames: []string{"other.example.com"}}
	for _, tt := range []struct {
		name   string
		d      *denial
		status int
		want   string
	}{
		{"no such host", resolveFailed(fl, &net.DNSError{Err: "no such host", IsNotFound: true}), 502, "dns_error"},
		{"resolver failure", resolveFailed(fl, &net.DNSError{Err: "server misbehaving"}), 502, "dns_error"},
		{"resolver timeout", resolveFailed(fl, &net.DNSError{Err: "i/o timeout", IsTimeout: true}), 504, "dns_timeout"},
		{"no addresses", noAddresses(fl), 502, "dns_error"},
		{"connection refused", dialFailed(fl, ip, syscall.ECONNREFUSED), 502, "connection_refused"},
		{"connect timeout", dialFailed(fl, ip, context.DeadlineExceeded), 504, "connection_timeout"},
		{"no route", dialFailed(fl, ip, syscall.EHOSTUNREACH), 502, "destination_ip_unroutable"},
		{"network unreachable", dialFailed(fl, ip, syscall.ENETUNREACH), 502, "destination_ip_unroutable"},
		{"other dial failure", dialFailed(fl, ip, syscall.EADDRNOTAVAIL), 502, "destination_unavailable"},
		{"unknown CA", upstreamTLSFailed(fl, ip, x509.UnknownAuthorityError{}, 0), 502, "tls_certificate_error"},
		{"wrong name", upstreamTLSFailed(fl, ip, x509.HostnameError{Certificate: cert, Host: "api.example.com"}, 0), 502, "tls_certificate_error"},
		{"expired certificate", upstreamTLSFailed(fl, ip, x509.CertificateInvalidError{Reason: x509.Expired}, 0), 502, "tls_certificate_error"},
		{"handshake timeout", upstreamTLSFailed(fl, ip, os.ErrDeadlineExceeded, 0), 504, "connection_timeout"},
		{"alert from the origin", upstreamTLSFailed(fl, ip, &net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}, 0), 502, "tls_alert_received"},
		{"not TLS", upstreamTLSFailed(fl, ip, tls.RecordHeaderError{}, 0), 502, "tls_protocol_error"},
		{"closed in the handshake", upstreamTLSFailed(fl, ip, io.EOF, 0), 502, "connection_terminated"},
		{"other handshake failure", upstreamTLSFailed(fl, ip, errors.New("tls: no cipher suite"), 0), 502, "tls_protocol_error"},
		{"the proxy's own listener", blockedAddress(fl, netip.MustParseAddr("127.0.0.1"), selfWhat), 403, "proxy_loop_detected"},
		{"guarded address", blockedAddress(fl, netip.MustParseAddr("10.1.2.3"), "private address"), 403, "destination_ip_prohibited"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.d.status != tt.status {
				t.Errorf("status %d, want %d", tt.d.status, tt.status)
			}
			if got, want := tt.d.proxyStatus(), `azegress; error=`+tt.want+`; details="`+tt.d.reason+`"`; got != want {
				t.Errorf("Proxy-Status %s, want %s", got, want)
			}
		})
	}
}

// TestSFString checks the Structured Field string of details.
func TestSFString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"no_rule":     `"no_rule"`,
		`a"b\c`:       `"a\"b\\c"`,
		"tab\there é": `"tabhere "`,
	} {
		if got := sfString(in); got != want {
			t.Errorf("sfString(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestProxyStatusOnTheWire checks the header on refusals the proxy
// answers over HTTP: CONNECT and plain HTTP, 400, 403 and 502.
func TestProxyStatusOnTheWire(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := portOf(t, ln.Addr())
	ln.Close() // nothing listens there now: a dial is refused
	res := loopbackNames("allowed.example.com")
	res.set("private.example.com", "10.1.2.3")
	tp := startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "dead" {
    hosts     = ["allowed.example.com"]
    ports     = [%d]
    addresses = ["127.0.0.0/8"]
  }
  allow "private" {
    hosts = ["private.example.com"]
  }
}`, deadPort), res)
	for _, tt := range []struct {
		name, request string
		status        int
		want          string
	}{
		{"CONNECT, no rule", "CONNECT denied.example.com:443 HTTP/1.1\r\nHost: denied.example.com:443\r\n\r\n", 403,
			`azegress; error=http_request_denied; details="no_rule"`},
		{"plain HTTP, no rule", "GET http://denied.example.com/ HTTP/1.1\r\nHost: denied.example.com\r\n\r\n", 403,
			`azegress; error=http_request_denied; details="no_rule"`},
		{"CONNECT, guarded address", "CONNECT private.example.com:443 HTTP/1.1\r\nHost: private.example.com:443\r\n\r\n", 403,
			`azegress; error=destination_ip_prohibited; details="blocked_address"`},
		{"CONNECT, refused", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", deadPort), 502,
			`azegress; error=connection_refused; details="dial_failed"`},
		{"CONNECT, bad target", "CONNECT allowed.example.com HTTP/1.1\r\nHost: allowed.example.com\r\n\r\n", 400,
			`azegress; error=http_request_error; details="bad_request"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, c, _ := tp.raw("", tt.request)
			defer c.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Proxy-Status") != tt.want {
				t.Errorf("%d, Proxy-Status %q; want %d, %q", resp.StatusCode, resp.Header.Get("Proxy-Status"), tt.status, tt.want)
			}
			if got := resp.Header.Values("Proxy-Status"); len(got) != 1 {
				t.Errorf("Proxy-Status fields %q, want one", got)
			}
		})
	}
}
