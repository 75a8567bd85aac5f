package dnscache

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/azegress/azegress/proxy/internal/dnscache/dnstest"
)

// clock is a Config.Now that moves only when told.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newCache returns a Cache that asks srv, on clk's time.
func newCache(srv *dnstest.Server, clk *clock, cfg Config) *Cache {
	cfg.Dial, cfg.Now = srv.Dial, clk.now
	return New(cfg)
}

var (
	addr1 = netip.MustParseAddr("192.0.2.1")
	addr2 = netip.MustParseAddr("192.0.2.2")
	addr6 = netip.MustParseAddr("2001:db8::1")
)

// TestTTLs holds what is kept and for how long: each step advances the
// clock, looks the name up, and counts the lookups that reached the server
// so far (its A queries over those of the first lookup: a retried lookup
// asks more than once).
func TestTTLs(t *testing.T) {
	t.Parallel()
	type step struct {
		advance time.Duration
		lookups int
	}
	for _, tt := range []struct {
		name     string
		answer   dnstest.Answer
		cfg      Config
		notFound bool // the lookups fail with "no such host"
		fail     bool // the lookups fail otherwise
		steps    []step
	}{
		{name: "kept for its TTL",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1, addr6}, TTL: 60},
			steps:  []step{{0, 1}, {0, 1}, {59 * time.Second, 1}, {2 * time.Second, 2}, {0, 2}}},
		{name: "AAAA NODATA does not shorten A's TTL",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 300, NegTTL: 30},
			steps:  []step{{0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}}},
		{name: "TTL 0 not kept",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 0},
			steps:  []step{{0, 1}, {0, 2}, {0, 3}}},
		{name: "TTL capped",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 86400},
			cfg:    Config{MaxTTL: time.Minute},
			steps:  []step{{0, 1}, {59 * time.Second, 1}, {2 * time.Second, 2}}},
		{name: "TTL with the top bit set is 0 (RFC 2181 §8)",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 1 << 31},
			steps:  []step{{0, 1}, {0, 2}}},
		{name: "NXDOMAIN kept for the SOA's negative TTL",
			answer: dnstest.Answer{RCode: dnsmessage.RCodeNameError, NegTTL: 30}, notFound: true,
			steps: []step{{0, 1}, {29 * time.Second, 1}, {2 * time.Second, 2}, {0, 2}}},
		{name: "NXDOMAIN capped",
			answer: dnstest.Answer{RCode: dnsmessage.RCodeNameError, NegTTL: 3600}, notFound: true,
			steps: []step{{0, 1}, {59 * time.Second, 1}, {2 * time.Second, 2}}},
		{name: "NXDOMAIN not kept when NegativeTTL is negative",
			answer: dnstest.Answer{RCode: dnsmessage.RCodeNameError, NegTTL: 3600}, notFound: true,
			cfg:   Config{NegativeTTL: -1},
			steps: []step{{0, 1}, {0, 2}}},
		{name: "NODATA kept for the SOA's negative TTL",
			answer: dnstest.Answer{NegTTL: 20}, notFound: true,
			steps: []step{{0, 1}, {19 * time.Second, 1}, {2 * time.Second, 2}}},
		{name: "SERVFAIL never kept",
			answer: dnstest.Answer{RCode: dnsmessage.RCodeServerFailure, NegTTL: 3600}, fail: true,
			steps: []step{{0, 1}, {0, 2}, {0, 3}}},
		{name: "REFUSED never kept",
			answer: dnstest.Answer{RCode: dnsmessage.RCodeRefused, NegTTL: 3600}, fail: true,
			steps: []step{{0, 1}, {0, 2}}},
		{name: "A answered, AAAA failed: not kept",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 300, AAAARCode: dnsmessage.RCodeServerFailure},
			steps:  []step{{0, 1}, {0, 2}}},
		{name: "truncated over UDP, TTL from TCP",
			answer: dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 300, TruncateUDP: true},
			steps:  []step{{0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, clk := dnstest.New(t), newClock()
			srv.Set("name.test", tt.answer)
			c := newCache(srv, clk, tt.cfg)
			perLookup := 0
			for i, s := range tt.steps {
				clk.advance(s.advance)
				addrs, err := c.LookupNetIP(t.Context(), "ip", "name.test.")
				var de *net.DNSError
				switch {
				case tt.notFound && !(errors.As(err, &de) && de.IsNotFound):
					t.Fatalf("step %d: %v, want no such host", i, err)
				case tt.fail && (err == nil || errors.As(err, &de) && de.IsNotFound):
					t.Fatalf("step %d: %v, want a failure", i, err)
				case !tt.notFound && !tt.fail && (err != nil || !slices.Equal(addrs, tt.answer.Addrs)):
					t.Fatalf("step %d: %v %v, want %v", i, addrs, err, tt.answer.Addrs)
				}
				if i == 0 {
					perLookup = srv.Queries("name.test")
				}
				if got := srv.Queries("name.test"); got != s.lookups*perLookup {
					t.Fatalf("step %d (+%v): %d queries, want %d lookups of %d", i, s.advance, got, s.lookups, perLookup)
				}
			}
		})
	}
}

// TestNewAnswerAfterTTL: the kept answer is served until it expires, then
// the server's new one.
func TestNewAnswerAfterTTL(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	srv.Set("moved.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 10})
	c := newCache(srv, clk, Config{})
	for _, s := range []struct {
		advance time.Duration
		want    netip.Addr
	}{{0, addr1}, {9 * time.Second, addr1}, {2 * time.Second, addr2}} {
		clk.advance(s.advance)
		if s.advance == 9*time.Second {
			srv.Set("moved.test", dnstest.Answer{Addrs: []netip.Addr{addr2}, TTL: 10})
		}
		got, err := c.LookupNetIP(t.Context(), "ip4", "moved.test.")
		if err != nil || !slices.Equal(got, []netip.Addr{s.want}) {
			t.Fatalf("+%v: %v %v, want %v", s.advance, got, err, s.want)
		}
	}
}

// TestHostsFile: an answer no DNS message was seen for (localhost, from
// /etc/hosts) is kept for HostsTTL only.
func TestHostsFile(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	c := newCache(srv, clk, Config{})
	if _, err := c.LookupNetIP(t.Context(), "ip", "localhost"); err != nil || srv.Queries("localhost") > 0 {
		t.Skipf("localhost is not in the hosts file here (%v)", err)
	}
	clk.advance(HostsTTL - time.Second)
	c.LookupNetIP(t.Context(), "ip", "localhost")
	clk.advance(2 * time.Second)
	c.LookupNetIP(t.Context(), "ip", "localhost")
	if st := c.Stats(); st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("%+v, want 1 hit (within %v) and 2 misses", st, HostsTTL)
	}
}

// TestEviction: a full cache drops the entry that expires soonest.
func TestEviction(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	names := []string{"a.test", "b.test", "c.test", "d.test", "e.test"}
	for i, name := range names {
		ttl := uint32(300 + i)
		if name == "c.test" {
			ttl = 100
		}
		srv.Set(name, dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: ttl})
	}
	c := newCache(srv, clk, Config{Size: 4})
	for _, name := range append(append(names, names...), "a.test") {
		if _, err := c.LookupNetIP(t.Context(), "ip4", name+"."); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	for _, name := range names {
		got = append(got, srv.Queries(name))
	}
	// e evicts c (expiring first); the second c evicts a (now first), so
	// the last a is asked again.
	if want := []int{2, 1, 2, 1, 1}; !slices.Equal(got, want) {
		t.Fatalf("queries a to e: %v, want %v", got, want)
	}
	if st := c.Stats(); st.Entries != 4 {
		t.Fatalf("%d entries, want 4", st.Entries)
	}
}

// TestConcurrentMisses: callers that miss a name while it is being looked
// up share that lookup, even when its answer is not kept (TTL 0).
func TestConcurrentMisses(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	release := make(chan struct{})
	srv.Set("slow.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 0, Wait: release})
	c := newCache(srv, clk, Config{})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			addrs, err := c.LookupNetIP(t.Context(), "ip4", "slow.test.")
			if err == nil && !slices.Equal(addrs, []netip.Addr{addr1}) {
				err = errors.New("wrong addresses")
			}
			errs <- err
		})
	}
	waitFor(t, func() bool { return c.waiting(key{"ip4", "slow.test."}) == n })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if q := srv.Queries("slow.test"); q != 1 {
		t.Fatalf("%d queries for %d concurrent lookups, want 1", q, n)
	}
}

// TestCallerGivesUp: a caller that gives up gets an error at once; the
// lookup goes on and its answer is kept for the next caller.
func TestCallerGivesUp(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	release := make(chan struct{})
	srv.Set("slow.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 60, Wait: release})
	c := newCache(srv, clk, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for srv.Queries("slow.test") == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.LookupNetIP(ctx, "ip4", "slow.test.")
	if de, ok := errors.AsType[*net.DNSError](err); !ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v (%#v), want a DNS error wrapping context.Canceled", err, de)
	}
	close(release)
	waitFor(t, func() bool { return c.Stats().Entries == 1 })
	if got, err := c.LookupNetIP(t.Context(), "ip4", "slow.test."); err != nil || !slices.Equal(got, []netip.Addr{addr1}) {
		t.Fatalf("%v %v", got, err)
	}
	if st := c.Stats(); st.Hits != 1 || st.Errors != 1 || srv.Queries("slow.test") != 1 {
		t.Fatalf("%+v, %d queries; want 1 hit, 1 error, 1 query", st, srv.Queries("slow.test"))
	}
}

// TestLookupCNAME: canonical names are kept as addresses are.
func TestLookupCNAME(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	srv.Set("svc.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 60})
	c := newCache(srv, clk, Config{})
	for range 2 {
		if cname, err := c.LookupCNAME(t.Context(), "svc.test."); err != nil || cname != "svc.test." {
			t.Fatalf("%q %v", cname, err)
		}
	}
	if q := srv.Queries("svc.test"); q != 1 {
		t.Fatalf("%d queries, want 1", q)
	}
}

// TestStats counts each kind of result once per lookup.
func TestStats(t *testing.T) {
	t.Parallel()
	srv, clk := dnstest.New(t), newClock()
	srv.Set("ok.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 60})
	srv.Set("fail.test", dnstest.Answer{RCode: dnsmessage.RCodeServerFailure})
	c := newCache(srv, clk, Config{})
	for _, name := range []string{"ok.test.", "ok.test.", "nx.test.", "nx.test.", "nx.test.", "fail.test."} {
		c.LookupNetIP(t.Context(), "ip4", name)
	}
	want := Stats{Hits: 1, NegativeHits: 2, Misses: 2, Errors: 1, Entries: 2}
	if got := c.Stats(); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}
}

// TestLookupHitAllocs: a hit allocates nothing.
func TestLookupHitAllocs(t *testing.T) {
	srv, clk := dnstest.New(t), newClock()
	srv.Set("hot.test", dnstest.Answer{Addrs: []netip.Addr{addr1, addr6}, TTL: 60})
	c := newCache(srv, clk, Config{})
	ctx := t.Context()
	c.LookupNetIP(ctx, "ip", "hot.test.")
	if n := testing.AllocsPerRun(100, func() { c.LookupNetIP(ctx, "ip", "hot.test.") }); n != 0 {
		t.Fatalf("%v allocations per hit, want 0", n)
	}
}

func BenchmarkLookupHit(b *testing.B) {
	srv := dnstest.New(b)
	srv.Set("hot.test", dnstest.Answer{Addrs: []netip.Addr{addr1, addr6}, TTL: 3600})
	c := New(Config{Dial: srv.Dial})
	ctx := b.Context()
	if _, err := c.LookupNetIP(ctx, "ip", "hot.test."); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.LookupNetIP(ctx, "ip", "hot.test."); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// waiting returns how many callers wait for the lookup of k under way.
func (c *Cache) waiting(k key) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cl := c.calls[k]; cl != nil {
		return cl.waiters
	}
	return 0
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// Cached answers from the cache alone: nothing on a miss (and no query),
// the answer while it lasts, nothing once it expired.
func TestCached(t *testing.T) {
	srv, clk := dnstest.New(t), newClock()
	srv.Set("c.test", dnstest.Answer{Addrs: []netip.Addr{addr1}, TTL: 60})
	c := newCache(srv, clk, Config{})
	if _, _, ok := c.Cached("ip", "c.test."); ok {
		t.Fatal("Cached answered before any lookup")
	}
	if n := srv.Queries("c.test"); n != 0 {
		t.Fatalf("Cached sent %d queries; want none", n)
	}
	c.LookupNetIP(t.Context(), "ip", "c.test.")
	if addrs, err, ok := c.Cached("ip", "c.test."); !ok || err != nil || len(addrs) != 1 || addrs[0] != addr1 {
		t.Fatalf("Cached after the lookup: %v, %v, %v", addrs, err, ok)
	}
	clk.advance(61 * time.Second)
	if _, _, ok := c.Cached("ip", "c.test."); ok {
		t.Fatal("Cached answered after the TTL")
	}
}
