package review

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/text"
)

// JSON renders the report as indented JSON, in the form the package
// documentation describes.
func (d *DiffReport) JSON() ([]byte, error) { return marshal(d) }

func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// An item is one change of a DiffReport, ready to print.
type item struct {
	change string
	client *ClientDiff // nil for the entra block
	dest   string      // the destination with its ports, for a destination
	what   string      // the change (after dest)
	before string      // the old decisions, for a destination
	after  string      // the new decisions
	within string      // what a widened or narrowed wildcard allowed before and after
	flags  []Flag
}

// items lists the changes of d in report order: widenings, narrowings,
// other access changes, then changes that are not access.
func (d *DiffReport) items() []item {
	var all []item
	for _, v := range d.Entra {
		all = append(all, item{change: v.Change, what: fmt.Sprintf("entra %s: %s → %s", v.Field, v.Old, v.New)})
	}
	for i := range d.Clients {
		c := &d.Clients[i]
		who := c
		if c.Status == "renamed" {
			all = append(all, item{change: Other, client: who, what: "renamed; its sources and identities are the same"})
		}
		for _, s := range c.Sources {
			verb := "removed"
			if s.Added {
				verb = "added"
			}
			w := fmt.Sprintf("source %s %s", s.Prefix, verb)
			if s.Note != "" {
				w += " (" + s.Note + ")"
			}
			all = append(all, item{change: s.Change, client: who, what: w})
		}
		for _, i := range c.Identities {
			verb := "removed"
			if i.Added {
				verb = "added"
			}
			all = append(all, item{change: i.Change, client: who, what: fmt.Sprintf("identity %s %s %s", strings.ReplaceAll(i.Kind, "_", " "), i.ID, verb)})
		}
		for _, v := range c.Settings {
			all = append(all, item{change: v.Change, client: who, what: fmt.Sprintf("%s: %s → %s", v.Field, v.Old, v.New)})
		}
		for _, x := range c.Destinations {
			var w string
			if x.ResolvesTo != "" {
				w = " resolving to " + x.ResolvesTo
			}
			if x.Label != "" {
				w += " (" + x.Label + ")"
			}
			it := item{change: x.Change, client: who, dest: destText(x.Destination, x.Ports), what: w,
				before: periodsText(x.Old), after: periodsText(x.New), flags: x.Flags}
			if len(x.Within) > 0 {
				it.within = strings.Join(x.Within, ", ")
			}
			all = append(all, it)
		}
	}
	var out []item
	for _, ch := range []string{Widening, Narrowing, Changed, Other} {
		for _, it := range all {
			if it.change == ch {
				out = append(out, it)
			}
		}
	}
	return out
}

// clientLabel names a client block: client "app" (new block), or with
// the name in backticks for Markdown.
func clientLabel(c *ClientDiff, md bool) string {
	if c == nil {
		return "policy"
	}
	q := strconv.Quote
	if md {
		q = func(s string) string { return "`" + s + "`" }
	}
	switch c.Status {
	case "added":
		return "client " + q(c.Name) + " (new block)"
	case "removed":
		return "client " + q(c.Name) + " (removed block)"
	case "renamed":
		return "client " + q(c.Name) + " (was " + q(c.OldName) + ")"
	}
	return "client " + q(c.Name)
}

// destText writes a destination with its ports: host:443,
// 20.1.2.3:443,8443, [2001:db8::/32]:443.
func destText(dest string, ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	if strings.Contains(dest, ":") {
		dest = "[" + dest + "]"
	}
	return dest + ":" + strings.Join(ps, ",")
}

// periodsText writes decisions over time: "allow by rule "kv"
// (new.hcl:3:3) until 2027-01-01T00:00:00Z, then deny (no rule)".
func periodsText(ps []Period) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", then ")
		}
		b.WriteString(periodText(p))
		if p.Until != nil {
			b.WriteString(" until " + p.Until.Format(time.RFC3339))
		}
	}
	return b.String()
}

func periodText(p Period) string {
	switch {
	case p.Verdict == policy.VerdictAllow && p.Rule == "":
		return "allow (a rule for it lists this range in addresses)"
	case p.Verdict == policy.VerdictAllow:
		return fmt.Sprintf("allow by rule %q (%s)", p.Rule, p.Pos)
	case p.Reason == reasonDenyRule:
		return fmt.Sprintf("deny by deny rule %q (%s)", p.Rule, p.Pos)
	case p.Verdict == policy.VerdictWouldDeny:
		return "would_deny (no rule; learn mode lets it through)"
	}
	return string(p.Verdict) + " (" + reasonText(p.Reason) + ")"
}

// reasonText says a denial's reason in words.
func reasonText(reason string) string {
	switch reason {
	case reasonNoRule:
		return "no rule"
	case reasonBlockedAddress:
		return "destination guard: no rule names this guarded range"
	case reasonClientUnknown:
		return "no such client block"
	}
	return reason
}

// withinText introduces the narrower destinations under a wildcard that
// both sides allow.
func withinText(change string) string {
	switch change {
	case Narrowing:
		return "narrowed to"
	case Widening:
		return "widened from"
	}
	return "allowed under it before and after"
}

// flagName names a flag's check for people.
func flagName(check string) string {
	switch check {
	case FlagMultiTenant:
		return "multi-tenant wildcard"
	case FlagExfiltration:
		return "exfiltration-capable service"
	case FlagRawAddress:
		return "raw address"
	}
	return "lint " + strings.ReplaceAll(check, "_", " ")
}

// summaryText is the summary line of d.
func (d *DiffReport) summaryText() string {
	if !d.Changed {
		s := "no change in access"
		if d.Summary.Other > 0 {
			s += fmt.Sprintf(" (%s that change no access)", text.Plural(int64(d.Summary.Other), "change"))
		}
		return s
	}
	s := fmt.Sprintf("%s, %s, %d other access %s",
		text.Plural(int64(d.Summary.Widenings), "widening"), text.Plural(int64(d.Summary.Narrowings), "narrowing"),
		d.Summary.Changed, pluralWord(d.Summary.Changed, "change", "changes"))
	if d.Summary.Other > 0 {
		s += fmt.Sprintf(" (and %s that change no access)", text.Plural(int64(d.Summary.Other), "change"))
	}
	return s
}

// Text renders the report for a terminal.
func (d *DiffReport) Text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "azegress diff %s → %s, decided at %s: %s.\n", d.Old, d.New, d.At.Format(time.RFC3339), d.summaryText())
	fmt.Fprintf(&b, "old sha256:%s\nnew sha256:%s\n", d.OldSHA256, d.NewSHA256)
	for _, it := range d.items() {
		fmt.Fprintf(&b, "\n%-9s %s: %s%s\n", it.change, clientLabel(it.client, false), it.dest, it.what)
		if it.before != "" {
			fmt.Fprintf(&b, "          before: %s\n          after:  %s\n", it.before, it.after)
		}
		if it.within != "" {
			fmt.Fprintf(&b, "          %s: %s\n", withinText(it.change), it.within)
		}
		for _, f := range it.flags {
			fmt.Fprintf(&b, "          ! %s: %s\n", flagName(f.Check), text.OneLine(f.Detail))
		}
	}
	if len(d.Lint) > 0 {
		b.WriteString("\nLint warnings the new policy brings:\n")
		for _, f := range d.Lint {
			fmt.Fprintf(&b, "  %s: %s\n", f.Pos, text.OneLine(f.Detail))
		}
	}
	return []byte(b.String())
}

// Markdown renders the report as a pull-request comment: widenings first,
// each with its flags.
func (d *DiffReport) Markdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "## Egress policy change: `%s` → `%s`\n\n", d.Old, d.New)
	fmt.Fprintf(&b, "**%s**, decided at %s.\n", capitalize(d.summaryText()), d.At.Format(time.RFC3339))
	fmt.Fprintf(&b, "\nPolicy SHA-256: old `%s`, new `%s`.\n", d.OldSHA256, d.NewSHA256)
	sections := []struct{ change, title string }{
		{Widening, "Widenings: review these"},
		{Narrowing, "Narrowings"},
		{Changed, "Other access changes"},
		{Other, "Changes that are not access"},
	}
	items := d.items()
	for _, s := range sections {
		first := true
		for _, it := range items {
			if it.change != s.change {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n### %s\n\n", s.title)
				first = false
			}
			who := clientLabel(it.client, true)
			if it.dest != "" {
				fmt.Fprintf(&b, "- **%s**: `%s`%s\n", who, it.dest, mdEscape(it.what))
			} else {
				fmt.Fprintf(&b, "- **%s**: %s\n", who, mdEscape(it.what))
			}
			if it.before != "" {
				fmt.Fprintf(&b, "  - before: %s\n  - after: %s\n", mdEscape(it.before), mdEscape(it.after))
			}
			if it.within != "" {
				fmt.Fprintf(&b, "  - %s: %s\n", withinText(it.change), mdEscape(it.within))
			}
			for _, f := range it.flags {
				fmt.Fprintf(&b, "  - ⚠️ **%s**: %s\n", flagName(f.Check), mdEscape(f.Detail))
			}
		}
	}
	if len(d.Lint) > 0 {
		b.WriteString("\n### Lint warnings the new policy brings\n\n")
		for _, f := range d.Lint {
			fmt.Fprintf(&b, "- `%s`: %s\n", f.Pos, mdEscape(f.Detail))
		}
	}
	return []byte(b.String())
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func capitalize(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// mdEscape makes s safe in a Markdown list item.
func mdEscape(s string) string {
	return strings.NewReplacer("*", `\*`, "_", `\_`, "<", "&lt;", "|", `\|`).Replace(text.OneLine(s))
}
