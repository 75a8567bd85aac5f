package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/azegress/azegress/identity/identitytest"
)

// TestUnknownKidRefreshes: a key published after the first load is found
// by refreshing when a token names it.
func TestUnknownKidRefreshes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validator(t)
	key2 := identitytest.NewKey(t, "key-2")
	f.idp.SetKeys(append(f.idp.Keys(), key2)...)
	before := f.idp.KeySetFetches()
	wantReason(t, v, f.mint(t, identitytest.Token{Key: key2}), "")
	if got := f.idp.KeySetFetches() - before; got == 0 {
		t.Fatal("the unknown kid fetched no key set")
	}
	if s := f.keys.Stats(); s.RefreshOK != 2 || s.Keys != 2 {
		t.Fatalf("stats %+v, want 2 refreshes and 2 keys", s)
	}
}

// TestUnknownKidLimiter: tokens naming unknown kids refetch the keys at
// most once per UnknownKeyRefreshInterval.
func TestUnknownKidLimiter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validator(t)
	ghost := identitytest.NewKey(t, "ghost")
	for _, step := range []struct {
		advance       time.Duration
		wantRefreshes uint64
	}{
		{0, 2}, // the first unknown kid refreshes
		{0, 2},
		{UnknownKeyRefreshInterval - time.Second, 2},
		{time.Second, 3}, // 5 minutes after the last one
		{time.Minute, 3},
	} {
		f.clock.Advance(step.advance)
		wantReason(t, v, f.mint(t, identitytest.Token{Key: ghost, Claims: map[string]any{"exp": t0.Add(48 * time.Hour).Unix()}}), ReasonUnknownKey)
		if got := f.refreshes(); got != step.wantRefreshes {
			t.Fatalf("at +%s: %d refreshes, want %d", f.clock.Now().Sub(t0), got, step.wantRefreshes)
		}
	}
	// A published key still takes effect once the limiter allows.
	f.idp.SetKeys(append(f.idp.Keys(), ghost)...)
	f.clock.Advance(UnknownKeyRefreshInterval)
	wantReason(t, v, f.mint(t, identitytest.Token{Key: ghost}), "")
}

// TestKeyRoll: after the IdP replaces key-1 with key-2, tokens of both
// verify until key-1 has been unlisted for KeyLifetime.
func TestKeyRoll(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	key1 := f.idp.Keys()[0]
	key2 := identitytest.NewKey(t, "key-2")
	far := map[string]any{"exp": t0.Add(72 * time.Hour).Unix()}
	old := f.mint(t, identitytest.Token{Key: key1, Claims: far})
	f.idp.SetKeys(key2)
	fresh := f.mint(t, identitytest.Token{Key: key2, Claims: far})

	v := f.validator(t)
	wantReason(t, v, fresh, "") // refreshes: key-2 now cached, key-1 no longer listed
	wantReason(t, v, old, "")   // key-1 last seen at t0

	f.clock.Advance(KeyLifetime - time.Minute)
	if err := f.keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	v = f.validator(t)
	wantReason(t, v, old, "")
	f.clock.Advance(time.Minute)
	v = f.validator(t)
	wantReason(t, v, old, ReasonUnknownKey)
	wantReason(t, v, fresh, "")
	if s := f.keys.Stats(); s.Keys != 1 {
		t.Fatalf("%d usable keys, want 1", s.Keys)
	}
}

// TestIdPDown: with cached keys a failed refresh changes nothing but the
// counters; without them every token is refused keys_unavailable.
func TestIdPDown(t *testing.T) {
	t.Parallel()
	t.Run("with cached keys", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, true)
		f.idp.SetDown(true)
		if err := f.keys.Refresh(t.Context()); err == nil {
			t.Fatal("refresh succeeded with the IdP down")
		}
		wantReason(t, f.validator(t), f.mint(t, identitytest.Token{}), "")
		// An unknown kid cannot be fetched: refused, not keys_unavailable.
		wantReason(t, f.validator(t), f.mint(t, identitytest.Token{Key: identitytest.NewKey(t, "new")}), ReasonUnknownKey)
		s := f.keys.Stats()
		if !f.keys.Ready() || s.RefreshOK != 1 || s.RefreshFailed != 2 || !s.LastSuccess.Equal(t0) || s.Keys != 1 {
			t.Fatalf("ready %v, stats %+v", f.keys.Ready(), s)
		}
	})
	t.Run("never loaded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.idp.SetDown(true)
		token := f.mint(t, identitytest.Token{})
		wantReason(t, f.validator(t), token, ReasonKeysUnavailable)
		if f.keys.Ready() {
			t.Fatal("Ready with no keys")
		}
		f.idp.SetDown(false)
		wantReason(t, f.validator(t), token, ReasonKeysUnavailable) // limiter: within 5 minutes
		f.clock.Advance(UnknownKeyRefreshInterval)
		wantReason(t, f.validator(t), token, "")
		if !f.keys.Ready() {
			t.Fatal("not Ready after a load")
		}
	})
}

// TestKeyLifetime: keys not listed for 24 h stop verifying (fail closed),
// also for a token verified from the cache shortly before.
func TestKeyLifetime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	f.idp.SetDown(true)
	v := f.validator(t)
	token := f.mint(t, identitytest.Token{Claims: map[string]any{"exp": t0.Add(48 * time.Hour).Unix()}})
	f.clock.Advance(KeyLifetime - 2*time.Minute)
	wantReason(t, v, token, "") // verified, cached until the key's expiry
	f.clock.Advance(2 * time.Minute)
	wantReason(t, v, token, ReasonKeysUnavailable)
	if s := f.keys.Stats(); s.Keys != 0 {
		t.Fatalf("%d usable keys, want 0", s.Keys)
	}
	f.idp.SetDown(false)
	f.clock.Advance(UnknownKeyRefreshInterval)
	wantReason(t, v, token, "")
}

func TestNewKeysConfig(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, tenant, authority string
		ok                      bool
	}{
		{"default authority", identitytest.TenantID, "", true},
		{"https", identitytest.TenantID, "https://login.microsoftonline.us/", true},
		{"upper-case tenant", strings.ToUpper(identitytest.TenantID), "", true},
		{"loopback http", identitytest.TenantID, "http://127.0.0.1:8080", true},
		{"localhost http", identitytest.TenantID, "http://localhost:8080", true},
		{"ipv6 loopback http", identitytest.TenantID, "http://[::1]:8080", true},
		{"remote http", identitytest.TenantID, "http://login.microsoftonline.com", false},
		{"private address http", identitytest.TenantID, "http://10.1.2.3", false},
		{"loopback-looking name http", identitytest.TenantID, "http://127.0.0.1.example", false},
		{"other scheme", identitytest.TenantID, "ftp://127.0.0.1", false},
		{"no host", identitytest.TenantID, "https://", false},
		{"query", identitytest.TenantID, "https://login.microsoftonline.com/?x=1", false},
		{"userinfo", identitytest.TenantID, "https://u:p@login.microsoftonline.com", false},
		{"domain tenant", "contoso.onmicrosoft.com", "", false},
		{"no tenant", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeys(KeysConfig{TenantID: tt.tenant, Authority: tt.authority})
			if (err == nil) != tt.ok {
				t.Fatalf("NewKeys: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestServes(t *testing.T) {
	t.Parallel()
	k, err := NewKeys(KeysConfig{TenantID: identitytest.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		tenant, authority string
		want              bool
	}{
		{identitytest.TenantID, "", true},
		{strings.ToUpper(identitytest.TenantID), DefaultAuthority + "/", true},
		{identitytest.TenantID, "https://login.microsoftonline.us", false},
		{"22222222-3333-4444-5555-666666666666", "", false},
	} {
		if got := k.Serves(tt.tenant, tt.authority); got != tt.want {
			t.Errorf("Serves(%q, %q) = %v, want %v", tt.tenant, tt.authority, got, tt.want)
		}
	}
}

// TestDiscoveryRefused: documents and key sets that must not load.
func TestDiscoveryRefused(t *testing.T) {
	t.Parallel()
	tenant := identitytest.TenantID
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := identitytest.NewKey(t, "good")
	jwks := func(keys ...jose.JSONWebKey) any { return jose.JSONWebKeySet{Keys: keys} }
	rsaKey := func(k *rsa.PrivateKey, kid, use, alg string) jose.JSONWebKey {
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Use: use, Algorithm: alg}
	}
	for _, tt := range []struct {
		name    string
		issuer  string // v2; v1 is the real one
		jwksURI string // "" means the server's /keys
		keys    any
		status  int
		ok      bool
	}{
		{name: "good", keys: jwks(rsaKey(good.Private, "good", "sig", "RS256")), ok: true},
		{name: "use and alg absent", keys: jwks(rsaKey(good.Private, "good", "", "")), ok: true},
		{name: "issuer of another tenant", issuer: identitytest.IssuerV2("22222222-3333-4444-5555-666666666666"), keys: jwks(rsaKey(good.Private, "good", "sig", "RS256"))},
		{name: "no issuer", issuer: "-", keys: jwks(rsaKey(good.Private, "good", "sig", "RS256"))},
		{name: "http jwks_uri off loopback", jwksURI: "http://login.example/keys", keys: jwks(rsaKey(good.Private, "good", "sig", "RS256"))},
		{name: "no jwks_uri", jwksURI: "-", keys: jwks(rsaKey(good.Private, "good", "sig", "RS256"))},
		{name: "1024-bit key only", keys: jwks(rsaKey(weak, "weak", "sig", "RS256"))},
		{name: "encryption key only", keys: jwks(rsaKey(good.Private, "good", "enc", ""))},
		{name: "RS384 key only", keys: jwks(rsaKey(good.Private, "good", "sig", "RS384"))},
		{name: "no kid", keys: jwks(rsaKey(good.Private, "", "sig", "RS256"))},
		{name: "empty set", keys: jwks()},
		{name: "not JSON", keys: "<html>", status: http.StatusOK},
		{name: "body over 1 MiB", keys: map[string]string{"pad": strings.Repeat("a", maxBodyBytes)}},
		{name: "404", keys: jwks(rsaKey(good.Private, "good", "sig", "RS256")), status: http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				issuer, jwksURI := identitytest.IssuerV2(tenant), srv.URL+"/keys"
				if tt.issuer != "" {
					issuer = strings.TrimPrefix(tt.issuer, "-")
				}
				if tt.jwksURI != "" {
					jwksURI = strings.TrimPrefix(tt.jwksURI, "-")
				}
				var body any
				switch r.URL.Path {
				case "/" + tenant + "/v2.0/.well-known/openid-configuration":
					body = map[string]string{"issuer": issuer, "jwks_uri": jwksURI}
				case "/" + tenant + "/.well-known/openid-configuration":
					body = map[string]string{"issuer": identitytest.IssuerV1(tenant), "jwks_uri": srv.URL + "/keys"}
				case "/keys":
					if tt.status != 0 {
						w.WriteHeader(tt.status)
					}
					if s, ok := tt.keys.(string); ok {
						w.Write([]byte(s))
						return
					}
					body = tt.keys
				}
				json.NewEncoder(w).Encode(body)
			}))
			t.Cleanup(srv.Close)
			k, err := NewKeys(KeysConfig{TenantID: tenant, Authority: srv.URL, Client: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			err = k.Refresh(t.Context())
			if (err == nil) != tt.ok || k.Ready() != tt.ok {
				t.Fatalf("Refresh: %v, Ready %v; want ok=%v", err, k.Ready(), tt.ok)
			}
		})
	}
}

// TestDiscoveryTenantNotFound: a refresh refused by Entra says why, as
// its error body does (a wrong entra.tenant_id), not only the status.
func TestDiscoveryTenantNotFound(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{
			"error":             "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + identitytest.TenantID + "' not found. Check to make sure you have the correct tenant ID.\r\nTrace ID: 0\r\nTimestamp: 2026-01-01 00:00:00Z",
			"error_codes":       []int{90002},
		})
	}))
	t.Cleanup(srv.Close)
	k, err := NewKeys(KeysConfig{TenantID: identitytest.TenantID, Authority: srv.URL, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	err = k.Refresh(t.Context())
	want := "/v2.0/.well-known/openid-configuration: 400 Bad Request: AADSTS90002: Tenant '" + identitytest.TenantID + "' not found. Check to make sure you have the correct tenant ID."
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("Refresh: %v; want it to end with %q", err, want)
	}
}

// TestConflictingKid: a kid the v2 and v1 key sets list with different
// keys is dropped, since a token cannot say which one it means.
func TestConflictingKid(t *testing.T) {
	t.Parallel()
	k, err := NewKeys(KeysConfig{TenantID: identitytest.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	a, b := identitytest.NewKey(t, "x"), identitytest.NewKey(t, "x")
	c := identitytest.NewKey(t, "y")
	set := func(keys ...*identitytest.Key) *httptest.Server {
		var s jose.JSONWebKeySet
		for _, key := range keys {
			s.Keys = append(s.Keys, jose.JSONWebKey{Key: &key.Private.PublicKey, KeyID: key.ID})
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(s) }))
		t.Cleanup(srv.Close)
		return srv
	}
	into := map[string]*rsa.PublicKey{}
	for _, srv := range []*httptest.Server{set(a, c), set(b, c)} {
		k.client = srv.Client()
		if err := k.fetchKeySet(t.Context(), srv.URL, into); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := into["x"]; ok || into["y"] == nil || len(into) != 1 {
		t.Fatalf("keys %v, want only y", into)
	}
}

// TestRun: Run loads the keys at once, refreshes every hour within the
// jitter, and retries a failure after 10 s, doubling.
func TestRun(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeys(KeysConfig{
			TenantID:  identitytest.TenantID,
			Authority: idp.Authority(),
			Client:    &http.Client{Transport: inProcess{idp.Server.Config.Handler}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go k.Run(ctx)
		// next waits, in steps of a second, until the counters reach ok
		// and failed, and checks the wait was within [lo, hi].
		next := func(lo, hi time.Duration, ok, failed uint64) {
			t.Helper()
			start := time.Now()
			for {
				synctest.Wait()
				s := k.Stats()
				if s.RefreshOK == ok && s.RefreshFailed == failed {
					break
				}
				if waited := time.Since(start); waited > hi {
					t.Fatalf("after %s: %d ok, %d failed; want %d, %d", waited, s.RefreshOK, s.RefreshFailed, ok, failed)
				}
				time.Sleep(time.Second)
			}
			if waited := time.Since(start); waited < lo || waited > hi {
				t.Fatalf("refresh %d/%d after %s, want %s to %s", ok, failed, waited, lo, hi)
			}
		}
		lo, hi := RefreshInterval-refreshJitter, RefreshInterval+refreshJitter
		next(0, 0, 1, 0)
		next(lo, hi, 2, 0)
		idp.SetDown(true)
		next(lo, hi, 2, 1)
		next(retryMin, retryMin, 2, 2)
		next(2*retryMin, 2*retryMin, 2, 3)
		idp.SetDown(false)
		next(4*retryMin, 4*retryMin, 3, 3)
		next(lo, hi, 4, 3)
		if !k.Ready() {
			t.Fatal("not ready")
		}
		cancel()
		synctest.Wait()
	})
}

// inProcess serves requests with a handler, without sockets, so Run can
// be tested on synctest's clock.
type inProcess struct{ h http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// TestConcurrent exercises the caches under the race detector: many
// goroutines validating while keys refresh and roll.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validatorSized(t, 4)
	tokens := f.distinct(t, 8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				if _, err := v.Validate(t.Context(), tokens[(g+i)%len(tokens)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := f.keys.Refresh(t.Context()); err != nil {
				t.Error(err)
			}
			f.keys.Stats()
			v.Stats()
		}
	})
	wg.Wait()
	if s := v.Stats(); s.Entries > 4 || s.Hits+s.Misses != 800 {
		t.Fatalf("stats %+v", s)
	}
}

// TestStaticKeys: keys from a saved key set validate offline: they accept
// the given issuers' tokens signed by a listed key, never fetch, and refuse
// an unlisted kid as unknown_key.
func TestStaticKeys(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	tenant := identitytest.TenantID
	keys, err := NewStaticKeys(tenant, identitytest.IssuerV2(tenant), identitytest.IssuerV1(tenant), idp.JWKS(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !keys.Ready() {
		t.Fatal("static keys not ready")
	}
	v, err := NewValidator(keys, Config{Audiences: []string{identitytest.AppIDURI, identitytest.ClientID}})
	if err != nil {
		t.Fatal(err)
	}
	if id := wantReason(t, v, idp.Mint(t, identitytest.Token{}), ""); id.ObjectID != identitytest.ObjectID || id.AppID != identitytest.AppID {
		t.Fatalf("identity %+v", id)
	}
	wantReason(t, v, idp.Mint(t, identitytest.Token{Version: 1}), "")
	wantReason(t, v, idp.Mint(t, identitytest.Token{Key: identitytest.NewKey(t, "key-2")}), ReasonUnknownKey)
	wantReason(t, v, idp.Mint(t, identitytest.Token{Claims: map[string]any{"iss": "https://login.microsoftonline.com/" + tenant + "/"}}), ReasonWrongIssuer)
	if err := keys.Refresh(t.Context()); err == nil {
		t.Fatal("Refresh of static keys succeeded")
	}
	keys.Run(t.Context()) // returns at once
	if n := len(idp.Fetches()); n != 0 {
		t.Fatalf("static keys fetched from the IdP: %v", idp.Fetches())
	}

	for _, tt := range []struct {
		name, tenant, v2, v1 string
		jwks                 []byte
	}{
		{"tenant not a GUID", "contoso.com", identitytest.IssuerV2(tenant), identitytest.IssuerV1(tenant), idp.JWKS()},
		{"issuer of another tenant", tenant, identitytest.IssuerV2("99999999-2222-3333-4444-555555555555"), identitytest.IssuerV1(tenant), idp.JWKS()},
		{"no v1 issuer", tenant, identitytest.IssuerV2(tenant), "", idp.JWKS()},
		{"not JSON", tenant, identitytest.IssuerV2(tenant), identitytest.IssuerV1(tenant), []byte("<html>")},
		{"no usable key", tenant, identitytest.IssuerV2(tenant), identitytest.IssuerV1(tenant), []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewStaticKeys(tt.tenant, tt.v2, tt.v1, tt.jwks, nil); err == nil {
				t.Fatal("NewStaticKeys succeeded")
			}
		})
	}
}
