package review

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// lintDelta is the warnings of policy.Lint that a new policy brings: those
// it has and the old one had not, matched by check, client block (by its
// old name, for a renamed one), hosts and address, not by position.
type lintDelta struct {
	brought []*brought
}

type brought struct {
	f        *policy.LintFinding
	flag     Flag
	attached bool
}

func newLintDelta(old, new *policy.Policy, pairs []pair, at time.Time) *lintDelta {
	oldName := map[*policy.Client]string{}
	for _, pr := range pairs {
		if pr.new != nil && pr.old != nil {
			oldName[pr.new] = pr.old.Name
		}
	}
	had := map[string]int{}
	for _, d := range policy.Lint(old, at) {
		had[lintKey(d, func(c *policy.Client) string { return c.Name })]++
	}
	ld := &lintDelta{}
	for _, d := range policy.Lint(new, at) {
		k := lintKey(d, func(c *policy.Client) string {
			if n, ok := oldName[c]; ok {
				return n
			}
			return "\x00new " + c.Name
		})
		if had[k] > 0 {
			had[k]--
			continue
		}
		f, _ := d.Extra.(*policy.LintFinding)
		if f == nil {
			continue
		}
		fl := Flag{Check: f.Check, Detail: d.Summary + ": " + d.Detail}
		if d.Subject != nil {
			fl.Pos = text.Pos(*d.Subject)
		}
		ld.brought = append(ld.brought, &brought{f: f, flag: fl})
	}
	return ld
}

// lintKey identifies a Lint warning across two policies; name gives a
// client block's name to compare by.
func lintKey(d *hcl.Diagnostic, name func(*policy.Client) string) string {
	f, _ := d.Extra.(*policy.LintFinding)
	if f == nil {
		return d.Summary + "|" + d.Detail
	}
	var b strings.Builder
	b.WriteString(f.Check)
	b.WriteByte('|')
	if f.Client != nil {
		b.WriteString(name(f.Client))
	}
	b.WriteByte('|')
	if f.Rule != nil {
		b.WriteString(f.Rule.Kind())
	}
	b.WriteByte('|')
	b.WriteString(strings.Join(f.Hosts, ","))
	b.WriteByte('|')
	if f.Address.IsValid() {
		b.WriteString(f.Address.String())
	}
	b.WriteByte('|')
	b.WriteString(d.Summary)
	return b.String()
}

// attach adds to flags the brought warnings about pattern (or prefix) in
// rule r; one of the same check replaces the flag the kit raised itself.
func (ld *lintDelta) attach(flags []Flag, r *policy.Rule, pattern string, prefix netip.Prefix) []Flag {
	for _, b := range ld.brought {
		f := b.f
		if f.Rule != r || !(pattern != "" && slices.Contains(f.Hosts, pattern) || pattern == "" && prefix.IsValid() && f.Address == prefix) {
			continue
		}
		b.attached = true
		if i := slices.IndexFunc(flags, func(x Flag) bool { return x.Check == f.Check }); i >= 0 {
			flags[i] = b.flag
			continue
		}
		flags = append(flags, b.flag)
	}
	return flags
}

// unattached returns the brought warnings no destination carries.
func (ld *lintDelta) unattached() []Flag {
	var out []Flag
	for _, b := range ld.brought {
		if !b.attached {
			out = append(out, b.flag)
		}
	}
	return out
}
