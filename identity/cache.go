package identity

import (
	"sync"
	"sync/atomic"
)

// tokenCache maps a token's SHA-256 to its verified Identity. It holds at
// most size entries and evicts with the CLOCK algorithm (an approximation
// of LRU): a hit sets the entry's reference bit under the read lock; an
// insertion into a full cache sweeps a hand over the entries, clearing
// bits, and replaces the first expired or unreferenced one. A hit neither
// allocates nor takes the write lock.
type tokenCache struct {
	size  int
	mu    sync.RWMutex
	index map[[32]byte]int32 // guarded by mu
	slots []cacheSlot        // guarded by mu; ref also written under RLock, atomically
	hand  int                // guarded by mu (write)
}

type cacheSlot struct {
	key   [32]byte
	id    Identity
	until int64  // Unix nanoseconds; the entry is dead from then on
	ref   uint32 // CLOCK reference bit, accessed atomically
}

func (c *tokenCache) init(size int) {
	c.size = size
	c.index = make(map[[32]byte]int32)
}

func (c *tokenCache) get(key *[32]byte, now int64) (Identity, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.index[*key]
	if !ok {
		return Identity{}, false
	}
	s := &c.slots[i]
	if now >= s.until {
		return Identity{}, false
	}
	if atomic.LoadUint32(&s.ref) == 0 {
		atomic.StoreUint32(&s.ref, 1)
	}
	return s.id, true
}

func (c *tokenCache) put(key *[32]byte, id Identity, until, now int64) {
	if until <= now || c.size == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.index[*key]
	switch {
	case ok:
	case len(c.slots) < c.size:
		c.slots = append(c.slots, cacheSlot{})
		i = int32(len(c.slots) - 1)
	default:
		i = c.victimLocked(now)
		delete(c.index, c.slots[i].key)
	}
	c.slots[i] = cacheSlot{key: *key, id: id, until: until}
	c.index[*key] = i
}

// victimLocked advances the hand to an expired or unreferenced slot. It
// ends within two sweeps: the first clears every bit it passes.
func (c *tokenCache) victimLocked(now int64) int32 {
	for {
		i := c.hand
		c.hand = (c.hand + 1) % len(c.slots)
		s := &c.slots[i]
		if s.until <= now || atomic.LoadUint32(&s.ref) == 0 {
			return int32(i)
		}
		atomic.StoreUint32(&s.ref, 0)
	}
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.index)
}
