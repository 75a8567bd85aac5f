// Package netaudittest is a local stand-in for the parts of Azure that
// "azegress audit-network" talks to, for tests that go through the real
// Azure SDK: an Entra ID tenant's OpenID configuration and token endpoint
// (client credentials), and Azure Resource Manager's network provider
// (list and get virtual networks, route tables and network security
// groups; a network interface's effective routes, a long-running POST).
// Only tests import it.
//
// Answers are shaped like the real API's: resources as the fixture files
// hold them, lists in pages of PageSize joined by nextLink ($skipToken),
// ARM's error body ({"error": {"code", "message"}}), 401 without a token
// it issued, 429 with Retry-After for the paths in Throttle (once each),
// and 202 with Location, Azure-AsyncOperation and Retry-After for the
// long-running operation. One TLS listener on 127.0.0.1 serves both the
// authority and ARM; the SDK trusts it through its certificate (CAPEM)
// and finds it through a cloud configuration (Cloud).
package netaudittest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed identities of the fake tenant.
const (
	Tenant       = "7c1e5d3a-92b4-4f6e-8a0d-5b3c2e1f4a9d"
	ClientID     = "0d4b6e2f-3a5c-4e7d-9b1f-8c2a6d4e0f13"
	ClientSecret = "fake-client-secret"
	Audience     = "https://management.core.windows.net/"
)

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Status int
	At     time.Time
}

// Server is the fake. Set its fields before the first request.
type Server struct {
	// PageSize is how many resources one page of a list holds.
	PageSize int
	// Throttle lists paths (without the query) whose first request is
	// answered 429 with Retry-After: 1.
	Throttle []string

	srv       *httptest.Server
	resources map[string][]json.RawMessage // list name -> resources
	effective map[string]json.RawMessage   // lower-case NIC ID -> result or error

	mu        sync.Mutex
	log       []Request
	tokens    map[string]bool
	throttled map[string]bool
	ops       map[string]string // operation ID -> lower-case NIC ID
}

// New starts a server with the fixture in dir: virtualNetworks.json,
// routeTables.json and networkSecurityGroups.json (list bodies,
// {"value": [...]}) and effectiveRouteTables.json (by network interface
// ID, an effective route list body, or {"status": N, "error": {...}}). It
// is closed when t ends.
func New(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{
		PageSize:  2,
		resources: map[string][]json.RawMessage{},
		tokens:    map[string]bool{},
		throttled: map[string]bool{},
		ops:       map[string]string{},
	}
	for _, name := range []string{"virtualNetworks", "routeTables", "networkSecurityGroups"} {
		var list struct{ Value []json.RawMessage }
		readJSON(t, filepath.Join(dir, name+".json"), &list)
		s.resources[strings.ToLower(name)] = list.Value
	}
	var eff map[string]json.RawMessage
	readJSON(t, filepath.Join(dir, "effectiveRouteTables.json"), &eff)
	s.effective = map[string]json.RawMessage{}
	for k, v := range eff {
		s.effective[strings.ToLower(k)] = v
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// URL is the server's base URL, https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// CAPEM is the server's certificate, the root a client must trust.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// CloudConfig is a -cloud-config file for the server: authority and
// Resource Manager both on it, and no instance discovery (Entra ID's
// discovery host does not know it, as it would not know a private cloud's).
func (s *Server) CloudConfig() []byte {
	return fmt.Appendf(nil, `{
  "name": "fake",
  "activeDirectoryAuthorityHost": %q,
  "resourceManager": {"endpoint": %q, "audience": %q},
  "disableInstanceDiscovery": true
}
`, s.srv.URL+"/", s.srv.URL, Audience)
}

// Files writes CloudConfig and CAPEM to files in a temporary directory of
// t, for -cloud-config and -ca-file.
func (s *Server) Files(t testing.TB) (cloudFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	cloudFile, caFile = filepath.Join(dir, "cloud.json"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(cloudFile, s.CloudConfig(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, s.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return cloudFile, caFile
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.route(rec, r)
	s.mu.Lock()
	s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Status: rec.status, At: time.Now()})
	s.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == Tenant && parts[1] == "v2.0" && parts[2] == ".well-known" && parts[3] == "openid-configuration":
		s.openIDConfiguration(w)
	case len(parts) == 4 && parts[0] == Tenant && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "token" && r.Method == http.MethodPost:
		s.token(w, r)
	case len(parts) >= 2 && parts[0] == "subscriptions":
		if !s.authorized(w, r) || !s.throttle(w, r) {
			return
		}
		s.arm(w, r, parts)
	default:
		armError(w, http.StatusNotFound, "NotFound", "The requested path "+r.URL.Path+" was not found (fake).")
	}
}

func (s *Server) openIDConfiguration(w http.ResponseWriter) {
	base := s.srv.URL + "/" + Tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "EU",
	})
}

// token issues an opaque access token for client credentials with the
// ARM audience's .default scope.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		oauthError(w, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type (fake).")
		return
	case f.Get("client_id") != ClientID || f.Get("client_secret") != ClientSecret:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided (fake)."}`)
		return
	case !slices.Contains(strings.Fields(f.Get("scope")), Audience+"/.default"): // MSAL adds openid, profile, offline_access
		oauthError(w, "invalid_scope", "AADSTS70011: The provided value for scope "+f.Get("scope")+" is not valid (fake).")
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "fake." + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok = ok && s.tokens[tok]
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+s.srv.URL+"/"+Tenant+`", error="invalid_token", error_description="The access token is missing or invalid."`)
		armError(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or invalid (fake).")
		return false
	}
	if r.URL.Query().Get("api-version") == "" {
		armError(w, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return false
	}
	return true
}

// throttle answers the first request of a path in Throttle with ARM's
// 429; it reports whether to go on.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	first := false
	for _, p := range s.Throttle {
		if strings.EqualFold(p, r.URL.Path) && !s.throttled[strings.ToLower(p)] {
			s.throttled[strings.ToLower(p)], first = true, true
		}
	}
	s.mu.Unlock()
	if !first {
		return true
	}
	w.Header().Set("Retry-After", "1")
	armError(w, http.StatusTooManyRequests, "SubscriptionRequestsThrottled",
		"Number of 'read' requests for subscription actor exceeded. Please try again after '1' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling")
	return false
}

// arm serves /subscriptions/... paths.
func (s *Server) arm(w http.ResponseWriter, r *http.Request, parts []string) {
	// parts: subscriptions SUB [resourceGroups RG] providers Microsoft.Network TYPE [NAME [ACTION]]
	sub := parts[1]
	rest := parts[2:]
	rg := ""
	if len(rest) >= 2 && strings.EqualFold(rest[0], "resourceGroups") {
		rg, rest = rest[1], rest[2:]
	}
	if len(rest) < 3 || !strings.EqualFold(rest[0], "providers") || !strings.EqualFold(rest[1], "Microsoft.Network") {
		armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found in the namespace (fake).")
		return
	}
	typ, rest := strings.ToLower(rest[2]), rest[3:]
	scope := "/subscriptions/" + sub + "/"
	if rg != "" {
		scope += "resourcegroups/" + rg + "/"
	}
	scope = strings.ToLower(scope)
	of := "/providers/microsoft.network/" + typ + "/"
	switch {
	case typ == "locations" && len(rest) == 3 && r.Method == http.MethodGet:
		s.operation(w, rest[1], rest[2])
	case len(rest) == 0 && r.Method == http.MethodGet && s.resources[typ] != nil:
		if rg != "" && !s.hasGroup(sub, rg) {
			armError(w, http.StatusNotFound, "ResourceGroupNotFound", "Resource group '"+rg+"' could not be found.")
			return
		}
		s.list(w, r, typ, scope, of)
	case len(rest) == 1 && r.Method == http.MethodGet && s.resources[typ] != nil && rg != "":
		for _, res := range s.resources[typ] {
			if idOf(res) == scope+"providers/microsoft.network/"+typ+"/"+strings.ToLower(rest[0]) {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Write(res)
				return
			}
		}
		armError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.Network/%s/%s' under resource group '%s' was not found.", typ, rest[0], rg))
	case typ == "networkinterfaces" && len(rest) == 2 && strings.EqualFold(rest[1], "effectiveRouteTable") && r.Method == http.MethodPost && rg != "":
		s.beginEffective(w, sub, scope+"providers/microsoft.network/"+typ+"/"+strings.ToLower(rest[0]))
	default:
		armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found in the namespace (fake).")
	}
}

// hasGroup reports whether some resource of the fixture is in the group.
func (s *Server) hasGroup(sub, rg string) bool {
	prefix := strings.ToLower("/subscriptions/" + sub + "/resourceGroups/" + rg + "/")
	for _, list := range s.resources {
		for _, res := range list {
			if strings.HasPrefix(idOf(res), prefix) {
				return true
			}
		}
	}
	return false
}

// list serves one page of the resources of typ under scope (a
// subscription or resource group, lower case).
func (s *Server) list(w http.ResponseWriter, r *http.Request, typ, scope, of string) {
	var all []json.RawMessage
	for _, res := range s.resources[typ] {
		if id := idOf(res); strings.HasPrefix(id, scope) && strings.Contains(id, of) {
			all = append(all, res)
		}
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("$skipToken"))
	size := max(s.PageSize, 1)
	end := min(start+size, len(all))
	page := struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"nextLink,omitempty"`
	}{Value: all[min(start, end):end]}
	if end < len(all) {
		q := url.Values{"api-version": {r.URL.Query().Get("api-version")}, "$skipToken": {strconv.Itoa(end)}}
		page.NextLink = s.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	if page.Value == nil {
		page.Value = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, page)
}

// beginEffective starts the long-running effective route operation as
// the network provider does: 202 and where to poll.
func (s *Server) beginEffective(w http.ResponseWriter, sub, nic string) {
	b := make([]byte, 16)
	rand.Read(b)
	op := hex.EncodeToString(b)
	s.mu.Lock()
	s.ops[op] = nic
	s.mu.Unlock()
	base := s.srv.URL + "/subscriptions/" + sub + "/providers/Microsoft.Network/locations/westeurope/"
	w.Header().Set("Azure-AsyncOperation", base+"operations/"+op+"?api-version=2024-05-01")
	w.Header().Set("Location", base+"operationResults/"+op+"?api-version=2024-05-01")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
}

// operation answers a poll of the operation's status, or its result.
func (s *Server) operation(w http.ResponseWriter, kind, op string) {
	s.mu.Lock()
	nic, ok := s.ops[op]
	s.mu.Unlock()
	if !ok {
		armError(w, http.StatusNotFound, "OperationNotFound", "Operation "+op+" was not found (fake).")
		return
	}
	res, found := s.effective[nic]
	var failed struct {
		Status int             `json:"status"`
		Error  json.RawMessage `json:"error"`
	}
	if found {
		_ = json.Unmarshal(res, &failed)
	}
	switch {
	case strings.EqualFold(kind, "operations") && !found:
		writeJSON(w, http.StatusOK, map[string]any{"status": "Failed", "error": map[string]string{"code": "NotFound", "message": "Network interface " + nic + " was not found (fake)."}})
	case strings.EqualFold(kind, "operations") && failed.Status != 0:
		writeJSON(w, http.StatusOK, map[string]any{"status": "Failed", "error": failed.Error})
	case strings.EqualFold(kind, "operations"):
		writeJSON(w, http.StatusOK, map[string]string{"status": "Succeeded"})
	case strings.EqualFold(kind, "operationResults") && found && failed.Status == 0:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(res)
	default:
		armError(w, http.StatusNotFound, "OperationResultNotFound", "No result for operation "+op+" (fake).")
	}
}

func idOf(res json.RawMessage) string {
	var r struct{ ID string }
	_ = json.Unmarshal(res, &r)
	return strings.ToLower(r.ID)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func armError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
