package tokensource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSource gives tokens of a fixed lifetime, or fails while failing is
// set, and records when it was asked (seconds since start).
type fakeSource struct {
	start time.Time
	life  time.Duration

	mu      sync.Mutex
	failing error
	calls   []int
	n       int
}

func (s *fakeSource) Name() string { return "fake" }

func (s *fakeSource) Token(context.Context) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, int(time.Since(s.start)/time.Second))
	if s.failing != nil {
		return Token{}, s.failing
	}
	s.n++
	return Token{Value: fmt.Sprintf("token-%d", s.n), Expires: time.Now().Add(s.life)}, nil
}

func (s *fakeSource) fail(err error) {
	s.mu.Lock()
	s.failing = err
	s.mu.Unlock()
}

func (s *fakeSource) callTimes() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.calls)
}

// TestCache runs a Cache on fake time: it refreshes at 80 % of a token's
// lifetime, keeps the last token while the source fails (retrying with
// backoff, no later than expiry), has none once it expires, and recovers.
func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		src := &fakeSource{start: time.Now(), life: 100 * time.Second}
		c := NewCache(src, CacheConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if _, err := c.Token(); !errors.Is(err, ErrNoTokenYet) {
			t.Fatalf("before Run: %v, want ErrNoTokenYet", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()

		at := func(sec int) { // advance to sec seconds after start
			t.Helper()
			time.Sleep(time.Until(src.start.Add(time.Duration(sec) * time.Second)))
			synctest.Wait()
		}
		want := func(value string) {
			t.Helper()
			tok, err := c.Token()
			if value == "" {
				if err == nil {
					t.Fatalf("at %v: got %q, want no token", time.Since(src.start), tok.Value)
				}
				return
			}
			if err != nil || tok.Value != value {
				t.Fatalf("at %v: got %q, %v, want %q", time.Since(src.start), tok.Value, err, value)
			}
		}

		at(0)
		want("token-1")
		at(79)
		want("token-1")
		at(81) // refreshed at 80
		want("token-2")
		src.fail(&Error{Source: "fake", Msg: "down", Temp: true})
		at(179)
		want("token-2") // kept while the source fails
		at(180)
		want("") // expired
		if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "the token source fails: fake: down") {
			t.Errorf("after expiry: %v, want the source's error", err)
		}
		src.fail(nil)
		at(213)
		want("token-3")
		// 80: refresh; 160: first failure, then 1, 2, 4, 8 s; 175 + 5
		// (the backoff of 16 s cut to the 5 s left); 180 + 32 s.
		if got, want := src.callTimes(), "[0 80 160 161 163 167 175 180 212]"; got != want {
			t.Errorf("asked at %s s, want %s", got, want)
		}
		cancel()
		<-done

		out := logs.String()
		for _, s := range []string{`"msg":"token refreshed"`, `"msg":"token refresh failed; keeping the last token"`,
			`"msg":"no token: the token source fails"`, `"token_fp":"`} {
			if !strings.Contains(out, s) {
				t.Errorf("log lacks %s:\n%s", s, out)
			}
		}
		if strings.Contains(out, "token-") {
			t.Errorf("a token value is in the log:\n%s", out)
		}
	})
}

// TestCacheBackoffCap: failures from the start back off up to MaxBackoff.
func TestCacheBackoffCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{start: time.Now(), life: time.Hour}
		src.fail(errors.New("down"))
		c := NewCache(src, CacheConfig{MaxBackoff: 10 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "no token yet: down") {
			t.Errorf("Token: %v, want the source's error", err)
		}
		if got, want := src.callTimes(), "[0 1 3 7 15 25 35 45]"; got != want {
			t.Errorf("asked at %s s, want %s", got, want)
		}
		cancel()
		<-done
	})
}

func TestFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{start: time.Now(), life: time.Hour}
		src.fail(&Error{Source: "fake", Msg: "410", Temp: true})
		go func() {
			time.Sleep(2500 * time.Millisecond)
			src.fail(nil)
		}()
		tok, err := Fetch(t.Context(), src)
		if err != nil || tok.Value != "token-1" {
			t.Fatalf("got %q, %v", tok.Value, err)
		}
		if got, want := src.callTimes(), "[0 1 3]"; got != want {
			t.Errorf("asked at %s s, want %s", got, want)
		}

		src = &fakeSource{start: time.Now(), life: time.Hour}
		src.fail(&Error{Source: "fake", Msg: "bad audience"})
		if _, err := Fetch(t.Context(), src); err == nil || src.callTimes() != "[0]" {
			t.Errorf("a permanent error: %v after %s, want it at once", err, src.callTimes())
		}

		src = &fakeSource{start: time.Now(), life: time.Hour}
		src.fail(&Error{Source: "fake", Msg: "410", Temp: true})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := Fetch(ctx, src); err == nil || !strings.Contains(err.Error(), "410") || src.callTimes() != "[0 1 3 7]" {
			t.Errorf("until the deadline: %v after %s", err, src.callTimes())
		}
	})
}
