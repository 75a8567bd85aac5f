package identity

import (
	"encoding/base64"
	"strings"
	"unsafe"
)

// MaxHeaderBytes caps a Proxy-Authorization value. Real Entra tokens are
// 1–2 KB; clients pass 16,000-character passwords through unchanged, so
// the cap leaves room for those and refuses anything larger (the proxy
// answers 431).
const MaxHeaderBytes = 16 << 10

// ParseProxyAuthorization returns the JWT carried by a Proxy-Authorization
// value: either "Basic base64(user:JWT)", where the user is ignored (and
// may be empty) and the password is everything after the first colon, or
// "Bearer JWT". The scheme is case-insensitive (RFC 9110, 11.1). It does
// not validate the token; Validator.Validate does.
//
// Errors are *Error with ReasonMissing (empty value), ReasonHeaderTooLarge
// (over MaxHeaderBytes) or ReasonMalformed. They never quote the value.
func ParseProxyAuthorization(header string) (token string, err error) {
	if len(header) > MaxHeaderBytes {
		return "", refuse(ReasonHeaderTooLarge,
			"Proxy-Authorization is %d bytes, over the %d-byte limit; send the access token alone (1–2 KB)",
			len(header), MaxHeaderBytes)
	}
	h := strings.Trim(header, " \t")
	if h == "" {
		return "", refuse(ReasonMissing, "no Proxy-Authorization; send Basic base64(azegress:<token>) or Bearer <token>")
	}
	scheme, creds, ok := strings.Cut(h, " ")
	if !ok {
		scheme, creds, ok = strings.Cut(h, "\t")
	}
	creds = strings.TrimLeft(creds, " \t")
	if !ok || creds == "" {
		return "", refuse(ReasonMalformed, "Proxy-Authorization has no credentials after the scheme; send Basic base64(azegress:<token>) or Bearer <token>")
	}
	switch {
	case strings.EqualFold(scheme, "Basic"):
		return parseBasic(creds)
	case strings.EqualFold(scheme, "Bearer"):
		if strings.ContainsAny(creds, " \t") {
			return "", refuse(ReasonMalformed, "Bearer credentials contain whitespace; send the access token alone")
		}
		return creds, nil
	}
	return "", refuse(ReasonMalformed, "Proxy-Authorization scheme is neither Basic nor Bearer")
}

// parseBasic decodes RFC 7617 credentials and returns the password.
func parseBasic(creds string) (string, error) {
	buf, err := base64.StdEncoding.DecodeString(creds)
	if err != nil || len(buf) == 0 {
		return "", refuse(ReasonMalformed, "Basic credentials are not base64; put the token in the proxy URL's password (http://azegress:<token>@proxy:3128)")
	}
	_, pass, ok := strings.Cut(unsafe.String(unsafe.SliceData(buf), len(buf)), ":")
	if !ok {
		return "", refuse(ReasonMalformed, "Basic credentials have no colon; put the token in the password, after a user name (azegress:<token>)")
	}
	if pass == "" {
		return "", refuse(ReasonMalformed, "Basic password is empty; put the access token in the password (azegress:<token>)")
	}
	// buf is this call's own and is never written again, so the string
	// may share it: one allocation per header instead of two.
	return pass, nil
}
