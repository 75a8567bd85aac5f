package proxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/identity/identitytest"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
)

// Identities of the tests, besides identitytest.ObjectID (in block "mi").
const (
	pinnedOID  = "bbbbbbbb-1111-2222-3333-444444444444" // block "pinned", sources 10.0.0.0/8 only
	unknownOID = "dddddddd-1111-2222-3333-444444444444" // in no block
	byAppOID   = "eeeeeeee-1111-2222-3333-444444444444" // unlisted, but its client ID is in block "by-app"
	byAppID    = "ffffffff-1111-2222-3333-444444444444"
)

// identityPolicy has an entra block for idp, an address-keyed block for
// 127.0.0.0/8 that allows addr.example.com, and identity blocks that allow
// mi.example.com: "mi" for identitytest.ObjectID from anywhere, "pinned"
// from 10.0.0.0/8 only, "by-app" by client ID. All on port.
func identityPolicy(idp *identitytest.IdP, port uint16, entraExtra string) string {
	return fmt.Sprintf(`
entra {
  tenant_id = %[1]q
  audiences = [%[2]q, %[3]q]
  authority = %[4]q
%[7]s
}

client "local" {
  sources = ["127.0.0.0/8"]
  allow "addr" {
    hosts     = ["addr.example.com"]
    ports     = [%[5]d]
    addresses = ["127.0.0.0/8"]
  }
}

client "mi" {
  identity {
    object_ids = [%[6]q]
  }
  allow "mi" {
    hosts     = ["mi.example.com"]
    ports     = [%[5]d]
    addresses = ["127.0.0.0/8"]
  }
}

client "pinned" {
  sources = ["10.0.0.0/8"]
  identity {
    object_ids = [%[8]q]
  }
  allow "mi" {
    hosts     = ["mi.example.com"]
    ports     = [%[5]d]
    addresses = ["127.0.0.0/8"]
  }
}

client "by-app" {
  identity {
    client_ids = [%[9]q]
  }
  allow "app" {
    hosts     = ["app.example.com"]
    ports     = [%[5]d]
    addresses = ["127.0.0.0/8"]
  }
}
`, idp.TenantID, identitytest.AppIDURI, identitytest.ClientID, idp.Authority(), port, identitytest.ObjectID, entraExtra, pinnedOID, byAppID)
}

// startIdentityProxy serves src (an identityPolicy) and returns once the
// tenant's keys have loaded.
func startIdentityProxy(t *testing.T, src string, opts ...proxyOpt) *testProxy {
	t.Helper()
	tp := startProxy(t, src, loopbackNames("addr.example.com", "mi.example.com", "app.example.com"), opts...)
	if err := tp.gen.Load().entra.keys.Refresh(t.Context()); err != nil {
		t.Fatalf("loading the IdP's keys: %v", err)
	}
	if ok, why := tp.Readiness(); !ok {
		t.Fatalf("not ready after the keys loaded: %s", why)
	}
	return tp
}

// connectAuth sends a CONNECT to target with the given header lines
// ("Name: value\r\n" each) and returns the response and its body; a
// tunnel it closes at once.
func (tp *testProxy) connectAuth(target, headers string) (*http.Response, string) {
	tp.t.Helper()
	resp, c, _ := tp.raw("", "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n"+headers+"\r\n")
	if resp.StatusCode == http.StatusOK {
		c.Close()
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// hasRecord reports whether one of recs has every key and value of want.
func hasRecord(recs []map[string]any, want map[string]any) bool {
	for _, rec := range recs {
		ok := true
		for k, v := range want {
			ok = ok && rec[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}

func basic(token string) string {
	return "Proxy-Authorization: " + identitytest.BasicAuth("azegress", token) + "\r\n"
}
func bearer(token string) string { return "Proxy-Authorization: Bearer " + token + "\r\n" }

// TestIdentityConnect is the selection and status matrix of a CONNECT, on
// the front door and (for heads over its buffer) through net/http.
func TestIdentityConnect(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	_, port := tlsOrigin(t, "origin")
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))

	valid := idp.Mint(t, identitytest.Token{})
	pad := "X-Pad: " + strings.Repeat("p", 5000) + "\r\n" // over the front door's 4 KiB: net/http reads it
	other := identitytest.NewKey(t, "key-1")              // same kid, another key
	target := func(h string) string { return fmt.Sprintf("%s:%d", h, port) }
	for _, tt := range []struct {
		name      string
		target    string
		headers   string
		status    int
		reason    string // X-Azegress-Reason
		challenge bool   // Proxy-Authenticate
		record    map[string]any
	}{
		{name: "valid token, Basic", target: "mi.example.com", headers: basic(valid), status: 200,
			record: map[string]any{"client_block": "mi", "identity_source": "token", "auth_result": "ok", "oid": identitytest.ObjectID, "appid": identitytest.AppID, "tid": identitytest.TenantID}},
		{name: "valid token, Bearer", target: "mi.example.com", headers: bearer(valid), status: 200},
		{name: "valid token, head through net/http", target: "mi.example.com", headers: pad + basic(valid), status: 200},
		{name: "v1 token", target: "mi.example.com", headers: basic(idp.Mint(t, identitytest.Token{Version: 1})), status: 200},
		{name: "selected by client ID", target: "app.example.com", status: 200,
			headers: basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": byAppOID, "azp": byAppID}})),
			record:  map[string]any{"client_block": "by-app", "oid": byAppOID, "appid": byAppID}},
		// The identity's block does not allow what the address's block
		// does: no fall back.
		{name: "valid token, host of the address block", target: "addr.example.com", headers: basic(valid), status: 403, reason: "no_rule",
			record: map[string]any{"client_block": "mi", "auth_result": "ok"}},
		{name: "identity listed nowhere", target: "addr.example.com", status: 403, reason: "identity_unknown",
			headers: basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": unknownOID}})),
			record:  map[string]any{"auth_result": "refused", "auth_reason": "identity_unknown", "oid": unknownOID}},
		{name: "identity outside its block's sources", target: "mi.example.com", status: 403, reason: "identity_source",
			headers: basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": pinnedOID}})),
			record:  map[string]any{"auth_result": "refused", "auth_reason": "identity_source"}},
		{name: "no credentials, address block allows", target: "addr.example.com", status: 200},
		{name: "no credentials, refused", target: "mi.example.com", status: 407, reason: "no_rule", challenge: true,
			record: map[string]any{"client_block": "local", "identity_source": "cidr", "auth_result": "missing", "auth_reason": "missing", "status": float64(407)}},
		{name: "no credentials, local endpoint", target: "169.254.169.254:80", status: 403, reason: "local_endpoint"},
		{name: "empty header is no credentials", target: "mi.example.com", headers: "Proxy-Authorization: \r\n", status: 407, reason: "no_rule", challenge: true},
		{name: "malformed", target: "mi.example.com", headers: "Proxy-Authorization: Basic !!!\r\n", status: 407, reason: "malformed",
			record: map[string]any{"identity_source": "token", "auth_result": "refused", "auth_reason": "malformed"}},
		{name: "not a JWT", target: "mi.example.com", headers: basic("not-a-jwt"), status: 407, reason: "malformed"},
		{name: "two headers", target: "mi.example.com", headers: basic(valid) + bearer(valid), status: 407, reason: "malformed"},
		{name: "expired", target: "mi.example.com", status: 407, reason: "expired",
			headers: basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}}))},
		{name: "wrong audience", target: "mi.example.com", status: 407, reason: "wrong_audience",
			headers: basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"aud": "https://management.azure.com/"}}))},
		{name: "bad signature", target: "mi.example.com", status: 407, reason: "bad_signature",
			headers: basic(idp.Mint(t, identitytest.Token{Key: other}))},
		{name: "header over 16 KiB", target: "mi.example.com", headers: basic(strings.Repeat("x", identity.MaxHeaderBytes)), status: 431, reason: "header_too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tgt := tt.target
			if !strings.Contains(tgt, ":") {
				tgt = target(tgt)
			}
			resp, body := tp.connectAuth(tgt, tt.headers)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("X-Azegress-Reason"); got != tt.reason {
				t.Errorf("X-Azegress-Reason %q, want %q", got, tt.reason)
			}
			if got, want := resp.Header.Get("Proxy-Status"), (&denial{reason: tt.reason}).proxyStatus(); tt.status != 200 && got != want {
				t.Errorf("Proxy-Status %q, want %q", got, want)
			}
			if got, want := resp.Header.Get("Proxy-Authenticate"), map[bool]string{true: `Basic realm="azegress"`}[tt.challenge]; got != want {
				t.Errorf("Proxy-Authenticate %q, want %q", got, want)
			}
			if tt.status != 200 && !strings.Contains(body, "reason:  "+tt.reason+": ") {
				t.Errorf("body does not name reason %s:\n%s", tt.reason, body)
			}
			switch {
			case tt.record == nil:
			case tt.status == 200: // tunnels close in their own time: find the record
				waitFor(t, func() bool { return hasRecord(tp.logs.records("tunnel closed"), tt.record) },
					fmt.Sprintf("a tunnel closed record with %v", tt.record))
			default:
				checkRecord(t, tp.lastDeny(), tt.record)
			}
		})
	}

	// The fixes name what to change.
	_, body := tp.connectAuth(target("addr.example.com"), basic(valid))
	if !strings.Contains(body, `add this rule to client "mi"`) {
		t.Errorf("no_rule fix of a token's request does not name its identity's block:\n%s", body)
	}
	_, body = tp.connectAuth(target("mi.example.com"), "")
	if !strings.Contains(body, `add this rule to client "local"`) || !strings.Contains(body, "HTTPS_PROXY=http://azegress:<token>@") {
		t.Errorf("407 body lacks the fix or how to send a token:\n%s", body)
	}
	_, body = tp.connectAuth(target("mi.example.com"), basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": unknownOID}})))
	if !strings.Contains(body, "object_ids = [\""+unknownOID+"\"]") {
		t.Errorf("identity_unknown fix lacks the identity block:\n%s", body)
	}
}

// TestIdentityHTTP: plain-HTTP requests take the same credentials, and the
// origin never sees them.
func TestIdentityHTTP(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	var seen []string // Proxy-Authorization values the origin received
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Values("Proxy-Authorization")...)
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(origin.Close)
	port := portOf(t, origin.Listener.Addr())
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))
	valid := idp.Mint(t, identitytest.Token{})

	for _, tt := range []struct {
		name, host, method, headers string
		status                      int
		challenge                   bool
	}{
		{"valid token", "mi.example.com", "GET", basic(valid), 200, false},
		{"valid token, body (transport path)", "mi.example.com", "POST", basic(valid) + "Content-Length: 2\r\n", 200, false},
		{"valid token, Bearer", "mi.example.com", "GET", bearer(valid), 200, false},
		{"no credentials, refused", "mi.example.com", "GET", "", 407, true},
		{"no credentials, allowed", "addr.example.com", "GET", "", 200, false},
		{"expired", "mi.example.com", "GET", basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}})), 407, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := fmt.Sprintf("%s http://%s:%d/ HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", tt.method, tt.host, port, tt.host, port, tt.headers)
			if tt.method == "POST" {
				req += "hi"
			}
			resp, _, _ := tp.raw("", req)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tt.status, b)
			}
			if got := resp.Header.Get("Proxy-Authenticate") != ""; got != tt.challenge {
				t.Errorf("challenge %v, want %v", got, tt.challenge)
			}
		})
	}
	if len(seen) != 0 {
		t.Errorf("the origin received Proxy-Authorization %q", seen)
	}
	checkRecord(t, tp.lastRecord("request"), map[string]any{"kind": "http", "client_block": "local", "identity_source": "cidr"})
}

// TestIdentityNoEntra: without an entra block, credentials are ignored
// (not validated), exactly as before identity-keyed selection, and still
// never forwarded.
func TestIdentityNoEntra(t *testing.T) {
	t.Parallel()
	var seen []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Values("Proxy-Authorization")...)
	}))
	t.Cleanup(origin.Close)
	port := portOf(t, origin.Listener.Addr())
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com", "denied.example.com"))
	target := fmt.Sprintf("allowed.example.com:%d", port)
	if resp, body := tp.connectAuth(target, "Proxy-Authorization: Basic !!!\r\n"); resp.StatusCode != 200 {
		t.Fatalf("CONNECT with credentials: %d\n%s", resp.StatusCode, body)
	}
	resp, body := tp.connectAuth(fmt.Sprintf("denied.example.com:%d", port), "Proxy-Authorization: Basic !!!\r\n")
	if resp.StatusCode != 403 || resp.Header.Get("Proxy-Authenticate") != "" {
		t.Fatalf("refusal without an entra block: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	resp, _, _ = tp.raw("", fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Bearer secret\r\n\r\n", target, target))
	if resp.StatusCode != 200 {
		t.Fatalf("GET with credentials: %d", resp.StatusCode)
	}
	if len(seen) != 0 {
		t.Errorf("the origin received Proxy-Authorization %q", seen)
	}
	if rec := tp.lastDeny(); rec["identity_source"] != nil || rec["auth_result"] != nil {
		t.Errorf("deny record without an entra block has auth keys: %v", rec)
	}
}

// TestIdentityTransparent: a transparent flow never selects an identity
// block, not even one whose sources contain its address, and a
// Proxy-Authorization header on it is not a credential.
func TestIdentityTransparent(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	origin, _ := httpOrigin(t, "allowed")
	policyFor := func(tlsPort, httpPort uint16) string {
		return fmt.Sprintf(`
entra {
  tenant_id = %q
  audiences = [%q]
  authority = %q
}
client "mi" {
  sources = ["127.0.0.0/8"]
  identity {
    object_ids = [%q]
  }
  allow "all" {
    hosts = ["allowed.example"]
    ports = [%d, %d]
  }
}
`, idp.TenantID, identitytest.ClientID, idp.Authority(), identitytest.ObjectID, tlsPort, httpPort)
	}
	tp := startTransparent(t, policyFor, map[string]string{allowedIP: origin.Listener.Addr().String()})
	if err := tp.gen.Load().entra.keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	valid := idp.Mint(t, identitytest.Token{})

	got := rawExchange(t, tp.httpAddr, []byte("GET / HTTP/1.1\r\nHost: allowed.example\r\n"+basic(valid)+"Connection: close\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
	if err != nil {
		t.Fatalf("transparent HTTP: %v (%q)", err, got)
	}
	if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != "client_unknown" || resp.Header.Get("Proxy-Authenticate") != "" {
		t.Errorf("transparent HTTP with a valid token: %d %v", resp.StatusCode, resp.Header)
	}
	checkRecord(t, tp.lastDeny(), map[string]any{"kind": "transparent_http", "reason": "client_unknown"})
	if rec := tp.lastDeny(); rec["identity_source"] != nil || rec["client_block"] != nil {
		t.Errorf("transparent deny record: %v", rec)
	}

	_, err = httpsVia(tp.tlsAddr, false).Get(fmt.Sprintf("https://allowed.example:%d/", tp.tlsPort))
	if err == nil {
		t.Fatal("transparent TLS reached an identity block's host")
	}
	checkRecord(t, tp.lastDeny(), map[string]any{"kind": "transparent_tls", "reason": "client_unknown"})
}

// TestIdentityReload: a reload that keeps tenant and authority keeps the
// loaded keys (no fetch), and one that also keeps audiences and skew keeps
// the verified tokens; a changed audience list builds a new validator on
// the same keys; removing the entra block drops both, and a new tenant or
// authority fetches anew.
func TestIdentityReload(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	_, port := tlsOrigin(t, "origin")
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))
	valid := idp.Mint(t, identitytest.Token{})
	target := fmt.Sprintf("mi.example.com:%d", port)
	connect := func(want int) {
		t.Helper()
		resp, body := tp.connectAuth(target, basic(valid))
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d\n%s", resp.StatusCode, want, body)
		}
	}
	connect(200)
	first := tp.gen.Load().entra
	fetches := idp.KeySetFetches()

	for _, tt := range []struct {
		name                  string
		src                   string
		sameKeys, sameValid   bool
		wantStatus            int
		wantCacheHitsIncrease bool
	}{
		{"rules changed", identityPolicy(idp, port, "") + "\n# a comment\n", true, true, 200, true},
		{"skew changed", identityPolicy(idp, port, `  clock_skew = "0s"`), true, false, 200, false},
		{"entra removed", basePolicy(port, ""), false, false, 407, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tp.gen.Load().entra
			if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return loadPolicy(t, tt.src), nil }) {
				t.Fatal("reload rejected")
			}
			after := tp.gen.Load().entra
			if tt.src == basePolicy(port, "") {
				if after != nil {
					t.Fatal("entra state kept without an entra block")
				}
				resp, _ := tp.connectAuth(target, basic(valid)) // mi.example.com is not allowed to 127.0.0.1
				if resp.StatusCode != 403 {
					t.Fatalf("without entra, a token's CONNECT: %d, want 403 (credentials ignored)", resp.StatusCode)
				}
				return
			}
			if (after.keys == before.keys) != tt.sameKeys || (after.v == before.v) != tt.sameValid {
				t.Errorf("same keys %v, same validator %v; want %v, %v", after.keys == before.keys, after.v == before.v, tt.sameKeys, tt.sameValid)
			}
			if !tp.Ready() {
				t.Error("not ready after a reload that kept the keys")
			}
			hits := after.v.Stats().Hits
			connect(tt.wantStatus)
			if got := after.v.Stats().Hits > hits; got != tt.wantCacheHitsIncrease {
				t.Errorf("cache hit %v, want %v", got, tt.wantCacheHitsIncrease)
			}
		})
	}
	if got := idp.KeySetFetches(); got != fetches {
		t.Errorf("reloads fetched the key set %d times", got-fetches)
	}

	// Back to an entra block: new keys, fetched anew; the old refresher is gone.
	if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return loadPolicy(t, identityPolicy(idp, port, "")), nil }) {
		t.Fatal("reload rejected")
	}
	again := tp.gen.Load().entra
	if again.keys == first.keys {
		t.Fatal("keys kept across a policy without an entra block")
	}
	if err := again.keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	connect(200)
	if idp.KeySetFetches() == fetches {
		t.Error("new keys did not fetch")
	}
}

// TestIdentityKeysUnavailable: with the identity provider unreachable, the
// proxy is not ready and refuses tokens with 503 keys_unavailable, while
// requests without credentials are served as ever.
func TestIdentityKeysUnavailable(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	idp.SetDown(true)
	_, port := tlsOrigin(t, "origin")
	tp := startProxy(t, identityPolicy(idp, port, ""), loopbackNames("addr.example.com", "mi.example.com"))
	if err := tp.gen.Load().entra.keys.Refresh(t.Context()); err == nil {
		t.Fatal("refresh from a down IdP succeeded")
	}
	if ok, why := tp.Readiness(); ok || !strings.Contains(why, "signing keys") {
		t.Errorf("Readiness = %v, %q; want not ready, waiting for keys", ok, why)
	}
	resp, body := tp.connectAuth(fmt.Sprintf("mi.example.com:%d", port), basic(idp.Mint(t, identitytest.Token{})))
	if resp.StatusCode != 503 || resp.Header.Get("X-Azegress-Reason") != "keys_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("token while keys are unavailable: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	if resp, body := tp.connectAuth(fmt.Sprintf("addr.example.com:%d", port), ""); resp.StatusCode != 200 {
		t.Errorf("address-keyed client while keys are unavailable: %d\n%s", resp.StatusCode, body)
	}
	idp.SetDown(false)
	if err := tp.gen.Load().entra.keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !tp.Ready() {
		t.Error("not ready once the keys loaded")
	}
	resp, _ = tp.connectAuth(fmt.Sprintf("mi.example.com:%d", port), basic(idp.Mint(t, identitytest.Token{})))
	if resp.StatusCode != 200 {
		t.Errorf("token once the keys loaded: %d", resp.StatusCode)
	}
}

// TestIdentityMetrics: auth results by bounded labels (each at 0 until
// counted), and the caches' counters from package identity.
func TestIdentityMetrics(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	_, port := tlsOrigin(t, "origin")
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))
	valid := idp.Mint(t, identitytest.Token{})
	target := fmt.Sprintf("mi.example.com:%d", port)
	for _, h := range []string{basic(valid), basic(valid), "", basic("x.y.z"), basic(idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": unknownOID}}))} {
		resp, _ := tp.connectAuth(target, h)
		resp.Body.Close()
	}
	want := `
# HELP azegress_auth_results_total Proxy credentials judged under the policy's entra block, by result (ok, refused, missing) and reason (valid, missing, or why refused: malformed, expired, wrong_audience, identity_unknown, ...).
# TYPE azegress_auth_results_total counter
azegress_auth_results_total{reason="bad_signature",result="refused"} 0
azegress_auth_results_total{reason="delegated_token",result="refused"} 0
azegress_auth_results_total{reason="expired",result="refused"} 0
azegress_auth_results_total{reason="header_too_large",result="refused"} 0
azegress_auth_results_total{reason="identity_source",result="refused"} 0
azegress_auth_results_total{reason="identity_unknown",result="refused"} 1
azegress_auth_results_total{reason="keys_unavailable",result="refused"} 0
azegress_auth_results_total{reason="malformed",result="refused"} 1
azegress_auth_results_total{reason="missing",result="missing"} 1
azegress_auth_results_total{reason="no_oid",result="refused"} 0
azegress_auth_results_total{reason="not_yet_valid",result="refused"} 0
azegress_auth_results_total{reason="unknown_key",result="refused"} 0
azegress_auth_results_total{reason="valid",result="ok"} 2
azegress_auth_results_total{reason="wrong_audience",result="refused"} 0
azegress_auth_results_total{reason="wrong_issuer",result="refused"} 0
azegress_auth_results_total{reason="wrong_tenant",result="refused"} 0
# HELP azegress_identity_key_refreshes_total Refreshes of the Entra tenant's signing keys (OpenID configuration documents and key sets) by result (success, failure). A failure keeps the last good keys.
# TYPE azegress_identity_key_refreshes_total counter
azegress_identity_key_refreshes_total{result="failure"} 0
azegress_identity_key_refreshes_total{result="success"} KEYREFRESHES
# HELP azegress_identity_keys Signing keys usable now (listed by the tenant within 24 hours); 0 means every token is refused as keys_unavailable.
# TYPE azegress_identity_keys gauge
azegress_identity_keys 1
# HELP azegress_identity_token_cache_entries Verified tokens cached now.
# TYPE azegress_identity_token_cache_entries gauge
azegress_identity_token_cache_entries 2
# HELP azegress_identity_token_cache_hits_total Token validations answered from the verified-token cache (one SHA-256, no signature check).
# TYPE azegress_identity_token_cache_hits_total counter
azegress_identity_token_cache_hits_total 1
# HELP azegress_identity_token_cache_misses_total Token validations that were not in the verified-token cache: a signature check, or an early refusal.
# TYPE azegress_identity_token_cache_misses_total counter
azegress_identity_token_cache_misses_total 3
`
	// The first load may have been joined by startIdentityProxy's or run twice.
	want = strings.Replace(want, "KEYREFRESHES", fmt.Sprint(tp.gen.Load().entra.keys.Stats().RefreshOK), 1)
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want),
		"azegress_auth_results_total", "azegress_identity_key_refreshes_total", "azegress_identity_keys",
		"azegress_identity_token_cache_entries", "azegress_identity_token_cache_hits_total", "azegress_identity_token_cache_misses_total"); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(tp.reg, "azegress_identity_key_last_refresh_success_timestamp_seconds")
	if err != nil || n != 1 {
		t.Fatalf("last refresh success timestamp: %d series, %v", n, err)
	}
}

// TestIdentitySecretsStayOut sends one token every way there is (allowed,
// denied, refused; CONNECT and plain HTTP; learn mode observing) and finds
// it in no log record, metric, observation, response body or upstream
// request.
func TestIdentitySecretsStayOut(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	var upstream bytes.Buffer
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(&upstream, "%s %s %s\n", r.Method, r.Host, r.URL) // not empty when no header is left
		_ = r.Header.Write(&upstream)
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(origin.Close)
	port := portOf(t, origin.Listener.Addr())
	var observations bytes.Buffer
	rec := learn.NewRecorder(&observations)
	src := strings.Replace(identityPolicy(idp, port, ""), "client \"mi\" {\n", "client \"mi\" {\n  mode = \"learn\"\n", 1)
	tp := startIdentityProxy(t, src, func(c *Config) { c.Observer = rec })

	valid := idp.Mint(t, identitytest.Token{})
	expired := idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}})
	unknown := idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": unknownOID}})
	tokens := []string{valid, expired, unknown}
	var bodies strings.Builder
	for _, tok := range tokens {
		for _, h := range []string{basic(tok), bearer(tok)} {
			for _, host := range []string{"mi.example.com", "addr.example.com", "other.example.com"} {
				target := fmt.Sprintf("%s:%d", host, port)
				resp, body := tp.connectAuth(target, h)
				resp.Body.Close()
				bodies.WriteString(body)
				resp, _, _ = tp.raw("", fmt.Sprintf("GET http://%s/ HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, h))
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Header.Write(&bodies)
				bodies.Write(b)
			}
		}
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	mfs, err := tp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		fmt.Fprintln(&metrics, mf.String())
	}
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) > 0 }, "a tunnel closed record")
	if !strings.Contains(observations.String(), `"identity"`) || !strings.Contains(observations.String(), identitytest.ObjectID) {
		t.Errorf("the learn-mode block's observations do not carry its identity:\n%s", observations.String())
	}
	for name, text := range map[string]string{
		"log": tp.logs.String(), "metrics": metrics.String(), "observations": observations.String(),
		"responses": bodies.String(), "upstream requests": upstream.String(),
	} {
		if text == "" {
			t.Errorf("%s: nothing captured", name)
		}
		for _, tok := range tokens {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			basicForm := base64.StdEncoding.EncodeToString([]byte("azegress:" + tok))
			for _, secret := range []string{tok, sig, basicForm[len(basicForm)-40:]} {
				if strings.Contains(text, secret) {
					t.Errorf("%s contains a token (or its signature or Basic form)", name)
				}
			}
		}
	}
	if !strings.Contains(tp.logs.String(), `"token_fp":"`+identity.Fingerprint(expired)+`"`) {
		t.Error("a refused token's fingerprint is not logged")
	}
}

// TestIdentityRequestURLUserinfo: credentials in a plain-HTTP request URL
// (not a header) are refused, never used, and the refusal does not echo them.
func TestIdentityRequestURLUserinfo(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	_, port := tlsOrigin(t, "origin")
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))
	u := url.URL{Scheme: "http", User: url.UserPassword("azegress", "secret-token-value"), Host: fmt.Sprintf("mi.example.com:%d", port), Path: "/"}
	resp, _, _ := tp.raw("", "GET "+u.String()+" HTTP/1.1\r\nHost: "+u.Host+"\r\n\r\n")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 {
		t.Fatalf("status %d\n%s", resp.StatusCode, b)
	}
	if strings.Contains(string(b), "secret-token-value") || strings.Contains(tp.logs.String(), "secret-token-value") {
		t.Errorf("the refusal echoes the URL's password:\n%s", b)
	}
}

// TestIdentityDecisionAllocs: with the token already verified (a cache
// hit), resolving it and deciding allocate nothing: the decision stays
// allocation-free with identity-keyed selection.
func TestIdentityDecisionAllocs(t *testing.T) {
	idp := identitytest.New(t)
	p := loadPolicy(t, identityPolicy(idp, 443, ""))
	tp := startProxy(t, identityPolicy(idp, 443, ""), nil)
	st := tp.gen.Load().entra
	if err := st.keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	token := idp.Mint(t, identitytest.Token{})
	if _, err := st.v.Validate(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	gen := &generation{pol: p, entra: st}
	h, _ := wireHost("mi.example.com")
	fl := &flow{gen: gen, host: h, port: 443}
	ctx := t.Context()
	n := testing.AllocsPerRun(100, func() {
		id, err := st.v.Validate(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		fl.auth, fl.id, fl.block, fl.rule = authOK, id, nil, nil
		if d := classify(fl); d != nil {
			t.Fatal(d.reason)
		}
		if _, d := applyRules(fl); d != nil || fl.block.Name != "mi" {
			t.Fatalf("decision: %v", d)
		}
	})
	if n != 0 {
		t.Fatalf("validating a cached token and deciding allocate %v times", n)
	}
}

// TestIdentityTokenLookedUpOnce: a request's token is hashed and looked
// up in the verified-token cache once, and a token is verified
// (signature-checked) once in all: its first request counts one miss, each
// later one one hit. On the engine the loop asks the cache and a goroutine
// verifies a miss; neither may ask again.
func TestIdentityTokenLookedUpOnce(t *testing.T) {
	t.Parallel()
	for _, engine := range []bool{false, true} {
		t.Run(fmt.Sprintf("engine=%v", engine), func(t *testing.T) {
			t.Parallel()
			idp := identitytest.New(t)
			_, port := tlsOrigin(t, "origin")
			tp := startIdentityProxy(t, identityPolicy(idp, port, ""), func(c *Config) {
				if engine {
					c.Engine, c.engineDial = true, func(ap netip.AddrPort) netip.AddrPort { return ap }
				}
			})
			if engine && tp.engine == nil {
				t.Skip("no event-loop engine on this platform")
			}
			v := tp.gen.Load().entra.v
			token := idp.Mint(t, identitytest.Token{})
			target := fmt.Sprintf("mi.example.com:%d", port)
			for i, hdr := range []string{basic(token), basic(token), bearer(token), basic(token)} {
				if resp, body := tp.connectAuth(target, hdr); resp.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
				}
				if st := v.Stats(); st.Misses != 1 || st.Hits != uint64(i) {
					t.Fatalf("after request %d: %d hits, %d misses; want %d and 1 (one lookup per request, one verification in all)",
						i, st.Hits, st.Misses, i)
				}
			}
		})
	}
}

// TestExplainAsMatchesProxy: explain decides credentials as the proxy
// does: the same status and reason for every token and destination.
func TestExplainAsMatchesProxy(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	_, port := tlsOrigin(t, "origin")
	tp := startIdentityProxy(t, identityPolicy(idp, port, ""))
	st := tp.gen.Load().entra
	tokens := map[string]string{
		"none":    "",
		"valid":   idp.Mint(t, identitytest.Token{}),
		"expired": idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}}),
		"unknown": idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": unknownOID}}),
		"pinned":  idp.Mint(t, identitytest.Token{Claims: map[string]any{"oid": pinnedOID}}),
		"garbage": "a.b.c",
	}
	for name, tok := range tokens {
		for _, h := range []string{"mi.example.com", "addr.example.com", "169.254.169.254"} {
			target := fmt.Sprintf("%s:%d", h, port)
			hdr := ""
			if tok != "" {
				hdr = bearer(tok)
			}
			resp, _ := tp.connectAuth(target, hdr)
			e, err := ExplainAs(t.Context(), tp.Policy(), Credential{Token: tok, Validator: st.v}, netip.MustParseAddr("127.0.0.1"), target, nil)
			if err != nil {
				t.Fatalf("%s, %s: %v", name, h, err)
			}
			reason := e.Reason
			if e.Decision == policy.VerdictAllow {
				reason = ""
			}
			if e.Status != resp.StatusCode || reason != resp.Header.Get("X-Azegress-Reason") || e.Challenge != (resp.Header.Get("Proxy-Authenticate") != "") {
				t.Errorf("%s token, %s: explain %d %q (challenge %v), proxy %d %q %v",
					name, h, e.Status, reason, e.Challenge, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), resp.Header)
			}
		}
	}
}
