package review

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
)

// The kinds of change. A widening lets through something the old policy
// refused (or lets more clients or identities in); a narrowing refuses
// something it let through; a change that does both, or that changes a
// verdict without changing what passes (allow and learn mode's
// would_deny), is "changed". "other" changes no access: a renamed block,
// its limits.
const (
	Widening  = "widening"
	Narrowing = "narrowing"
	Changed   = "changed"
	Other     = "other"
)

// DiffReport is what changes in access from one policy to another. Its
// JSON form is documented in the package documentation.
type DiffReport struct {
	Old string `json:"old"`
	New string `json:"new"`
	// OldSHA256 and NewSHA256 are the policies' hashes (policy.Policy.SHA256),
	// the policy_sha256 of the proxy's records.
	OldSHA256 string    `json:"old_sha256"`
	NewSHA256 string    `json:"new_sha256"`
	At        time.Time `json:"at"`
	// Changed reports whether access changes: some change that is not
	// "other".
	Changed bool        `json:"changed"`
	Summary DiffSummary `json:"summary"`
	// Entra are the changes of the entra block's attributes.
	Entra   []ValueChange `json:"entra"`
	Clients []ClientDiff  `json:"clients"`
	// Lint are the warnings of policy.Lint that the new policy has and the
	// old one had not, other than those a destination carries.
	Lint []Flag `json:"lint"`
}

// DiffSummary counts the changes of a DiffReport by kind.
type DiffSummary struct {
	Widenings  int `json:"widenings"`
	Narrowings int `json:"narrowings"`
	Changed    int `json:"changed"`
	Other      int `json:"other"`
}

// ClientDiff is what changes for one client block.
type ClientDiff struct {
	// Name is the block's name in the new policy (in the old one for a
	// removed block), OldName its old name when it was renamed.
	Name    string `json:"name"`
	OldName string `json:"old_name,omitempty"`
	// Status is "added", "removed", "renamed", "changed" or "unchanged".
	Status       string           `json:"status"`
	Sources      []SourceChange   `json:"sources"`
	Identities   []IdentityChange `json:"identities"`
	Settings     []ValueChange    `json:"settings"`
	Destinations []DestChange     `json:"destinations"`
}

// SourceChange is a source prefix added to or removed from a block.
type SourceChange struct {
	Change string `json:"change"`
	Prefix string `json:"prefix"` // a prefix, or "any address" (an identity block without sources)
	Added  bool   `json:"added"`
	// Note says where the prefix's clients were (added) or go (removed):
	// "was in client block \"b\"", "now in no client block".
	Note string `json:"note,omitempty"`
}

// IdentityChange is an identity added to or removed from a block's
// identity block.
type IdentityChange struct {
	Change string `json:"change"`
	Kind   string `json:"kind"` // "object_id" or "client_id"
	ID     string `json:"id"`
	Added  bool   `json:"added"`
}

// ValueChange is a changed setting: of a client block (mode,
// allow_sni_mismatch, selection, limits) or of the entra block.
type ValueChange struct {
	Change string `json:"change"`
	Field  string `json:"field"`
	Old    string `json:"old"`
	New    string `json:"new"`
}

// DestChange is a destination whose decision changes, on some ports.
type DestChange struct {
	Change string `json:"change"`
	// Destination is a host pattern (a wildcard stands for the names under
	// it that no more specific pattern of either policy names), or an
	// address prefix: IP-literal destinations.
	Destination string `json:"destination"`
	// ResolvesTo, if set, is a guarded range: the change is whether the
	// destination guard lets Destination resolve there.
	ResolvesTo string   `json:"resolves_to,omitempty"`
	Ports      []uint16 `json:"ports"`
	Label      string   `json:"label,omitempty"`
	// Old and New are the decisions over time, from At on.
	Old []Period `json:"old"`
	New []Period `json:"new"`
	// Within are the narrower destinations (host:port) under a wildcard
	// that pass on both sides: what remains of a narrowed wildcard, or
	// what a widened one replaces.
	Within []string `json:"within,omitempty"`
	// Flags are the reasons to look twice at a widening.
	Flags []Flag `json:"flags,omitempty"`
}

// Period is a decision from one instant to the next period: Until, if
// set, is when it ends because a rule expires.
type Period struct {
	Verdict policy.Verdict `json:"verdict"`
	// Reason is, for deny and would_deny, why: no_rule, deny_rule,
	// blocked_address (the guard), client_unknown (no such block).
	Reason string `json:"reason,omitempty"`
	// Rule is the allow rule that allows, or the deny rule that refuses,
	// and Pos where it is (file:line:col).
	Rule  string     `json:"rule,omitempty"`
	Pos   string     `json:"pos,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// Diff compares what old and new let through at the instant at and
// after it, as the proxy decides it: client blocks are matched by name,
// else as renamed when their sources and identities are the same; every
// destination class of their rules (see space) is decided by both with
// Client.DecideAt and Client.AddressAllowedAt. Formatting, comments,
// rule names and rule order change nothing.
func Diff(old, new *policy.Policy, at time.Time) *DiffReport {
	d := &DiffReport{Old: old.Filename(), New: new.Filename(), OldSHA256: old.SHA256(), NewSHA256: new.SHA256(), At: at.UTC(),
		Entra: diffEntra(old.Entra(), new.Entra()), Clients: []ClientDiff{}, Lint: []Flag{}}
	pairs := pairClients(old, new)
	lint := newLintDelta(old, new, pairs, at)
	for _, pr := range pairs {
		cd := diffClient(old, new, pr, at, lint)
		if cd.Status != "unchanged" {
			d.Clients = append(d.Clients, cd)
		}
	}
	d.Lint = append(d.Lint, lint.unattached()...)
	d.count()
	return d
}

// count fills in Summary and Changed.
func (d *DiffReport) count() {
	add := func(change string) {
		switch change {
		case Widening:
			d.Summary.Widenings++
		case Narrowing:
			d.Summary.Narrowings++
		case Changed:
			d.Summary.Changed++
		default:
			d.Summary.Other++
		}
	}
	for _, v := range d.Entra {
		add(v.Change)
	}
	for _, c := range d.Clients {
		if c.Status == "renamed" {
			add(Other)
		}
		for _, s := range c.Sources {
			add(s.Change)
		}
		for _, i := range c.Identities {
			add(i.Change)
		}
		for _, v := range c.Settings {
			add(v.Change)
		}
		for _, x := range c.Destinations {
			add(x.Change)
		}
	}
	d.Changed = d.Summary.Widenings+d.Summary.Narrowings+d.Summary.Changed > 0
}

// pair is a client block of the old policy and of the new one (either
// nil when the block is added or removed).
type pair struct {
	old, new *policy.Client
}

// pairClients matches the client blocks of old and new: by name, then
// the rest by the same sources and identities (a rename). Pairs are in
// the new policy's order, then the removed blocks in the old one's.
func pairClients(old, new *policy.Policy) []pair {
	byName := map[string]*policy.Client{}
	for _, c := range old.Clients() {
		byName[c.Name] = c
	}
	matched := map[*policy.Client]bool{}
	out := make([]pair, len(new.Clients()))
	for i, c := range new.Clients() {
		out[i].new = c
		if o := byName[c.Name]; o != nil {
			out[i].old = o
			matched[o] = true
		}
	}
	for i := range out {
		if out[i].old != nil {
			continue
		}
		k := selectionKey(out[i].new)
		for _, o := range old.Clients() {
			if !matched[o] && k != "" && selectionKey(o) == k {
				out[i].old = o
				matched[o] = true
				break
			}
		}
	}
	for _, o := range old.Clients() {
		if !matched[o] {
			out = append(out, pair{old: o})
		}
	}
	return out
}

// selectionKey is what selects client block c, its sources and
// identities, as one comparable string; "" if nothing does.
func selectionKey(c *policy.Client) string {
	src := make([]string, len(c.Sources))
	for i, p := range c.Sources {
		src[i] = p.String()
	}
	slices.Sort(src)
	k := strings.Join(src, ",")
	if id := c.Identity; id != nil {
		k += "|" + strings.Join(slices.Sorted(slices.Values(id.ObjectIDs)), ",") + "|" + strings.Join(slices.Sorted(slices.Values(id.ClientIDs)), ",")
	}
	if k == "" || k == "||" {
		return ""
	}
	return k
}

func diffClient(old, new *policy.Policy, pr pair, at time.Time, lint *lintDelta) ClientDiff {
	cd := ClientDiff{Sources: []SourceChange{}, Identities: []IdentityChange{}, Settings: []ValueChange{}, Destinations: []DestChange{}}
	switch {
	case pr.new == nil:
		cd.Name, cd.Status = pr.old.Name, "removed"
	case pr.old == nil:
		cd.Name, cd.Status = pr.new.Name, "added"
	case pr.old.Name != pr.new.Name:
		cd.Name, cd.OldName, cd.Status = pr.new.Name, pr.old.Name, "renamed"
	default:
		cd.Name = pr.new.Name
	}
	cd.Sources = diffSources(old, new, pr)
	cd.Identities = diffIdentities(pr)
	cd.Settings = diffSettings(pr)
	modeChanged := slices.ContainsFunc(cd.Settings, func(v ValueChange) bool { return v.Field == "mode" })
	cd.Destinations = diffDestinations(old, new, pr, at, modeChanged, lint)
	if cd.Status == "" {
		cd.Status = "unchanged"
		if len(cd.Sources)+len(cd.Identities)+len(cd.Settings)+len(cd.Destinations) > 0 {
			cd.Status = "changed"
		}
	}
	return cd
}

// anyAddress stands for the sources of an identity block without any:
// it takes its identities from any address.
const anyAddress = "any address"

func diffSources(old, new *policy.Policy, pr pair) []SourceChange {
	out := []SourceChange{}
	var os, ns []netip.Prefix
	if pr.old != nil {
		os = pr.old.Sources
	}
	if pr.new != nil {
		ns = pr.new.Sources
	}
	identity := pr.new != nil && pr.new.Identity != nil || pr.new == nil && pr.old.Identity != nil
	if identity && pr.old != nil && pr.new != nil && pr.old.Identity != nil && (len(os) == 0) != (len(ns) == 0) {
		// From any address to listed ones, or back: one change.
		if len(os) == 0 {
			return []SourceChange{{Change: Narrowing, Prefix: anyAddress, Note: "its identities are now accepted only from " + prefixList(ns)}}
		}
		return []SourceChange{{Change: Widening, Prefix: anyAddress, Added: true, Note: "its identities were accepted only from " + prefixList(os)}}
	}
	for _, p := range ns {
		if slices.Contains(os, p) {
			continue
		}
		sc := SourceChange{Change: Widening, Prefix: p.String(), Added: true}
		if pr.new.Identity == nil {
			was := old.Client(p.Addr())
			switch {
			case was == nil:
				sc.Note = "was in no client block"
			case pr.old != nil && was == pr.old:
				sc.Change, sc.Note = Other, "was in this block already"
			default:
				sc.Note = fmt.Sprintf("was in client block %q", was.Name)
			}
		}
		out = append(out, sc)
	}
	for _, p := range os {
		if slices.Contains(ns, p) {
			continue
		}
		sc := SourceChange{Change: Narrowing, Prefix: p.String()}
		if pr.old.Identity == nil {
			now := new.Client(p.Addr())
			switch {
			case now == nil:
				sc.Note = "now in no client block: refused as client_unknown"
			case pr.new != nil && now == pr.new:
				sc.Change, sc.Note = Other, "still in this block"
			default:
				sc.Change, sc.Note = Changed, fmt.Sprintf("now in client block %q", now.Name)
			}
		}
		out = append(out, sc)
	}
	return out
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func diffIdentities(pr pair) []IdentityChange {
	out := []IdentityChange{}
	ids := func(c *policy.Client) (obj, cli []string) {
		if c == nil || c.Identity == nil {
			return nil, nil
		}
		return c.Identity.ObjectIDs, c.Identity.ClientIDs
	}
	oo, oc := ids(pr.old)
	no, nc := ids(pr.new)
	set := func(kind string, o, n []string) {
		for _, id := range n {
			if !slices.Contains(o, id) {
				out = append(out, IdentityChange{Change: Widening, Kind: kind, ID: id, Added: true})
			}
		}
		for _, id := range o {
			if !slices.Contains(n, id) {
				out = append(out, IdentityChange{Change: Narrowing, Kind: kind, ID: id})
			}
		}
	}
	set("object_id", oo, no)
	set("client_id", oc, nc)
	return out
}

func diffSettings(pr pair) []ValueChange {
	out := []ValueChange{}
	if pr.old == nil || pr.new == nil {
		return out
	}
	o, n := pr.old, pr.new
	if sel := func(c *policy.Client) string {
		if c.Identity != nil {
			return "identity"
		}
		return "address"
	}; sel(o) != sel(n) {
		out = append(out, ValueChange{Change: Changed, Field: "selection", Old: sel(o), New: sel(n)})
	}
	if o.Mode != n.Mode {
		ch := Widening // learn lets through what no rule allows
		if n.Mode == policy.ModeEnforce {
			ch = Narrowing
		}
		out = append(out, ValueChange{Change: ch, Field: "mode", Old: o.Mode.String(), New: n.Mode.String()})
	}
	if o.AllowSNIMismatch != n.AllowSNIMismatch {
		ch := Widening // the fronting checks are off
		if !n.AllowSNIMismatch {
			ch = Narrowing
		}
		out = append(out, ValueChange{Change: ch, Field: "allow_sni_mismatch", Old: fmt.Sprint(o.AllowSNIMismatch), New: fmt.Sprint(n.AllowSNIMismatch)})
	}
	if o.Limits != n.Limits {
		out = append(out, ValueChange{Change: Other, Field: "limits", Old: limitsText(o.Limits), New: limitsText(n.Limits)})
	}
	return out
}

func limitsText(l policy.Limits) string {
	var parts []string
	if l.ConnectionsPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("connections_per_second = %g, burst = %d", l.ConnectionsPerSecond, l.Burst))
	}
	if l.MaxTunnels > 0 {
		parts = append(parts, fmt.Sprintf("max_tunnels = %d", l.MaxTunnels))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func diffEntra(o, n *policy.Entra) []ValueChange {
	out := []ValueChange{}
	switch {
	case o == nil && n == nil:
		return out
	case o == nil:
		return append(out, ValueChange{Change: Changed, Field: "entra", Old: "none", New: "tenant " + n.TenantID})
	case n == nil:
		return append(out, ValueChange{Change: Changed, Field: "entra", Old: "tenant " + o.TenantID, New: "none"})
	}
	if o.TenantID != n.TenantID {
		out = append(out, ValueChange{Change: Changed, Field: "tenant_id", Old: o.TenantID, New: n.TenantID})
	}
	if ch := setChange(o.Audiences, n.Audiences); ch != "" {
		out = append(out, ValueChange{Change: ch, Field: "audiences", Old: strings.Join(o.Audiences, ", "), New: strings.Join(n.Audiences, ", ")})
	}
	if o.ClockSkew != n.ClockSkew {
		ch := Widening // expired tokens pass for longer
		if n.ClockSkew < o.ClockSkew {
			ch = Narrowing
		}
		out = append(out, ValueChange{Change: ch, Field: "clock_skew", Old: o.ClockSkew.String(), New: n.ClockSkew.String()})
	}
	if o.Authority != n.Authority {
		out = append(out, ValueChange{Change: Changed, Field: "authority", Old: o.Authority, New: n.Authority})
	}
	return out
}

// setChange is Widening if n adds to o, Narrowing if it only removes,
// Changed if both, "" if they are the same set.
func setChange(o, n []string) string {
	added := slices.ContainsFunc(n, func(s string) bool { return !slices.Contains(o, s) })
	removed := slices.ContainsFunc(o, func(s string) bool { return !slices.Contains(n, s) })
	switch {
	case added && removed:
		return Changed
	case added:
		return Widening
	case removed:
		return Narrowing
	}
	return ""
}

// cell is one destination class on one port, decided by both sides.
type cell struct {
	dest       string       // host pattern or prefix text
	pattern    string       // the host pattern, or ""
	prefix     netip.Prefix // the prefix of an IP-literal cell or of ResolvesTo
	resolvesTo string
	port       uint16
	old, new   []period // one per instant
}

func diffDestinations(old, new *policy.Policy, pr pair, at time.Time, modeChanged bool, lint *lintDelta) []DestChange {
	sp := newSpace(at, pr.old, pr.new)
	var cells []cell
	add := func(c cell) {
		if differs(c.old, c.new, modeChanged) {
			cells = append(cells, c)
		}
	}
	// The hosts of rules that open guarded ranges: only names they match
	// can resolve into one (Client.AddressAllowed).
	var guardHosts []string
	for _, c := range []*policy.Client{pr.old, pr.new} {
		if c == nil {
			continue
		}
		for _, r := range c.Rules {
			if slices.ContainsFunc(r.Addresses, namesGuarded) {
				guardHosts = append(guardHosts, r.Hosts...)
			}
		}
	}
	var guarded []netip.Prefix
	for _, p := range sp.prefixes {
		if _, _, ok := policy.GuardedRange(sp.addr[p]); ok {
			guarded = append(guarded, p)
		}
	}
	for _, pat := range sp.patterns {
		h := sp.probe[pat]
		for _, port := range sp.ports {
			c := cell{dest: pat, pattern: pat, port: port, old: sp.decisions(pr.old, h, port), new: sp.decisions(pr.new, h, port)}
			add(c)
			if !anyAllowed(c.old) && !anyAllowed(c.new) || !slices.ContainsFunc(guardHosts, func(q string) bool { return policy.PatternCovers(q, pat) }) {
				continue // no rule that matches it can open a guarded range
			}
			for _, g := range guarded {
				ip := sp.addr[g]
				add(cell{dest: pat, pattern: pat, prefix: g, resolvesTo: text.Prefix(g), port: port,
					old: sp.guardDecisions(pr.old, h, port, ip), new: sp.guardDecisions(pr.new, h, port, ip)})
			}
		}
	}
	for _, pfx := range sp.prefixes {
		h := host.Host{IP: sp.addr[pfx]}
		for _, port := range sp.ports {
			add(cell{dest: text.Prefix(pfx), prefix: pfx, port: port, old: sp.decisions(pr.old, h, port), new: sp.decisions(pr.new, h, port)})
		}
	}
	return mergeCells(new.Cloud(), sp, pr, cells, lint)
}

// decisions returns what c decides about h on port at each instant of sp.
func (sp *space) decisions(c *policy.Client, h host.Host, port uint16) []period {
	out := make([]period, len(sp.instants))
	for i, at := range sp.instants {
		out[i] = decideAt(c, h, port, at)
	}
	return out
}

// guardDecisions returns whether c lets name h on port resolve to the
// guarded address ip, at each instant of sp: allow where the name is
// allowed and Client.AddressAllowedAt says yes, else deny.
func (sp *space) guardDecisions(c *policy.Client, h host.Host, port uint16, ip netip.Addr) []period {
	out := make([]period, len(sp.instants))
	for i, at := range sp.instants {
		p := decideAt(c, h, port, at)
		if p.verdict != policy.VerdictAllow || !c.AddressAllowedAt(h, port, ip, at) {
			reason := reasonBlockedAddress
			if p.verdict != policy.VerdictAllow {
				reason = p.reason
			}
			p = period{from: at, verdict: policy.VerdictDeny, reason: reason, rule: denyRuleOf(p)}
		} else {
			p.rule = nil // any rule for h that names the range opens it, not only the one Decide picks
		}
		out[i] = p
	}
	return out
}

func denyRuleOf(p period) *policy.Rule {
	if p.reason == reasonDenyRule {
		return p.rule
	}
	return nil
}

func anyAllowed(ps []period) bool {
	return slices.ContainsFunc(ps, func(p period) bool { return p.verdict == policy.VerdictAllow })
}

// differs reports whether two sides decide differently at some instant.
// With the block's mode changed, a destination no rule matches on either
// side is the mode's change, not its own.
func differs(o, n []period, modeChanged bool) bool {
	for i := range o {
		if o[i].verdict == n[i].verdict {
			continue
		}
		if modeChanged && o[i].reason == reasonNoRule && n[i].reason == reasonNoRule {
			continue
		}
		return true
	}
	return false
}

// classify names the change from o to n.
func classify(o, n []period) string {
	widen, narrow := false, false
	for i := range o {
		switch {
		case n[i].passes() && !o[i].passes():
			widen = true
		case o[i].passes() && !n[i].passes():
			narrow = true
		}
	}
	switch {
	case widen && !narrow:
		return Widening
	case narrow && !widen:
		return Narrowing
	}
	return Changed
}

// periods renders one side's decisions, consecutive equal ones merged.
func periods(ps []period) []Period {
	var out []Period
	for i, p := range ps {
		if i > 0 && ps[i-1].same(p) {
			continue
		}
		if len(out) > 0 {
			t := p.from.UTC()
			out[len(out)-1].Until = &t
		}
		q := Period{Verdict: p.verdict}
		if p.verdict != policy.VerdictAllow {
			q.Reason = p.reason
		}
		if p.rule != nil {
			q.Rule, q.Pos = p.rule.Name, text.Pos(p.rule.Range)
		}
		out = append(out, q)
	}
	return out
}

// mergeCells turns changed cells into DestChanges, one per destination
// and decisions, with the ports that share them.
func mergeCells(cloud string, sp *space, pr pair, cells []cell, lint *lintDelta) []DestChange {
	var out []DestChange
	index := map[string]int{}
	for _, c := range cells {
		dc := DestChange{Change: classify(c.old, c.new), Destination: c.dest, ResolvesTo: c.resolvesTo,
			Old: periods(c.old), New: periods(c.new)}
		key := fmt.Sprintf("%s|%s|%s|%v|%v", dc.Change, dc.Destination, dc.ResolvesTo, periodsKey(dc.Old), periodsKey(dc.New))
		within := sp.within(pr, c)
		if i, ok := index[key]; ok {
			out[i].Ports = append(out[i].Ports, c.port)
			out[i].Within = append(out[i].Within, within...)
			continue
		}
		dc.Ports = []uint16{c.port}
		dc.Within = within
		if c.pattern != "" {
			dc.Label = catalog.PatternLabel(cloud, c.pattern)
		}
		if dc.Change != Narrowing && c.resolvesTo == "" {
			dc.Flags = destFlags(cloud, c.pattern, c.prefix)
			if r := allowRule(c.new); r != nil {
				dc.Flags = lint.attach(dc.Flags, r, c.pattern, c.prefix)
			}
		}
		index[key] = len(out)
		out = append(out, dc)
	}
	rank := map[string]int{Widening: 0, Narrowing: 1, Changed: 2}
	slices.SortStableFunc(out, func(a, b DestChange) int {
		if a.Change != b.Change {
			return rank[a.Change] - rank[b.Change]
		}
		if a.Destination != b.Destination {
			return strings.Compare(a.Destination, b.Destination)
		}
		return strings.Compare(a.ResolvesTo, b.ResolvesTo)
	})
	for i := range out {
		slices.Sort(out[i].Within)
		out[i].Within = slices.Compact(out[i].Within)
	}
	return out
}

func periodsKey(ps []Period) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s/%s/%s/%v;", p.Verdict, p.Reason, p.Rule, p.Until)
	}
	return b.String()
}

// allowRule returns the first allow rule of a side's decisions.
func allowRule(ps []period) *policy.Rule {
	for _, p := range ps {
		if p.verdict == policy.VerdictAllow {
			return p.rule
		}
	}
	return nil
}

// within returns, for a wildcard cell that widens or narrows, the
// narrower patterns under it that pass at the first instant on both
// sides, as host:port.
func (sp *space) within(pr pair, c cell) []string {
	if !strings.HasPrefix(c.pattern, "*.") || c.resolvesTo != "" {
		return nil
	}
	var out []string
	for _, q := range sp.patterns {
		if q == c.pattern || !policy.PatternCovers(c.pattern, q) {
			continue
		}
		h := sp.probe[q]
		if decideAt(pr.old, h, c.port, sp.instants[0]).passes() && decideAt(pr.new, h, c.port, sp.instants[0]).passes() {
			out = append(out, fmt.Sprintf("%s:%d", q, c.port))
		}
	}
	return out
}
