package learn

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// Report is what observations say about a policy: the destinations seen per
// client block and, against a baseline policy, what it allows that nobody
// used, what it denies that was seen, and its risky patterns.
type Report struct {
	// Entra is the entra block the identity blocks among Blocks need: the
	// baseline's, else the latest observed; nil without identity blocks.
	Entra    *EntraBlock   `json:"entra,omitempty"`
	Blocks   []ReportBlock `json:"client_blocks"`
	Excluded []Observation `json:"excluded,omitempty"` // seen but not something a policy rule should allow
	Baseline *BaselineDiff `json:"baseline,omitempty"`
}

// ReportBlock is the observations of one client block.
type ReportBlock struct {
	Name         string         `json:"name"`
	Sources      []string       `json:"sources"`
	Identity     *IdentityBlock `json:"identity,omitempty"` // its identity block, if it has one
	Destinations []Observation  `json:"destinations"`
}

// BaselineDiff compares observations with a baseline policy.
type BaselineDiff struct {
	Policy       string        `json:"policy"`
	PolicySHA256 string        `json:"policy_sha256"`   // policy.Policy.SHA256: the policy_sha256 of the proxy's records
	UnusedRules  []RuleRef     `json:"unused_rules"`    // candidates to remove
	Denied       []Observation `json:"observed_denied"` // seen, but the baseline denies them
	Risky        []RiskyRule   `json:"risky_patterns"`  // wildcards over multi-tenant data planes

	lint []string // Lint's warnings about the baseline, for Markdown
}

// RuleRef names a rule of a policy.
type RuleRef struct {
	ClientBlock string   `json:"client_block"`
	Rule        string   `json:"rule"`
	Hosts       []string `json:"hosts,omitempty"`
	Ports       []uint16 `json:"ports"`
	Pos         string   `json:"pos"` // file:line:col
}

// RiskyRule is a rule pattern that lets data leave to other tenants.
type RiskyRule struct {
	RuleRef
	Pattern string `json:"pattern"`
	Why     string `json:"why"`
}

// ruleWorthy reports whether an observation belongs in a learned policy:
// what the policy allowed or would have allowed, or denied for want of a
// rule. Guard, local-endpoint and unknown-client refusals are not.
func ruleWorthy(o Observation) bool {
	if o.ClientBlock == "" {
		return false
	}
	switch o.Decision {
	case policy.VerdictAllow, policy.VerdictWouldDeny:
		return true
	case policy.VerdictDeny:
		return o.Reason == "no_rule"
	}
	return false
}

// NewReport builds a report from merged observations; base may be nil.
func NewReport(obs []Observation, base *policy.Policy) *Report {
	r := &Report{}
	byBlock := map[string]*ReportBlock{}
	var latest time.Time // when r.Entra was last seen
	for _, o := range obs {
		if !ruleWorthy(o) {
			r.Excluded = append(r.Excluded, o)
			continue
		}
		b := byBlock[o.ClientBlock]
		if b == nil {
			b = &ReportBlock{Name: o.ClientBlock, Sources: o.Sources, Identity: o.Identity}
			if base != nil {
				if c := clientNamed(base, o.ClientBlock); c != nil {
					b.Sources = prefixStrings(c.Sources)
					b.Identity, _ = identityOf(c)
				}
			}
			byBlock[o.ClientBlock] = b
		}
		b.Destinations = append(b.Destinations, o)
		if o.Identity != nil && o.Entra != nil && (r.Entra == nil || o.LastSeen.After(latest)) {
			r.Entra, latest = o.Entra, o.LastSeen
		}
	}
	for _, b := range byBlock {
		r.Blocks = append(r.Blocks, *b)
	}
	sort.Slice(r.Blocks, func(i, j int) bool { return r.Blocks[i].Name < r.Blocks[j].Name })
	r.Entra = r.entraFor(base)
	if base != nil {
		r.Baseline = diffBaseline(obs, base)
	}
	return r
}

// entraFor returns the entra block the report's identity blocks need:
// the baseline's if it has one, else the one observed; nil if no block has
// an identity block.
func (r *Report) entraFor(base *policy.Policy) *EntraBlock {
	if !slices.ContainsFunc(r.Blocks, func(b ReportBlock) bool { return b.Identity != nil }) {
		return nil
	}
	if base != nil {
		for _, c := range base.Clients() {
			if _, e := identityOf(c); e != nil {
				return e
			}
		}
	}
	return r.Entra
}

// clientNamed returns the client block of p named name, or nil.
func clientNamed(p *policy.Policy, name string) *policy.Client {
	for _, c := range p.Clients() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func diffBaseline(obs []Observation, base *policy.Policy) *BaselineDiff {
	d := &BaselineDiff{Policy: base.Filename(), PolicySHA256: base.SHA256(), UnusedRules: []RuleRef{}, Denied: []Observation{}, Risky: []RiskyRule{}}
	for _, w := range policy.Lint(base, time.Now()) {
		d.lint = append(d.lint, strings.TrimSuffix(strings.Replace(policy.FormatDiagnostics(hcl.Diagnostics{w}), ": warning: ", ": ", 1), "\n"))
	}
	used := map[*policy.Rule]bool{}
	for _, o := range obs {
		if !ruleWorthy(o) {
			continue
		}
		c := clientNamed(base, o.ClientBlock)
		h, err := host.Parse(o.Host)
		if c == nil || err != nil {
			d.Denied = append(d.Denied, o)
			continue
		}
		dec := c.Decide(h, o.Port)
		if !dec.Allowed {
			d.Denied = append(d.Denied, o)
			continue
		}
		used[dec.Rule] = true
	}
	for _, c := range base.Clients() {
		for _, rule := range c.Rules {
			ref := ruleRef(c, rule)
			if !used[rule] {
				d.UnusedRules = append(d.UnusedRules, ref)
			}
			for _, h := range rule.Hosts {
				if why, ok := riskyPattern(base.Cloud(), h); ok {
					d.Risky = append(d.Risky, RiskyRule{RuleRef: ref, Pattern: h, Why: why})
				}
			}
		}
	}
	return d
}

func ruleRef(c *policy.Client, r *policy.Rule) RuleRef {
	return RuleRef{
		ClientBlock: c.Name, Rule: r.Name, Hosts: r.Hosts, Ports: r.Ports,
		Pos: fmt.Sprintf("%s:%d:%d", r.Range.Filename, r.Range.Start.Line, r.Range.Start.Column),
	}
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// HCL renders the minimal policy that allows exactly what was observed: per
// client block, one rule per destination host with its exact ports, never
// widened to a wildcard, each commented with its label and hit count. The
// output is stable for the same observations.
func (r *Report) HCL(cloud string) []byte {
	var b strings.Builder
	b.WriteString("# Generated by azegress from observed traffic: exactly the destinations seen,\n")
	b.WriteString("# never widened to wildcards. Review before use; check sources for each client block.\n")
	if r.Baseline != nil {
		fmt.Fprintf(&b, "#\n# Against baseline %s (sha256:%s): %d rule(s) never used, %d observed destination(s) it denies.\n",
			r.Baseline.Policy, r.Baseline.PolicySHA256, len(r.Baseline.UnusedRules), len(r.Baseline.Denied))
		for _, u := range r.Baseline.UnusedRules {
			fmt.Fprintf(&b, "#   unused: client %q rule %q (%s)\n", u.ClientBlock, u.Rule, u.Pos)
		}
		for _, o := range r.Baseline.Denied {
			fmt.Fprintf(&b, "#   denied by the baseline: %s from client %q\n", hostPortString(o.Host, o.Port), o.ClientBlock)
		}
	}
	if cloud == "" {
		cloud = catalog.DefaultCloud
	}
	fmt.Fprintf(&b, "\ncloud = %q\n", cloud)
	if e := r.Entra; e != nil {
		b.WriteString("\nentra {\n")
		attrs := [][2]string{{"tenant_id", strconv.Quote(e.TenantID)}, {"audiences", "[" + text.QuoteList(e.Audiences) + "]"}}
		if d, err := time.ParseDuration(e.ClockSkew); err == nil && d != time.Minute {
			attrs = append(attrs, [2]string{"clock_skew", strconv.Quote(durationText(d))})
		}
		if e.Authority != "" && e.Authority != catalog.EntraAuthority(cloud) {
			attrs = append(attrs, [2]string{"authority", strconv.Quote(e.Authority)})
		}
		writeAttrs(&b, "  ", attrs)
		b.WriteString("}\n")
	}
	for _, blk := range r.Blocks {
		fmt.Fprintf(&b, "\nclient %q {\n", blk.Name)
		if blk.Identity == nil || len(blk.Sources) > 0 {
			fmt.Fprintf(&b, "  sources = [%s]\n", text.QuoteList(blk.Sources))
		}
		if id := blk.Identity; id != nil {
			if len(blk.Sources) > 0 {
				b.WriteString("\n")
			}
			b.WriteString("  identity {\n")
			var attrs [][2]string
			if len(id.ObjectIDs) > 0 {
				attrs = append(attrs, [2]string{"object_ids", "[" + text.QuoteList(id.ObjectIDs) + "]"})
			}
			if len(id.ClientIDs) > 0 {
				attrs = append(attrs, [2]string{"client_ids", "[" + text.QuoteList(id.ClientIDs) + "]"})
			}
			writeAttrs(&b, "    ", attrs)
			b.WriteString("  }\n")
		}
		type hostRule struct {
			host  string
			ports []uint16
			count int64
			label string
		}
		var rules []*hostRule
		idx := map[string]*hostRule{}
		for _, o := range blk.Destinations {
			hr := idx[o.Host]
			if hr == nil {
				hr = &hostRule{host: o.Host, label: o.Label}
				idx[o.Host] = hr
				rules = append(rules, hr)
			}
			hr.ports = append(hr.ports, o.Port)
			hr.count += o.Count
		}
		sort.Slice(rules, func(i, j int) bool { return rules[i].host < rules[j].host })
		for _, hr := range rules {
			sort.Slice(hr.ports, func(i, j int) bool { return hr.ports[i] < hr.ports[j] })
			b.WriteString("\n")
			if hr.label != "" {
				fmt.Fprintf(&b, "  # %s; %s\n", text.OneLine(hr.label), text.Plural(hr.count, "connection"))
			} else {
				fmt.Fprintf(&b, "  # %s\n", text.Plural(hr.count, "connection"))
			}
			fmt.Fprintf(&b, "  allow %q {\n", ruleName(hr.host))
			ports := make([]string, len(hr.ports))
			for i, p := range hr.ports {
				ports[i] = fmt.Sprint(p)
			}
			// Aligned as hclwrite (and terraform fmt) align attributes.
			if ip, err := netip.ParseAddr(hr.host); err == nil {
				fmt.Fprintf(&b, "    addresses = [%q]\n", netip.PrefixFrom(ip, ip.BitLen()).String())
				fmt.Fprintf(&b, "    ports     = [%s]\n  }\n", strings.Join(ports, ", "))
			} else {
				fmt.Fprintf(&b, "    hosts = [%q]\n", hr.host)
				fmt.Fprintf(&b, "    ports = [%s]\n  }\n", strings.Join(ports, ", "))
			}
		}
		b.WriteString("}\n")
	}
	if len(r.Excluded) > 0 {
		b.WriteString("\n# Seen but not allowed by any rule above:\n")
		for _, o := range r.Excluded {
			why := o.Reason
			if why == "local_endpoint" {
				why += ": local to the VM, add it to NO_PROXY"
			}
			block := o.ClientBlock
			if block == "" {
				block = "(no client block)"
			}
			fmt.Fprintf(&b, "#   %s from %s: %s\n", hostPortString(o.Host, o.Port), block, why)
		}
	}
	return []byte(b.String())
}

// writeAttrs writes name = value lines, the equals signs aligned as
// hclwrite (and terraform fmt) align them.
func writeAttrs(b *strings.Builder, indent string, attrs [][2]string) {
	width := 0
	for _, a := range attrs {
		width = max(width, len(a[0]))
	}
	for _, a := range attrs {
		fmt.Fprintf(b, "%s%-*s = %s\n", indent, width, a[0], a[1])
	}
}

// durationText writes d as a policy would: "2m", "30s", "1m30s".
func durationText(d time.Duration) string {
	switch {
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d < time.Minute && d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// Markdown renders a review document for a security reviewer.
func (r *Report) Markdown() []byte {
	var b strings.Builder
	b.WriteString("# Egress review\n\n")
	var n int
	var first, last time.Time
	for _, blk := range r.Blocks {
		for _, o := range blk.Destinations {
			n++
			if first.IsZero() || o.FirstSeen.Before(first) {
				first = o.FirstSeen
			}
			if o.LastSeen.After(last) {
				last = o.LastSeen
			}
		}
	}
	fmt.Fprintf(&b, "%d destination(s) observed from %d client block(s)", n, len(r.Blocks))
	if n > 0 {
		fmt.Fprintf(&b, ", between %s and %s", first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339))
	}
	b.WriteString(".\n")
	for _, blk := range r.Blocks {
		fmt.Fprintf(&b, "\n## Client block `%s`\n\n", blk.Name)
		sources := codeList(blk.Sources)
		if id := blk.Identity; id != nil {
			fmt.Fprintf(&b, "Identities: object IDs %s; client IDs %s\n\n", codeList(id.ObjectIDs), codeList(id.ClientIDs))
			if len(blk.Sources) == 0 {
				sources = "any"
			}
		}
		fmt.Fprintf(&b, "Sources: %s\n\n", sources)
		b.WriteString("| destination | why it is needed | decision | connections | first seen | last seen |\n|---|---|---|---|---|---|\n")
		for _, o := range blk.Destinations {
			why := o.Label
			if why == "" {
				why = "not in the Azure catalog: ask the workload's owner"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %s | %s |\n", hostPortString(o.Host, o.Port), mdEscape(why),
				decisionText(o), o.Count, o.FirstSeen.UTC().Format(time.RFC3339), o.LastSeen.UTC().Format(time.RFC3339))
		}
	}
	if len(r.Excluded) > 0 {
		b.WriteString("\n## Refused for reasons other than policy\n\n| destination | client block | reason | connections |\n|---|---|---|---|\n")
		for _, o := range r.Excluded {
			block := o.ClientBlock
			if block == "" {
				block = "(none)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %d |\n", hostPortString(o.Host, o.Port), block, o.Reason, o.Count)
		}
	}
	if d := r.Baseline; d != nil {
		fmt.Fprintf(&b, "\n## Baseline `%s`\n\nSHA-256 `%s`.\n", d.Policy, d.PolicySHA256)
		b.WriteString("\n### Rules never used (candidates to remove)\n\n")
		if len(d.UnusedRules) == 0 {
			b.WriteString("None.\n")
		}
		for _, u := range d.UnusedRules {
			fmt.Fprintf(&b, "- client `%s`, rule `%s` (%s): %s\n", u.ClientBlock, u.Rule, u.Pos, codeList(u.Hosts))
		}
		b.WriteString("\n### Observed destinations the baseline denies\n\n")
		if len(d.Denied) == 0 {
			b.WriteString("None.\n")
		}
		for _, o := range d.Denied {
			fmt.Fprintf(&b, "- `%s` from client `%s` (%s)\n", hostPortString(o.Host, o.Port), o.ClientBlock, text.Plural(o.Count, "connection"))
		}
		b.WriteString("\n### Risky patterns\n\n")
		if len(d.Risky) == 0 {
			b.WriteString("None found.\n")
		}
		for _, rr := range d.Risky {
			fmt.Fprintf(&b, "- `%s` in client `%s`, rule `%s` (%s): %s\n", rr.Pattern, rr.ClientBlock, rr.Rule, rr.Pos, rr.Why)
		}
		b.WriteString("\n### Lint warnings (`azegress check -lint`)\n\n")
		if len(d.lint) == 0 {
			b.WriteString("None.\n")
		}
		for _, w := range d.lint {
			fmt.Fprintf(&b, "- %s\n", mdEscape(w))
		}
	}
	return []byte(b.String())
}

func decisionText(o Observation) string {
	switch o.Decision {
	case policy.VerdictAllow:
		return "allowed by rule `" + o.Rule + "`"
	case policy.VerdictWouldDeny:
		return "no rule (learning)"
	}
	return "denied: " + o.Reason
}

func hostPortString(host string, port uint16) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// ruleName derives a rule label from a host: dots become dashes; an
// over-long result is shortened with a hash so names stay unique.
func ruleName(host string) string {
	n := strings.NewReplacer(".", "-", ":", "-").Replace(host)
	if len(n) > 64 {
		sum := sha256.Sum256([]byte(host))
		n = n[:55] + "-" + hex.EncodeToString(sum[:4])
	}
	return n
}

func codeList(ss []string) string {
	if len(ss) == 0 {
		return "(none)"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "`" + s + "`"
	}
	return strings.Join(q, ", ")
}

func mdEscape(s string) string { return strings.ReplaceAll(text.OneLine(s), "|", `\|`) }

// riskyPattern reports whether a host pattern is a wildcard over a
// multi-tenant data plane, where any tenant's resource matches.
func riskyPattern(cloud, pattern string) (string, bool) {
	if !strings.HasPrefix(pattern, "*.") {
		return "", false
	}
	return catalog.MultiTenantWildcard(cloud, pattern)
}
