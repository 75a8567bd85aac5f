package azemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azegress/azegress/identity"
)

const (
	proxyAppURI  = "api://azegress"
	himdsToken   = "http://localhost:40342/metadata/identity/oauth2/token?api-version=2020-06-01&resource="
	federatedJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3b3JrbG9hZCJ9.c2ln"
)

// newIdentityEmu is an emulator with the proxy's app registration (v2
// tokens), a v1 app, a HIMDS key directory and a federated token file.
func newIdentityEmu(t *testing.T) *Emulator {
	t.Helper()
	keyDir, fedFile, err := MachineFiles(t.TempDir(), federatedJWT)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{
		Apps:               []App{{IdentifierURI: proxyAppURI}, {IdentifierURI: "api://v1-app", TokenVersion: 1}},
		ArcKeyDir:          keyDir,
		FederatedTokenFile: fedFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func claimsOf(t *testing.T, tok string) (Claims, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	var raw map[string]any
	if json.Unmarshal(b, &c) != nil || json.Unmarshal(b, &raw) != nil {
		t.Fatalf("payload %s does not decode", b)
	}
	return c, raw
}

// TestAppTokens: a token for the proxy's own audience has the claims the
// notes require (aud the app's client ID, v2 issuer, azp, idtyp app, no
// scp, no xms_mirid), and the project's validator accepts it with keys
// from the emulated tenant's OpenID documents.
func TestAppTokens(t *testing.T) {
	e := newIdentityEmu(t)
	c := emuClient(t, e)
	cfg := e.Config()
	app := cfg.Apps[0]

	tok := token(t, c, proxyAppURI)
	got, raw := claimsOf(t, tok)
	want := Claims{Aud: app.ClientID, Iss: e.IssuerV2(), Azp: cfg.ClientID, AzpACR: "2", IdTyp: "app",
		OID: cfg.PrincipalID, Sub: cfg.PrincipalID, TID: cfg.TenantID, Ver: "2.0"}
	got.Iat, got.Nbf, got.Exp, got.UTI = 0, 0, 0, ""
	if got != want {
		t.Errorf("claims %+v, want %+v", got, want)
	}
	for _, k := range []string{"scp", "xms_mirid", "appid"} {
		if _, ok := raw[k]; ok {
			t.Errorf("claim %s present in an app token for a custom audience", k)
		}
	}
	if v1, _ := claimsOf(t, token(t, c, "api://v1-app")); v1.Aud != "api://v1-app" || v1.Iss != e.IssuerV1() || v1.AppID != cfg.ClientID || v1.MIRID != "" {
		t.Errorf("v1 app token claims %+v: want aud api://v1-app, v1 issuer, appid, no xms_mirid", v1)
	}
	r := do(t, c, "GET", imdsToken+url.QueryEscape("api://not-registered"), map[string]string{"Metadata": "true"})
	if r.status != 400 || !strings.Contains(r.body, "AADSTS500011") {
		t.Errorf("unregistered audience: got %d %s, want 400 AADSTS500011", r.status, r.body)
	}

	ctx := context.Background()
	keys, err := identity.NewKeys(identity.KeysConfig{TenantID: cfg.TenantID, Authority: EntraAuthority, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Refresh(ctx); err != nil {
		t.Fatalf("loading the tenant's keys from the emulator: %v", err)
	}
	v, err := identity.NewValidator(keys, identity.Config{Audiences: []string{proxyAppURI, app.ClientID}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Validate(ctx, tok)
	if err != nil {
		t.Fatalf("the validator refuses the emulator's token: %v", err)
	}
	if id.ObjectID != cfg.PrincipalID || id.AppID != cfg.ClientID || id.TenantID != cfg.TenantID {
		t.Errorf("identity %+v: want oid %s, appid %s, tid %s", id, cfg.PrincipalID, cfg.ClientID, cfg.TenantID)
	}
}

// TestHIMDS: the Arc challenge. A request without the secret gets 401 and
// a realm naming a fresh key file; its content as Basic credentials gets
// the token, once.
func TestHIMDS(t *testing.T) {
	e := newIdentityEmu(t)
	c := emuClient(t, e)
	meta := map[string]string{"Metadata": "true"}
	u := himdsToken + url.QueryEscape(proxyAppURI)

	challenge := func() (path, secret string) {
		t.Helper()
		r := do(t, c, "GET", u, meta)
		realm, ok := strings.CutPrefix(r.header.Get("WWW-Authenticate"), "Basic realm=")
		if r.status != 401 || !ok {
			t.Fatalf("no secret: got %d %q, want 401 with Basic realm=FILE", r.status, r.header.Get("WWW-Authenticate"))
		}
		if filepath.Dir(realm) != e.Config().ArcKeyDir || filepath.Ext(realm) != ".key" {
			t.Fatalf("realm %q: want a .key file in %s", realm, e.Config().ArcKeyDir)
		}
		b, err := os.ReadFile(realm)
		if err != nil {
			t.Fatal(err)
		}
		return realm, string(b)
	}

	path, secret := challenge()
	for _, tt := range []struct {
		name   string
		header map[string]string
		status int
		want   string
	}{
		{"no metadata header", map[string]string{"Authorization": "Basic " + secret}, 400, "Required metadata header"},
		{"wrong secret", map[string]string{"Metadata": "true", "Authorization": "Basic nope"}, 401, "Authorization required"},
		{"secret", map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}, 200, `"token_type":"Bearer"`},
		{"secret again", map[string]string{"Metadata": "true", "Authorization": "Basic " + secret}, 401, "Authorization required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, "GET", u, tt.header)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file %s still there after its retry (%v)", path, err)
	}
	_, secret = challenge()
	r := do(t, c, "GET", u+"&client_id="+e.Config().ClientID, map[string]string{"Metadata": "true", "Authorization": "Basic " + secret})
	if r.status != 400 || !strings.Contains(r.body, "system-assigned") {
		t.Errorf("user-assigned identity on Arc: got %d %s, want 400 naming the system-assigned identity", r.status, r.body)
	}
}

// TestClientCredentials: the workload-identity exchange at Entra's token
// endpoint takes the federated token file's content as the assertion.
func TestClientCredentials(t *testing.T) {
	e := newIdentityEmu(t)
	c := emuClient(t, e)
	cfg := e.Config()
	endpoint := EntraAuthority + "/" + cfg.TenantID + "/oauth2/v2.0/token"
	form := func(mod func(url.Values)) url.Values {
		v := url.Values{
			"grant_type":            {"client_credentials"},
			"client_id":             {cfg.ClientID},
			"scope":                 {proxyAppURI + "/.default"},
			"client_assertion_type": {ClientAssertionType},
			"client_assertion":      {federatedJWT},
		}
		if mod != nil {
			mod(v)
		}
		return v
	}
	post := func(t *testing.T, u string, v url.Values) reply {
		t.Helper()
		resp, err := c.PostForm(u, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return reply{resp.StatusCode, resp.Header, string(b)}
	}
	for _, tt := range []struct {
		name   string
		url    string
		form   url.Values
		status int
		want   string
	}{
		{"exchange", endpoint, form(nil), 200, `"expires_in":86400`},
		{"other tenant", EntraAuthority + "/" + newGUID() + "/oauth2/v2.0/token", form(nil), 400, "AADSTS90002"},
		{"wrong assertion", endpoint, form(func(v url.Values) { v.Set("client_assertion", federatedJWT+"x") }), 401, "AADSTS70021"},
		{"no assertion", endpoint, form(func(v url.Values) { v.Del("client_assertion") }), 400, "AADSTS7000218"},
		{"other client", endpoint, form(func(v url.Values) { v.Set("client_id", newGUID()) }), 400, "AADSTS700016"},
		{"scope without .default", endpoint, form(func(v url.Values) { v.Set("scope", proxyAppURI) }), 400, "AADSTS1002012"},
		{"unregistered audience", endpoint, form(func(v url.Values) { v.Set("scope", "api://nope/.default") }), 400, "AADSTS500011"},
		{"other grant", endpoint, form(func(v url.Values) { v.Set("grant_type", "password") }), 400, "AADSTS70003"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, tt.url, tt.form)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	r := post(t, endpoint, form(nil))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if json.Unmarshal([]byte(r.body), &tok) != nil || tok.TokenType != "Bearer" {
		t.Fatalf("token response %s", r.body)
	}
	if got, _ := claimsOf(t, tok.AccessToken); got.Aud != cfg.Apps[0].ClientID || got.IdTyp != "app" {
		t.Errorf("claims %+v: want aud %s, idtyp app", got, cfg.Apps[0].ClientID)
	}
	// kubelet rotates the file: the new content is the assertion now.
	if err := os.WriteFile(cfg.FederatedTokenFile, []byte(federatedJWT+"rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := post(t, endpoint, form(nil)); r.status != 401 {
		t.Errorf("old assertion after rotation: got %d, want 401", r.status)
	}
	if r := post(t, endpoint, form(func(v url.Values) { v.Set("client_assertion", federatedJWT+"rotated") })); r.status != 200 {
		t.Errorf("new assertion after rotation: got %d %s, want 200", r.status, r.body)
	}
}

// TestOutage: SetOutage makes one service fail and leaves the others.
func TestOutage(t *testing.T) {
	e := newIdentityEmu(t)
	c := emuClient(t, e)
	e.SetOutage(ServiceIMDS, http.StatusServiceUnavailable)
	if r := do(t, c, "GET", imdsToken+url.QueryEscape(proxyAppURI), map[string]string{"Metadata": "true"}); r.status != 503 {
		t.Errorf("IMDS during its outage: %d %s, want 503", r.status, r.body)
	}
	if r := do(t, c, "GET", himdsToken+url.QueryEscape(proxyAppURI), map[string]string{"Metadata": "true"}); r.status != 401 {
		t.Errorf("HIMDS during IMDS's outage: %d %s, want its 401 challenge", r.status, r.body)
	}
	e.SetOutage(ServiceIMDS, 0)
	token(t, c, proxyAppURI)
	var got []string
	for _, r := range e.Requests() {
		got = append(got, r.Service+"/"+http.StatusText(r.Status))
	}
	if want := "imds/Service Unavailable himds/Unauthorized imds/OK"; strings.Join(got, " ") != want {
		t.Errorf("recorded %q, want %q", strings.Join(got, " "), want)
	}
}
