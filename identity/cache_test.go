package identity

import (
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
)

// TestCacheHit: a second Validate of a token is a hit that allocates
// nothing and returns the same identity. Not parallel: AllocsPerRun.
func TestCacheHit(t *testing.T) {
	f := newFixture(t, true)
	v := f.validator(t)
	token := f.mint(t, identitytest.Token{})
	first := wantReason(t, v, token, "")
	second := wantReason(t, v, token, "")
	if first != second {
		t.Fatalf("hit %+v differs from %+v", second, first)
	}
	if s := v.Stats(); s.Hits != 1 || s.Misses != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v, want 1 hit, 1 miss, 1 entry", s)
	}
	ctx := t.Context()
	if n := testing.AllocsPerRun(100, func() { v.Validate(ctx, token) }); n != 0 {
		t.Fatalf("a cache hit allocates %v times", n)
	}
}

// TestCacheLifetime: an entry lives until the earliest of CacheTTL and the
// token's exp; after either the token is verified again.
func TestCacheLifetime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validator(t)
	long := f.mint(t, identitytest.Token{})
	short := f.mint(t, identitytest.Token{Claims: map[string]any{"exp": t0.Add(2 * time.Minute).Unix()}})
	wantReason(t, v, long, "")
	wantReason(t, v, short, "")
	for _, step := range []struct {
		advance time.Duration
		token   string
		reason  Reason
		misses  uint64
	}{
		{2*time.Minute - time.Second, short, "", 2}, // hit
		{time.Second, short, "", 3},                 // at exp: verified again, valid within the skew, not cached
		{time.Second, short, "", 4},
		{time.Minute, short, ReasonExpired, 5},
		{CacheTTL - 3*time.Minute - 2*time.Second, long, "", 5}, // 1 s before CacheTTL: hit
		{time.Second, long, "", 6},                              // at CacheTTL: verified again
		{time.Second, long, "", 6},
	} {
		f.clock.Advance(step.advance)
		wantReason(t, v, step.token, step.reason)
		if s := v.Stats(); s.Misses != step.misses {
			t.Fatalf("at +%s: %d misses, want %d", f.clock.Now().Sub(t0), s.Misses, step.misses)
		}
	}
}

// TestCacheBound: the cache never holds more than its size, and a full
// cache evicts an entry not hit since the hand last passed (CLOCK).
func TestCacheBound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	v := f.validatorSized(t, 3)
	tok := f.distinct(t, 5)
	misses := func(want uint64) {
		t.Helper()
		if s := v.Stats(); s.Misses != want || s.Entries > 3 {
			t.Fatalf("stats %+v, want %d misses and at most 3 entries", s, want)
		}
	}
	for _, i := range []int{0, 1, 2} {
		wantReason(t, v, tok[i], "")
	}
	wantReason(t, v, tok[0], "") // hit: 0 referenced
	misses(3)
	wantReason(t, v, tok[3], "") // evicts 1, the first unreferenced
	misses(4)
	wantReason(t, v, tok[0], "")
	misses(4)
	wantReason(t, v, tok[1], "")
	misses(5)
	wantReason(t, v, tok[4], "")
	misses(6)
	if s := v.Stats(); s.Entries != 3 || s.Size != 3 {
		t.Fatalf("stats %+v, want 3 entries of 3", s)
	}
}

// TestLookup: Lookup answers a token Validate verified, and counts a
// hit; it counts a miss for one it must leave to Verify, which counts
// nothing more and keeps it.
func TestLookup(t *testing.T) {
	f := newFixture(t, true)
	v := f.validator(t)
	tok := NewToken(f.mint(t, identitytest.Token{}))
	if _, ok := v.Lookup(&tok); ok {
		t.Fatal("Lookup found a token never verified")
	}
	id, err := v.Verify(t.Context(), &tok)
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Stats(); s.Hits != 0 || s.Misses != 1 {
		t.Fatalf("stats %+v after a miss and Verify, want 1 miss", s)
	}
	if got, ok := v.Lookup(&tok); !ok || got != id {
		t.Fatalf("Lookup after Verify: %+v, %v; want %+v", got, ok, id)
	}
	if id.Fingerprint != tok.Fingerprint() || id.Fingerprint != Fingerprint(tok.raw) {
		t.Fatalf("fingerprints %q, %q, %q differ", id.Fingerprint, tok.Fingerprint(), Fingerprint(tok.raw))
	}
	empty := NewToken("")
	if _, ok := v.Lookup(&empty); ok {
		t.Fatal("Lookup found an empty token")
	}
	if _, err := v.Verify(t.Context(), &empty); ReasonOf(err) != ReasonMissing {
		t.Fatalf("Verify of an empty token: %v", err)
	}
	if s := v.Stats(); s.Hits != 1 || s.Misses != 1 {
		t.Fatalf("stats %+v, want 1 hit, 1 miss (an empty token is refused uncounted)", s)
	}
	if n := testing.AllocsPerRun(100, func() { v.Lookup(&tok) }); n != 0 {
		t.Fatalf("a hit allocates %v times", n)
	}
}
