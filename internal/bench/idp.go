//go:build linux

package bench

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The azegress-identity target selects its client block by a managed
// identity's token (issue 13). Its tenant is a stand-in Entra ID that the
// load generator serves on the namespace's loopback: the two OpenID
// configuration documents and the key set, which azegress fetches at
// start, as it would from login.microsoftonline.com.
const (
	benchTenant   = "11111111-2222-3333-4444-555555555555"
	benchAudience = "99999999-8888-7777-6666-555555555555" // the proxy's app registration
	benchOID      = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" // the managed identity's object ID
	benchAppID    = "cccccccc-dddd-eeee-ffff-000000000000" // and its client ID
	benchKeyID    = "bench-key"
)

// benchIdP is the stand-in tenant.
type benchIdP struct {
	srv  *http.Server
	base string // http://127.0.0.1:PORT, the policy's authority
	key  *rsa.PrivateKey
}

func startIdP() (*benchIdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &benchIdP{base: "http://" + ln.Addr().String(), key: key}
	keys := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: benchKeyID, Use: "sig", Algorithm: string(jose.RS256)}}}
	tenant := "/" + benchTenant
	docs := map[string]any{
		tenant + "/v2.0/.well-known/openid-configuration": map[string]string{"issuer": benchIssuer, "jwks_uri": p.base + tenant + "/discovery/v2.0/keys"},
		tenant + "/.well-known/openid-configuration":      map[string]string{"issuer": "https://sts.windows.net/" + benchTenant + "/", "jwks_uri": p.base + tenant + "/discovery/keys"},
		tenant + "/discovery/v2.0/keys":                   keys,
		tenant + "/discovery/keys":                        keys,
	}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

const benchIssuer = "https://login.microsoftonline.com/" + benchTenant + "/v2.0"

func (p *benchIdP) close() { p.srv.Close() }

// token mints a v2 app-only access token for the managed identity, valid
// for a day, about the size of one from Entra ID (1.3 KB: the claims an
// IMDS token carries, with values of their usual length).
func (p *benchIdP) token() (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": benchIssuer, "aud": benchAudience, "tid": benchTenant, "ver": "2.0",
		"oid": benchOID, "sub": benchOID, "azp": benchAppID, "azpacr": "2", "idtyp": "app",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(24 * time.Hour).Unix(),
		"aio":       strings.Repeat("k2BgYNj", 2),
		"rh":        "1.AXoA" + strings.Repeat("x", 60) + ".",
		"uti":       "bench-unique-token-id0",
		"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-bench/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-bench",
		"xms_tcdt":  1600000000,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), benchKeyID))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
