package identity

import (
	"errors"
	"fmt"
	"strconv"
)

// Reason is why a credential was refused. It is a bounded set, so it may
// label metrics and appear in logs and 407 bodies.
type Reason string

// The reasons, as named in the design notes (identity.md, Design 11), plus
// ReasonHeaderTooLarge, which the proxy answers with 431 instead of 407.
const (
	ReasonMissing         Reason = "missing"          // no credentials
	ReasonMalformed       Reason = "malformed"        // not Basic/Bearer, bad base64, not a JWT, claims not JSON, no exp
	ReasonBadSignature    Reason = "bad_signature"    // alg not RS256, or the signature does not verify
	ReasonUnknownKey      Reason = "unknown_key"      // kid absent or not in the tenant's key set
	ReasonExpired         Reason = "expired"          // exp (plus clock skew) has passed
	ReasonNotYetValid     Reason = "not_yet_valid"    // nbf (minus clock skew) is in the future
	ReasonWrongIssuer     Reason = "wrong_issuer"     // iss is neither of the tenant's issuers
	ReasonWrongTenant     Reason = "wrong_tenant"     // tid is not the configured tenant
	ReasonWrongAudience   Reason = "wrong_audience"   // aud is none of the configured audiences
	ReasonDelegatedToken  Reason = "delegated_token"  // scp present, or idtyp other than app: a user's token
	ReasonNoOID           Reason = "no_oid"           // no oid claim to key the policy on
	ReasonIdentityUnknown Reason = "identity_unknown" // valid token, no client block lists it (the proxy decides this)
	ReasonKeysUnavailable Reason = "keys_unavailable" // no signing keys loaded within 24 h: fail closed
	ReasonHeaderTooLarge  Reason = "header_too_large" // Proxy-Authorization over MaxHeaderBytes
)

// reasons is the one list of reasons; Reasons returns a copy.
var reasons = [...]Reason{
	ReasonMissing, ReasonMalformed, ReasonBadSignature, ReasonUnknownKey,
	ReasonExpired, ReasonNotYetValid, ReasonWrongIssuer, ReasonWrongTenant,
	ReasonWrongAudience, ReasonDelegatedToken, ReasonNoOID,
	ReasonIdentityUnknown, ReasonKeysUnavailable, ReasonHeaderTooLarge,
}

// Reasons returns every Reason, so metrics can create each label value up
// front.
func Reasons() []Reason { return append([]Reason(nil), reasons[:]...) }

// Error is a refused credential: a Reason and a detail that says what to
// fix. Neither ever contains the token or the header it came in.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

// ReasonOf returns the Reason of err, or "" when err is not an *Error.
func ReasonOf(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}

func refuse(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// quote renders an attacker-chosen value (a claim, a kid, an alg) for an
// error detail: quoted, so control characters are escaped, and cut short.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
