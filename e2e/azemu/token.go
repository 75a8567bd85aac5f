package azemu

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Claims are the claims of an access token the emulator issues: those of a
// real Entra ID v1 token for a VM's system-assigned identity that clients
// read (the CLI takes the tenant from tid).
type Claims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	AppID    string `json:"appid"`
	AppIDACR string `json:"appidacr"`
	IdP      string `json:"idp"`
	OID      string `json:"oid"`
	Sub      string `json:"sub"`
	TID      string `json:"tid"`
	UTI      string `json:"uti"`
	Ver      string `json:"ver"`
	MIRID    string `json:"xms_mirid"`
}

var b64 = base64.RawURLEncoding

// issue returns a signed RS256 JWT for resource and its claims.
func (e *Emulator) issue(resource string, now time.Time) (string, Claims) {
	c := Claims{
		Aud:      resource,
		Iss:      "https://sts.windows.net/" + e.cfg.TenantID + "/",
		Iat:      now.Unix(),
		Nbf:      now.Unix(),
		Exp:      now.Add(e.cfg.TokenLifetime).Unix(),
		AppID:    e.cfg.ClientID,
		AppIDACR: "2",
		IdP:      "https://sts.windows.net/" + e.cfg.TenantID + "/",
		OID:      e.cfg.PrincipalID,
		Sub:      e.cfg.PrincipalID,
		TID:      e.cfg.TenantID,
		UTI:      randomHex(11),
		Ver:      "1.0",
		MIRID:    "/subscriptions/" + e.cfg.SubscriptionID + "/resourcegroups/azemu/providers/Microsoft.Compute/virtualMachines/azemu-vm",
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
