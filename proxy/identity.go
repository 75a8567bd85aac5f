package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy"
)

// Identity-keyed selection (issue 13).
//
// When the policy has an entra block, a request on the explicit listener
// may carry a managed identity's Entra access token in Proxy-Authorization
// (Basic with the token as password, or Bearer). It is judged before the
// policy decision (authenticate): a valid token selects the client block
// listing its identity (policy.ClientForIdentity, in classify), never an
// address-keyed one; a request without credentials meets address-keyed
// blocks exactly as without an entra block, except that a policy refusal
// becomes 407 with a Basic challenge, the only way .NET and Java clients
// send credentials. Transparent traffic carries no credentials and never
// selects an identity block.
//
// Without an entra block, Proxy-Authorization is ignored: no block can be
// selected by identity then, so there is nothing to validate it for.
// Either way it never leaves the proxy: a CONNECT's head is not
// forwarded, and a plain-HTTP request loses the header before it is sent
// upstream (handleHTTP).

// Reasons of identity selection; a refused credential's reason is its
// identity.Reason (malformed, expired, wrong_audience, keys_unavailable, ...).
const (
	// ReasonIdentityUnknown: a valid token whose identity no client
	// block's identity block lists.
	ReasonIdentityUnknown = string(identity.ReasonIdentityUnknown)
	// ReasonIdentitySource: a valid token whose client block takes it
	// only from its sources, which do not contain the client address.
	ReasonIdentitySource = "identity_source"
)

// authReasonValid is azegress_auth_results_total's reason for result ok.
const authReasonValid = "valid"

// authResultsAtZero exports every result and reason of
// azegress_auth_results_total at 0 (see atZero), once a policy has an entra
// block: ok with valid, missing with missing, and refused with each reason a
// credential can be refused for. The series stay after a reload drops the
// block, as counters do.
func (m *metrics) authResultsAtZero() {
	by := func(a authState) *prometheus.CounterVec {
		return m.authResults.MustCurryWith(prometheus.Labels{"result": a.String()})
	}
	atZero(by(authOK), authReasonValid)
	atZero(by(authMissing), string(identity.ReasonMissing))
	refused := []string{ReasonIdentitySource}
	for _, r := range identity.Reasons() {
		if r != identity.ReasonMissing { // an empty credential is no credential: result missing
			refused = append(refused, string(r))
		}
	}
	atZero(by(authRefused), refused...)
}

// authState is how a flow's credentials were judged.
type authState uint8

const (
	authNone    authState = iota // no entra block, or a transparent flow: credentials play no part
	authMissing                  // an entra block and no credentials: address-keyed selection
	authOK                       // a valid token that selected its identity's client block
	authRefused                  // credentials refused, or a valid token that selects no block
)

// String is the auth_result of the log and the metric.
func (a authState) String() string {
	switch a {
	case authMissing:
		return "missing"
	case authOK:
		return "ok"
	case authRefused:
		return "refused"
	}
	return ""
}

// entraState is a generation's entra block and what validates its tokens.
type entraState struct {
	entra *policy.Entra
	keys  *identity.Keys
	v     *identity.Validator
}

// identities owns the signing-key cache and the validator behind the
// served policy's entra block. A reload keeps the Keys, and the keys it
// loaded, while tenant and authority stay the same, and the Validator, and
// the tokens it verified, while the audiences and clock skew stay too. The
// Keys' refresher (Keys.Run) runs from when a policy first needs it until
// a policy no longer does, or Shutdown.
type identities struct {
	client *http.Client // Config.EntraClient
	log    *slog.Logger

	mu       sync.Mutex
	cur      *entraState        // the served policy's; guarded by mu
	stopKeys context.CancelFunc // ends cur.keys' Run; guarded by mu
	stopped  bool               // Shutdown ran; guarded by mu
	// Counters of the Keys and Validators a reload retired, so that the
	// metrics' totals never go down; guarded by mu.
	retiredKeys  identity.KeyStats
	retiredCache identity.CacheStats
}

// prepare returns what validates p's tokens, nil without an entra block:
// the current Keys and Validator where they still serve p, new ones
// otherwise. It starts nothing (commit does).
func (ids *identities) prepare(p *policy.Policy) (*entraState, error) {
	e := p.Entra()
	if e == nil {
		return nil, nil
	}
	ids.mu.Lock()
	cur := ids.cur
	ids.mu.Unlock()
	st := &entraState{entra: e}
	if cur != nil && cur.keys.Serves(e.TenantID, e.Authority) {
		st.keys = cur.keys
		if sameValidation(cur.entra, e) {
			st.v = cur.v
			return st, nil
		}
	} else {
		keys, err := identity.NewKeys(identity.KeysConfig{TenantID: e.TenantID, Authority: e.Authority, Client: ids.client, Logger: ids.log})
		if err != nil {
			return nil, fmt.Errorf("entra block: %w", err)
		}
		st.keys = keys
	}
	v, err := NewValidator(e, st.keys)
	if err != nil {
		return nil, fmt.Errorf("entra block: %w", err)
	}
	st.v = v
	return st, nil
}

// NewValidator returns the Validator the proxy checks e's tokens with, on
// keys: e's audiences and its clock skew, exactly ("0s" is no leeway).
// explain -token builds its own with it, on keys read from a file.
func NewValidator(e *policy.Entra, keys *identity.Keys) (*identity.Validator, error) {
	return identity.NewValidator(keys, identity.Config{Audiences: e.Audiences, ClockSkew: e.ClockSkew, ExactSkew: true})
}

// sameValidation reports whether a and b accept the same tokens from the
// same keys, so that a Validator built for one serves the other.
func sameValidation(a, b *policy.Entra) bool {
	if a.ClockSkew != b.ClockSkew || len(a.Audiences) != len(b.Audiences) {
		return false
	}
	for i := range a.Audiences {
		if a.Audiences[i] != b.Audiences[i] {
			return false
		}
	}
	return true
}

// commit makes st (prepare's, for the policy just swapped in) current: it
// starts the refresher of new Keys and stops that of Keys no longer used.
func (ids *identities) commit(st *entraState) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	old := ids.cur
	ids.cur = st
	if old != nil && (st == nil || st.v != old.v) {
		ids.retiredCache = addCacheStats(ids.retiredCache, old.v.Stats())
	}
	if old != nil && (st == nil || st.keys != old.keys) {
		ids.retiredKeys = addKeyStats(ids.retiredKeys, old.keys.Stats())
		ids.stopKeys()
		ids.stopKeys = nil
	}
	if st != nil && ids.stopKeys == nil && !ids.stopped {
		ctx, cancel := context.WithCancel(context.Background())
		ids.stopKeys = cancel
		go st.keys.Run(ctx)
	}
}

// stop ends the key refresher for good (Shutdown).
func (ids *identities) stop() {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	ids.stopped = true
	if ids.stopKeys != nil {
		ids.stopKeys()
		ids.stopKeys = nil
	}
}

func addKeyStats(a, b identity.KeyStats) identity.KeyStats {
	a.RefreshOK += b.RefreshOK
	a.RefreshFailed += b.RefreshFailed
	return a
}

func addCacheStats(a, b identity.CacheStats) identity.CacheStats {
	a.Hits += b.Hits
	a.Misses += b.Misses
	return a
}

// Readiness reports whether the server should get new work, and if not,
// why: it is draining, or the policy has an entra block and its tenant's
// signing keys have not loaded yet (until then every token would be
// refused as keys_unavailable).
func (s *Server) Readiness() (ready bool, why string) {
	if s.draining.Load() {
		return false, "draining"
	}
	if e := s.gen.Load().entra; e != nil && !e.keys.Ready() {
		return false, fmt.Sprintf("waiting for the signing keys of tenant %s from %s (entra block)", e.entra.TenantID, e.entra.Authority)
	}
	return true, "ready"
}

// decideExplicit is decide for a request on the explicit listener, whose
// credentials (hdr: its Proxy-Authorization values) are judged first, so
// that a valid token selects its identity's client block.
func (s *Server) decideExplicit(ctx context.Context, fl *flow, hdr []string) *denial {
	return s.decideAuthenticated(fl, authenticate(ctx, fl, hdr))
}

// decideAuthenticated is decideExplicit once fl's credentials are judged:
// d is authenticate's verdict.
func (s *Server) decideAuthenticated(fl *flow, d *denial) *denial {
	if d == nil {
		d = s.decide(fl)
	}
	if fl.auth != authNone {
		reason := fl.authReason
		if fl.auth == authOK {
			reason = authReasonValid
		}
		s.m.authResults.WithLabelValues(fl.auth.String(), reason).Inc()
	}
	return d
}

// authenticate judges fl's credentials under its policy's entra block: hdr
// are the request's Proxy-Authorization values. Without an entra block it
// does nothing. Without credentials it marks fl authMissing, so that
// classify selects by address. A valid token's identity goes into fl.id
// for classify; anything else is refused here, before any decision.
func authenticate(ctx context.Context, fl *flow, hdr []string) *denial {
	d, tok, done := authenticateAtHand(fl, hdr)
	if !done {
		d = verifyToken(ctx, fl, tok)
	}
	return d
}

// authenticateAtHand is authenticate as far as it goes without waiting:
// it reads and hashes the token once, and is done unless the validator
// must verify it; then tok is for verifyToken, which may wait for the
// tenant's keys.
func authenticateAtHand(fl *flow, hdr []string) (d *denial, tok identity.Token, done bool) {
	e := fl.gen.entra
	if e == nil {
		return nil, tok, true
	}
	fl.auth, fl.authReason = authMissing, string(identity.ReasonMissing)
	if len(hdr) == 0 {
		return nil, tok, true
	}
	if len(hdr) > 1 {
		fl.auth = authRefused
		return credentialDenial(fl, &identity.Error{Reason: identity.ReasonMalformed,
			Detail: fmt.Sprintf("the request has %d Proxy-Authorization headers; send exactly one", len(hdr))}), tok, true
	}
	token, err := identity.ParseProxyAuthorization(hdr[0])
	if identity.ReasonOf(err) == identity.ReasonMissing {
		return nil, tok, true // an empty header is no credentials
	}
	fl.auth, fl.authReason = authRefused, ""
	if err != nil {
		return credentialDenial(fl, err), tok, true
	}
	tok = identity.NewToken(token)
	id, ok := e.v.Lookup(&tok)
	if ok {
		fl.auth, fl.id = authOK, id
	}
	return nil, tok, ok
}

// verifyToken is authenticate's end for a token the validator does not
// keep (authenticateAtHand's tok): a full check.
func verifyToken(ctx context.Context, fl *flow, tok identity.Token) *denial {
	id, err := fl.gen.entra.v.Verify(ctx, &tok)
	if err != nil {
		fl.tokenFP = tok.Fingerprint()
		return credentialDenial(fl, err)
	}
	fl.auth, fl.id = authOK, id
	return nil
}

// classifyIdentity is classify for a flow with a valid token: the client
// block listing its identity, never one selected by address.
func classifyIdentity(fl *flow) *denial {
	c, listed := fl.gen.pol.ClientForIdentity(fl.id.ObjectID, fl.id.AppID, fl.client.Addr())
	fl.block = c
	if c == nil {
		fl.auth = authRefused
		fl.authReason = ReasonIdentityUnknown
		if listed {
			fl.authReason = ReasonIdentitySource
		}
	}
	if d := checkLocalEndpoint(fl); d != nil {
		return d
	}
	switch {
	case c != nil:
		return nil
	case listed:
		return identitySource(fl)
	}
	return identityUnknown(fl)
}

// credentialDenial refuses credentials that failed (err, an
// *identity.Error): 407 without a challenge, since a client that sent
// these would only send them again; 431 for a header over the limit; 503
// while the tenant's keys are unavailable, which is the proxy's problem
// and passes (address-keyed clients are unaffected).
func credentialDenial(fl *flow, err error) *denial {
	reason, detail := identity.ReasonMalformed, "the credentials cannot be read"
	if ie, ok := errors.AsType[*identity.Error](err); ok {
		reason, detail = ie.Reason, ie.Detail
	}
	fl.authReason = string(reason)
	d := &denial{
		status: http.StatusProxyAuthRequired,
		reason: string(reason),
		detail: "Proxy-Authorization refused: " + detail,
		fix:    credentialFix(fl, reason),
	}
	switch reason {
	case identity.ReasonHeaderTooLarge:
		d.status = http.StatusRequestHeaderFieldsTooLarge
	case identity.ReasonKeysUnavailable:
		d.status = http.StatusServiceUnavailable
		d.retryAfter = 30 * time.Second
	}
	return d
}

// credentialFix says what to do about a refused credential.
func credentialFix(fl *flow, reason identity.Reason) string {
	e := fl.gen.entra.entra
	aud := e.Audiences[0]
	file := fl.gen.pol.Filename()
	switch reason {
	case identity.ReasonMalformed, identity.ReasonMissing, identity.ReasonHeaderTooLarge:
		return fmt.Sprintf("Send a managed identity's access token for %s as the proxy password, after any non-empty user name "+
			"(HTTPS_PROXY=http://azegress:<token>@proxy:3128, which sends Proxy-Authorization: Basic base64(azegress:<token>)), "+
			"or as Proxy-Authorization: Bearer <token>.", aud)
	case identity.ReasonExpired, identity.ReasonNotYetValid:
		return "Fetch a fresh token: managed-identity tokens live about 24 hours, so a token in an environment variable goes stale " +
			"(azegress proxy-url prints a proxy URL with a fresh one; azegress agent refreshes it for long-running clients). " +
			"If the token is fresh, check the clocks of the client and the proxy."
	case identity.ReasonWrongAudience:
		return fmt.Sprintf("Request the token for the proxy's own audience, resource %s (IMDS: resource=%s; SDKs: scope %s/.default), not for Azure Resource Manager or another service; "+
			"the accepted audiences are entra.audiences in %s.", aud, aud, strings.TrimSuffix(aud, "/"), file)
	case identity.ReasonWrongIssuer, identity.ReasonWrongTenant, identity.ReasonUnknownKey, identity.ReasonBadSignature:
		return fmt.Sprintf("The proxy accepts tokens issued by Entra ID tenant %s (entra.tenant_id in %s) through %s, signed with its published keys. "+
			"Use a managed identity of that tenant and send its token unchanged.", e.TenantID, file, e.Authority)
	case identity.ReasonDelegatedToken:
		return "Use a managed identity's app-only token (IMDS, workload identity), not a token a user signed in for (az login as a user)."
	case identity.ReasonNoOID:
		return "Use a managed identity's access token: the proxy selects a client block by the token's oid, its object ID."
	case identity.ReasonKeysUnavailable:
		return fmt.Sprintf("The proxy has no current signing keys of tenant %s: it cannot reach %s (see azegress_identity_key_refreshes_total and its log). "+
			"Retry later; requests without credentials are not affected.", e.TenantID, e.Authority)
	}
	return ""
}

// identityUnknown refuses a valid token whose identity no block lists.
// It never falls back to the address-keyed blocks: an identity never
// widens what a request may reach.
func identityUnknown(fl *flow) *denial {
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonIdentityUnknown,
		detail: fmt.Sprintf("managed identity %s is in no client block's identity block", describeIdentity(fl.id)),
		fix: fmt.Sprintf("To let this identity use the proxy, list it in a client block of %s, for example:\n\n"+
			"  client \"new-identity\" {\n    identity {\n      object_ids = [\"%s\"]\n    }\n\n%s  }\n",
			fl.gen.pol.Filename(), fl.id.ObjectID, indent(suggestRule(fl.host, fl.port), "  ")),
	}
}

// identitySource refuses a valid token whose block takes it only from
// sources that do not contain the client address.
func identitySource(fl *flow) *denial {
	name := "its client block"
	if c := identityBlock(fl.gen.pol, fl.id); c != nil {
		name = fmt.Sprintf("client block %q", c.Name)
	}
	a := fl.client.Addr().Unmap()
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonIdentitySource,
		detail: fmt.Sprintf("managed identity %s selects %s, whose sources do not contain the client address %s", describeIdentity(fl.id), name, a),
		fix: fmt.Sprintf("If the identity may use the proxy from there, add %s to the sources of %s in %s, or remove sources to take it from any address.",
			netip.PrefixFrom(a, a.BitLen()), name, fl.gen.pol.Filename()),
	}
}

// identityBlock returns the client block listing id, as ClientForIdentity
// selects it but whatever the source address.
func identityBlock(p *policy.Policy, id identity.Identity) *policy.Client {
	var byClient *policy.Client
	for _, c := range p.Clients() {
		if c.Identity == nil {
			continue
		}
		if hasFold(c.Identity.ObjectIDs, id.ObjectID) {
			return c
		}
		if byClient == nil && hasFold(c.Identity.ClientIDs, id.AppID) {
			byClient = c
		}
	}
	return byClient
}

func hasFold(list []string, s string) bool {
	for _, x := range list {
		if s != "" && strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func describeIdentity(id identity.Identity) string {
	if id.AppID == "" {
		return "object ID " + id.ObjectID
	}
	return fmt.Sprintf("object ID %s (client ID %s)", id.ObjectID, id.AppID)
}

// challengeable are the refusals of a request without credentials that a
// token could turn into an allow, in an identity's own client block. The
// others (a malformed request, a rate limit, a VM-local endpoint) stay as
// they are: credentials would not change them.
var challengeable = map[string]bool{
	ReasonClientUnknown: true, ReasonNoRule: true, ReasonDenyRule: true, ReasonBlockedAddress: true,
}

// challenge turns the refusal of a request without credentials, under a
// policy with an entra block, into 407 with a Basic challenge: .NET and
// Java send proxy credentials only in answer to one. The body still says
// why and what to do.
func challenge(fl *flow, d *denial) {
	if fl.auth != authMissing || !challengeable[d.reason] {
		return
	}
	d.status = http.StatusProxyAuthRequired
	d.challenge = true
	if d.fix != "" && !strings.HasSuffix(d.fix, "\n") {
		d.fix += "\n"
	}
	d.fix += fmt.Sprintf("\nThis proxy also selects client blocks by managed identity: a workload whose identity's block allows this "+
		"sends its access token for %s as the proxy password (HTTPS_PROXY=http://azegress:<token>@proxy:3128).\n", fl.gen.entra.entra.Audiences[0])
}

// proxyAuthenticate is the challenge of a 407 to a request without
// credentials.
const proxyAuthenticate = `Basic realm="azegress"`

// appendAuthAttrs appends the log attributes of fl's credentials, when
// they played a part.
func (fl *flow) appendAuthAttrs(a []slog.Attr) []slog.Attr {
	if fl.auth == authNone {
		return a
	}
	src := "token"
	if fl.auth == authMissing {
		src = "cidr"
	}
	a = append(a, slog.String(keyIdentitySource, src), slog.String(keyAuthResult, fl.auth.String()))
	if fl.authReason != "" {
		a = append(a, slog.String(keyAuthReason, fl.authReason))
	}
	if id := &fl.id; id.ObjectID != "" {
		a = append(a, slog.String(keyOID, id.ObjectID), slog.String(keyAppID, id.AppID), slog.String(keyTID, id.TenantID),
			slog.Time(keyTokenExp, id.Expiry.UTC()), slog.String(keyTokenFP, id.Fingerprint))
	} else if fl.tokenFP != "" {
		a = append(a, slog.String(keyTokenFP, fl.tokenFP))
	}
	return a
}

// identityCollector exports the key cache's and the verified-token
// cache's counters (package identity keeps them; it knows nothing of
// Prometheus). Totals carry over reloads that replace the caches.
type identityCollector struct{ ids *identities }

var (
	descCacheHits = prometheus.NewDesc(namespace+"_identity_token_cache_hits_total",
		"Token validations answered from the verified-token cache (one SHA-256, no signature check).", nil, nil)
	descCacheMisses = prometheus.NewDesc(namespace+"_identity_token_cache_misses_total",
		"Token validations that were not in the verified-token cache: a signature check, or an early refusal.", nil, nil)
	descCacheEntries = prometheus.NewDesc(namespace+"_identity_token_cache_entries",
		"Verified tokens cached now.", nil, nil)
	descKeyRefreshes = prometheus.NewDesc(namespace+"_identity_key_refreshes_total",
		"Refreshes of the Entra tenant's signing keys (OpenID configuration documents and key sets) by result (success, failure). A failure keeps the last good keys.",
		[]string{"result"}, nil)
	descKeyLastSuccess = prometheus.NewDesc(namespace+"_identity_key_last_refresh_success_timestamp_seconds",
		"Unix time of the last successful signing-key refresh; 0 until the first. Keys older than 24 hours are not used.", nil, nil)
	descKeys = prometheus.NewDesc(namespace+"_identity_keys",
		"Signing keys usable now (listed by the tenant within 24 hours); 0 means every token is refused as keys_unavailable.", nil, nil)
)

func (c identityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheHits, descCacheMisses, descCacheEntries, descKeyRefreshes, descKeyLastSuccess, descKeys} {
		ch <- d
	}
}

// Collect reports the counters always, and the gauges of the current key
// cache only while the policy has an entra block.
func (c identityCollector) Collect(ch chan<- prometheus.Metric) {
	c.ids.mu.Lock()
	cur, keys, cache := c.ids.cur, c.ids.retiredKeys, c.ids.retiredCache
	c.ids.mu.Unlock()
	if cur != nil {
		keys = addKeyStats(keys, cur.keys.Stats())
		cache = addCacheStats(cache, cur.v.Stats())
	}
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(cache.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(cache.Misses))
	ch <- prometheus.MustNewConstMetric(descKeyRefreshes, prometheus.CounterValue, float64(keys.RefreshOK), "success")
	ch <- prometheus.MustNewConstMetric(descKeyRefreshes, prometheus.CounterValue, float64(keys.RefreshFailed), "failure")
	if cur == nil {
		return
	}
	ks := cur.keys.Stats()
	last := 0.0
	if !ks.LastSuccess.IsZero() {
		last = float64(ks.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descCacheEntries, prometheus.GaugeValue, float64(cur.v.Stats().Entries))
	ch <- prometheus.MustNewConstMetric(descKeyLastSuccess, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(ks.Keys))
}
