package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Clock skew and cache bounds.
const (
	DefaultClockSkew = 60 * time.Second
	MaxClockSkew     = 5 * time.Minute
	// DefaultCacheSize is the verified-token cache's bound in entries.
	DefaultCacheSize = 10_000
	// CacheTTL is the longest a verified token is trusted without
	// checking it again.
	CacheTTL = 10 * time.Minute
)

// Config is what a Validator accepts beyond the tenant's keys.
type Config struct {
	// Audiences are the proxy's own App ID URIs and client IDs. A token's
	// aud must be one of them; a trailing "/" on either side is ignored
	// (v1 tokens may carry "api://azegress/"). Required.
	Audiences []string
	// ClockSkew is the leeway on exp and nbf, at most MaxClockSkew. If
	// zero, DefaultClockSkew, unless ExactSkew is set.
	ClockSkew time.Duration
	// ExactSkew makes ClockSkew exact: zero then means no leeway at all,
	// as a policy's clock_skew = "0s" says, instead of the default.
	ExactSkew bool
	// CacheSize bounds the verified-token cache, in entries. If zero,
	// DefaultCacheSize.
	CacheSize int
}

// Identity is who a valid token names. It keeps no other claims.
type Identity struct {
	ObjectID    string    // oid: the service principal's object ID (a managed identity's principalId)
	AppID       string    // appid (v1 token) or azp (v2 token): its client ID
	TenantID    string    // tid
	Expiry      time.Time // exp
	Fingerprint string    // first 8 hex digits of the token's SHA-256, for logs
}

// Validator checks Entra access tokens against a tenant's Keys and a set
// of audiences, and remembers tokens it has verified. It is safe for
// concurrent use. Build a new one when the audiences or skew change; keep
// the Keys while tenant and authority stay the same.
type Validator struct {
	keys     *Keys
	expected jwt.Expected // AnyAudience: each audience with and without a trailing "/"
	skew     time.Duration
	cache    tokenCache
	hits     atomic.Uint64
	misses   atomic.Uint64
}

// NewValidator returns a Validator of tokens signed by keys' tenant.
func NewValidator(keys *Keys, cfg Config) (*Validator, error) {
	if keys == nil {
		return nil, errors.New("identity: NewValidator needs Keys")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New(`identity: no audiences; list the proxy's App ID URI and/or client ID, e.g. ["api://azegress"]`)
	}
	skew := cfg.ClockSkew
	switch {
	case skew == 0 && !cfg.ExactSkew:
		skew = DefaultClockSkew
	case skew < 0 || skew > MaxClockSkew:
		return nil, fmt.Errorf("identity: clock skew %s is outside 0 to %s", cfg.ClockSkew, MaxClockSkew)
	}
	size := cfg.CacheSize
	switch {
	case size == 0:
		size = DefaultCacheSize
	case size < 0:
		return nil, fmt.Errorf("identity: cache size %d is negative", size)
	}
	v := &Validator{keys: keys, skew: skew}
	for _, a := range cfg.Audiences {
		a = strings.TrimSuffix(a, "/")
		if a == "" {
			return nil, errors.New("identity: an audience is empty")
		}
		if isGUID(strings.ToLower(a)) {
			a = strings.ToLower(a)
		}
		v.expected.AnyAudience = append(v.expected.AnyAudience, a, a+"/")
	}
	v.cache.init(size)
	return v, nil
}

// Keys returns the key cache v validates with.
func (v *Validator) Keys() *Keys { return v.keys }

// CacheStats are the verified-token cache's counters, for metrics.
type CacheStats struct {
	Hits, Misses uint64 // tokens looked up in the cache (Lookup, Validate) and found, and not
	Entries      int    // tokens cached now
	Size         int    // the bound on Entries
}

// Stats returns the cache counters.
func (v *Validator) Stats() CacheStats {
	return CacheStats{Hits: v.hits.Load(), Misses: v.misses.Load(), Entries: v.cache.len(), Size: v.cache.size}
}

// A Token is an access token and its SHA-256, which keys the
// verified-token cache and names the token in logs. A request's token is
// hashed once (NewToken) and handed to Lookup and, if it must, Verify.
type Token struct {
	raw string
	sum [32]byte
}

// NewToken returns raw, a token as ParseProxyAuthorization reads it, with
// its hash.
func NewToken(raw string) Token {
	// The hash only reads raw, so it may see it as bytes without a copy.
	return Token{raw: raw, sum: sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))}
}

// Fingerprint names t in logs without revealing it: the first 8 hex
// digits of its SHA-256, as Identity.Fingerprint has them.
func (t *Token) Fingerprint() string { return fingerprint(&t.sum) }

// Validate returns the identity in token, or an *Error saying why the token
// is refused: Lookup, then Verify if the cache cannot answer. A token
// verified within CacheTTL (and before its exp and its key's expiry) is
// answered from the cache without signature work or allocation.
func (v *Validator) Validate(ctx context.Context, token string) (Identity, error) {
	if err := checkSize(token); err != nil {
		return Identity{}, err
	}
	t := NewToken(token)
	if id, ok := v.Lookup(&t); ok {
		return id, nil
	}
	return v.Verify(ctx, &t)
}

// Lookup returns the identity of t if v verified t and keeps it: no
// signature work, no wait and no allocation, so an event loop may ask it.
// It counts a hit or a miss; after a miss, Verify decides.
func (v *Validator) Lookup(t *Token) (Identity, bool) {
	if checkSize(t.raw) != nil {
		return Identity{}, false // Verify refuses it at once
	}
	if id, ok := v.cache.get(&t.sum, v.keys.now().UnixNano()); ok {
		v.hits.Add(1)
		return id, true
	}
	v.misses.Add(1)
	return Identity{}, false
}

// Verify checks t in full, as Lookup could not answer it, and keeps it if
// valid. A token another request verified since is answered from the
// cache. On an unknown kid it refreshes the keys, at most once per
// UnknownKeyRefreshInterval; ctx bounds only that wait.
func (v *Validator) Verify(ctx context.Context, t *Token) (Identity, error) {
	if err := checkSize(t.raw); err != nil {
		return Identity{}, err
	}
	now := v.keys.now()
	if id, ok := v.cache.get(&t.sum, now.UnixNano()); ok {
		return id, nil
	}
	id, until, err := v.verify(ctx, t.raw, now)
	if err != nil {
		return Identity{}, err
	}
	id.Fingerprint = t.Fingerprint()
	v.cache.put(&t.sum, id, until.UnixNano(), now.UnixNano())
	return id, nil
}

// checkSize refuses a token that is empty or too long to be one, before
// it is hashed or parsed.
func checkSize(token string) error {
	if token == "" {
		return refuse(ReasonMissing, "no token")
	}
	if len(token) > MaxHeaderBytes {
		return refuse(ReasonMalformed, "token is %d bytes, over %d", len(token), MaxHeaderBytes)
	}
	return nil
}

// Fingerprint is Token.Fingerprint for a token not read into a Token.
func Fingerprint(token string) string {
	t := NewToken(token)
	return t.Fingerprint()
}

func fingerprint(sum *[32]byte) string { return hex.EncodeToString(sum[:4]) }

// claims are the parts of an Entra access token the rules read.
type claims struct {
	jwt.Claims
	TenantID string  `json:"tid"`
	ObjectID string  `json:"oid"`
	AppID    string  `json:"appid"` // v1
	AZP      string  `json:"azp"`   // v2
	IDType   *string `json:"idtyp"`
	Scope    present `json:"scp"`
}

// present records that a claim occurs at all, whatever its value
// (even null or "").
type present bool

func (p *present) UnmarshalJSON([]byte) error { *p = true; return nil }

// verify checks token fully and returns its identity and how long it may
// be cached: until the earliest of exp, now+CacheTTL and the signing key's
// expiry.
func (v *Validator) verify(ctx context.Context, token string, now time.Time) (Identity, time.Time, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if algErr, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
		return Identity{}, time.Time{}, refuse(ReasonBadSignature,
			"token alg is %s; Entra access tokens are RS256", quote(string(algErr.Got)))
	}
	if err != nil {
		return Identity{}, time.Time{}, refuse(ReasonMalformed, "token is not a compact JWS (base64url header.payload.signature); send the access token as issued")
	}
	kid := jws.Signatures[0].Header.KeyID
	if kid == "" {
		return Identity{}, time.Time{}, refuse(ReasonUnknownKey, "token header has no kid; Entra access tokens name their signing key")
	}
	pub, keyUntil, st, err := v.keys.keyFor(ctx, kid, now)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return Identity{}, time.Time{}, refuse(ReasonBadSignature,
			"signature does not verify with tenant %s's key %s", v.keys.tenant, quote(kid))
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Identity{}, time.Time{}, refuse(ReasonMalformed, "token claims are not a JSON object of the expected types")
	}
	if err := v.checkClaims(&c, st, now); err != nil {
		return Identity{}, time.Time{}, err
	}
	appID := c.AZP
	if c.Issuer == st.issuerV1 {
		appID = c.AppID
	}
	id := Identity{
		ObjectID: strings.ToLower(c.ObjectID),
		AppID:    strings.ToLower(appID),
		TenantID: v.keys.tenant,
		Expiry:   c.Expiry.Time(),
	}
	until := now.Add(CacheTTL)
	for _, t := range [...]time.Time{id.Expiry, keyUntil} {
		if t.Before(until) {
			until = t
		}
	}
	return id, until, nil
}

// checkClaims applies the claim rules, in the order their reasons are
// most useful: who issued it and for whom, then when, then what kind.
func (v *Validator) checkClaims(c *claims, st *keyState, now time.Time) error {
	if c.Issuer != st.issuerV2 && c.Issuer != st.issuerV1 {
		return refuse(ReasonWrongIssuer, "iss %s is neither %s nor %s; the token is from another tenant or cloud",
			quote(c.Issuer), st.issuerV2, st.issuerV1)
	}
	if !strings.EqualFold(c.TenantID, v.keys.tenant) {
		return refuse(ReasonWrongTenant, "tid %s is not tenant %s", quote(c.TenantID), v.keys.tenant)
	}
	if c.Expiry == nil {
		return refuse(ReasonMalformed, "token has no exp claim")
	}
	e := v.expected
	e.Issuer = c.Issuer
	e.Time = now
	switch err := c.Claims.ValidateWithLeeway(e, v.skew); {
	case err == nil:
	case errors.Is(err, jwt.ErrInvalidAudience):
		return refuse(ReasonWrongAudience, "aud %s is not one of entra.audiences; request the token for the proxy's resource (e.g. resource=api://azegress)",
			quote(strings.Join(c.Audience, " ")))
	case errors.Is(err, jwt.ErrExpired):
		return refuse(ReasonExpired, "token expired at %s (clock skew %s); fetch a fresh token",
			c.Expiry.Time().UTC().Format(time.RFC3339), v.skew)
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		start := c.NotBefore
		if start == nil || c.IssuedAt != nil && c.IssuedAt.Time().After(start.Time()) {
			start = c.IssuedAt
		}
		return refuse(ReasonNotYetValid, "token is not valid before %s (clock skew %s); check the clocks",
			start.Time().UTC().Format(time.RFC3339), v.skew)
	default:
		return refuse(ReasonWrongIssuer, "%v", err)
	}
	if c.Scope {
		return refuse(ReasonDelegatedToken, "token has scp: it is a user's delegated token; use a managed identity's app-only token")
	}
	if c.IDType != nil && *c.IDType != "app" {
		return refuse(ReasonDelegatedToken, "idtyp is %s, not app; use a managed identity's app-only token", quote(*c.IDType))
	}
	if c.ObjectID == "" {
		return refuse(ReasonNoOID, "token has no oid claim; use a managed identity's access token")
	}
	return nil
}
