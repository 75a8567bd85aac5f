package tokensource

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of Config and of the environment.
const (
	// DefaultResource is the proxy's own App ID URI.
	DefaultResource = "api://azegress"
	// DefaultIMDSEndpoint is IMDS's token endpoint.
	DefaultIMDSEndpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
	// DefaultArcEndpoint is HIMDS's token endpoint when Arc's agent is
	// installed but IDENTITY_ENDPOINT is not set (a cron job's environment).
	DefaultArcEndpoint = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
	// DefaultArcKeyDir is where HIMDS writes its challenge key files on Linux.
	DefaultArcKeyDir = "/var/opt/azcmagent/tokens"
	// DefaultArcAgent is HIMDS's binary; its presence means Arc.
	DefaultArcAgent = "/opt/azcmagent/bin/himds"
	// DefaultAuthorityHost is Entra's public-cloud authority, the default
	// of AZURE_AUTHORITY_HOST.
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	// MaxArcKeyBytes is the largest HIMDS key file read, as in Azure's SDKs.
	MaxArcKeyBytes = 4096
	// MaxTokenBytes is the longest token accepted: the proxy refuses a
	// Proxy-Authorization header over 16 KiB.
	MaxTokenBytes = 16 << 10
	// DefaultTimeout bounds one request to a token service.
	DefaultTimeout = 30 * time.Second
)

// Token is an access token and when it expires.
type Token struct {
	// Value is the JWT. Never log it; Fingerprint identifies it.
	Value string
	// Expires is its expiry by the local clock: the time of the request
	// plus the lifetime the service gave.
	Expires time.Time
}

// Fingerprint is the first 8 hex digits of the token's SHA-256, the
// token_fp the proxy logs for the same token.
func (t Token) Fingerprint() string {
	if t.Value == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(t.Value))
	return hex.EncodeToString(sum[:4])
}

// Source is a token service.
type Source interface {
	// Token asks the service for a fresh token. Errors are *Error.
	Token(ctx context.Context) (Token, error)
	// Name says which service, for logs: "IMDS", "Azure Arc HIMDS" or
	// "workload identity".
	Name() string
}

// Config says what token to ask for and, for tests, where the services
// are. Only Resource is required.
type Config struct {
	// Resource is the audience, the proxy's App ID URI or client ID. A
	// trailing "/.default" is accepted and removed where a resource (not a
	// scope) is asked for.
	Resource string
	// ClientID picks a user-assigned identity: IMDS's client_id, or the
	// workload identity's client ID in place of AZURE_CLIENT_ID. Arc
	// refuses it. Empty means the system-assigned identity (or
	// AZURE_CLIENT_ID).
	ClientID string
	// Getenv reads the environment. If nil, os.Getenv.
	Getenv func(string) string
	// IMDSEndpoint, if empty, is DefaultIMDSEndpoint.
	IMDSEndpoint string
	// ArcKeyDir, if empty, is DefaultArcKeyDir: the only directory HIMDS
	// key files are read from.
	ArcKeyDir string
	// ArcAgent, if empty, is DefaultArcAgent. A file there means Arc even
	// without IDENTITY_ENDPOINT.
	ArcAgent string
	// EntraProxy, if non-nil, is an http:// or https:// proxy to reach the
	// workload identity's authority through, without credentials. Nil
	// means directly. IMDS and HIMDS never go through a proxy.
	EntraProxy *url.URL
	// RootCAs verifies the authority's certificate (and an https
	// EntraProxy's). If nil, the system's roots.
	RootCAs *x509.CertPool
	// Timeout bounds each request. If zero, DefaultTimeout.
	Timeout time.Duration
	// Dial, if non-nil, opens every connection, so that tests can answer
	// on the services' real addresses. Nil means a net.Dialer with a 10 s
	// timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Environment variables read by FromEnvironment.
const (
	envFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	envClientID           = "AZURE_CLIENT_ID"
	envTenantID           = "AZURE_TENANT_ID"
	envAuthorityHost      = "AZURE_AUTHORITY_HOST"
	envIdentityEndpoint   = "IDENTITY_ENDPOINT"
	envIdentityHeader     = "IDENTITY_HEADER"
	envIMDSEndpoint       = "IMDS_ENDPOINT"
	envMSIEndpoint        = "MSI_ENDPOINT"
)

// FromEnvironment returns the source the environment has: workload
// identity, else Azure Arc, else IMDS (see the package documentation).
func FromEnvironment(cfg Config) (Source, error) {
	if cfg.Resource == "" {
		return nil, errors.New("no resource: name the proxy's audience, such as " + DefaultResource)
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if file := getenv(envFederatedTokenFile); file != "" {
		return newWorkload(cfg, workloadEnv{
			file:      file,
			clientID:  getenv(envClientID),
			tenantID:  getenv(envTenantID),
			authority: getenv(envAuthorityHost),
		})
	}
	endpoint := getenv(envIdentityEndpoint)
	switch {
	case endpoint != "" && getenv(envIdentityHeader) != "":
		return nil, errors.New("IDENTITY_ENDPOINT and IDENTITY_HEADER are set: this is App Service, Functions or Service Fabric, " +
			"whose token services the token helpers do not support; get the token there with the Azure SDK and put it in the proxy URL yourself")
	case getenv(envMSIEndpoint) != "":
		return nil, errors.New("MSI_ENDPOINT is set: this is Cloud Shell or Azure Machine Learning, whose token services the token helpers do not support")
	case endpoint != "" && getenv(envIMDSEndpoint) != "":
		return newArc(cfg, endpoint)
	}
	agent := cfg.ArcAgent
	if agent == "" {
		agent = DefaultArcAgent
	}
	if fi, err := os.Stat(agent); err == nil && fi.Mode().IsRegular() {
		return newArc(cfg, DefaultArcEndpoint)
	}
	return newIMDS(cfg)
}

// Fetch asks src for a token and retries temporary failures (IMDS's 410
// while a VM starts, 429, 5xx, no answer) after 1 s, 2 s, 4 s ... at most
// 16 s apart, until ctx ends. It returns the last error then.
func Fetch(ctx context.Context, src Source) (Token, error) {
	wait := time.Second
	for {
		tok, err := src.Token(ctx)
		if err == nil || !Temporary(err) {
			return tok, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Token{}, err
		case <-t.C:
		}
		wait = min(2*wait, 16*time.Second)
	}
}

// Error is a failed token request.
type Error struct {
	// Source is the Source's Name.
	Source string
	// Endpoint is the URL asked, without its query.
	Endpoint string
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Code is the OAuth error code of the answer ("invalid_resource"), if any.
	Code string
	// Msg says what happened: the service's description or the
	// transport's error. It never contains a token or a secret.
	Msg string
	// Hint says what to check, when the cause is known.
	Hint string
	// Temp reports whether asking again later may succeed.
	Temp bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Endpoint != "" {
		fmt.Fprintf(&b, " (%s)", e.Endpoint)
	}
	b.WriteString(": ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	if e.Code != "" {
		b.WriteString(e.Code + ": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Temporary reports whether err is an *Error worth retrying.
func Temporary(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Temp
}

// resourceOf is cfg.Resource as a resource, not a scope.
func resourceOf(cfg Config) string { return strings.TrimSuffix(cfg.Resource, "/.default") }
