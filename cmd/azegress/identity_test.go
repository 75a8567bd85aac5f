package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
)

// serve with an entra block: /readyz is 503 and names the keys until they
// load; a token, once the identity provider answers, loads them and selects
// the identity's block; a request without one is challenged (407 with
// Proxy-Authenticate).
func TestServeEntra(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	idp.SetDown(true)
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") }))
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)

	path := filepath.Join(t.TempDir(), "policy.hcl")
	src := fmt.Sprintf(`entra {
  tenant_id = %q
  audiences = ["api://azegress"]
  authority = %q
}
client "mi" {
  identity {
    object_ids = [%q]
  }
  allow "origin" {
    addresses = ["127.0.0.1/32"]
    ports     = [%s]
  }
}
`, idp.TenantID, idp.Authority(), identitytest.ObjectID, u.Port())
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	d := serveBinary(t, "-policy", path)
	if rec := d.waitLog("identity-keyed selection on: tokens of the entra block's tenant select identity blocks; /readyz waits for its signing keys"); rec["tenant_id"] != idp.TenantID || rec["authority"] != idp.Authority() {
		t.Errorf("entra record %v", rec)
	}
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + d.maddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != 503 || !strings.Contains(body, "waiting for the signing keys of tenant "+idp.TenantID) {
		t.Errorf("/readyz before the keys loaded: %d %q", code, body)
	}

	client := func(user *url.Userinfo) *http.Client {
		pu := &url.URL{Scheme: "http", Host: d.addr, User: user}
		pool := origin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	if _, err := client(nil).Get(origin.URL); err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Errorf("without a token: %v, want a 407", err)
	}
	idp.SetDown(false)
	// The first token with a kid the proxy does not know refreshes the keys.
	resp, err := client(url.UserPassword("azegress", idp.Mint(t, identitytest.Token{Claims: map[string]any{"aud": "api://azegress"}}))).Get(origin.URL)
	if err != nil {
		t.Fatalf("with a token: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "origin" {
		t.Fatalf("with a token: %d %q", resp.StatusCode, b)
	}
	if code, body := readyz(); code != 200 {
		t.Errorf("/readyz after the keys loaded: %d %q", code, body)
	}
	resp, err = http.Get("http://" + d.maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`azegress_auth_results_total{reason="valid",result="ok"} 1`, `azegress_identity_keys 1`, `azegress_identity_key_refreshes_total{result="failure"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// explain -identity and -token decide as serve does: the identity's block
// is selected, never an address-keyed one, and a token is checked offline
// against a saved key set.
func TestExplainIdentity(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.hcl")
	src := fmt.Sprintf(`entra {
  tenant_id = %q
  audiences = ["api://azegress", %q]
}
client "local" {
  sources = ["127.0.0.0/8"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
client "kv-reader" {
  identity {
    object_ids = [%q]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
`, idp.TenantID, identitytest.ClientID, identitytest.ObjectID)
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("policy.hcl", []byte(src))
	jwks := write("keys.json", idp.JWKS())
	valid := write("valid.jwt", []byte(idp.Mint(t, identitytest.Token{})+"\n"))
	expired := write("expired.jwt", []byte(idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}})))
	v1 := write("v1.jwt", []byte(idp.Mint(t, identitytest.Token{Version: 1})))
	otherKey := write("other.jwt", []byte(idp.Mint(t, identitytest.Token{Key: identitytest.NewKey(t, "key-9")})))
	kv := "kv-prod-01.vault.azure.net"
	for _, tt := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no credentials: address block, challenged", []string{kv}, 1,
			[]string{`client block "local"`, "reason:   no_rule", "auth:     missing (missing)", "status:   407, with Proxy-Authenticate: Basic"}},
		{"identity: its block", []string{"-identity", strings.ToUpper(identitytest.ObjectID), kv}, 0,
			[]string{"decision: allow", `client block "kv-reader"`, "identity: object ID " + identitytest.ObjectID, `rule:     "kv"`}},
		{"identity: no fall back", []string{"-identity", identitytest.ObjectID, "management.azure.com"}, 1,
			[]string{"reason:   no_rule", `client block "kv-reader"`, "status:   403", `add this rule to client "kv-reader"`}},
		{"identity listed nowhere", []string{"-identity", "dddddddd-1111-2222-3333-444444444444", kv}, 1,
			[]string{"reason:   identity_unknown", "auth:     refused (identity_unknown)", `object_ids = ["dddddddd-1111-2222-3333-444444444444"]`}},
		{"token", []string{"-token", valid, "-jwks", jwks, kv}, 0,
			[]string{"decision: allow", `client block "kv-reader"`, "client ID " + identitytest.AppID, "token expires", "auth:     ok"}},
		{"v1 token", []string{"-token", v1, "-jwks", jwks, kv}, 0, []string{"decision: allow"}},
		{"expired token", []string{"-token", expired, "-jwks", jwks, kv}, 1,
			[]string{"reason:   expired", "status:   407", "Fetch a fresh token"}},
		{"token of a key not in the set", []string{"-token", otherKey, "-jwks", jwks, kv}, 1, []string{"reason:   unknown_key"}},
		{"token without keys", []string{"-token", valid, kv}, 2, nil},
		{"token and identity", []string{"-token", valid, "-jwks", jwks, "-identity", identitytest.ObjectID, kv}, 2, nil},
		{"client ID alone", []string{"-client-id", identitytest.AppID, kv}, 2, nil},
		{"bad key set", []string{"-token", valid, "-jwks", pol, kv}, 2, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runCLI(append([]string{"explain", "-no-dns", "-policy", pol}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.code == 2 && errs == "" {
				t.Error("a usage error without a message")
			}
		})
	}
	// Without an entra block, a credential is an error, not ignored.
	if _, errs, code := runCLI("explain", "-no-dns", "-identity", identitytest.ObjectID, "management.azure.com"); code != 2 || !strings.Contains(errs, "no entra block") {
		t.Errorf("-identity without an entra block: exit %d, %s", code, errs)
	}
}
