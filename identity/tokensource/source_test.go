package tokensource

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/azemu"
)

const federatedJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3b3JrbG9hZCJ9.c2ln"

// emu is the local Azure emulator on loopback listeners, with a Config
// whose Dial sends IMDS's, HIMDS's and Entra's real addresses to them.
type emu struct {
	*azemu.Emulator
	cfg     Config // Resource, ArcKeyDir, RootCAs, Dial
	env     map[string]string
	fedFile string
	himds   string // HIMDS's listener, host:port
}

func newEmu(t *testing.T) *emu {
	t.Helper()
	dir := t.TempDir()
	keyDir, fedFile, err := azemu.MachineFiles(dir, federatedJWT)
	if err != nil {
		t.Fatal(err)
	}
	e, err := azemu.New(azemu.Config{
		Apps:               []azemu.App{{IdentifierURI: DefaultResource}},
		ArcKeyDir:          keyDir,
		FederatedTokenFile: fedFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	imdsLn, himdsLn, tlsLn := listen(), listen(), listen()
	var wg sync.WaitGroup
	for _, serve := range []func() error{
		func() error { return e.ServeIMDS(imdsLn, "imds") },
		func() error { return e.ServeHIMDS(himdsLn, "himds") },
		func() error { return e.ServeTLS(tlsLn, "azure") },
	} {
		wg.Go(func() {
			if err := serve(); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("emulator: %v", err)
			}
		})
	}
	t.Cleanup(func() { e.Close(); wg.Wait() })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.CACertPEM())
	var d net.Dialer
	routes := map[string]string{
		azemu.IMDSAddr + ":80":   imdsLn.Addr().String(),
		azemu.EntraHost + ":443": tlsLn.Addr().String(),
		himdsLn.Addr().String():  himdsLn.Addr().String(),
		"127.0.0.1:40342":        himdsLn.Addr().String(),
		imdsLn.Addr().String():   imdsLn.Addr().String(),
		tlsLn.Addr().String():    tlsLn.Addr().String(),
	}
	cfg := Config{
		Resource:  DefaultResource,
		ArcKeyDir: keyDir,
		ArcAgent:  filepath.Join(dir, "no-himds"),
		RootCAs:   roots,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			to, ok := routes[addr]
			if !ok {
				return nil, fmt.Errorf("test: %s is not reachable", addr)
			}
			return d.DialContext(ctx, network, to)
		},
	}
	tenant := e.Config().TenantID
	return &emu{Emulator: e, cfg: cfg, fedFile: fedFile, himds: himdsLn.Addr().String(), env: map[string]string{
		"AZURE_FEDERATED_TOKEN_FILE": fedFile,
		"AZURE_CLIENT_ID":            e.Config().ClientID,
		"AZURE_TENANT_ID":            tenant,
		"AZURE_AUTHORITY_HOST":       "https://login.microsoftonline.com/",
	}}
}

// arcEnv is the environment of an Arc-enabled server whose HIMDS is the
// emulator's.
func (e *emu) arcEnv() map[string]string {
	return map[string]string{
		"IDENTITY_ENDPOINT": "http://" + e.himds + "/metadata/identity/oauth2/token",
		"IMDS_ENDPOINT":     "http://" + e.himds,
	}
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// claims checks that tok is the emulator's token for the proxy's app.
func (e *emu) checkToken(t *testing.T, tok Token) {
	t.Helper()
	c, err := e.Verify(tok.Value, time.Now())
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if app := e.Config().Apps[0]; c.Aud != app.ClientID || c.IdTyp != "app" || c.OID != e.Config().PrincipalID {
		t.Errorf("claims %+v: want aud %s, idtyp app, oid %s", c, app.ClientID, e.Config().PrincipalID)
	}
	if d := time.Until(tok.Expires); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("expires in %v, want the emulator's 24h", d)
	}
}

func TestFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "himds")
	if err := os.WriteFile(agent, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	wi := map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "/f", "AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	arcEnv := map[string]string{"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "http://localhost:40342"}
	for _, tt := range []struct {
		name     string
		env      map[string]string
		clientID string
		agent    string
		want     string // the source's Name, or an error's text
	}{
		{"nothing: IMDS", nil, "", "", "IMDS"},
		{"user-assigned on IMDS", nil, "c", "", "IMDS"},
		{"workload identity", wi, "", "", "workload identity"},
		{"workload identity wins over Arc", with(wi, "IDENTITY_ENDPOINT", "http://localhost:40342/x", "IMDS_ENDPOINT", "http://localhost:40342"), "", "", "workload identity"},
		{"workload identity without client ID", with(wi, "AZURE_CLIENT_ID", ""), "", "", "AZURE_CLIENT_ID is not"},
		{"client ID from the flag", with(wi, "AZURE_CLIENT_ID", ""), "c", "", "workload identity"},
		{"workload identity without tenant", with(wi, "AZURE_TENANT_ID", ""), "", "", "AZURE_TENANT_ID is not"},
		{"tenant with a slash", with(wi, "AZURE_TENANT_ID", "t/../x"), "", "", "not a tenant ID"},
		{"http authority", with(wi, "AZURE_AUTHORITY_HOST", "http://login.example/"), "", "", "want https://"},
		{"http authority on loopback", with(wi, "AZURE_AUTHORITY_HOST", "http://127.0.0.1:8080/"), "", "", "workload identity"},
		{"Arc", arcEnv, "", "", "Azure Arc HIMDS"},
		{"Arc with a client ID", arcEnv, "c", "", "only the system-assigned identity"},
		{"Arc endpoint elsewhere", with(arcEnv, "IDENTITY_ENDPOINT", "http://10.0.0.4:40342/metadata/identity/oauth2/token"), "", "", "not on this machine"},
		{"Arc agent installed", nil, "", agent, "Azure Arc HIMDS"},
		{"IDENTITY_ENDPOINT alone: IMDS", map[string]string{"IDENTITY_ENDPOINT": "http://localhost:40342/x"}, "", "", "IMDS"},
		{"App Service", map[string]string{"IDENTITY_ENDPOINT": "http://localhost:4141/MSI/token", "IDENTITY_HEADER": "h"}, "", "", "App Service"},
		{"Cloud Shell", map[string]string{"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}, "", "", "Cloud Shell"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Resource: DefaultResource, ClientID: tt.clientID, Getenv: getenv(tt.env), ArcAgent: tt.agent}
			if cfg.ArcAgent == "" {
				cfg.ArcAgent = filepath.Join(dir, "absent")
			}
			src, err := FromEnvironment(cfg)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = src.Name()
			}
			isName := tt.want == "IMDS" || tt.want == "Azure Arc HIMDS" || tt.want == "workload identity"
			if (err == nil) != isName || !strings.Contains(got, tt.want) {
				t.Fatalf("got %q (error: %v), want %q", got, err != nil, tt.want)
			}
		})
	}
	if _, err := FromEnvironment(Config{Getenv: getenv(nil)}); err == nil {
		t.Error("no resource: want an error")
	}
}

func TestIMDS(t *testing.T) {
	e := newEmu(t)
	ctx := context.Background()
	tok := func(t *testing.T, cfg Config) (Token, error) {
		t.Helper()
		src, err := FromEnvironment(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if src.Name() != "IMDS" {
			t.Fatalf("source %s, want IMDS", src.Name())
		}
		return src.Token(ctx)
	}
	cfg := e.cfg
	cfg.Getenv = getenv(nil)
	got, err := tok(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.checkToken(t, got)

	for _, tt := range []struct {
		name    string
		mod     func(*Config)
		outage  int
		want    string
		hint    string
		tempErr bool
	}{
		{"user-assigned", func(c *Config) { c.ClientID = e.Config().ClientID }, 0, "", "", false},
		{"other identity", func(c *Config) { c.ClientID = "11111111-1111-1111-1111-111111111111" }, 0, "400 invalid_request: Identity not found", "-client-id must be", false},
		{"unregistered audience", func(c *Config) { c.Resource = "api://nope" }, 0, "AADSTS500011", "create the proxy's app registration", false},
		{"scope form", func(c *Config) { c.Resource = DefaultResource + "/.default" }, 0, "", "", false},
		{"IMDS down", nil, 503, "503 temporarily_unavailable", "", true},
		{"not an Azure VM", func(c *Config) { c.IMDSEndpoint = "http://169.254.169.254:81/metadata/identity/oauth2/token" }, 0, "no answer", "IMDS answers only on an Azure VM", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.mod != nil {
				tt.mod(&c)
			}
			e.SetOutage(azemu.ServiceIMDS, tt.outage)
			defer e.SetOutage(azemu.ServiceIMDS, 0)
			got, err := tok(t, c)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				e.checkToken(t, got)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("got %v, want an error with %q and %q", err, tt.want, tt.hint)
			}
			if Temporary(err) != tt.tempErr {
				t.Errorf("Temporary = %v, want %v", Temporary(err), tt.tempErr)
			}
			if !strings.HasPrefix(err.Error(), "IMDS (http://169.254.169.254") {
				t.Errorf("error %q does not start with the source and endpoint", err)
			}
		})
	}
}

func TestArc(t *testing.T) {
	e := newEmu(t)
	ctx := context.Background()
	cfg := e.cfg
	cfg.Getenv = getenv(e.arcEnv())
	src, err := FromEnvironment(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != "Azure Arc HIMDS" {
		t.Fatalf("source %s, want Azure Arc HIMDS", src.Name())
	}
	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.checkToken(t, tok)
	var got []string
	for _, r := range e.Requests() {
		got = append(got, fmt.Sprintf("%s/%d", r.Service, r.Status))
	}
	if want := "himds/401 himds/200"; strings.Join(got, " ") != want {
		t.Errorf("requests %q, want %q: the challenge, then the token", strings.Join(got, " "), want)
	}

	// The agent's own default endpoint when only the binary is there.
	agent := filepath.Join(t.TempDir(), "himds")
	if err := os.WriteFile(agent, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg2 := e.cfg
	cfg2.Getenv, cfg2.ArcAgent = getenv(nil), agent
	src, err = FromEnvironment(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := src.Token(ctx); err != nil {
		t.Fatalf("Arc's default endpoint 127.0.0.1:40342: %v", err)
	} else {
		e.checkToken(t, tok)
	}

	// A key directory the client does not trust: the realm is outside it.
	cfg3 := cfg
	cfg3.ArcKeyDir = "/var/opt/azcmagent/tokens"
	src, _ = FromEnvironment(cfg3)
	_, err = src.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "is not in /var/opt/azcmagent/tokens") {
		t.Errorf("realm outside the key directory: got %v", err)
	}

	e.SetOutage(azemu.ServiceHIMDS, 500)
	_, err = FromEnvironmentToken(t, cfg)
	if err == nil || !Temporary(err) || !strings.Contains(err.Error(), "500") {
		t.Errorf("HIMDS down: got %v, want a temporary error with the status", err)
	}
}

// FromEnvironmentToken is one token from FromEnvironment(cfg).
func FromEnvironmentToken(t *testing.T, cfg Config) (Token, error) {
	t.Helper()
	src, err := FromEnvironment(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src.Token(context.Background())
}

// TestArcChallenge: what a process answering on IDENTITY_ENDPOINT in
// HIMDS's stead can make the client read. Only a regular *.key file of at
// most 4 KiB directly in the key directory is read and sent.
func TestArcChallenge(t *testing.T) {
	keyDir := t.TempDir()
	other := t.TempDir()
	write := func(dir, name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write(keyDir, "good.key", "s3cret")
	big := write(keyDir, "big.key", strings.Repeat("a", MaxArcKeyBytes+1))
	exactly := write(keyDir, "exact.key", strings.Repeat("b", MaxArcKeyBytes))
	secretElsewhere := write(other, "x.key", "not-for-you")
	notKey := write(keyDir, "secret.txt", "not-for-you")
	link := filepath.Join(keyDir, "link.key")
	if err := os.Symlink(secretElsewhere, link); err != nil {
		t.Fatal(err)
	}
	newline := write(keyDir, "nl.key", "a\r\nX-Injected: 1")

	for _, tt := range []struct {
		name      string
		challenge string
		sent      string // the Authorization the fake HIMDS must get, "" for none
		want      string
	}{
		{"good", "Basic realm=" + good, "Basic s3cret", ""},
		{"quoted realm", `Basic realm="` + good + `"`, "Basic s3cret", ""},
		{"4 KiB", "Basic realm=" + exactly, "Basic " + strings.Repeat("b", MaxArcKeyBytes), ""},
		{"over 4 KiB", "Basic realm=" + big, "", "over 4096"},
		{"other directory", "Basic realm=" + secretElsewhere, "", "is not in " + keyDir},
		{"dot-dot", "Basic realm=" + keyDir + "/../" + filepath.Base(other) + "/x.key", "", "not a clean absolute path"},
		{"relative", "Basic realm=good.key", "", "not a clean absolute path"},
		{"not .key", "Basic realm=" + notKey, "", "not a .key file"},
		{"symlink", "Basic realm=" + link, "", "not a regular file"},
		{"missing", "Basic realm=" + filepath.Join(keyDir, "gone.key"), "", "no such file"},
		{"control characters", "Basic realm=" + newline, "", "control character"},
		{"bearer", "Bearer realm=" + good, "", "is not `Basic realm=FILE`"},
		{"no challenge", "", "", "is not `Basic realm=FILE`"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var auths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("api-version") != arcAPIVersion || r.URL.Query().Get("resource") != DefaultResource {
					http.Error(w, "bad request", 400)
					return
				}
				a := r.Header.Get("Authorization")
				mu.Lock()
				auths = append(auths, a)
				mu.Unlock()
				if a == "" {
					if tt.challenge != "" {
						w.Header().Set("WWW-Authenticate", tt.challenge)
					}
					w.WriteHeader(401)
					return
				}
				io.WriteString(w, `{"access_token":"tok.en.x","expires_in":"3600","token_type":"Bearer"}`)
			}))
			defer srv.Close()
			src, err := FromEnvironment(Config{Resource: DefaultResource, ArcKeyDir: keyDir,
				Getenv: getenv(map[string]string{"IDENTITY_ENDPOINT": srv.URL + "/metadata/identity/oauth2/token", "IMDS_ENDPOINT": srv.URL})})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := src.Token(context.Background())
			mu.Lock()
			defer mu.Unlock()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want an error with %q", err, tt.want)
				}
				if len(auths) != 1 {
					t.Errorf("sent %d requests, want only the first: nothing read may be sent", len(auths))
				}
				if strings.Contains(err.Error(), "not-for-you") {
					t.Errorf("error %q holds the file's content", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Value != "tok.en.x" || len(auths) != 2 || auths[1] != tt.sent {
				t.Errorf("token %q, Authorization sent %q; want the token after sending %q", tok.Value, auths, tt.sent)
			}
		})
	}
}

func TestWorkloadIdentity(t *testing.T) {
	e := newEmu(t)
	ctx := context.Background()
	cfg := e.cfg
	cfg.Getenv = getenv(e.env)
	src, err := FromEnvironment(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.Verify(tok.Value, time.Now()); err != nil || c.Aud != e.Config().Apps[0].ClientID || c.Iss != e.IssuerV2() {
		t.Fatalf("claims %+v (%v): want aud %s and the v2 issuer", c, err, e.Config().Apps[0].ClientID)
	}

	// kubelet rotates the file; the emulator now accepts only the new one.
	if err := os.WriteFile(e.fedFile, []byte(federatedJWT+"2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(ctx); err != nil {
		t.Errorf("after rotation (with a trailing newline): %v", err)
	}

	for _, tt := range []struct {
		name string
		env  map[string]string
		file string // the client's token file's content, "" for the emulator's own
		want string
		hint string
		temp bool
	}{
		{"no federated credential", nil, "eyJ.other.x", "401 invalid_client: AADSTS70021", "subject (system:serviceaccount:NAMESPACE:NAME)", false},
		{"empty file", nil, "\n", "the file is empty", "azure.workload.identity/use", true},
		{"missing file", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": filepath.Join(t.TempDir(), "absent")}, "", "no such file", "azure.workload.identity/use", false},
		{"other client", map[string]string{"AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111"}, "", "AADSTS700016", "names no identity", false},
		{"other tenant", map[string]string{"AZURE_TENANT_ID": "11111111-1111-1111-1111-111111111111"}, "", "AADSTS90002", "names no tenant", false},
		{"authority unreachable", map[string]string{"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com:444/"}, "", "no answer", "-entra-via-proxy", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range e.env {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.file != "" {
				f := filepath.Join(t.TempDir(), "azure-identity-token")
				if err := os.WriteFile(f, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				env["AZURE_FEDERATED_TOKEN_FILE"] = f
			}
			c := cfg
			c.Getenv = getenv(env)
			_, err := FromEnvironmentToken(t, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("got %v, want an error with %q and %q", err, tt.want, tt.hint)
			}
			if Temporary(err) != tt.temp {
				t.Errorf("Temporary = %v, want %v", Temporary(err), tt.temp)
			}
		})
	}
}

// TestUntrustedAuthority: a certificate the roots do not trust is a
// permanent failure that says so.
func TestUntrustedAuthority(t *testing.T) {
	e := newEmu(t)
	cfg := e.cfg
	cfg.Getenv = getenv(e.env)
	cfg.RootCAs = x509.NewCertPool() // trusts nothing
	_, err := FromEnvironmentToken(t, cfg)
	if err == nil || Temporary(err) || !strings.Contains(err.Error(), "certificate is not trusted") {
		t.Fatalf("got %v (temporary %v), want a permanent error about the certificate", err, Temporary(err))
	}
}

// TestWorkloadIdentityViaProxy: with EntraProxy, the exchange goes through
// that proxy, as a CONNECT without credentials.
func TestWorkloadIdentityViaProxy(t *testing.T) {
	e := newEmu(t)
	var mu sync.Mutex
	var connects []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", 405)
			return
		}
		mu.Lock()
		connects = append(connects, r.Host+" auth="+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		up, err := e.cfg.Dial(r.Context(), "tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer up.Close()
		w.WriteHeader(200)
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		go func() { io.Copy(up, buf); up.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, up)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	pu.User = url.UserPassword("azegress", "must-not-be-sent")
	cfg := e.cfg
	cfg.Getenv = getenv(e.env)
	cfg.EntraProxy = pu
	cfg.Dial = nil // only the proxy is dialed
	tok, err := FromEnvironmentToken(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Verify(tok.Value, time.Now()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "login.microsoftonline.com:443 auth="; len(connects) != 1 || connects[0] != want {
		t.Errorf("the proxy saw %q, want one %q", connects, want)
	}
}

// TestWorkloadIdentityProxyRefuses: the proxy's refusal of the CONNECT
// to Entra is its decision, named with its reason and, unless it may clear
// by itself (5xx), not worth asking again.
func TestWorkloadIdentityProxyRefuses(t *testing.T) {
	e := newEmu(t)
	for _, tt := range []struct {
		status int
		reason string
		temp   bool
		want   string
	}{
		{407, "no_rule", false, `the proxy refused the CONNECT with 407 Proxy Authentication Required (no_rule); the egress proxy must let this machine reach the Entra authority without credentials: a client block for its address with endpoints = ["azure.entra"]`},
		{403, "no_rule", false, `403 Forbidden (no_rule); the egress proxy must let this machine reach the Entra authority without credentials`},
		{502, "dial_failed", true, "the proxy refused the CONNECT with 502 Bad Gateway (dial_failed); the egress proxy's deny record for this CONNECT says why"},
		{503, "", true, "the proxy refused the CONNECT with 503 Service Unavailable; the egress proxy's deny record"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.reason != "" {
					w.Header().Set("X-Azegress-Reason", tt.reason)
				}
				http.Error(w, "azegress denied CONNECT "+r.Host, tt.status)
			}))
			defer proxy.Close()
			cfg := e.cfg
			cfg.Getenv = getenv(e.env)
			cfg.EntraProxy, _ = url.Parse(proxy.URL)
			cfg.Dial = nil
			_, err := FromEnvironmentToken(t, cfg)
			if err == nil || Temporary(err) != tt.temp || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v (temporary %v), want %q (temporary %v)", err, Temporary(err), tt.want, tt.temp)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	start := time.Now()
	for _, tt := range []struct {
		name   string
		status int
		body   string
		life   time.Duration // of the token, or 0 for an error
		want   string
	}{
		{"IMDS strings", 200, `{"access_token":"a.b.c","expires_in":"3599","expires_on":"1"}`, 3599 * time.Second, ""},
		{"Entra numbers", 200, `{"access_token":"a.b.c","expires_in":3599}`, 3599 * time.Second, ""},
		{"expires_on only", 200, fmt.Sprintf(`{"access_token":"a.b.c","expires_on":"%d"}`, start.Add(time.Hour).Unix()), time.Hour, ""},
		{"no expiry", 200, `{"access_token":"a.b.c"}`, 0, "neither expires_in nor expires_on"},
		{"expired", 200, fmt.Sprintf(`{"access_token":"a.b.c","expires_on":%d}`, start.Add(-time.Hour).Unix()), 0, "already expired"},
		{"no token", 200, `{"expires_in":"3599"}`, 0, "no access_token"},
		{"space in token", 200, `{"access_token":"a b","expires_in":"3599"}`, 0, "not printable ASCII"},
		{"huge token", 200, `{"access_token":"` + strings.Repeat("a", MaxTokenBytes+1) + `","expires_in":"3599"}`, 0, "over the proxy's"},
		{"not JSON", 200, `<html>`, 0, "not JSON"},
		{"error", 400, `{"error":"invalid_request","error_description":"line one\r\nTrace ID: x"}`, 0, "400 invalid_request: line one Trace ID: x"},
		{"error without body", 502, ``, 0, "502 Bad Gateway"},
		{"throttled", 429, `{}`, 0, "throttling"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, e := parseToken("X", "http://x/", start, answer{status: tt.status, body: []byte(tt.body)})
			if tt.want != "" {
				if e == nil || !strings.Contains(e.Error(), tt.want) {
					t.Fatalf("got %v, want an error with %q", e, tt.want)
				}
				if strings.Contains(e.Error(), "a.b.c") {
					t.Errorf("error %q holds the token", e)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if got := tok.Expires.Sub(start); got < tt.life-time.Second || got > tt.life {
				t.Errorf("lifetime %v, want %v", got, tt.life)
			}
		})
	}
}

// TestNoProxy: token services are dialed directly whatever the proxy
// variables say (Go's ProxyFromEnvironment skips loopback, so a loopback
// test server could not tell).
func TestNoProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://192.0.2.1:3128")
	t.Setenv("HTTPS_PROXY", "http://192.0.2.1:3128")
	for _, c := range []*http.Client{newClient(Config{}, nil)} {
		if p := c.Transport.(*http.Transport).Proxy; p != nil {
			t.Error("the transport has a Proxy function")
		}
	}
}
