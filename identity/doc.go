// Package identity turns a proxy credential into a managed identity: it
// reads Proxy-Authorization, validates the Entra access token in it, and
// returns who it names (Identity: oid, appid/azp, tid, exp, a fingerprint).
// Which client block that identity selects, and the 407/403/431 answers,
// belong to the proxy.
//
// It owns credential parsing, token validation, the tenant's signing-key
// cache and the verified-token cache. It imports the standard library and
// go-jose (signature and claim checks; no hand-written JWS or RSA code),
// never the proxy, policy, goproxy or Prometheus (TestDeps): the proxy
// reads Keys.Stats and Validator.Stats into its own metrics.
//
// # Use
//
//	keys, err := identity.NewKeys(identity.KeysConfig{TenantID: tid, Authority: authority})
//	go keys.Run(ctx)                        // load now, then hourly; Ready() once loaded
//	v, err := identity.NewValidator(keys, identity.Config{Audiences: auds, ClockSkew: skew})
//	token, err := identity.ParseProxyAuthorization(req.Header.Get("Proxy-Authorization"))
//	id, err := v.Validate(ctx, token)       // err is an *Error with a Reason
//
// Where waiting is not allowed (an event loop), hash the token once and
// ask the cache first; only a miss needs Verify, which may wait for keys:
//
//	t := identity.NewToken(token)
//	id, ok := v.Lookup(&t)                  // a hit: no signature work, no allocation
//	if !ok { go func() { id, err := v.Verify(ctx, &t); ... }() }
//
// On a policy reload, keep keys while keys.Serves(tenant, authority) and
// build a new Validator (its cache is tied to the audiences and skew).
// A policy's clock_skew = "0s" is Config{ClockSkew: 0, ExactSkew: true}:
// a zero ClockSkew alone means the default. NewStaticKeys holds a saved
// key set instead, to check a token offline.
//
// # Credentials
//
// "Basic base64(user:JWT)": the user is ignored and may be empty; the
// token is everything after the first colon. "Bearer JWT". The scheme is
// case-insensitive. A value over MaxHeaderBytes (16 KiB) is
// ReasonHeaderTooLarge; anything else unreadable is ReasonMalformed.
//
// # Validation rules, in order
//
//   - compact JWS with alg RS256 only (none, HS256, PS256 ... are
//     bad_signature); the header's kid names a key of the tenant (else
//     unknown_key); the signature verifies (else bad_signature);
//   - iss is exactly the v2 or the v1 issuer from the tenant's OpenID
//     configuration documents (wrong_issuer); tid is the tenant
//     (wrong_tenant);
//   - aud is one of the audiences, a trailing "/" ignored on either side
//     (wrong_audience);
//   - exp is required (malformed without it) and, with the clock skew,
//     not past (expired); nbf and iat, with the skew, not in the future
//     (not_yet_valid);
//   - no scp claim and idtyp, if present, "app": an app-only token, not a
//     user's (delegated_token); oid present (no_oid).
//
// # Keys
//
// Issuers and key-set URLs come from {authority}/{tenant}/v2.0/.well-known/
// openid-configuration and {authority}/{tenant}/.well-known/openid-configuration,
// never from a table of clouds. The authority and the key-set URLs must be
// https, or http to a loopback host (a test IdP); bodies are capped at 1 MiB.
// Only RSA keys of at least 2048 bits for signing with RS256 are kept.
// Following Microsoft's guidance, each kid is kept KeyLifetime (24 h) after
// a fetch last listed it; Run refreshes every hour with ±10 % jitter (after
// a failure: 10 s, doubling to 5 min); a token with an unknown kid
// triggers a refresh at most once per UnknownKeyRefreshInterval (5 min). A
// failed refresh keeps the last good keys. With no key listed in the last
// 24 h (or none ever), every token is keys_unavailable: fail closed.
//
// # Verified-token cache
//
// Keyed by the token's SHA-256, an entry lives until the earliest of exp,
// CacheTTL (10 min) after verification and its key's 24 h expiry. At most
// CacheSize entries (default 10,000, about 3.7 MiB) with CLOCK eviction. A
// hit takes a read lock, does no signature work and allocates nothing.
// Refusals are not cached.
package identity
