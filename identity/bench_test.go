package identity

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/azegress/azegress/identity/identitytest"
)

// Signing a token costs ~3 ms of RSA, so the benchmarks that need many
// distinct tokens take a few signed ones and vary the unused low bits of
// the last base64url character of each segment: a 342-character RS256
// signature has 4 spare bits, and so may the header and payload. Go's
// decoder ignores those bits, so every variant is a different string (a
// different SHA-256, a cache miss) that verifies in full like the original.
const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// spareBits is how many low bits of a segment's last character carry no
// data.
func spareBits(seg string) uint {
	return [4]uint{0, 0, 4, 2}[len(seg)%4]
}

// variants yields distinct valid tokens from signed ones.
type variants struct {
	base  [][3]string // the segments of each signed token
	per   int         // variants of one signed token
	split [3]uint     // spare bits of each segment
}

// newVariants mints enough tokens for n variants.
func newVariants(tb testing.TB, f *fixture, n int) *variants {
	tb.Helper()
	var vs variants
	for i := 0; vs.per == 0 || len(vs.base)*vs.per < n; i++ {
		// Pad jti until the payload has 4 spare bits, as the
		// signature always does.
		var tok string
		for pad := 0; ; pad++ {
			tok = f.mint(tb, identitytest.Token{Claims: map[string]any{"jti": strconv.Itoa(i) + strings.Repeat("x", pad)}})
			if spareBits(strings.Split(tok, ".")[1]) == 4 {
				break
			}
		}
		seg := strings.Split(tok, ".")
		vs.base = append(vs.base, [3]string{seg[0], seg[1], seg[2]})
		if vs.per == 0 {
			vs.per = 1
			for j, s := range seg {
				vs.split[j] = spareBits(s)
				vs.per <<= vs.split[j]
			}
		}
	}
	return &vs
}

// token returns variant i (0 <= i < len(base)*per).
func (vs *variants) token(i int) string {
	seg := vs.base[i/vs.per]
	v := i % vs.per
	var b strings.Builder
	for j, s := range seg {
		bits := vs.split[j]
		last := strings.IndexByte(b64url, s[len(s)-1])
		last = last&^(1<<bits-1) | v&(1<<bits-1)
		v >>= bits
		if j > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s[:len(s)-1])
		b.WriteByte(b64url[last])
	}
	return b.String()
}

// BenchmarkValidateCold is a cache miss: parse, RS256 verification, claim
// checks, cache insertion. Besides time per token it reports cpu-ns/op,
// the process's CPU time per token, garbage collection included: issue
// 13's bound (150 µs) is on that.
func BenchmarkValidateCold(b *testing.B) {
	f := newFixture(b, true)
	v := f.validator(b)
	vs := newVariants(b, f, b.N)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = vs.token(i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	for i := range b.N {
		if _, err := v.Validate(ctx, tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	if s := v.Stats(); s.Hits != 0 {
		b.Fatalf("%d cache hits in a cold benchmark", s.Hits)
	}
}

// BenchmarkValidateCached is the hot path: a token verified before.
func BenchmarkValidateCached(b *testing.B) {
	f := newFixture(b, true)
	v := f.validator(b)
	token := f.mint(b, identitytest.Token{})
	ctx := context.Background()
	if _, err := v.Validate(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseProxyAuthorization reads a Basic header with a 1.3 KB token.
func BenchmarkParseProxyAuthorization(b *testing.B) {
	h := identitytest.BasicAuth("azegress", strings.Repeat("a", 1300))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProxyAuthorization(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate100kDistinct validates 100,000 distinct valid tokens in
// a row with the default cache and reports the heap retained once the
// cache has filled (DefaultCacheSize tokens) and after all of them: the
// two stay equal, bounded by the cache size, not the token count.
func BenchmarkValidate100kDistinct(b *testing.B) {
	const n = 100_000
	f := newFixture(b, true)
	vs := newVariants(b, f, n)
	ctx := context.Background()
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		v := f.validator(b)
		base := heap()
		b.StartTimer()
		var full uint64
		for i := range n {
			if _, err := v.Validate(ctx, vs.token(i)); err != nil {
				b.Fatal(err)
			}
			if i+1 == DefaultCacheSize {
				b.StopTimer()
				full = heap() - base
				b.StartTimer()
			}
		}
		b.StopTimer()
		after := heap() - base
		s := v.Stats()
		runtime.KeepAlive(v)
		b.ReportMetric(float64(s.Entries), "cache-entries")
		b.ReportMetric(float64(full)/(1<<20), "MiB-at-10k")
		b.ReportMetric(float64(after)/(1<<20), "MiB-at-100k")
		b.ReportMetric(float64(after)/float64(s.Entries), "B/entry")
		b.StartTimer()
	}
}

// TestVariantsVerify: the benchmarks' token variants are distinct and
// each is valid, so the cold benchmark really misses.
func TestVariantsVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	vs := newVariants(t, f, 600)
	v := f.validator(t)
	seen := map[string]bool{}
	for i := range len(vs.base) * vs.per {
		tok := vs.token(i)
		if seen[tok] {
			t.Fatalf("variant %d repeats", i)
		}
		seen[tok] = true
		wantReason(t, v, tok, "")
	}
	if s := v.Stats(); s.Hits != 0 || s.Misses != uint64(len(seen)) {
		t.Fatalf("stats %+v for %d variants", s, len(seen))
	}
}
