package azemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// emuClient starts e on loopback listeners and returns an HTTP client that
// sends every emulated name, 169.254.169.254 and localhost:40342 (HIMDS, when
// e has an ArcKeyDir) to them, trusting only e's CA.
func emuClient(t *testing.T, e *Emulator) *http.Client {
	t.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	imdsLn, tlsLn, himdsLn := listen(), listen(), listen()
	done := make(chan error, 3)
	go func() { done <- e.ServeIMDS(imdsLn, "imds") }()
	go func() { done <- e.ServeTLS(tlsLn, "azure") }()
	servers := 2
	if e.Config().ArcKeyDir != "" {
		servers++
		go func() { done <- e.ServeHIMDS(himdsLn, "himds") }()
	} else {
		himdsLn.Close()
	}
	t.Cleanup(func() {
		e.Close()
		for range servers {
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
		}
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.CACertPEM()) {
		t.Fatal("CACertPEM holds no certificate")
	}
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			switch {
			case host == IMDSAddr:
				return d.DialContext(ctx, network, imdsLn.Addr().String())
			case port == strconv.Itoa(HIMDSPort) && (host == "localhost" || host == "127.0.0.1"):
				return d.DialContext(ctx, network, himdsLn.Addr().String())
			}
			return d.DialContext(ctx, network, tlsLn.Addr().String())
		},
	}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, rawURL string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func newEmu(t *testing.T) *Emulator {
	t.Helper()
	e, err := New(Config{Vault: "kv-unit", Secrets: map[string]string{"db-password": "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const imdsToken = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource="

// token takes a token for resource from IMDS the way the CLI does.
func token(t *testing.T, c *http.Client, resource string) string {
	t.Helper()
	r := do(t, c, "GET", imdsToken+url.QueryEscape(resource), map[string]string{"Metadata": "true"})
	if r.status != 200 {
		t.Fatalf("IMDS token for %s: %d %s", resource, r.status, r.body)
	}
	var tok map[string]string
	if err := json.Unmarshal([]byte(r.body), &tok); err != nil {
		t.Fatal(err)
	}
	return tok["access_token"]
}

func TestIMDS(t *testing.T) {
	e := newEmu(t)
	c := emuClient(t, e)
	cfg := e.Config()
	for _, tt := range []struct {
		name   string
		query  string
		header map[string]string
		status int
		want   string
	}{
		{"no metadata header", url.QueryEscape(ARMResource), nil, 400, "Required metadata header not specified"},
		{"metadata false", url.QueryEscape(ARMResource), map[string]string{"Metadata": "false"}, 400, "Required metadata header"},
		{"through a proxy", url.QueryEscape(ARMResource), map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.4"}, 400, "X-Forwarded-For"},
		{"no resource", "", map[string]string{"Metadata": "true"}, 400, "Required audience parameter"},
		{"unknown identity", url.QueryEscape(ARMResource) + "&client_id=" + newGUID(), map[string]string{"Metadata": "true"}, 400, "Identity not found"},
		{"system identity", url.QueryEscape(ARMResource), map[string]string{"Metadata": "true"}, 200, `"token_type":"Bearer"`},
		{"by client id", url.QueryEscape(ARMResource) + "&client_id=" + cfg.ClientID, map[string]string{"Metadata": "true"}, 200, `"resource":"https://management.core.windows.net/"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, "GET", imdsToken+tt.query, tt.header)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}

	// The token's claims: what the CLI decodes (tid) and what services check.
	tok := token(t, c, VaultResource)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	var header map[string]string
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &header) != nil || header["alg"] != "RS256" {
		t.Fatalf("token header %q: want alg RS256", parts[0])
	}
	var claims Claims
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &claims) != nil {
		t.Fatalf("token payload %q does not decode", parts[1])
	}
	if claims.TID != cfg.TenantID || claims.OID != cfg.PrincipalID || claims.Aud != VaultResource {
		t.Errorf("claims %+v: want tid %s, oid %s, aud %s", claims, cfg.TenantID, cfg.PrincipalID, VaultResource)
	}
	if exp := time.Unix(claims.Exp, 0); time.Until(exp) < 23*time.Hour {
		t.Errorf("exp %v: want about 24h ahead", exp)
	}

	var n int
	for _, r := range e.Requests() {
		if r.Service == ServiceIMDS {
			n++
		}
	}
	if n != 8 {
		t.Errorf("recorded %d IMDS requests, want 8", n)
	}
}

func TestARM(t *testing.T) {
	e := newEmu(t)
	c := emuClient(t, e)
	cfg := e.Config()
	armTok := token(t, c, ARMResource)
	tampered := armTok[:len(armTok)-4] + "AAAA"
	if tampered == armTok {
		tampered = armTok[:len(armTok)-4] + "BBBB"
	}
	const subs = "https://management.azure.com/subscriptions?api-version=2019-11-01"
	for _, tt := range []struct {
		name   string
		url    string
		auth   string
		status int
		want   string
	}{
		{"no token", subs, "", 401, "AuthenticationFailed"},
		{"tampered token", subs, "Bearer " + tampered, 401, "InvalidAuthenticationToken"},
		{"vault audience", subs, "Bearer " + token(t, c, VaultResource), 401, "InvalidAuthenticationTokenAudience"},
		{"no api-version", "https://management.azure.com/subscriptions", "Bearer " + armTok, 400, "MissingApiVersionParameter"},
		{"list", subs, "Bearer " + armTok, 200, `"subscriptionId":"` + cfg.SubscriptionID + `"`},
		{"one", "https://management.azure.com/subscriptions/" + cfg.SubscriptionID + "?api-version=2019-11-01", "Bearer " + armTok, 200, `"displayName":"azemu subscription"`},
		{"other subscription", "https://management.azure.com/subscriptions/" + newGUID() + "?api-version=2019-11-01", "Bearer " + armTok, 404, "SubscriptionNotFound"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.auth != "" {
				h["Authorization"] = tt.auth
			}
			r := do(t, c, "GET", tt.url, h)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
			if r.status == 401 && tt.auth == "" && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q: want a Bearer challenge", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestKeyVault(t *testing.T) {
	e := newEmu(t)
	c := emuClient(t, e)
	cfg := e.Config()
	kvTok := token(t, c, VaultResource)
	secret := e.VaultURL() + "secrets/db-password?api-version=7.3"

	// The challenge, exactly as Key Vault sends it.
	r := do(t, c, "GET", secret, nil)
	wantChallenge := `Bearer authorization="https://login.microsoftonline.com/` + cfg.TenantID + `", resource="https://vault.azure.net"`
	if r.status != 401 || r.header.Get("WWW-Authenticate") != wantChallenge || !strings.Contains(r.body, "AKV10000") {
		t.Fatalf("no token: got %d %q %s, want 401 with WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"), r.body, wantChallenge)
	}

	for _, tt := range []struct {
		name   string
		url    string
		tok    string
		status int
		want   string
	}{
		{"ARM audience", secret, token(t, c, ARMResource), 401, "AKV10022"},
		{"secret", secret, kvTok, 200, `"value":"s3cret"`},
		{"secret by version", e.VaultURL() + "secrets/db-password/" + secretVersion("db-password") + "?api-version=7.3", kvTok, 200, `"value":"s3cret"`},
		{"other version", e.VaultURL() + "secrets/db-password/0123?api-version=7.3", kvTok, 404, "SecretNotFound"},
		{"missing secret", e.VaultURL() + "secrets/nope?api-version=7.3", kvTok, 404, "SecretNotFound"},
		{"no api-version", e.VaultURL() + "secrets/db-password", kvTok, 400, "BadParameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, "GET", tt.url, map[string]string{"Authorization": "Bearer " + tt.tok})
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	var kv []string
	for _, req := range e.Requests() {
		if req.Service == ServiceKeyVault {
			kv = append(kv, strconv.Itoa(req.Status)+"/"+strconv.FormatBool(req.Bearer))
		}
	}
	if got, want := strings.Join(kv, " "), "401/false 401/true 200/true 200/true 404/true 404/true 400/true"; got != want {
		t.Errorf("recorded Key Vault requests %q, want %q", got, want)
	}
}

func TestSideTraffic(t *testing.T) {
	e := newEmu(t)
	c := emuClient(t, e)
	if r := do(t, c, "HEAD", "https://azure.microsoft.com/", nil); r.status != 200 {
		t.Errorf("connectivity probe: %d", r.status)
	}
	r := do(t, c, "GET", "https://raw.githubusercontent.com/Azure/azure-cli/main/src/azure-cli-core/setup.py", nil)
	if r.status != 200 || !strings.Contains(r.body, `VERSION = "2.45.0"`) {
		t.Errorf("version check: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("POST", "https://dc.services.visualstudio.com/v2/track", strings.NewReader(`[{},{}]`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"itemsAccepted":2`) {
		t.Errorf("telemetry: %d %s", resp.StatusCode, b)
	}
	var services []string
	for _, r := range e.Requests() {
		services = append(services, r.Service+"/"+r.Listener)
	}
	if got, want := strings.Join(services, " "), "probe/azure versioncheck/azure telemetry/azure"; got != want {
		t.Errorf("recorded %q, want %q", got, want)
	}
}
