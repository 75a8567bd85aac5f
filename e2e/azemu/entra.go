package azemu

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"
)

// ClientAssertionType is the client_assertion_type of a federated
// (workload identity) client-credentials grant.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// serveEntra answers Entra ID's token endpoint, the tenant's OpenID
// configuration documents and its key set. It returns the resource of a
// token request's scope, for the record.
func (e *Emulator) serveEntra(w http.ResponseWriter, r *http.Request, now time.Time) (resource string) {
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	keys := rest == "discovery/keys" || rest == "discovery/v2.0/keys"
	if !strings.EqualFold(tenant, e.cfg.TenantID) && !(keys && tenant == "common") {
		entraError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf(
			"AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return ""
	}
	switch {
	case rest == "oauth2/v2.0/token":
		return e.serveClientCredentials(w, r, now)
	case r.Method != http.MethodGet:
		entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "AADSTS900561: The endpoint only accepts GET requests.")
	case rest == "v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                e.IssuerV2(),
			"token_endpoint":                        EntraAuthority + "/" + e.cfg.TenantID + "/oauth2/v2.0/token",
			"jwks_uri":                              EntraAuthority + "/" + e.cfg.TenantID + "/discovery/v2.0/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		})
	case rest == ".well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                e.IssuerV1(),
			"token_endpoint":                        EntraAuthority + "/" + e.cfg.TenantID + "/oauth2/token",
			"jwks_uri":                              EntraAuthority + "/common/discovery/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case keys:
		pub := e.key.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
			"kty": "RSA",
			"use": "sig",
			"kid": e.kid,
			"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	default:
		entraError(w, http.StatusNotFound, "invalid_request", 900023, "AADSTS900023: azemu does not emulate "+r.URL.Path)
	}
	return ""
}

// serveClientCredentials answers POST /TENANT/oauth2/v2.0/token with the
// client-credentials grant and a federated client assertion, the exchange
// of AKS workload identity. Entra would verify the assertion against the
// cluster's OIDC issuer and the identity's federated credential; here it
// must equal the content of Config.FederatedTokenFile.
func (e *Emulator) serveClientCredentials(w http.ResponseWriter, r *http.Request, now time.Time) (resource string) {
	if r.Method != http.MethodPost {
		entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "AADSTS900561: The endpoint only accepts POST requests.")
		return ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must be application/x-www-form-urlencoded.")
		return ""
	}
	f := r.PostForm
	if g := f.Get("grant_type"); g != "client_credentials" {
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type '"+g+"'.")
		return ""
	}
	scope := f.Get("scope")
	resource, ok := strings.CutSuffix(scope, "/.default")
	switch {
	case scope == "":
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'scope'.")
		return ""
	case !ok || strings.Contains(resource, " "):
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return resource
	}
	if !strings.EqualFold(f.Get("client_id"), e.cfg.ClientID) {
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", f.Get("client_id"), e.cfg.TenantID))
		return resource
	}
	if f.Get("client_assertion_type") != ClientAssertionType || f.Get("client_assertion") == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 7000218,
			"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return resource
	}
	if !e.federatedAssertion(f.Get("client_assertion")) {
		entraError(w, http.StatusUnauthorized, "invalid_client", 70021,
			"AADSTS70021: No matching federated identity record found for presented assertion.")
		return resource
	}
	if ok, msg := e.audience(resource); !ok {
		entraError(w, http.StatusBadRequest, "invalid_resource", 500011, msg)
		return resource
	}
	tok, c := e.issue(resource, now)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     c.Exp - c.Iat,
		"ext_expires_in": c.Exp - c.Iat,
		"access_token":   tok,
	})
	return resource
}

// federatedAssertion reports whether assertion is the federated token
// file's content now (kubelet rotates the file), white space around it
// aside.
func (e *Emulator) federatedAssertion(assertion string) bool {
	if e.cfg.FederatedTokenFile == "" {
		return false
	}
	b, err := os.ReadFile(e.cfg.FederatedTokenFile)
	want := strings.TrimSpace(string(b))
	if err != nil || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(assertion)) == 1
}

// entraError writes Entra's OAuth error body.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	trace := newGUID()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": desc + "\r\nTrace ID: " + trace + "\r\nTimestamp: " + time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"error_codes":       []int{aadsts},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
	})
}
