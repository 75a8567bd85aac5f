package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// Lint returns warnings about a policy that loads but probably does not
// say what its author meant, each at the element it is about and with what
// to do:
//
//   - a wildcard written in hosts over a multi-tenant data plane
//     (*.vault.azure.net, *.blob.core.windows.net): any tenant's resource
//     matches it (catalog.MultiTenantWildcard);
//   - a host that never changes a decision: an exact host or a wildcard
//     that another rule of the same kind in the block covers with a
//     superset of its ports (a wildcard over it, a shorter wildcard, or the
//     same pattern earlier in the file), or an allow host a deny rule
//     refuses on all its ports;
//   - a client block without allow rules;
//   - port 80 on an Entra ID (token endpoint) host;
//   - a host that the catalog marks local (IMDS, WireServer, Arc HIMDS):
//     the proxy refuses those whatever the rules say;
//   - an allow rule's addresses prefix wider than a guarded range it
//     covers (64.0.0.0/2 over loopback): it opens none of that range;
//   - an expires in the past at now, or within ExpiryWarning of it;
//   - an entra block that no client block's identity block uses.
//
// Lint never returns errors. The diagnostics are sorted by position; each
// has a *LintFinding as its Extra.
func Lint(p *Policy, now time.Time) hcl.Diagnostics {
	if p == nil {
		return nil
	}
	l := &linter{p: p, now: now, entra: entraHosts(p.cloud)}
	for _, c := range p.clients {
		l.client(c)
	}
	l.unusedEntra()
	sort.SliceStable(l.diags, func(i, j int) bool { return l.diags[i].Subject.Start.Byte < l.diags[j].Subject.Start.Byte })
	return l.diags
}

type linter struct {
	p     *Policy
	now   time.Time
	entra []string // host patterns of the Entra ID groups
	diags hcl.Diagnostics
}

func (l *linter) warn(subject hcl.Range, f LintFinding, summary, format string, args ...any) {
	d := warnf(subject.Ptr(), nil, summary, format, args...)
	d.Extra = &f
	l.diags = append(l.diags, d)
}

// LintFinding is the Extra of every diagnostic Lint returns: what the
// warning is about, so that tools (the review kit's diff) can tie it to a
// rule and its hosts without reading positions or text.
type LintFinding struct {
	// Check is the kind of warning, one of the Lint* constants; it is
	// stable, for tools to match on.
	Check string
	// Client is the client block, or nil for the entra block.
	Client *Client
	// Rule is the rule, or nil for a finding about a whole block.
	Rule *Rule
	// Hosts are the hosts of Rule the finding is about, if any.
	Hosts []string
	// Address is the addresses prefix of Rule it is about, if any.
	Address netip.Prefix
}

// The checks of Lint, as LintFinding.Check names them.
const (
	LintNoAllowRules        = "no_allow_rules"
	LintUnusedEntra         = "unused_entra"
	LintMultiTenantWildcard = "multi_tenant_wildcard"
	LintRedundantHost       = "redundant_host"
	LintRefusedByDeny       = "refused_by_deny"
	LintPlainHTTPToken      = "plain_http_token"
	LintLocalEndpoint       = "local_endpoint"
	LintWideAddress         = "wide_address"
	LintExpired             = "expired"
	LintExpiresSoon         = "expires_soon"
)

func (l *linter) client(c *Client) {
	if len(c.Rules) == 0 {
		what := "no rules"
		if len(c.Denies) > 0 {
			what = "only deny rules"
		}
		if c.Identity != nil {
			l.warn(c.Range, LintFinding{Check: LintNoAllowRules, Client: c}, "Client block without allow rules",
				"Client block %q has %s, so every connection its identities make is refused. Add allow rules, or remove the block and its identities.",
				c.Name, what)
		} else {
			l.warn(c.Range, LintFinding{Check: LintNoAllowRules, Client: c}, "Client block without allow rules",
				"Client block %q has %s, so every connection from its sources is refused. Add allow rules, or remove the block if nothing uses these sources; a block that carves sources out of a wider one to refuse them can stay.",
				c.Name, what)
		}
	}
	denies, allows := indexPatterns(c.Denies), indexPatterns(c.Rules)
	for _, r := range c.Denies {
		l.expiry(c, r)
		l.redundant(c, r, c.Denies, denies)
		l.local(c, r)
	}
	for _, r := range c.Rules {
		l.expiry(c, r)
		l.multiTenant(c, r)
		l.redundant(c, r, c.Rules, allows)
		l.refused(c, r, denies)
		l.plainHTTPToken(c, r)
		l.local(c, r)
	}
}

// patternIndex maps each host pattern of a list of rules to the positions,
// ascending, of the rules that list it. The rules that may cover a host are
// then found from the few patterns that can (coverCandidates) rather than by
// comparing every pair of rules, which made a 20,000-rule policy's lint take
// seconds.
type patternIndex map[string][]int

func indexPatterns(rules []*Rule) patternIndex {
	idx := patternIndex{}
	for i, r := range rules {
		for _, h := range r.Hosts {
			if at := idx[h]; len(at) == 0 || at[len(at)-1] != i {
				idx[h] = append(at, i)
			}
		}
	}
	return idx
}

// covering returns, ascending, the positions of the rules with a pattern
// that covers host pattern p (patternCovers), appended to buf[:0].
func (idx patternIndex) covering(p string, buf []int) []int {
	buf = buf[:0]
	for _, q := range coverCandidates(p) {
		buf = append(buf, idx[q]...)
	}
	slices.Sort(buf)
	return slices.Compact(buf)
}

// coverCandidates returns every pattern q for which patternCovers(q, p):
// p itself and a wildcard over each of its proper suffixes.
func coverCandidates(p string) []string {
	out := []string{p}
	name := strings.TrimPrefix(p, "*.")
	for i := strings.IndexByte(name, '.'); i >= 0; {
		out = append(out, "*"+name[i:])
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return out
}

// unusedEntra warns about an entra block without identity blocks: no
// token can select a client block, so it does nothing but suggest that
// identities are in force.
func (l *linter) unusedEntra() {
	if l.p.entra == nil || l.p.byObject != nil {
		return
	}
	l.warn(l.p.entra.Range, LintFinding{Check: LintUnusedEntra}, "Entra block without identity blocks",
		"No client block has an identity block, so no token selects one and every connection is still chosen by address. "+
			"Add identity { object_ids = [\"...\"] } to the client blocks that managed identities should select, or remove the entra block.")
}

// multiTenant warns about multi-tenant wildcards written in hosts; those a
// catalog group expands to already get a warning when the policy loads.
func (l *linter) multiTenant(c *Client, r *Rule) {
	for i, h := range r.Hosts {
		if r.fromCatalog[i] {
			continue
		}
		if why, ok := catalog.MultiTenantWildcard(l.p.cloud, h); ok {
			l.warn(r.hostRanges[i], LintFinding{Check: LintMultiTenantWildcard, Client: c, Rule: r, Hosts: []string{h}}, "Broad data-plane wildcard", "Rule %q: %s", r.Name, why)
		}
	}
}

// redundant warns about hosts of r that another rule among peers (the
// block's allow rules, or its deny rules) already matches on every port of
// r, for at least as long, and with every address r lists: removing them
// changes no decision, only which rule name is reported.
func (l *linter) redundant(c *Client, r *Rule, peers []*Rule, idx patternIndex) {
	byRule := map[*Rule][]int{}
	var order []*Rule
	var at []int
	for i, h := range r.Hosts {
		at = idx.covering(h, at)
		for _, k := range at {
			s := peers[k]
			if s == r || !portsCover(s.Ports, r.Ports) || !outlives(s, r) || !addrsCover(s.Addresses, r.Addresses) {
				continue
			}
			by := coveringPattern(s.Hosts, h)
			if by == "" {
				continue
			}
			// Two rules that cover each other: only the later one is
			// redundant.
			if by == h && samePorts(s.Ports, r.Ports) && s.expiresUnix == r.expiresUnix &&
				addrsCover(r.Addresses, s.Addresses) && s.Index > r.Index {
				continue
			}
			if byRule[s] == nil {
				order = append(order, s)
			}
			byRule[s] = append(byRule[s], i)
			break
		}
	}
	kind := r.Kind()
	for _, s := range order {
		idx := byRule[s]
		subject, hosts := l.subject(r, idx)
		l.warn(subject, LintFinding{Check: LintRedundantHost, Client: c, Rule: r, Hosts: hostsAt(r, idx)}, pluralWord(len(idx), "Redundant host", "Redundant hosts"),
			"%s %s of %s rule %q %s already matched by %s rule %q (%s on %s) at %s, so %s never %s a decision. Remove %s from rule %q, or narrow rule %q.",
			pluralWord(len(idx), "Host", "Hosts"), hosts, kind, r.Name, isAreN(len(idx)), kind, s.Name,
			patternsFor(s, r, idx), portList(s.Ports), text.Pos(s.Range),
			pluralWord(len(idx), "it", "they"), pluralWord(len(idx), "changes", "change"),
			pluralWord(len(idx), "it", "them"), r.Name, s.Name)
	}
}

// refused warns about allow hosts that a deny rule of the block refuses on
// every port of the allow rule, for as long as the allow rule lives.
func (l *linter) refused(c *Client, r *Rule, denies patternIndex) {
	byRule := map[*Rule][]int{}
	var order []*Rule
	var at []int
	for i, h := range r.Hosts {
		at = denies.covering(h, at)
		for _, k := range at {
			d := c.Denies[k]
			if !portsCover(d.Ports, r.Ports) || !outlives(d, r) || coveringPattern(d.Hosts, h) == "" {
				continue
			}
			if byRule[d] == nil {
				order = append(order, d)
			}
			byRule[d] = append(byRule[d], i)
			break
		}
	}
	for _, d := range order {
		idx := byRule[d]
		subject, hosts := l.subject(r, idx)
		l.warn(subject, LintFinding{Check: LintRefusedByDeny, Client: c, Rule: r, Hosts: hostsAt(r, idx)}, "Allow rule refused by a deny rule",
			"%s %s of allow rule %q %s refused by deny rule %q (%s on %s) at %s, because deny rules are evaluated first. Remove %s from rule %q, or narrow deny rule %q.",
			pluralWord(len(idx), "Host", "Hosts"), hosts, r.Name, isAreN(len(idx)), d.Name,
			patternsFor(d, r, idx), portList(d.Ports), text.Pos(d.Range),
			pluralWord(len(idx), "it", "them"), r.Name, d.Name)
	}
}

// subject returns where to point a warning about hosts idx of r, and the
// hosts quoted: the element, if there is one written host, else the rule's
// label.
func (l *linter) subject(r *Rule, idx []int) (hcl.Range, string) {
	q := make([]string, len(idx))
	for k, i := range idx {
		q[k] = strconv.Quote(r.Hosts[i])
	}
	if len(idx) == 1 {
		return r.hostRanges[idx[0]], q[0]
	}
	return r.hostRanges[idx[0]], strings.Join(q, ", ")
}

// hostsAt returns hosts idx of r.
func hostsAt(r *Rule, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = r.Hosts[i]
	}
	return out
}

// plainHTTPToken warns about port 80 on hosts of the Entra ID groups.
func (l *linter) plainHTTPToken(c *Client, r *Rule) {
	if !slices.Contains(r.Ports, 80) {
		return
	}
	for i, h := range r.Hosts {
		for _, e := range l.entra {
			if !PatternsOverlap(h, e) {
				continue
			}
			var what string
			switch {
			case h == e:
				what = fmt.Sprintf("%q (%s)", h, catalog.Label(l.p.cloud, host.Host{Name: strings.TrimPrefix(h, "*.")}))
			case patternCovers(e, h):
				what = fmt.Sprintf("%q (%s, under %s)", h, catalog.Label(l.p.cloud, host.Host{Name: strings.TrimPrefix(h, "*.")}), e)
			default:
				what = fmt.Sprintf("%q, which covers %s (%s),", h, e, catalog.PatternLabel(l.p.cloud, e))
			}
			l.warn(r.hostRanges[i], LintFinding{Check: LintPlainHTTPToken, Client: c, Rule: r, Hosts: []string{h}}, "Plain HTTP to a token endpoint",
				"Rule %q allows %s on port 80. Entra ID issues tokens only over HTTPS; on port 80, client secrets, assertions and tokens would cross the network in clear text. Remove 80 from ports, or move the hosts that need port 80 to a rule of their own.",
				r.Name, what)
			break
		}
	}
}

// local warns about hosts the catalog marks local to the machine (the
// proxy refuses them as local_endpoint whatever rules say), and about
// allow-rule prefixes that cover guarded ranges without naming them.
func (l *linter) local(c *Client, r *Rule) {
	for i, h := range r.Hosts {
		for _, port := range r.Ports {
			if label, ok := catalog.LocalEndpoint(host.Host{Name: h}, port); ok {
				l.warn(r.hostRanges[i], LintFinding{Check: LintLocalEndpoint, Client: c, Rule: r, Hosts: []string{h}}, "Local endpoint in a rule",
					"Rule %q names %q on port %d, the %s. It answers only on the machine itself, and the proxy refuses it whatever the rules say (local_endpoint), so this %s nothing. Remove it here, and add %s to NO_PROXY in the client's environment.",
					r.Name, h, port, label, ruleEffect(r), h)
				break
			}
		}
	}
	if r.Deny {
		return
	}
	// Load refuses addresses that cover a local endpoint; what remains to
	// say is what a wide prefix really opens.
	for i, pfx := range r.Addresses {
		var covered []string
		GuardedRanges(func(rng netip.Prefix, what string) {
			if pfx.Bits() < rng.Bits() && pfx.Contains(rng.Addr()) {
				covered = append(covered, what)
			}
		})
		if len(covered) == 0 {
			continue
		}
		more := ""
		if len(covered) > 3 {
			covered, more = covered[:3], fmt.Sprintf(" and %d more", len(covered)-3)
		}
		l.warn(r.addrRanges[i], LintFinding{Check: LintWideAddress, Client: c, Rule: r, Address: pfx}, "Address range wider than a guarded range",
			"Rule %q lists %s, which covers guarded ranges (%s%s) without naming them. The proxy reaches a guarded range only through a prefix inside it, so this rule allows public addresses in %s and none of those. If the rule's hosts resolve to private addresses (a private endpoint), list that range, like \"10.20.0.0/24\".",
			r.Name, text.Prefix(pfx), strings.Join(covered, "; "), more, text.Prefix(pfx))
	}
}

func ruleEffect(r *Rule) string {
	if r.Deny {
		return "refuses"
	}
	return "allows"
}

// expiry warns about rules expired at l.now or expiring within
// ExpiryWarning of it.
func (l *linter) expiry(c *Client, r *Rule) {
	if r.expiresUnix == 0 {
		return
	}
	at := r.Expires.UTC().Format(time.RFC3339)
	switch left := r.Expires.Sub(l.now); {
	case left <= 0:
		l.warn(*r.expiresRng, LintFinding{Check: LintExpired, Client: c, Rule: r}, "Expired rule",
			"%s rule %q expired at %s, so it no longer matches. Remove it, or move expires forward if %s.",
			capital(r.Kind()), r.Name, at, stillNeeded(r))
	case left <= ExpiryWarning:
		l.warn(*r.expiresRng, LintFinding{Check: LintExpiresSoon, Client: c, Rule: r}, "Rule expires soon",
			"%s rule %q stops matching at %s, in %s. Move expires forward if %s, or plan for the change.",
			capital(r.Kind()), r.Name, at, durationWords(left), stillNeeded(r))
	}
}

func stillNeeded(r *Rule) string {
	if r.Deny {
		return "the refusal should last"
	}
	return "the access is still needed"
}

func capital(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// durationWords renders d in whole days, or hours under a day.
func durationWords(d time.Duration) string {
	if d >= 24*time.Hour {
		return text.Plural(int64(d/(24*time.Hour)), "day")
	}
	return text.Plural(max(1, int64(d/time.Hour)), "hour")
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func isAreN(n int) string { return pluralWord(n, "is", "are") }

// patternsFor quotes the patterns of s that cover hosts idx of r.
func patternsFor(s, r *Rule, idx []int) string {
	var out []string
	for _, i := range idx {
		if p := strconv.Quote(coveringPattern(s.Hosts, r.Hosts[i])); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}

// coveringPattern returns the first of patterns that matches every name
// pattern p matches, or "".
func coveringPattern(patterns []string, p string) string {
	for _, q := range patterns {
		if patternCovers(q, p) {
			return q
		}
	}
	return ""
}

// PatternCovers reports whether host pattern q matches every name that
// host pattern p matches: the same pattern, a wildcard over an exact name
// below it, or a shorter wildcard over a longer one. Both must be
// normalized (NormalizeHostPattern). It compares patterns, for tools that
// relate rules; deciding a connection is Client.Decide's job.
func PatternCovers(q, p string) bool { return patternCovers(q, p) }

// patternCovers is PatternCovers.
func patternCovers(q, p string) bool {
	if q == p {
		return true
	}
	suffix, wild := strings.CutPrefix(q, "*.")
	if !wild {
		return false
	}
	return strings.HasSuffix(strings.TrimPrefix(p, "*."), "."+suffix)
}

// PatternsOverlap reports whether some name matches both host patterns.
func PatternsOverlap(a, b string) bool {
	return patternCovers(a, b) || patternCovers(b, a)
}

// portsCover reports whether have contains every port of want.
func portsCover(have, want []uint16) bool {
	for _, p := range want {
		if !slices.Contains(have, p) {
			return false
		}
	}
	return true
}

// addrsCover reports whether every prefix of want lies inside one of have.
func addrsCover(have, want []netip.Prefix) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h netip.Prefix) bool { return h.Bits() <= w.Bits() && h.Contains(w.Addr()) }) {
			return false
		}
	}
	return true
}

// outlives reports whether s matches for at least as long as r.
func outlives(s, r *Rule) bool {
	return s.expiresUnix == 0 || r.expiresUnix != 0 && s.expiresUnix >= r.expiresUnix
}

// entraHosts returns the host patterns of cloud's Entra ID groups.
func entraHosts(cloud string) []string {
	var out []string
	for _, g := range catalog.Groups(cloud) {
		if g.Name != "azure.entra" && !strings.HasPrefix(g.Name, "azure.entra.") {
			continue
		}
		for _, e := range g.Endpoints {
			out = append(out, e.Host)
		}
	}
	return out
}
