// Package azemu emulates the Azure endpoints a virtual machine with a managed
// identity talks to, faithfully enough for the real, unmodified Azure CLI and
// the Azure SDK for Python:
//
//   - IMDS's token endpoint (plain HTTP, served by ServeIMDS on
//     169.254.169.254:80): GET /metadata/identity/oauth2/token with the
//     `Metadata: true` header; like the real IMDS it refuses a request without
//     that header, or with an X-Forwarded-For header (one that came through a
//     proxy), with 400. Tokens are RS256 JWTs with the claims clients read
//     (tid, oid, aud, exp, ...), signed with a key made in New.
//   - Azure Arc's HIMDS token endpoint (plain HTTP, served by ServeHIMDS on
//     localhost:40342): the same request, answered first with 401 and
//     `WWW-Authenticate: Basic realm=<key file>`, a file it has just written
//     under Config.ArcKeyDir; a retry with `Authorization: Basic <the file's
//     content>` gets the token. Each key file serves one retry.
//   - Entra ID (login.microsoftonline.com): the client-credentials grant of
//     AKS workload identity at /TENANT/oauth2/v2.0/token, whose
//     client_assertion must be the content of Config.FederatedTokenFile; the
//     tenant's OpenID configuration documents (v2 and v1) and its key set,
//     so that a validator can check the tokens issued here.
//   - Azure Resource Manager (management.azure.com): GET /subscriptions and
//     GET /subscriptions/ID, which need `Authorization: Bearer` with a token
//     this emulator issued for the ARM audience.
//   - A Key Vault data plane (VAULT.vault.azure.net): GET /secrets/NAME[/VERSION],
//     answering a request without a token with Key Vault's 401 challenge
//     (`WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/TENANT",
//     resource="https://vault.azure.net"`), which the SDK's challenge policy
//     follows.
//   - The CLI's side traffic, so that a learning proxy sees it succeed: the
//     connectivity probe (HEAD https://azure.microsoft.com/), the version
//     check (GET https://raw.githubusercontent.com/Azure/azure-cli/main/src/PKG/setup.py)
//     and telemetry (POST https://dc.services.visualstudio.com/v2/track).
//
// The HTTPS endpoints are served by ServeTLS with a certificate for all of
// Hosts, issued by a CA made in New (CACertPEM); clients trust it through
// REQUESTS_CA_BUNDLE and SSL_CERT_FILE. Which endpoint answers is chosen by
// the request's Host, so one listener can serve them all.
//
// Tokens are issued for Microsoft resources (any https:// resource) and for
// the tenant's own app registrations (Config.Apps, such as api://azegress);
// any other resource is refused with AADSTS500011, as Entra does.
// SetOutage makes a service answer with an error, to stand in for a token
// service that is down.
//
// Only the Azure public cloud (AzureCloud) is emulated.
package azemu

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Host names of the emulated endpoints, in the Azure public cloud.
const (
	IMDSAddr       = "169.254.169.254"
	ARMHost        = "management.azure.com"
	VaultSuffix    = ".vault.azure.net"
	ProbeHost      = "azure.microsoft.com"
	VersionHost    = "raw.githubusercontent.com"
	TelemetryHost  = "dc.services.visualstudio.com"
	EntraAuthority = "https://login.microsoftonline.com"
	EntraHost      = "login.microsoftonline.com"
	// HIMDSPort is the port of Arc's HIMDS on localhost.
	HIMDSPort = 40342
)

// Audiences (token resources) the emulated services accept.
const (
	ARMResource   = "https://management.core.windows.net/"
	VaultResource = "https://vault.azure.net"
)

// Services a Request is attributed to.
const (
	ServiceIMDS      = "imds"
	ServiceHIMDS     = "himds"
	ServiceEntra     = "entra"
	ServiceARM       = "arm"
	ServiceKeyVault  = "keyvault"
	ServiceProbe     = "probe"
	ServiceVersion   = "versioncheck"
	ServiceTelemetry = "telemetry"
	ServiceUnknown   = "unknown"
)

// Config describes the emulated tenant, identity, subscription and vault.
type Config struct {
	// TenantID, if empty, is a random GUID.
	TenantID string
	// SubscriptionID, if empty, is a random GUID.
	SubscriptionID string
	// SubscriptionName, if empty, is "azemu subscription".
	SubscriptionName string
	// PrincipalID is the managed identity's object ID (the token's oid);
	// if empty, a random GUID.
	PrincipalID string
	// ClientID is the managed identity's client (application) ID; if
	// empty, a random GUID.
	ClientID string
	// Vault is the Key Vault's name, the first label of its host; if empty,
	// "kv-azemu".
	Vault string
	// Secrets are the vault's secrets by name.
	Secrets map[string]string
	// CLIVersion is the version the version check reports for
	// azure-cli-core; if empty, "2.45.0" (Debian bookworm's azure-cli).
	CLIVersion string
	// TokenLifetime is how long issued tokens are valid; zero means 24h,
	// like IMDS.
	TokenLifetime time.Duration
	// Apps are the tenant's app registrations that tokens may be asked
	// for, such as the proxy's own api://azegress. A ClientID left empty
	// is filled with a random GUID.
	Apps []App
	// ArcKeyDir is where HIMDS writes the key files of its challenges.
	// ServeHIMDS needs it.
	ArcKeyDir string
	// ArcRealmDir is the directory the challenge's realm names, where the
	// client sees ArcKeyDir; if empty, ArcKeyDir. They differ when the
	// client runs in a mount namespace with ArcKeyDir mounted on Arc's
	// real /var/opt/azcmagent/tokens, the only place clients read from.
	ArcRealmDir string
	// FederatedTokenFile is the workload's projected service-account
	// token: the client-credentials grant succeeds with a client_assertion
	// equal to its content (white space around it aside) when the request
	// arrives. If empty, every assertion is refused.
	FederatedTokenFile string
	// Logf, if non-nil, receives the HTTP servers' own errors (TLS
	// handshake failures and the like); nil discards them.
	Logf func(format string, args ...any)
}

// App is an app registration of the tenant: a custom token audience.
type App struct {
	// IdentifierURI is its App ID URI, such as "api://azegress".
	IdentifierURI string
	// ClientID is its client (application) ID, the aud of its v2 tokens.
	ClientID string
	// TokenVersion is its accessTokenAcceptedVersion, 1 or 2; zero means 2.
	TokenVersion int
}

// Request is one request the emulator answered. Tokens and secret values are
// never recorded.
type Request struct {
	// Service is the emulated service that answered: one of the Service
	// constants.
	Service string
	// Listener names the listener the request arrived on, as given to
	// ServeIMDS or ServeTLS.
	Listener string
	Method   string
	Host     string
	Path     string
	// Resource is a token request's resource: IMDS's and HIMDS's resource
	// parameter, or the resource of Entra's scope.
	Resource string
	// Bearer reports whether the request carried an Authorization: Bearer
	// header.
	Bearer bool
	Status int
	Time   time.Time
}

// Emulator serves the emulated endpoints. Create it with New.
type Emulator struct {
	cfg    Config
	key    *rsa.PrivateKey
	kid    string
	caPEM  []byte
	tlsCfg *tls.Config

	mu       sync.Mutex
	reqs     []Request
	servers  []*http.Server
	closed   bool
	outages  map[string]int    // service -> status it answers with
	arcKeys  map[string]string // secret -> its key file, one retry each
	arcOrder []string          // secrets, oldest first, to bound arcKeys
}

// New returns an Emulator for cfg, with a fresh token-signing key, CA and
// server certificate.
func New(cfg Config) (*Emulator, error) {
	for _, f := range []*string{&cfg.TenantID, &cfg.SubscriptionID, &cfg.PrincipalID, &cfg.ClientID} {
		if *f == "" {
			*f = newGUID()
		}
	}
	if cfg.SubscriptionName == "" {
		cfg.SubscriptionName = "azemu subscription"
	}
	if cfg.Vault == "" {
		cfg.Vault = "kv-azemu"
	}
	if cfg.CLIVersion == "" {
		cfg.CLIVersion = "2.45.0"
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = 24 * time.Hour
	}
	cfg.Apps = append([]App(nil), cfg.Apps...)
	for i := range cfg.Apps {
		if cfg.Apps[i].ClientID == "" {
			cfg.Apps[i].ClientID = newGUID()
		}
		if cfg.Apps[i].TokenVersion == 0 {
			cfg.Apps[i].TokenVersion = 2
		}
	}
	if cfg.ArcRealmDir == "" {
		cfg.ArcRealmDir = cfg.ArcKeyDir
	}
	secrets := make(map[string]string, len(cfg.Secrets))
	for k, v := range cfg.Secrets {
		secrets[strings.ToLower(k)] = v
	}
	cfg.Secrets = secrets

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("azemu: token signing key: %w", err)
	}
	e := &Emulator{cfg: cfg, key: key, kid: randomHex(8), outages: map[string]int{}, arcKeys: map[string]string{}}
	if e.caPEM, e.tlsCfg, err = newTLS(e.Hosts()); err != nil {
		return nil, err
	}
	return e, nil
}

// Config returns the emulator's configuration with the defaults filled in.
func (e *Emulator) Config() Config { return e.cfg }

// VaultHost returns the Key Vault's host name, VAULT.vault.azure.net.
func (e *Emulator) VaultHost() string { return e.cfg.Vault + VaultSuffix }

// VaultURL returns the Key Vault's URL, https://VAULT.vault.azure.net/.
func (e *Emulator) VaultURL() string { return "https://" + e.VaultHost() + "/" }

// Hosts returns the names ServeTLS answers for; its certificate covers all
// of them.
func (e *Emulator) Hosts() []string {
	return []string{ARMHost, e.VaultHost(), ProbeHost, VersionHost, TelemetryHost, EntraHost}
}

// CACertPEM returns the PEM-encoded certificate of the CA that issued the
// server certificate: what REQUESTS_CA_BUNDLE and SSL_CERT_FILE must name.
func (e *Emulator) CACertPEM() []byte { return append([]byte(nil), e.caPEM...) }

// ServeIMDS serves the IMDS token endpoint over plain HTTP on ln until Close.
// name labels the requests it records. It returns http.ErrServerClosed after
// Close.
func (e *Emulator) ServeIMDS(ln net.Listener, name string) error {
	return e.serve(ln, e.handler(name, ServiceIMDS))
}

// ServeHIMDS serves Arc's HIMDS token endpoint over plain HTTP on ln until
// Close. name labels the requests it records. It needs Config.ArcKeyDir.
func (e *Emulator) ServeHIMDS(ln net.Listener, name string) error {
	if e.cfg.ArcKeyDir == "" {
		ln.Close()
		return errors.New("azemu: ServeHIMDS needs Config.ArcKeyDir")
	}
	return e.serve(ln, e.handler(name, ServiceHIMDS))
}

// ServeTLS serves ARM, Key Vault, Entra ID and the CLI's side-traffic hosts
// over TLS on ln until Close. name labels the requests it records.
func (e *Emulator) ServeTLS(ln net.Listener, name string) error {
	return e.serve(tls.NewListener(ln, e.tlsCfg), e.handler(name, ""))
}

// SetOutage makes service (one of the Service constants) answer every
// request with status and an error body until SetOutage(service, 0).
func (e *Emulator) SetOutage(service string, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if status == 0 {
		delete(e.outages, service)
		return
	}
	e.outages[service] = status
}

func (e *Emulator) outage(service string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.outages[service]
}

func (e *Emulator) serve(ln net.Listener, h http.Handler) error {
	errLog := log.New(io.Discard, "", 0)
	if e.cfg.Logf != nil {
		errLog = log.New(logfWriter(e.cfg.Logf), "azemu: ", 0)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	e.servers = append(e.servers, srv)
	e.mu.Unlock()
	return srv.Serve(ln)
}

// Close stops every server and closes their listeners and connections.
func (e *Emulator) Close() error {
	e.mu.Lock()
	e.closed = true
	srvs := e.servers
	e.servers = nil
	e.mu.Unlock()
	var errs []error
	for _, s := range srvs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops every server gracefully, waiting for requests in flight
// until ctx is done.
func (e *Emulator) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	srvs := e.servers
	e.servers = nil
	e.mu.Unlock()
	var errs []error
	for _, s := range srvs {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Requests returns the requests answered so far, oldest first.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.reqs...)
}

func (e *Emulator) record(r Request) {
	e.mu.Lock()
	e.reqs = append(e.reqs, r)
	e.mu.Unlock()
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// MachineFiles creates in dir what a machine with a managed identity keeps
// on disk for its token services: Arc's key directory (dir/tokens, for
// Config.ArcKeyDir) and AKS's projected service-account token
// (dir/azure-identity-token holding assertion, for
// Config.FederatedTokenFile).
func MachineFiles(dir, assertion string) (arcKeyDir, federatedTokenFile string, err error) {
	arcKeyDir = filepath.Join(dir, "tokens")
	if err := os.Mkdir(arcKeyDir, 0o750); err != nil {
		return "", "", err
	}
	federatedTokenFile = filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(federatedTokenFile, []byte(assertion), 0o600); err != nil {
		return "", "", err
	}
	return arcKeyDir, federatedTokenFile, nil
}
