// Package identitytest is an in-process Entra stand-in for tests: an
// httptest server with a tenant's v2 and v1 OpenID configuration
// documents and its key set, and a minter of access tokens signed with
// its RSA keys. Keys can be added, rolled and withdrawn; the server can be
// taken down and brought back; fetches are counted.
package identitytest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults of a new IdP: the tenant, the proxy's own app registration, and
// the managed identity its tokens name.
const (
	TenantID = "11111111-2222-3333-4444-555555555555"
	AppIDURI = "api://azegress"
	ClientID = "99999999-8888-7777-6666-555555555555" // the proxy's app registration
	ObjectID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" // the managed identity's principalId
	AppID    = "cccccccc-dddd-eeee-ffff-000000000000" // the managed identity's client ID
)

// IssuerV1 is the v1 issuer of tenant as Entra's public cloud names it. It
// is not under the IdP's URL, so a validator that derived issuers from the
// authority instead of reading the documents would fail.
func IssuerV1(tenant string) string { return "https://sts.windows.net/" + tenant + "/" }

// IssuerV2 is the v2.0 issuer of tenant.
func IssuerV2(tenant string) string { return "https://login.microsoftonline.com/" + tenant + "/v2.0" }

// Key is a signing key of the IdP.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

// NewKey generates a 2048-bit RSA key named id.
func NewKey(t testing.TB, id string) *Key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{ID: id, Private: priv}
}

// IdP is the identity provider. Its methods are safe for concurrent use.
type IdP struct {
	Server   *httptest.Server
	TenantID string
	// Now is the minter's clock for iat, nbf and exp. Set it before use;
	// nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	keys    []*Key // published in the JWKS
	down    bool
	fetches map[string]int // by path
}

// New starts an IdP for TenantID publishing one key, "key-1", and closes
// it when the test ends.
func New(t testing.TB) *IdP {
	t.Helper()
	return NewOn(t, nil)
}

// NewOn is New serving on ln instead of a new loopback listener: say, one
// opened inside the network namespace where the proxy under test runs. Its
// URLs (Authority, the documents' jwks_uri) name ln's address. A nil ln
// means a new loopback listener.
func NewOn(t testing.TB, ln net.Listener) *IdP {
	t.Helper()
	p := &IdP{TenantID: TenantID, fetches: make(map[string]int)}
	p.keys = []*Key{NewKey(t, "key-1")}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	if ln != nil {
		p.Server.Listener.Close()
		p.Server.Listener = ln
	}
	p.Server.Start()
	t.Cleanup(p.Server.Close)
	return p
}

// Authority is the URL to configure as the Entra authority.
func (p *IdP) Authority() string { return p.Server.URL }

// Paths the IdP serves.
func (p *IdP) v2DocPath() string  { return "/" + p.TenantID + "/v2.0/.well-known/openid-configuration" }
func (p *IdP) v1DocPath() string  { return "/" + p.TenantID + "/.well-known/openid-configuration" }
func (p *IdP) v2KeysPath() string { return "/" + p.TenantID + "/discovery/v2.0/keys" }
func (p *IdP) v1KeysPath() string { return "/" + p.TenantID + "/discovery/keys" }

func (p *IdP) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.fetches[r.URL.Path]++
	down := p.down
	keys := append([]*Key(nil), p.keys...)
	p.mu.Unlock()
	if down {
		http.Error(w, "identity provider down", http.StatusServiceUnavailable)
		return
	}
	var body any
	switch r.URL.Path {
	case p.v2DocPath():
		body = map[string]string{"issuer": IssuerV2(p.TenantID), "jwks_uri": p.Server.URL + p.v2KeysPath()}
	case p.v1DocPath():
		body = map[string]string{"issuer": IssuerV1(p.TenantID), "jwks_uri": p.Server.URL + p.v1KeysPath()}
	case p.v2KeysPath(), p.v1KeysPath():
		body = keySet(keys)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// keySet is the JWKS document publishing keys.
func keySet(keys []*Key) jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Use: "sig", Algorithm: string(jose.RS256)})
	}
	return set
}

// JWKS returns the key set document the IdP serves now, as an operator
// would save it for an offline check (azegress explain -jwks).
func (p *IdP) JWKS() []byte {
	b, err := json.Marshal(keySet(p.Keys()))
	if err != nil {
		panic(err) // RSA public keys always marshal
	}
	return b
}

// Keys returns the published keys, first one first.
func (p *IdP) Keys() []*Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Key(nil), p.keys...)
}

// SetKeys replaces the published keys: a key roll.
func (p *IdP) SetKeys(keys ...*Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append([]*Key(nil), keys...)
}

// SetDown makes every request fail with 503 (true) or succeed (false).
func (p *IdP) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Fetches returns how many requests each path has had.
func (p *IdP) Fetches() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.fetches)
}

// KeySetFetches returns how many times a key set was requested.
func (p *IdP) KeySetFetches() int {
	f := p.Fetches()
	return f[p.v2KeysPath()] + f[p.v1KeysPath()]
}

// Token describes a token to mint. The zero value is a valid v2 app-only
// token for ObjectID, audience ClientID, signed by the first key.
type Token struct {
	// Version is 1 or 2; 0 means 2. It picks iss, aud, appid/azp and ver.
	Version int
	// Claims override the defaults; a nil value removes a claim.
	Claims map[string]any
	// Alg is the header alg: "" means RS256; RS*/PS* sign with Key;
	// "HS256" signs with HMACKey; "none" has an empty signature.
	Alg string
	// Key signs the token; nil means the IdP's first published key.
	Key *Key
	// KeyID overrides the header kid (to claim a key that did not sign);
	// "-" omits it.
	KeyID string
	// HMACKey is the HS256 secret.
	HMACKey []byte
}

// defaultClaims are the claims of a valid token of version, before overrides.
func (p *IdP) defaultClaims(version int) map[string]any {
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	c := map[string]any{
		"tid":   p.TenantID,
		"oid":   ObjectID,
		"sub":   ObjectID,
		"idtyp": "app",
		"iat":   now.Add(-5 * time.Minute).Unix(),
		"nbf":   now.Add(-5 * time.Minute).Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	if version == 1 {
		c["iss"], c["aud"], c["appid"], c["ver"] = IssuerV1(p.TenantID), AppIDURI, AppID, "1.0"
	} else {
		c["iss"], c["aud"], c["azp"], c["ver"] = IssuerV2(p.TenantID), ClientID, AppID, "2.0"
	}
	return c
}

// Mint returns a compact JWS for tok.
func (p *IdP) Mint(t testing.TB, tok Token) string {
	t.Helper()
	claims := p.defaultClaims(tok.Version)
	for k, v := range tok.Claims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	key := tok.Key
	if key == nil {
		key = p.Keys()[0]
	}
	kid := key.ID
	switch tok.KeyID {
	case "":
	case "-":
		kid = ""
	default:
		kid = tok.KeyID
	}
	switch tok.Alg {
	case "none":
		// go-jose refuses to sign with none, so write the JWS by hand.
		hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
		enc := base64.RawURLEncoding
		return enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload) + "."
	case "HS256":
		return sign(t, jose.SigningKey{Algorithm: jose.HS256, Key: tok.HMACKey}, kid, payload)
	case "":
		tok.Alg = string(jose.RS256)
	}
	return sign(t, jose.SigningKey{Algorithm: jose.SignatureAlgorithm(tok.Alg), Key: key.Private}, kid, payload)
}

func sign(t testing.TB, sk jose.SigningKey, kid string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BasicAuth returns a Proxy-Authorization value carrying token the way
// curl, Go and Python send http://user:token@proxy credentials.
func BasicAuth(user, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+token))
}
