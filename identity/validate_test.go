package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
)

// TestValidateClaims is the claim matrix of the design notes (identity.md,
// Design 13): each row one way a token is right or wrong.
func TestValidateClaims(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	key1 := f.idp.Keys()[0]
	stranger := identitytest.NewKey(t, "stranger")
	der, err := x509.MarshalPKIXPublicKey(&key1.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Unix()
	const otherTenant = "22222222-3333-4444-5555-666666666666"
	type claims = map[string]any
	for _, tt := range []struct {
		name      string
		tok       identitytest.Token
		raw       string // used instead of tok when set
		reason    Reason
		wantAppID string
	}{
		{name: "v2", tok: identitytest.Token{}, wantAppID: identitytest.AppID},
		{name: "v1 App ID URI", tok: identitytest.Token{Version: 1}, wantAppID: identitytest.AppID},
		{name: "v1 App ID URI with slash", tok: identitytest.Token{Version: 1, Claims: claims{"aud": identitytest.AppIDURI + "/"}}},
		{name: "v1 client ID", tok: identitytest.Token{Version: 1, Claims: claims{"aud": identitytest.ClientID}}},
		{name: "aud array", tok: identitytest.Token{Claims: claims{"aud": []string{"other", identitytest.ClientID}}}},
		{name: "v1 appid, not azp", tok: identitytest.Token{Version: 1, Claims: claims{"azp": "ffffffff-0000-0000-0000-000000000000"}}, wantAppID: identitytest.AppID},
		{name: "v2 azp, not appid", tok: identitytest.Token{Claims: claims{"appid": "ffffffff-0000-0000-0000-000000000000"}}, wantAppID: identitytest.AppID},
		{name: "no idtyp", tok: identitytest.Token{Claims: claims{"idtyp": nil}}},

		{name: "wrong aud ARM", tok: identitytest.Token{Claims: claims{"aud": "https://management.azure.com/"}}, reason: ReasonWrongAudience},
		{name: "wrong aud other app", tok: identitytest.Token{Claims: claims{"aud": "api://other"}}, reason: ReasonWrongAudience},
		{name: "aud with two slashes", tok: identitytest.Token{Version: 1, Claims: claims{"aud": identitytest.AppIDURI + "//"}}, reason: ReasonWrongAudience},
		{name: "no aud", tok: identitytest.Token{Claims: claims{"aud": nil}}, reason: ReasonWrongAudience},
		{name: "wrong iss other tenant", tok: identitytest.Token{Claims: claims{"iss": identitytest.IssuerV2(otherTenant)}}, reason: ReasonWrongIssuer},
		{name: "wrong iss v2 with slash", tok: identitytest.Token{Claims: claims{"iss": identitytest.IssuerV2(identitytest.TenantID) + "/"}}, reason: ReasonWrongIssuer},
		{name: "wrong iss v1 without slash", tok: identitytest.Token{Version: 1, Claims: claims{"iss": strings.TrimSuffix(identitytest.IssuerV1(identitytest.TenantID), "/")}}, reason: ReasonWrongIssuer},
		{name: "no iss", tok: identitytest.Token{Claims: claims{"iss": nil}}, reason: ReasonWrongIssuer},
		{name: "wrong tid", tok: identitytest.Token{Claims: claims{"tid": otherTenant}}, reason: ReasonWrongTenant},
		{name: "no tid", tok: identitytest.Token{Claims: claims{"tid": nil}}, reason: ReasonWrongTenant},

		{name: "expired", tok: identitytest.Token{Claims: claims{"exp": now - 3600}}, reason: ReasonExpired},
		{name: "exp at skew edge", tok: identitytest.Token{Claims: claims{"exp": now - 60}}},
		{name: "exp past skew edge", tok: identitytest.Token{Claims: claims{"exp": now - 61}}, reason: ReasonExpired},
		{name: "no exp", tok: identitytest.Token{Claims: claims{"exp": nil}}, reason: ReasonMalformed},
		{name: "exp not a number", tok: identitytest.Token{Claims: claims{"exp": "tomorrow"}}, reason: ReasonMalformed},
		{name: "future nbf", tok: identitytest.Token{Claims: claims{"nbf": now + 3600, "iat": now}}, reason: ReasonNotYetValid},
		{name: "nbf at skew edge", tok: identitytest.Token{Claims: claims{"nbf": now + 60, "iat": now}}},
		{name: "nbf past skew edge", tok: identitytest.Token{Claims: claims{"nbf": now + 61, "iat": now}}, reason: ReasonNotYetValid},
		{name: "no nbf", tok: identitytest.Token{Claims: claims{"nbf": nil}}},
		{name: "future iat", tok: identitytest.Token{Claims: claims{"iat": now + 600, "nbf": nil}}, reason: ReasonNotYetValid},

		{name: "alg none", tok: identitytest.Token{Alg: "none"}, reason: ReasonBadSignature},
		{name: "alg HS256 keyed with the public key", tok: identitytest.Token{Alg: "HS256", HMACKey: der}, reason: ReasonBadSignature},
		{name: "alg RS384", tok: identitytest.Token{Alg: "RS384"}, reason: ReasonBadSignature},
		{name: "alg PS256", tok: identitytest.Token{Alg: "PS256"}, reason: ReasonBadSignature},
		{name: "RS256 with the wrong key", tok: identitytest.Token{Key: stranger, KeyID: key1.ID}, reason: ReasonBadSignature},
		{name: "unknown kid", tok: identitytest.Token{Key: stranger}, reason: ReasonUnknownKey},
		{name: "no kid", tok: identitytest.Token{KeyID: "-"}, reason: ReasonUnknownKey},
		{name: "tampered payload", raw: tamper(f.mint(t, identitytest.Token{})), reason: ReasonBadSignature},

		{name: "scp present", tok: identitytest.Token{Claims: claims{"scp": "user_impersonation"}}, reason: ReasonDelegatedToken},
		{name: "scp empty", tok: identitytest.Token{Claims: claims{"scp": ""}}, reason: ReasonDelegatedToken},
		{name: "idtyp user", tok: identitytest.Token{Claims: claims{"idtyp": "user"}}, reason: ReasonDelegatedToken},
		{name: "no oid", tok: identitytest.Token{Claims: claims{"oid": nil}}, reason: ReasonNoOID},
		{name: "empty oid", tok: identitytest.Token{Claims: claims{"oid": ""}}, reason: ReasonNoOID},

		{name: "empty", raw: "", reason: ReasonMissing},
		{name: "not a JWT", raw: "not-a-jwt", reason: ReasonMalformed},
		{name: "three garbage parts", raw: "a.b.c", reason: ReasonMalformed},
		{name: "over 16 KiB", raw: strings.Repeat("a", MaxHeaderBytes+1), reason: ReasonMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.raw
			if tt.raw == "" && tt.reason != ReasonMissing {
				token = f.mint(t, tt.tok)
			}
			id := wantReason(t, f.validator(t), token, tt.reason)
			if tt.reason != "" {
				return
			}
			sum := sha256.Sum256([]byte(token))
			want := Identity{
				ObjectID: identitytest.ObjectID, TenantID: identitytest.TenantID,
				AppID: id.AppID, Expiry: id.Expiry, Fingerprint: hex.EncodeToString(sum[:4]),
			}
			if id != want || id.Expiry.IsZero() {
				t.Fatalf("got %+v, want %+v", id, want)
			}
			if tt.wantAppID != "" && id.AppID != tt.wantAppID {
				t.Fatalf("AppID %q, want %q", id.AppID, tt.wantAppID)
			}
		})
	}
}

// tamper changes one claim of a signed token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	parts[1] = parts[1][:len(parts[1])-2] + "AA"
	return strings.Join(parts, ".")
}

// TestValidateNullScope: a "scp": null claim is still a delegated token.
func TestValidateNullScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	// A nil override removes the claim, so write null through a raw value.
	tok := f.mint(t, identitytest.Token{Claims: map[string]any{"scp": rawNull{}}})
	wantReason(t, f.validator(t), tok, ReasonDelegatedToken)
}

type rawNull struct{}

func (rawNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// TestValidateErrorsQuoteNoToken: no refusal's text carries the token.
func TestValidateErrorsQuoteNoToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validator(t)
	for _, tok := range []identitytest.Token{
		{Claims: map[string]any{"aud": "x"}}, {Alg: "none"}, {Claims: map[string]any{"exp": t0.Unix() - 3600}},
		{Key: identitytest.NewKey(t, "zz")},
	} {
		token := f.mint(t, tok)
		_, err := v.Validate(t.Context(), token)
		if err == nil {
			t.Fatal("valid")
		}
		for _, part := range strings.Split(token, ".") {
			if len(part) > 8 && strings.Contains(err.Error(), part) {
				t.Fatalf("error %q quotes the token", err)
			}
		}
	}
}

// TestValidateSkew: a configured skew moves the exp and nbf edges.
func TestValidateSkew(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v, err := NewValidator(f.keys, Config{Audiences: []string{identitytest.ClientID}, ClockSkew: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Unix()
	wantReason(t, v, f.mint(t, identitytest.Token{Claims: map[string]any{"exp": now - 300}}), "")
	wantReason(t, v, f.mint(t, identitytest.Token{Claims: map[string]any{"exp": now - 301}}), ReasonExpired)
	wantReason(t, v, f.mint(t, identitytest.Token{Claims: map[string]any{"nbf": now + 300, "iat": now}}), "")
	wantReason(t, v, f.mint(t, identitytest.Token{Claims: map[string]any{"nbf": now + 301, "iat": now}}), ReasonNotYetValid)
}

// TestValidateExactZeroSkew: clock_skew = "0s" in a policy is no leeway,
// not the default 60s: ExactSkew keeps a zero ClockSkew zero.
func TestValidateExactZeroSkew(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	now := t0.Unix()
	for _, tt := range []struct {
		name   string
		cfg    Config
		claims map[string]any
		reason Reason
	}{
		{"exact: at exp", Config{ExactSkew: true}, map[string]any{"exp": now}, ""},
		{"exact: 1s past exp", Config{ExactSkew: true}, map[string]any{"exp": now - 1}, ReasonExpired},
		{"exact: nbf 1s ahead", Config{ExactSkew: true}, map[string]any{"nbf": now + 1, "iat": now}, ReasonNotYetValid},
		{"default: 1s past exp", Config{}, map[string]any{"exp": now - 1}, ""},
		{"exact 2s: 1s past exp", Config{ClockSkew: 2 * time.Second, ExactSkew: true}, map[string]any{"exp": now - 1}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Audiences = []string{identitytest.ClientID}
			v, err := NewValidator(f.keys, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, v, f.mint(t, identitytest.Token{Claims: tt.claims}), tt.reason)
		})
	}
}

func TestNewValidatorConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Audiences: []string{"api://azegress"}}, true},
		{"max skew", Config{Audiences: []string{"api://azegress"}, ClockSkew: MaxClockSkew}, true},
		{"no audiences", Config{}, false},
		{"empty audience", Config{Audiences: []string{"/"}}, false},
		{"skew over 5m", Config{Audiences: []string{"a"}, ClockSkew: MaxClockSkew + time.Second}, false},
		{"negative skew", Config{Audiences: []string{"a"}, ClockSkew: -time.Second}, false},
		{"negative cache", Config{Audiences: []string{"a"}, CacheSize: -1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewValidator(f.keys, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewValidator: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := NewValidator(nil, Config{Audiences: []string{"a"}}); err == nil {
		t.Fatal("NewValidator(nil keys) succeeded")
	}
}

func TestReasons(t *testing.T) {
	t.Parallel()
	want := "missing malformed bad_signature unknown_key expired not_yet_valid wrong_issuer wrong_tenant " +
		"wrong_audience delegated_token no_oid identity_unknown keys_unavailable header_too_large"
	var got []string
	for _, r := range Reasons() {
		got = append(got, string(r))
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("Reasons() = %v\nwant %s", got, want)
	}
}
