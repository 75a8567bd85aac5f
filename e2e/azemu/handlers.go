package azemu

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// handler returns the handler for one listener: the token endpoint of
// service (ServiceIMDS or ServiceHIMDS), or when service is empty the HTTPS
// services chosen by Host.
func (e *Emulator) handler(listener string, service string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		host := normalizeHost(r.Host)
		rec := Request{
			Listener: listener,
			Method:   r.Method,
			Host:     host,
			Path:     r.URL.Path,
			Time:     now,
		}
		_, rec.Bearer = bearer(r.Header.Get("Authorization"))
		sw := &statusWriter{ResponseWriter: w}
		rec.Service = service
		if service == "" {
			rec.Service = e.serviceOf(host)
		}
		if status := e.outage(rec.Service); status != 0 {
			writeJSON(sw, status, map[string]string{"error": "temporarily_unavailable",
				"error_description": "azemu: " + rec.Service + " is down (SetOutage)"})
			rec.Status = sw.status()
			e.record(rec)
			return
		}
		switch rec.Service {
		case ServiceIMDS:
			rec.Resource = r.URL.Query().Get("resource")
			e.serveIMDS(sw, r, now)
		case ServiceHIMDS:
			rec.Resource = r.URL.Query().Get("resource")
			e.serveHIMDS(sw, r, now)
		case ServiceEntra:
			rec.Resource = e.serveEntra(sw, r, now)
		case ServiceARM:
			e.serveARM(sw, r, now)
		case ServiceKeyVault:
			e.serveVault(sw, r, now)
		case ServiceProbe:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			sw.WriteHeader(http.StatusOK)
			io.WriteString(sw, "<!DOCTYPE html><title>azemu</title>\n")
		case ServiceVersion:
			e.serveVersion(sw, r)
		case ServiceTelemetry:
			serveTelemetry(sw, r)
		default:
			http.Error(sw, fmt.Sprintf("azemu does not emulate %q", host), http.StatusMisdirectedRequest)
		}
		rec.Status = sw.status()
		e.record(rec)
	})
}

// serviceOf is the HTTPS service that answers for host.
func (e *Emulator) serviceOf(host string) string {
	switch host {
	case ARMHost:
		return ServiceARM
	case e.VaultHost():
		return ServiceKeyVault
	case EntraHost:
		return ServiceEntra
	case ProbeHost:
		return ServiceProbe
	case VersionHost:
		return ServiceVersion
	case TelemetryHost:
		return ServiceTelemetry
	}
	return ServiceUnknown
}

// userAssigned are the query parameters that pick a user-assigned identity.
var userAssigned = []string{"client_id", "object_id", "msi_res_id", "mi_res_id"}

// serveIMDS answers GET /metadata/identity/oauth2/token like Azure's IMDS.
func (e *Emulator) serveIMDS(w http.ResponseWriter, r *http.Request, now time.Time) {
	q, ok := tokenRequest(w, r)
	if !ok {
		return
	}
	// A user-assigned identity the VM does not have.
	for _, p := range userAssigned {
		if v := q.Get(p); v != "" && !strings.EqualFold(v, e.cfg.ClientID) && !strings.EqualFold(v, e.cfg.PrincipalID) {
			imdsError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
			return
		}
	}
	e.writeMIToken(w, q.Get("resource"), now)
}

// serveHIMDS answers GET /metadata/identity/oauth2/token like Azure Arc's
// HIMDS: a request without the secret gets a 401 naming a fresh key file,
// and the retry carrying that file's content gets the token.
func (e *Emulator) serveHIMDS(w http.ResponseWriter, r *http.Request, now time.Time) {
	q, ok := tokenRequest(w, r)
	if !ok {
		return
	}
	for _, p := range userAssigned {
		if q.Get(p) != "" {
			imdsError(w, http.StatusBadRequest, "invalid_request",
				"Azure Arc-enabled servers support only the system-assigned managed identity")
			return
		}
	}
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Basic") || !e.takeArcKey(secret) {
		realm, err := e.newArcKey()
		if err != nil {
			imdsError(w, http.StatusInternalServerError, "server_error", "azemu: writing the key file: "+err.Error())
			return
		}
		w.Header().Set("WWW-Authenticate", "Basic realm="+realm)
		imdsError(w, http.StatusUnauthorized, "unauthorized",
			"Authorization required: repeat the request with the content of the file the realm names")
		return
	}
	e.writeMIToken(w, q.Get("resource"), now)
}

// maxArcKeys bounds the challenges waiting for their retry.
const maxArcKeys = 256

// newArcKey writes a fresh secret to a new key file under ArcKeyDir and
// returns the file's path as the client sees it (under ArcRealmDir).
func (e *Emulator) newArcKey() (string, error) {
	secret := randomHex(32)
	name := newGUID() + ".key"
	path := filepath.Join(e.cfg.ArcKeyDir, name)
	if err := os.WriteFile(path, []byte(secret), 0o640); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.arcKeys[secret] = path
	e.arcOrder = append(e.arcOrder, secret)
	for len(e.arcOrder) > maxArcKeys {
		old := e.arcOrder[0]
		e.arcOrder = e.arcOrder[1:]
		if p, ok := e.arcKeys[old]; ok {
			os.Remove(p)
			delete(e.arcKeys, old)
		}
	}
	e.mu.Unlock()
	return filepath.Join(e.cfg.ArcRealmDir, name), nil
}

// takeArcKey reports whether secret is that of a challenge not yet
// answered, and retires it and its file.
func (e *Emulator) takeArcKey(secret string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	path, ok := e.arcKeys[secret]
	if !ok || secret == "" {
		return false
	}
	delete(e.arcKeys, secret)
	os.Remove(path)
	return true
}

// tokenRequest checks what IMDS and HIMDS both require of a token request
// and returns its query; when ok is false it has answered.
func tokenRequest(w http.ResponseWriter, r *http.Request) (q url.Values, ok bool) {
	if r.URL.Path != "/metadata/identity/oauth2/token" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
		return nil, false
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "Method not allowed"})
		return nil, false
	}
	// Azure's IMDS refuses requests that went through a proxy.
	if _, ok := r.Header["X-Forwarded-For"]; ok {
		imdsError(w, http.StatusBadRequest, "invalid_request",
			"Requests with an X-Forwarded-For header are not accepted: IMDS must not be reached through a proxy")
		return nil, false
	}
	if !strings.EqualFold(r.Header.Get("Metadata"), "true") {
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return nil, false
	}
	q = r.URL.Query()
	if q.Get("api-version") == "" {
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'api-version' is missing")
		return nil, false
	}
	if q.Get("resource") == "" {
		imdsError(w, http.StatusBadRequest, "invalid_request", "Required audience parameter not specified")
		return nil, false
	}
	return q, true
}

// writeMIToken answers a managed-identity token request for resource the
// way IMDS and HIMDS do: every number a string.
func (e *Emulator) writeMIToken(w http.ResponseWriter, resource string, now time.Time) {
	if ok, msg := e.audience(resource); !ok {
		imdsError(w, http.StatusBadRequest, "invalid_resource", msg)
		return
	}
	tok, c := e.issue(resource, now)
	life := strconv.FormatInt(c.Exp-c.Iat, 10)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"client_id":      e.cfg.ClientID,
		"expires_in":     life,
		"expires_on":     strconv.FormatInt(c.Exp, 10),
		"ext_expires_in": life,
		"not_before":     strconv.FormatInt(c.Nbf, 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
}

func imdsError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// armAudiences are the token audiences ARM accepts.
var armAudiences = []string{
	"https://management.core.windows.net/", "https://management.core.windows.net",
	"https://management.azure.com/", "https://management.azure.com",
}

// serveARM answers the subscription and tenant lists like Azure Resource
// Manager.
func (e *Emulator) serveARM(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.URL.Query().Get("api-version") == "" {
		armError(w, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
		return
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`)
		armError(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
		return
	}
	c, err := e.verify(tok, now)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.windows.net/", error="invalid_token", error_description="The access token is invalid."`)
		armError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: "+err.Error()+".")
		return
	}
	if !slices.Contains(armAudiences, c.Aud) {
		armError(w, http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", fmt.Sprintf(
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s'.",
			c.Aud, strings.Join(armAudiences, "','")))
		return
	}
	if r.Method != http.MethodGet {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "azemu's ARM answers GET only.")
		return
	}
	path := strings.TrimSuffix(strings.ToLower(r.URL.Path), "/")
	switch {
	case path == "/subscriptions":
		writeJSON(w, http.StatusOK, map[string]any{
			"value": []any{e.subscription(c.TID)},
			"count": map[string]any{"type": "Total", "value": 1},
		})
	case path == "/subscriptions/"+strings.ToLower(e.cfg.SubscriptionID):
		writeJSON(w, http.StatusOK, e.subscription(c.TID))
	case strings.HasPrefix(path, "/subscriptions/") && strings.Count(path, "/") == 2:
		armError(w, http.StatusNotFound, "SubscriptionNotFound",
			fmt.Sprintf("The subscription '%s' could not be found.", strings.TrimPrefix(path, "/subscriptions/")))
	case path == "/tenants":
		writeJSON(w, http.StatusOK, map[string]any{"value": []any{map[string]any{
			"id":             "/tenants/" + e.cfg.TenantID,
			"tenantId":       e.cfg.TenantID,
			"tenantCategory": "Home",
			"displayName":    "azemu tenant",
			"defaultDomain":  "azemu.onmicrosoft.com",
			"domains":        []string{"azemu.onmicrosoft.com"},
			"countryCode":    "US",
			"tenantType":     "AAD",
		}}})
	default:
		armError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("azemu's ARM does not emulate %s.", r.URL.Path))
	}
}

func (e *Emulator) subscription(tenant string) map[string]any {
	return map[string]any{
		"id":                   "/subscriptions/" + e.cfg.SubscriptionID,
		"authorizationSource":  "RoleBased",
		"managedByTenants":     []any{},
		"subscriptionId":       e.cfg.SubscriptionID,
		"tenantId":             tenant,
		"displayName":          e.cfg.SubscriptionName,
		"state":                "Enabled",
		"subscriptionPolicies": map[string]string{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
	}
}

func armError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// serveVault answers GET /secrets/NAME[/VERSION] like a Key Vault, with its
// 401 challenge for requests without a usable token.
func (e *Emulator) serveVault(w http.ResponseWriter, r *http.Request, now time.Time) {
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "The api-version query parameter is missing.")
		return
	}
	challenge := func(msg string) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`,
			EntraAuthority, e.cfg.TenantID, VaultResource))
		kvError(w, http.StatusUnauthorized, "Unauthorized", msg)
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		challenge("AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	c, err := e.verify(tok, now)
	if err != nil {
		challenge("AKV10032: Invalid token: " + err.Error() + ".")
		return
	}
	if strings.TrimSuffix(c.Aud, "/") != VaultResource {
		challenge(fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", VaultResource, c.Aud))
		return
	}
	if c.TID != e.cfg.TenantID {
		challenge(fmt.Sprintf("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found %s.", e.cfg.TenantID, c.Iss))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" {
		kvError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("azemu's Key Vault does not emulate %s %s.", r.Method, r.URL.Path))
		return
	}
	name := parts[1]
	value, ok := e.cfg.Secrets[strings.ToLower(name)]
	version := secretVersion(name)
	if !ok || (len(parts) == 3 && parts[2] != "" && parts[2] != version) {
		kvError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf(
			"A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name))
		return
	}
	created := now.Add(-time.Hour).Unix()
	writeJSON(w, http.StatusOK, map[string]any{
		"value": value,
		"id":    e.VaultURL() + "secrets/" + name + "/" + version,
		"attributes": map[string]any{
			"enabled":         true,
			"created":         created,
			"updated":         created,
			"recoveryLevel":   "Recoverable+Purgeable",
			"recoverableDays": 90,
		},
		"tags": map[string]string{},
	})
}

// secretVersion is a secret's one version: stable, 32 hex digits.
func secretVersion(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return hex.EncodeToString(sum[:16])
}

func kvError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// serveVersion answers the CLI's version check, which reads VERSION from a
// package's setup.py on GitHub.
func (e *Emulator) serveVersion(w http.ResponseWriter, r *http.Request) {
	versions := map[string]string{
		"/Azure/azure-cli/main/src/azure-cli-core/setup.py":      e.cfg.CLIVersion,
		"/Azure/azure-cli/main/src/azure-cli/setup.py":           e.cfg.CLIVersion,
		"/Azure/azure-cli/main/src/azure-cli-telemetry/setup.py": "1.0.8",
	}
	v, ok := versions[r.URL.Path]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, "404: Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "#!/usr/bin/env python\n\nfrom setuptools import setup\n\nVERSION = %q\n", v)
}

// serveTelemetry accepts Application Insights' track call.
func serveTelemetry(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v2/track" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	n := 1
	var items []json.RawMessage
	if json.Unmarshal(body, &items) == nil {
		n = len(items)
	}
	writeJSON(w, http.StatusOK, map[string]any{"itemsReceived": n, "itemsAccepted": n, "errors": []any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
