package identity

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/azegress/azegress/identity/identitytest"
)

const jwtLike = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJ4In0.c2lnbmF0dXJl"

func TestParseProxyAuthorization(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	// pad makes a Bearer header of exactly n bytes.
	pad := func(n int) string { return "Bearer " + strings.Repeat("a", n-len("Bearer ")) }
	for _, tt := range []struct {
		name   string
		header string
		want   string
		reason Reason
	}{
		{"basic", identitytest.BasicAuth("azegress", jwtLike), jwtLike, ""},
		{"basic empty username", "Basic " + b64(":"+jwtLike), jwtLike, ""},
		{"basic colon in password", "Basic " + b64("u:"+jwtLike+":x:y"), jwtLike + ":x:y", ""},
		{"basic scheme case", "bAsIc " + b64("u:"+jwtLike), jwtLike, ""},
		{"basic extra spaces", "  Basic \t  " + b64("u:"+jwtLike) + " ", jwtLike, ""},
		{"bearer", "Bearer " + jwtLike, jwtLike, ""},
		{"bearer upper case", "BEARER " + jwtLike, jwtLike, ""},
		{"bearer tab", "Bearer\t" + jwtLike, jwtLike, ""},
		{"exactly 16 KiB", pad(MaxHeaderBytes), strings.Repeat("a", MaxHeaderBytes-len("Bearer ")), ""},

		{"empty", "", "", ReasonMissing},
		{"blank", " \t ", "", ReasonMissing},
		{"one byte over 16 KiB", pad(MaxHeaderBytes + 1), "", ReasonHeaderTooLarge},
		{"16000-char password in Basic", identitytest.BasicAuth("azegress", strings.Repeat("a", 16000)), "", ReasonHeaderTooLarge},
		{"scheme only", "Basic", "", ReasonMalformed},
		{"scheme and space", "Bearer   ", "", ReasonMalformed},
		{"no scheme", jwtLike, "", ReasonMalformed},
		{"other scheme", "Digest " + jwtLike, "", ReasonMalformed},
		{"negotiate", "Negotiate " + jwtLike, "", ReasonMalformed},
		{"basic not base64", "Basic " + jwtLike + "!", "", ReasonMalformed},
		{"basic raw token", "Basic " + jwtLike, "", ReasonMalformed},
		{"basic no colon", "Basic " + b64(jwtLike), "", ReasonMalformed},
		{"basic empty password", "Basic " + b64("azegress:"), "", ReasonMalformed},
		{"basic colon only", "Basic " + b64(":"), "", ReasonMalformed},
		{"bearer with space", "Bearer " + jwtLike + " " + jwtLike, "", ReasonMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProxyAuthorization(tt.header)
			if got != tt.want || ReasonOf(err) != tt.reason {
				t.Fatalf("got %.40q, %v; want %.40q, reason %q", got, err, tt.want, tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), jwtLike) {
				t.Fatalf("error %q quotes the token", err)
			}
		})
	}
}

func FuzzParseProxyAuthorization(f *testing.F) {
	for _, s := range []string{
		"", "Basic", "Bearer ", "Basic Og==", "Basic YTo=", "Basic YTpi", "basic  YTpiOmM= ",
		identitytest.BasicAuth("azegress", jwtLike), identitytest.BasicAuth("", jwtLike),
		"Bearer " + jwtLike, "BEARER\t" + jwtLike, "Digest x", "Basic !!!!",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseProxyAuthorization(s)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
		} else if tok == "" || len(tok) > len(s) {
			t.Fatalf("token %q from %q", tok, s)
		}
		// Refused credentials never reach the error text.
		const marker = "zQx9TkMARK"
		for _, h := range []string{
			"Bearer " + marker + s + " x",
			"Basic " + base64.StdEncoding.EncodeToString([]byte(marker+s)),
			"Basic " + marker + s,
			marker + s,
			"Negotiate " + marker + s,
		} {
			if _, err := ParseProxyAuthorization(h); err != nil && strings.Contains(err.Error(), marker) {
				t.Fatalf("error %q quotes the header", err)
			}
		}
		// Any non-empty password without whitespace round-trips through
		// Basic, with any user name that has no colon.
		if s != "" && !strings.ContainsAny(s, " \t") {
			h := identitytest.BasicAuth("u", s)
			if len(h) <= MaxHeaderBytes {
				tok, err := ParseProxyAuthorization(h)
				if err != nil || tok != s {
					t.Fatalf("Basic round trip of %q: got %q, %v", s, tok, err)
				}
				if tok, err := ParseProxyAuthorization("Bearer " + s); err != nil || tok != s {
					t.Fatalf("Bearer round trip of %q: got %q, %v", s, tok, err)
				}
			}
		}
	})
}
