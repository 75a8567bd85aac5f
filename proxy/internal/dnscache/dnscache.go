package dnscache

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config's bounds.
const (
	// DefaultSize is about 2.5 MB of entries.
	DefaultSize = 10000
	// DefaultMaxTTL keeps a long-lived answer for an hour at most (Squid's
	// positive_dns_ttl is 6 hours), so that a record changed without
	// lowering its TTL first is seen within the hour.
	DefaultMaxTTL = time.Hour
	// DefaultNegativeTTL is Squid's negative_dns_ttl: a name created
	// after a lookup failed resolves within a minute.
	DefaultNegativeTTL = time.Minute
	// HostsTTL is how long an answer that came with no DNS message (the
	// hosts file) is kept: Go's resolver reads /etc/hosts again when it
	// is 5 seconds old.
	HostsTTL = 5 * time.Second
)

// lookupTimeout bounds a lookup whose first asker set no deadline.
const lookupTimeout = 30 * time.Second

// evictSample is how many entries a full cache looks at to choose the one
// to drop.
const evictSample = 8

// Config is a Cache's bounds and dependencies.
type Config struct {
	// Size is the most names kept. If zero, DefaultSize.
	Size int
	// MaxTTL caps how long an answer is kept, whatever its TTL. If zero,
	// DefaultMaxTTL.
	MaxTTL time.Duration
	// NegativeTTL caps how long "no such host" is kept. If zero,
	// DefaultNegativeTTL; if negative, it is not kept.
	NegativeTTL time.Duration
	// Dial connects Go's resolver to the DNS server it chose from
	// resolv.conf. If nil, a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock entries expire by. If nil, time.Now.
	Now func() time.Time
}

// Cache is a resolver that keeps answers for their TTL. It implements the
// proxy's Resolver, and LookupCNAME for its private-link check. The zero
// value is not usable: call New.
type Cache struct {
	cfg Config
	res *net.Resolver

	mu      sync.RWMutex
	entries map[key]entry // guarded by mu
	calls   map[key]*call // lookups under way; guarded by mu

	hits, negHits, misses, errs atomic.Uint64
}

// key is what a lookup asked: network is LookupNetIP's ("ip", "ip4",
// "ip6"), or "CNAME" for LookupCNAME.
type key struct{ network, name string }

// entry is a kept answer: the addresses or the canonical name, or the "no
// such host" error.
type entry struct {
	addrs   []netip.Addr
	cname   string
	err     error
	expires time.Time
}

// call is a lookup under way; done is closed once e and err are set.
type call struct {
	done    chan struct{}
	e       entry
	err     error // a failure, never kept
	waiters int   // callers sharing it (for tests); guarded by Cache.mu
}

// recorderKey is the context key under which a lookup's recorder reaches
// the Dial hook.
type recorderKey struct{}

// New returns a Cache over a Go resolver (PreferGo) that dials through
// cfg.Dial.
func New(cfg Config) *Cache {
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.Dial == nil {
		cfg.Dial = new(net.Dialer).DialContext
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache{cfg: cfg, entries: make(map[key]entry), calls: make(map[key]*call)}
	c.res = &net.Resolver{PreferGo: true, Dial: c.dial}
	return c
}

// dial connects Go's resolver to a DNS server, with a connection that
// records into the lookup's recorder. The recorder travels in the lookup's
// context: Go passes a context's values on to Dial, through its
// singleflight too (net/lookup.go, lookupIPAddr: the shared lookup runs
// under withUnexpiredValuesPreserved(ctx), whose values are the caller's
// until the caller's context is done; lookupCNAME passes ctx as is). A
// lookup whose context ended may have dialed without its recorder, so its
// answer is not kept (lookup).
func (c *Cache) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.cfg.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if rec, ok := ctx.Value(recorderKey{}).(*recorder); ok {
		return wrap(conn, rec), nil
	}
	return conn, nil
}

// LookupNetIP looks host up as net.Resolver.LookupNetIP does, answering
// from the cache while the answer's TTL lasts. The slice returned is
// shared: callers must not modify it.
func (c *Cache) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	e, err := c.get(ctx, key{network, host})
	return e.addrs, err
}

// LookupCNAME looks host's canonical name up as net.Resolver.LookupCNAME
// does, answering from the cache while the answer's TTL lasts.
func (c *Cache) LookupCNAME(ctx context.Context, host string) (string, error) {
	e, err := c.get(ctx, key{"CNAME", host})
	return e.cname, err
}

// Cached answers host from the cache alone, as LookupNetIP would while the
// answer lasts; ok is false when it has none, and nothing is looked up. An
// event loop, which must not wait, asks it first.
func (c *Cache) Cached(network, host string) (addrs []netip.Addr, err error, ok bool) {
	e, ok := c.cached(key{network, host}, c.cfg.Now())
	return e.addrs, e.err, ok
}

// CachedCNAME is Cached for LookupCNAME.
func (c *Cache) CachedCNAME(host string) (cname string, err error, ok bool) {
	e, ok := c.cached(key{"CNAME", host}, c.cfg.Now())
	return e.cname, e.err, ok
}

// cached is the cache's answer for k at now, counted as a hit, if it has
// one that has not expired.
func (c *Cache) cached(k key, now time.Time) (entry, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return entry{}, false
	}
	c.hit(e)
	return e, true
}

// get answers k from the cache, or from one lookup shared by every caller
// that misses k while it runs. A hit takes a read lock and allocates
// nothing.
func (c *Cache) get(ctx context.Context, k key) (entry, error) {
	now := c.cfg.Now()
	if e, ok := c.cached(k, now); ok {
		return e, e.err
	}
	c.mu.Lock()
	if e, ok := c.entries[k]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return c.hit(e)
	}
	cl := c.calls[k]
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		c.calls[k] = cl
		go c.lookup(k, cl, deadline(ctx))
	}
	cl.waiters++
	c.mu.Unlock()

	select {
	case <-cl.done:
		if cl.err != nil {
			c.errs.Add(1)
			return entry{}, cl.err
		}
		c.misses.Add(1)
		return cl.e, cl.e.err
	case <-ctx.Done():
		// The lookup goes on for the callers still waiting, and is kept.
		c.errs.Add(1)
		return entry{}, &net.DNSError{Err: ctx.Err().Error(), Name: k.name,
			IsTimeout: errors.Is(ctx.Err(), context.DeadlineExceeded), UnwrapErr: ctx.Err()}
	}
}

func (c *Cache) hit(e entry) (entry, error) {
	if e.err != nil {
		c.negHits.Add(1)
	} else {
		c.hits.Add(1)
	}
	return e, e.err
}

// deadline is when a lookup started for ctx gives up: ctx's deadline, so
// that a lookup lasts no longer than its first asker's (the proxy's dial
// timeout), but not its cancellation, which must not fail the other
// callers waiting.
func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(lookupTimeout)
}

// lookup asks Go's resolver for k, keeps the answer for as long as the
// recorder allows, and hands it to the callers of cl.
func (c *Cache) lookup(k key, cl *call, dl time.Time) {
	rec := new(recorder)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), recorderKey{}, rec), dl)
	defer cancel()
	var e entry
	var err error
	if k.network == "CNAME" {
		e.cname, err = c.res.LookupCNAME(ctx, k.name)
	} else {
		e.addrs, err = c.res.LookupNetIP(ctx, k.network, k.name)
		e.addrs = e.addrs[:len(e.addrs):len(e.addrs)] // a caller's append copies
	}
	var de *net.DNSError
	notFound := errors.As(err, &de) && de.IsNotFound
	ttl := rec.ttl(err, notFound)
	if err == nil {
		ttl = min(ttl, c.cfg.MaxTTL)
	} else if notFound {
		ttl = min(ttl, c.cfg.NegativeTTL)
	}
	if ctx.Err() != nil {
		ttl = 0 // Dial may have run without the recorder
	}
	if err == nil || notFound {
		e.err = err
	} else {
		cl.err = err
	}
	cl.e = e

	c.mu.Lock()
	delete(c.calls, k)
	if ttl > 0 {
		c.store(k, e, c.cfg.Now().Add(ttl))
	} else {
		delete(c.entries, k) // an expired answer is not served again
	}
	c.mu.Unlock()
	close(cl.done)
}

// store keeps e under k until expires, making room if the cache is full.
// c.mu is held.
func (c *Cache) store(k key, e entry, expires time.Time) {
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.cfg.Size {
		c.evict()
	}
	e.expires = expires
	c.entries[k] = e
}

// evict drops, of evictSample entries taken in map order (which Go
// randomizes), the one that expires soonest: an expired entry if it
// sampled one, else the one with the least time left to serve. A full scan
// would cost every miss of a full cache (learning mode meets 10,000 names
// and more) time in proportion to its size. c.mu is held.
func (c *Cache) evict() {
	var victim key
	var soonest time.Time
	n := 0
	for k, e := range c.entries {
		if n == 0 || e.expires.Before(soonest) {
			victim, soonest = k, e.expires
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(c.entries, victim)
}

// Stats are a Cache's counters since New: every lookup is counted once, as
// a hit, a negative hit, a miss or an error.
type Stats struct {
	Hits         uint64 // addresses (or a canonical name) from the cache
	NegativeHits uint64 // "no such host" from the cache
	Misses       uint64 // asked the DNS (or joined a lookup asking it), and got an answer or "no such host"
	Errors       uint64 // asked, and failed: a timeout, SERVFAIL, refused, or the caller gave up
	Entries      int    // names kept now, expired ones not yet replaced included
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	return Stats{Hits: c.hits.Load(), NegativeHits: c.negHits.Load(), Misses: c.misses.Load(), Errors: c.errs.Load(), Entries: n}
}
