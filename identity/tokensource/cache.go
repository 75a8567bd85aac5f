package tokensource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Cache defaults.
const (
	// RefreshAt is the part of a token's remaining lifetime after which
	// Cache asks for a new one.
	RefreshAt = 0.8
	// DefaultMinBackoff is the first wait after a failure, and the least
	// wait between two requests.
	DefaultMinBackoff = time.Second
	// DefaultMaxBackoff is the longest wait after failures.
	DefaultMaxBackoff = time.Minute
)

// ErrNoTokenYet is Cache.Token's error before the first request ended.
var ErrNoTokenYet = errors.New("no token yet: the first request to the token source has not finished")

// CacheConfig configures a Cache. The zero value is usable.
type CacheConfig struct {
	// Logger gets an Info record per token and a Warn (an Error once no
	// valid token is left) per failure; never the token itself. If nil,
	// nothing is logged.
	Logger *slog.Logger
	// MinBackoff, if zero, is DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff, if zero, is DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Cache keeps a Source's token fresh for a long-running process. Run asks
// the source; Token reads what Run got and never waits. It is safe for
// concurrent use.
type Cache struct {
	src        Source
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration

	mu  sync.RWMutex
	tok Token // the last token the source gave, possibly expired
	err error // the last request's failure; nil after a success
}

// NewCache returns a Cache of src. Nothing is asked until Run.
func NewCache(src Source, cfg CacheConfig) *Cache {
	c := &Cache{src: src, log: cfg.Logger, minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.minBackoff <= 0 {
		c.minBackoff = DefaultMinBackoff
	}
	if c.maxBackoff < c.minBackoff {
		c.maxBackoff = max(DefaultMaxBackoff, c.minBackoff)
	}
	return c
}

// Run asks the source for a token at once, then again at RefreshAt of
// each token's remaining lifetime, until ctx ends. After a failure it asks
// again after a backoff (MinBackoff doubling to MaxBackoff, but no later
// than the last token's expiry) and keeps the last token meanwhile.
func (c *Cache) Run(ctx context.Context) {
	backoff := c.minBackoff
	for {
		tok, err := c.src.Token(ctx)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		var wait time.Duration
		if err == nil {
			c.mu.Lock()
			c.tok, c.err = tok, nil
			c.mu.Unlock()
			backoff = c.minBackoff
			wait = max(time.Duration(RefreshAt*float64(tok.Expires.Sub(now))), c.minBackoff)
			c.log.Info("token refreshed", "source", c.src.Name(), "token_fp", tok.Fingerprint(),
				"expires", tok.Expires.UTC().Format(time.RFC3339), "refresh_in", wait.Round(time.Second).String())
		} else {
			c.mu.Lock()
			c.err = err
			last := c.tok
			c.mu.Unlock()
			wait = backoff
			backoff = min(2*backoff, c.maxBackoff)
			if left := last.Expires.Sub(now); left > 0 {
				wait = max(min(wait, left), c.minBackoff)
				c.log.Warn("token refresh failed; keeping the last token", "source", c.src.Name(), "error", err.Error(),
					"token_fp", last.Fingerprint(), "expires", last.Expires.UTC().Format(time.RFC3339),
					"retry_in", wait.String())
			} else {
				c.log.Error("no token: the token source fails", "source", c.src.Name(), "error", err.Error(),
					"retry_in", wait.String())
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Token returns the token while it is valid, or an error that says why
// there is none: not asked yet, or expired while the source failed.
func (c *Cache) Token() (Token, error) {
	c.mu.RLock()
	tok, err := c.tok, c.err
	c.mu.RUnlock()
	switch {
	case tok.Value != "" && time.Now().Before(tok.Expires):
		return tok, nil
	case tok.Value != "" && err != nil:
		return Token{}, fmt.Errorf("the last token expired at %s and the token source fails: %w",
			tok.Expires.UTC().Format(time.RFC3339), err)
	case tok.Value != "":
		return Token{}, fmt.Errorf("the last token expired at %s and no new one came yet", tok.Expires.UTC().Format(time.RFC3339))
	case err != nil:
		return Token{}, fmt.Errorf("no token yet: %w", err)
	}
	return Token{}, ErrNoTokenYet
}
