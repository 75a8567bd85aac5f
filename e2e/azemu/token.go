package azemu

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are the claims of an access token the emulator issues. For a
// Microsoft resource (ARM, Key Vault) they are those of a real Entra ID v1
// token for a VM's system-assigned identity that clients read (the CLI takes
// the tenant from tid). For an App of Config.Apps they are those of an
// app-only token for a custom audience: no xms_mirid (Entra adds it for
// first-party resources only), and in the v2 form azp, azpacr and
// idtyp "app" instead of appid and appidacr.
type Claims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	AppID    string `json:"appid,omitempty"`
	AppIDACR string `json:"appidacr,omitempty"`
	Azp      string `json:"azp,omitempty"`
	AzpACR   string `json:"azpacr,omitempty"`
	IdP      string `json:"idp,omitempty"`
	IdTyp    string `json:"idtyp,omitempty"`
	OID      string `json:"oid"`
	Sub      string `json:"sub"`
	TID      string `json:"tid"`
	UTI      string `json:"uti"`
	Ver      string `json:"ver"`
	MIRID    string `json:"xms_mirid,omitempty"`
}

var b64 = base64.RawURLEncoding

// IssuerV1 and IssuerV2 are the issuers of the tenant's v1 and v2 tokens,
// as Entra's public cloud names them.
func (e *Emulator) IssuerV1() string { return "https://sts.windows.net/" + e.cfg.TenantID + "/" }

// IssuerV2 is the issuer of the tenant's v2 tokens.
func (e *Emulator) IssuerV2() string { return EntraAuthority + "/" + e.cfg.TenantID + "/v2.0" }

// issue returns a signed RS256 JWT for resource and its claims. resource
// must be one the emulator knows (see audience).
func (e *Emulator) issue(resource string, now time.Time) (string, Claims) {
	c := Claims{
		Aud: resource,
		Iss: e.IssuerV1(),
		Iat: now.Unix(),
		Nbf: now.Unix(),
		Exp: now.Add(e.cfg.TokenLifetime).Unix(),
		OID: e.cfg.PrincipalID,
		Sub: e.cfg.PrincipalID,
		TID: e.cfg.TenantID,
		UTI: randomHex(11),
		Ver: "1.0",
	}
	switch app, ok := e.app(resource); {
	case ok && app.TokenVersion == 1:
		c.Aud = app.IdentifierURI
		c.AppID, c.AppIDACR, c.IdP = e.cfg.ClientID, "2", e.IssuerV1()
	case ok:
		// v2: aud is the app's client ID whichever name was asked for.
		c.Aud, c.Iss, c.Ver = app.ClientID, e.IssuerV2(), "2.0"
		c.Azp, c.AzpACR, c.IdTyp = e.cfg.ClientID, "2", "app"
	default:
		c.AppID, c.AppIDACR, c.IdP = e.cfg.ClientID, "2", e.IssuerV1()
		c.MIRID = "/subscriptions/" + e.cfg.SubscriptionID + "/resourcegroups/azemu/providers/Microsoft.Compute/virtualMachines/azemu-vm"
	}
	header, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": e.kid, "x5t": e.kid})
	payload, _ := json.Marshal(c)
	signed := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, e.key, crypto.SHA256, sum[:])
	if err != nil {
		panic("azemu: signing a token: " + err.Error()) // cannot happen with a valid key
	}
	return signed + "." + b64.EncodeToString(sig), c
}

// app returns the App that resource names, by identifier URI or client ID
// (a trailing "/" ignored, as Entra does).
func (e *Emulator) app(resource string) (App, bool) {
	r := strings.TrimSuffix(resource, "/")
	for _, a := range e.cfg.Apps {
		if strings.EqualFold(r, strings.TrimSuffix(a.IdentifierURI, "/")) || strings.EqualFold(r, a.ClientID) {
			return a, true
		}
	}
	return App{}, false
}

// audience reports whether the emulator may issue a token for resource: an
// App of Config.Apps, or any https:// resource, which it takes for a
// Microsoft one. Anything else (an api:// URI or a GUID no App has) is a
// resource principal the tenant does not have, and error is what Entra says
// then (AADSTS500011).
func (e *Emulator) audience(resource string) (ok bool, error string) {
	if _, ok := e.app(resource); ok || strings.HasPrefix(strings.ToLower(resource), "https://") {
		return true, ""
	}
	return false, fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s. "+
		"This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. "+
		"You might have sent your authentication request to the wrong tenant.", resource, e.cfg.TenantID)
}

// Verify checks that token is one this emulator issued, signed and not
// expired at now, and returns its claims: for tests that stand in for a
// service receiving it.
func (e *Emulator) Verify(token string, now time.Time) (Claims, error) { return e.verify(token, now) }

// errToken describes why a bearer token is refused.
var (
	errTokenMalformed = errors.New("the token is not a JWT this emulator issued")
	errTokenSignature = errors.New("the token's signature is invalid")
	errTokenExpired   = errors.New("the token has expired")
)

// verify checks a token's signature and lifetime and returns its claims.
func (e *Emulator) verify(token string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errTokenMalformed
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return c, errTokenMalformed
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&e.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return c, errTokenSignature
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errTokenMalformed
	}
	if now.Unix() >= c.Exp {
		return c, errTokenExpired
	}
	return c, nil
}

// bearer returns the token of an Authorization: Bearer header, if any.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
