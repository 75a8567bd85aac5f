package tokensource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// clientAssertionType is the client_assertion_type of a federated
// credential: the assertion is a JWT (the service-account token).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionBytes bounds the service-account token read.
const maxAssertionBytes = 64 << 10

// workloadEnv is what AKS's workload-identity webhook puts in a pod's
// environment.
type workloadEnv struct {
	file, clientID, tenantID, authority string
}

// workload exchanges the pod's projected service-account token for an
// access token at Entra (AKS workload identity).
type workload struct {
	tokenURL string
	file     string
	form     url.Values // without the assertion
	client   *http.Client
}

func newWorkload(cfg Config, env workloadEnv) (*workload, error) {
	fail := func(format string, args ...any) (*workload, error) {
		return nil, fmt.Errorf("workload identity: "+format, args...)
	}
	clientID := env.clientID
	if cfg.ClientID != "" {
		clientID = cfg.ClientID
	}
	switch {
	case clientID == "":
		return fail("AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID is not; the service account needs the annotation azure.workload.identity/client-id, or give -client-id")
	case env.tenantID == "":
		return fail("AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID is not")
	case !validTenant(env.tenantID):
		return fail("AZURE_TENANT_ID %q is not a tenant ID or domain", env.tenantID)
	}
	authority := env.authority
	if authority == "" {
		authority = DefaultAuthorityHost
	}
	u, err := url.Parse(authority)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fail("AZURE_AUTHORITY_HOST %q: want https://HOST/ (http:// only to a loopback host)", authority)
	}
	if cfg.EntraProxy != nil && cfg.EntraProxy.Scheme != "http" && cfg.EntraProxy.Scheme != "https" {
		return fail("the proxy to Entra %q: want http:// or https://", endpointOf(cfg.EntraProxy))
	}
	var proxy *url.URL
	if cfg.EntraProxy != nil {
		p := *cfg.EntraProxy
		p.User = nil // credential-less: the token is what it is for
		proxy = &p
	}
	return &workload{
		tokenURL: strings.TrimSuffix(u.String(), "/") + "/" + env.tenantID + "/oauth2/v2.0/token",
		file:     env.file,
		form: url.Values{
			"grant_type":            {"client_credentials"},
			"client_id":             {clientID},
			"scope":                 {resourceOf(cfg) + "/.default"},
			"client_assertion_type": {clientAssertionType},
		},
		client: newClient(cfg, proxy),
	}, nil
}

func (s *workload) Name() string { return "workload identity" }

func (s *workload) Token(ctx context.Context) (Token, error) {
	assertion, err := readAssertion(s.file)
	if err != nil {
		return Token{}, &Error{Source: s.Name(), Endpoint: s.tokenURL,
			Msg:  "the service-account token AZURE_FEDERATED_TOKEN_FILE names: " + err.Error(),
			Hint: `the pod needs the label azure.workload.identity/use: "true" and a service account annotated with azure.workload.identity/client-id`,
			Temp: errors.Is(err, errEmptyAssertion)}
	}
	form := url.Values{"client_assertion": {assertion}}
	maps.Copy(form, s.form)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, &Error{Source: s.Name(), Endpoint: s.tokenURL, Msg: err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	a, e := exchange(s.client, s.Name(), s.tokenURL, req)
	if e != nil && e.Hint == "" {
		e.Hint = "the pod must reach the Entra authority (AZURE_AUTHORITY_HOST) directly, or through the egress proxy with -entra-via-proxy"
	}
	if e != nil {
		return Token{}, e
	}
	tok, e := parseToken(s.Name(), s.tokenURL, start, a)
	if e != nil {
		if e.Hint == "" {
			e.Hint = workloadHint(e.Msg)
		}
		return Token{}, e
	}
	return tok, nil
}

// workloadHint says what to check for the exchange's known failures.
func workloadHint(msg string) string {
	switch {
	case strings.Contains(msg, "AADSTS70021") || strings.Contains(msg, "AADSTS700211") || strings.Contains(msg, "AADSTS700212") || strings.Contains(msg, "AADSTS700213"):
		return "no federated identity credential of the identity matches the service-account token: check its issuer (the cluster's OIDC issuer URL), " +
			"subject (system:serviceaccount:NAMESPACE:NAME) and audience (api://AzureADTokenExchange)"
	case strings.Contains(msg, "AADSTS700016"):
		return "AZURE_CLIENT_ID (or -client-id) names no identity in AZURE_TENANT_ID"
	case strings.Contains(msg, "AADSTS90002"):
		return "AZURE_TENANT_ID names no tenant at this authority"
	case strings.Contains(msg, "AADSTS700024") || strings.Contains(msg, "AADSTS700027"):
		return "the service-account token is expired or not valid; kubelet should have refreshed it"
	}
	return ""
}

var errEmptyAssertion = errors.New("the file is empty")

// readAssertion reads the service-account token anew: kubelet rotates it.
func readAssertion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAssertionBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxAssertionBytes {
		return "", fmt.Errorf("the file is over %d bytes", maxAssertionBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errEmptyAssertion
	}
	return s, nil
}

// validTenant reports whether s can be a tenant in a URL path: a GUID or a
// domain name.
func validTenant(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(s, "..") && s[0] != '.'
}
