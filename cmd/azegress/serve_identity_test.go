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
