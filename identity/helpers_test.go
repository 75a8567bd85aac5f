package identity

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
)

// t0 is a whole second, so the skew edges of NumericDate claims are exact.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// fakeClock is an injected Now that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is an IdP, a clock both share, and a Keys for the IdP's tenant.
type fixture struct {
	idp   *identitytest.IdP
	clock *fakeClock
	keys  *Keys
}

// newFixture returns a fixture; loaded says whether the keys are fetched
// once before it returns.
func newFixture(t testing.TB, loaded bool) *fixture {
	t.Helper()
	f := &fixture{idp: identitytest.New(t), clock: newClock()}
	f.idp.Now = f.clock.Now
	keys, err := NewKeys(KeysConfig{
		TenantID:  identitytest.TenantID,
		Authority: f.idp.Authority(),
		Client:    f.idp.Server.Client(),
		Now:       f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.keys = keys
	if loaded {
		if err := keys.Refresh(context.Background()); err != nil {
			t.Fatalf("first refresh: %v", err)
		}
	}
	return f
}

// validator returns a fresh Validator (so an empty cache) on f's keys,
// accepting the IdP's App ID URI and client ID.
func (f *fixture) validator(t testing.TB) *Validator { return f.validatorSized(t, 0) }

// validatorSized is validator with a cache of size entries (0: default).
func (f *fixture) validatorSized(t testing.TB, size int) *Validator {
	t.Helper()
	v, err := NewValidator(f.keys, Config{Audiences: []string{identitytest.AppIDURI, identitytest.ClientID}, CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// distinct mints n valid tokens that differ in jti.
func (f *fixture) distinct(t testing.TB, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = f.mint(t, identitytest.Token{Claims: map[string]any{"jti": strconv.Itoa(i)}})
	}
	return tokens
}

func (f *fixture) mint(t testing.TB, tok identitytest.Token) string {
	t.Helper()
	return f.idp.Mint(t, tok)
}

// wantReason validates token and fails unless the result has reason ("" =
// valid).
func wantReason(t *testing.T, v *Validator, token string, reason Reason) Identity {
	t.Helper()
	id, err := v.Validate(context.Background(), token)
	if got := ReasonOf(err); got != reason || (err != nil && reason == "") {
		t.Fatalf("Validate: got %v (reason %q), want reason %q", err, got, reason)
	}
	return id
}

func (f *fixture) refreshes() uint64 {
	s := f.keys.Stats()
	return s.RefreshOK + s.RefreshFailed
}
