package identity

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key-cache timing, from Microsoft's guidance on signing-key rollover.
const (
	// KeyLifetime is how long a kid stays usable after a fetch last
	// listed it.
	KeyLifetime = 24 * time.Hour
	// RefreshInterval is the mean period of Run's background refresh;
	// each wait is jittered by ±refreshJitter.
	RefreshInterval = time.Hour
	// UnknownKeyRefreshInterval is the least time between two refreshes
	// triggered by tokens naming an unknown kid.
	UnknownKeyRefreshInterval = 5 * time.Minute

	refreshJitter = RefreshInterval / 10
	retryMin      = 10 * time.Second // Run's first retry after a failed refresh
	retryMax      = UnknownKeyRefreshInterval
	fetchTimeout  = 10 * time.Second // one refresh: two documents and the key sets
	maxBodyBytes  = 1 << 20          // an Entra JWKS is about 10 KB, a discovery document 2 KB
	maxKeys       = 100              // keys kept per refresh; Entra publishes a handful
	minRSABits    = 2048
)

// KeysConfig says where a tenant's signing keys come from.
type KeysConfig struct {
	// TenantID is the Entra tenant, a GUID. Required.
	TenantID string
	// Authority is the Entra host, e.g. "https://login.microsoftonline.com".
	// If empty, it means that. It must be https://, or http:// to a
	// loopback host (a test identity provider).
	Authority string
	// Client fetches the documents. If nil, http.DefaultClient.
	Client *http.Client
	// Now is the clock for key and token lifetimes. If nil, time.Now.
	Now func() time.Time
	// Logger gets a warning per failed refresh. If nil, nothing is logged.
	Logger *slog.Logger
}

// Keys is a tenant's signing-key cache. It discovers the v2 and v1 issuers
// and key-set URLs from the tenant's OpenID configuration documents under
// the authority, keeps each kid for KeyLifetime after a fetch last listed
// it, and keeps the last good set when a fetch fails. It is safe for
// concurrent use; one Keys serves every Validator built for its tenant and
// authority, so it survives policy reloads that keep both (see Serves).
type Keys struct {
	tenant    string
	authority string
	docURLs   [2]string // v2, v1
	client    *http.Client
	now       func() time.Time
	logger    *slog.Logger

	state atomic.Pointer[keyState] // nil until the first successful refresh

	mu          sync.Mutex // guards flight and lastUnknown
	flight      *flight    // the refresh under way, if any
	lastUnknown time.Time  // start of the last refresh for an unknown kid

	refreshOK     atomic.Uint64
	refreshFailed atomic.Uint64
	lastSuccess   atomic.Int64 // Unix nanoseconds by now(); 0 = never

	static bool // NewStaticKeys: never fetches
}

// keyState is one immutable snapshot of what the last refreshes yielded.
type keyState struct {
	issuerV2, issuerV1 string
	keys               map[string]cachedKey
}

type cachedKey struct {
	pub      *rsa.PublicKey
	lastSeen time.Time
}

type flight struct {
	done chan struct{}
	err  error
}

// NewKeys checks cfg and returns an empty cache: call Run (or Refresh) to
// load it.
func NewKeys(cfg KeysConfig) (*Keys, error) {
	tenant := strings.ToLower(cfg.TenantID)
	if !isGUID(tenant) {
		return nil, fmt.Errorf("identity: tenant ID %s is not a GUID; use the directory (tenant) ID from az account show --query tenantId", quote(cfg.TenantID))
	}
	authority, err := normalizeAuthority(cfg.Authority)
	if err != nil {
		return nil, err
	}
	k := &Keys{
		tenant:    tenant,
		authority: authority,
		docURLs: [2]string{
			authority + "/" + tenant + "/v2.0/.well-known/openid-configuration",
			authority + "/" + tenant + "/.well-known/openid-configuration",
		},
		client: cfg.Client,
		now:    cfg.Now,
		logger: cfg.Logger,
	}
	if k.client == nil {
		k.client = http.DefaultClient
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.logger == nil {
		k.logger = slog.New(slog.DiscardHandler)
	}
	return k, nil
}

// NewStaticKeys returns Keys that hold the key set jwks (a JWKS document,
// as a tenant's jwks_uri serves it) for tenantID and accept tokens issued
// by issuerV2 or issuerV1. They never fetch anything: Refresh fails, Run
// returns at once, and a kid not in jwks is unknown_key. Their keys count
// as listed at now() when NewStaticKeys runs, so they serve for
// KeyLifetime. They are for checking a token offline (azegress explain
// -token -jwks); a proxy uses NewKeys, which follows key rolls.
func NewStaticKeys(tenantID, issuerV2, issuerV1 string, jwks []byte, now func() time.Time) (*Keys, error) {
	tenant := strings.ToLower(tenantID)
	if !isGUID(tenant) {
		return nil, fmt.Errorf("identity: tenant ID %s is not a GUID; use the directory (tenant) ID from az account show --query tenantId", quote(tenantID))
	}
	for _, iss := range []string{issuerV2, issuerV1} {
		if !strings.Contains(strings.ToLower(iss), tenant) {
			return nil, fmt.Errorf("identity: issuer %s does not name tenant %s", quote(iss), tenant)
		}
	}
	if now == nil {
		now = time.Now
	}
	k := &Keys{tenant: tenant, authority: "static", now: now, logger: slog.New(slog.DiscardHandler), static: true}
	fresh := make(map[string]*rsa.PublicKey)
	if err := addKeySet(jwks, fresh); err != nil {
		return nil, fmt.Errorf("identity: key set: %w", err)
	}
	if len(fresh) == 0 {
		return nil, errors.New("identity: the key set lists no usable RS256 signing key (RSA, at least 2048 bits, with a kid)")
	}
	t := now()
	st := &keyState{issuerV2: issuerV2, issuerV1: issuerV1, keys: make(map[string]cachedKey, len(fresh))}
	for kid, pub := range fresh {
		st.keys[kid] = cachedKey{pub: pub, lastSeen: t}
	}
	k.state.Store(st)
	k.lastSuccess.Store(t.UnixNano())
	return k, nil
}

// errStatic is Refresh's error on keys from NewStaticKeys.
var errStatic = errors.New("identity: static keys are never fetched")

// DefaultAuthority is the Entra host of the public Azure cloud.
const DefaultAuthority = "https://login.microsoftonline.com"

func normalizeAuthority(s string) (string, error) {
	if s == "" {
		return DefaultAuthority, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("identity: authority %s is not a plain URL like %s", quote(s), DefaultAuthority)
	}
	if err := checkScheme(u); err != nil {
		return "", fmt.Errorf("identity: authority: %w", err)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

// checkScheme allows https, and http only to a loopback host, so a test
// identity provider works and tokens' keys never travel in clear text.
func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%s is http:// to a non-loopback host; use https://", quote(u.Redacted()))
	}
	return fmt.Errorf("%s: scheme must be https", quote(u.Redacted()))
}

// Serves reports whether k was built for tenantID and authority (the same
// defaulting applies), so a policy reload can keep k and its keys.
func (k *Keys) Serves(tenantID, authority string) bool {
	a, err := normalizeAuthority(authority)
	return err == nil && a == k.authority && strings.EqualFold(tenantID, k.tenant)
}

// Ready reports whether a key set has loaded at least once.
func (k *Keys) Ready() bool { return k.state.Load() != nil }

// KeyStats are the cache's counters, for metrics.
type KeyStats struct {
	RefreshOK     uint64    // refreshes that loaded both documents and the key sets
	RefreshFailed uint64    // refreshes that failed (the last good set stays)
	LastSuccess   time.Time // zero until the first success
	Keys          int       // keys usable now (listed within KeyLifetime)
}

// Stats returns the current counters.
func (k *Keys) Stats() KeyStats {
	s := KeyStats{RefreshOK: k.refreshOK.Load(), RefreshFailed: k.refreshFailed.Load()}
	if ns := k.lastSuccess.Load(); ns != 0 {
		s.LastSuccess = time.Unix(0, ns)
	}
	if st := k.state.Load(); st != nil {
		now := k.now()
		for _, ck := range st.keys {
			if now.Sub(ck.lastSeen) < KeyLifetime {
				s.Keys++
			}
		}
	}
	return s
}

// Run loads the keys, then refreshes them every RefreshInterval (±10 %
// jitter) until ctx is done. After a failure it retries sooner, from 10 s
// doubling up to 5 minutes. Call it once per Keys, in its own goroutine.
func (k *Keys) Run(ctx context.Context) {
	if k.static {
		return
	}
	var wait time.Duration
	retry := retryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := k.Refresh(ctx); err != nil {
			wait, retry = retry, min(2*retry, retryMax)
			continue
		}
		wait = RefreshInterval - refreshJitter + rand.N(2*refreshJitter)
		retry = retryMin
	}
}

// Refresh fetches both OpenID configuration documents and the key sets
// they name, and merges the keys into the cache. A refresh already under
// way is joined rather than repeated. On failure the cache is unchanged.
func (k *Keys) Refresh(ctx context.Context) error {
	if k.static {
		return errStatic
	}
	k.mu.Lock()
	f := k.flight
	if f == nil {
		f = k.startLocked()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startLocked starts a refresh in its own goroutine, detached from any one
// caller's context, so a client that hangs up does not fail the others.
func (k *Keys) startLocked() *flight {
	f := &flight{done: make(chan struct{})}
	k.flight = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		f.err = k.fetch(ctx)
		cancel()
		if f.err != nil {
			k.refreshFailed.Add(1)
			k.logger.Warn("identity: signing-key refresh failed; keeping the last good keys",
				"authority", k.authority, "tenant_id", k.tenant, "error", f.err.Error())
		} else {
			k.refreshOK.Add(1)
		}
		k.mu.Lock()
		k.flight = nil
		k.mu.Unlock()
		close(f.done)
	}()
	return f
}

// refreshForUnknown refreshes for a token whose kid is unknown, at most
// once per UnknownKeyRefreshInterval; it joins a refresh already under
// way. It reports whether a refresh ran.
func (k *Keys) refreshForUnknown(ctx context.Context) bool {
	if k.static {
		return false
	}
	k.mu.Lock()
	f := k.flight
	if f == nil {
		now := k.now()
		if !k.lastUnknown.IsZero() && now.Sub(k.lastUnknown) < UnknownKeyRefreshInterval {
			k.mu.Unlock()
			return false
		}
		k.lastUnknown = now
		f = k.startLocked()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
	}
	return true
}

type openIDConfig struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// fetch loads both documents and their key sets and swaps in the merged
// state.
func (k *Keys) fetch(ctx context.Context) error {
	var docs [2]openIDConfig
	for i, u := range k.docURLs {
		if err := k.getJSON(ctx, u, &docs[i]); err != nil {
			return err
		}
		if err := k.checkDoc(u, docs[i]); err != nil {
			return err
		}
	}
	fresh := make(map[string]*rsa.PublicKey)
	if err := k.fetchKeySet(ctx, docs[0].JWKSURI, fresh); err != nil {
		return err
	}
	if docs[1].JWKSURI != docs[0].JWKSURI {
		if err := k.fetchKeySet(ctx, docs[1].JWKSURI, fresh); err != nil {
			return err
		}
	}
	if len(fresh) == 0 {
		return fmt.Errorf("key sets at %s list no usable RS256 signing key", quote(docs[0].JWKSURI))
	}

	now := k.now()
	next := &keyState{issuerV2: docs[0].Issuer, issuerV1: docs[1].Issuer, keys: make(map[string]cachedKey)}
	if old := k.state.Load(); old != nil {
		for kid, ck := range old.keys {
			if now.Sub(ck.lastSeen) < KeyLifetime {
				next.keys[kid] = ck
			}
		}
	}
	for kid, pub := range fresh {
		next.keys[kid] = cachedKey{pub: pub, lastSeen: now}
	}
	k.state.Store(next)
	k.lastSuccess.Store(now.UnixNano())
	return nil
}

func (k *Keys) checkDoc(docURL string, d openIDConfig) error {
	if d.Issuer == "" || !strings.Contains(strings.ToLower(d.Issuer), k.tenant) {
		return fmt.Errorf("%s: issuer %s does not name tenant %s", docURL, quote(d.Issuer), k.tenant)
	}
	u, err := url.Parse(d.JWKSURI)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s: jwks_uri %s is not a URL", docURL, quote(d.JWKSURI))
	}
	if err := checkScheme(u); err != nil {
		return fmt.Errorf("%s: jwks_uri %w", docURL, err)
	}
	return nil
}

// fetchKeySet adds the usable keys of the JWKS at u to into. A key that is
// not an RSA signing key of at least 2048 bits for RS256 is skipped, not
// fatal, so one odd key cannot take the whole set down. A kid listed with
// two different keys is dropped: the token cannot say which one it means.
func (k *Keys) fetchKeySet(ctx context.Context, u string, into map[string]*rsa.PublicKey) error {
	var set keySet
	if err := k.getJSON(ctx, u, &set); err != nil {
		return err
	}
	set.addTo(into)
	return nil
}

// keySet is a JWKS document, its keys not yet parsed.
type keySet struct {
	Keys []json.RawMessage `json:"keys"`
}

// addKeySet parses the JWKS document body and adds its usable keys to
// into, as fetchKeySet does.
func addKeySet(body []byte, into map[string]*rsa.PublicKey) error {
	if len(body) > maxBodyBytes {
		return fmt.Errorf("over %d bytes", maxBodyBytes)
	}
	var set keySet
	if err := json.Unmarshal(body, &set); err != nil {
		return err
	}
	set.addTo(into)
	return nil
}

// addTo adds the usable keys of set to into (see fetchKeySet).
func (set *keySet) addTo(into map[string]*rsa.PublicKey) {
	for _, raw := range set.Keys {
		if len(into) >= maxKeys {
			break
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok || jwk.KeyID == "" || pub.N.BitLen() < minRSABits ||
			(jwk.Use != "" && jwk.Use != "sig") ||
			(jwk.Algorithm != "" && jwk.Algorithm != string(jose.RS256)) {
			continue
		}
		if prev, dup := into[jwk.KeyID]; dup && !prev.Equal(pub) {
			into[jwk.KeyID] = nil
			continue
		}
		into[jwk.KeyID] = pub
	}
	for kid, pub := range into {
		if pub == nil {
			delete(into, kid)
		}
	}
}

// getJSON GETs u and decodes at most maxBodyBytes of JSON into v.
func (k *Keys) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkScheme(resp.Request.URL); err != nil {
		return fmt.Errorf("GET %s was redirected: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s%s", u, resp.Status, entraError(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxBodyBytes {
		return fmt.Errorf("GET %s: body over %d bytes", u, maxBodyBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// entraError returns ": " and the first line of the error_description of
// Entra's error body (for a wrong tenant_id, "AADSTS90002: Tenant '...'
// not found. ..."), or "" for any other body: a bare status would not say
// what to fix.
func entraError(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 16<<10))
	var e struct {
		Description string `json:"error_description"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	line, _, _ := strings.Cut(e.Description, "\n")
	line = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, line))
	if line == "" {
		return ""
	}
	if len(line) > 300 {
		line = strings.ToValidUTF8(line[:300], "") + "..."
	}
	return ": " + line
}

// keyFor returns the public key for kid, when to stop trusting it, and the
// issuers, refreshing once (rate-limited) when kid is unknown or every key
// has aged out.
func (k *Keys) keyFor(ctx context.Context, kid string, now time.Time) (*rsa.PublicKey, time.Time, *keyState, error) {
	st := k.state.Load()
	if pub, until, ok := st.lookup(kid, now); ok {
		return pub, until, st, nil
	}
	if k.refreshForUnknown(ctx) {
		st = k.state.Load()
		if pub, until, ok := st.lookup(kid, now); ok {
			return pub, until, st, nil
		}
	}
	if !st.anyUsable(now) {
		return nil, time.Time{}, nil, refuse(ReasonKeysUnavailable,
			"no signing keys for tenant %s loaded from %s within %s; check that the proxy reaches %s",
			k.tenant, k.authority, KeyLifetime, k.authority)
	}
	return nil, time.Time{}, nil, refuse(ReasonUnknownKey,
		"kid %s is not in tenant %s's signing keys (refetched at most every %s); the token may come from another tenant or cloud",
		quote(kid), k.tenant, UnknownKeyRefreshInterval)
}

func (st *keyState) lookup(kid string, now time.Time) (*rsa.PublicKey, time.Time, bool) {
	if st == nil {
		return nil, time.Time{}, false
	}
	ck, ok := st.keys[kid]
	if !ok || now.Sub(ck.lastSeen) >= KeyLifetime {
		return nil, time.Time{}, false
	}
	return ck.pub, ck.lastSeen.Add(KeyLifetime), true
}

func (st *keyState) anyUsable(now time.Time) bool {
	if st == nil {
		return false
	}
	for _, ck := range st.keys {
		if now.Sub(ck.lastSeen) < KeyLifetime {
			return true
		}
	}
	return false
}

// isGUID reports whether s is a lowercase 8-4-4-4-12 hex GUID.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
