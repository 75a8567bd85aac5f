package review

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/azegress/azegress/policy/internal/text"
)

// JSON renders the report as indented JSON, in the form the package
// documentation describes.
func (r *ReplayReport) JSON() ([]byte, error) { return marshal(r) }

// hostPort writes host:port, with brackets for an IPv6 address.
func hostPort(h string, port uint16) string {
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(int(port))
}

// thenText writes the recorded decisions: "allow 1000 (rule arm), deny 2
// (rate_limited)".
func thenText(rs []Recorded) string {
	parts := make([]string, len(rs))
	for i, x := range rs {
		parts[i] = fmt.Sprintf("%s %d", x.Verdict, x.Count)
		switch {
		case x.Rule != "":
			parts[i] += fmt.Sprintf(" (rule %s)", x.Rule)
		case x.Reason != "":
			parts[i] += " (" + x.Reason + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func (r *ReplayReport) headline() string {
	s := r.Stats
	return fmt.Sprintf("azegress replay against %s (sha256:%s), decided at %s: %s (%s, %s, %s), %s skipped",
		r.Policy, r.PolicySHA256, r.At.Format(time.RFC3339), text.Plural(s.Lines, "line"),
		text.Plural(s.Decisions, "decision record"), text.Plural(s.Observations, "observation line"),
		text.Plural(s.Other, "other record"), text.Plural(s.Corrupt, "corrupt line"))
}

func blockText(b string) string {
	if b == "" {
		return "(no block)"
	}
	return b
}

// Text renders the report for a terminal: every recorded destination,
// then what the policy would break and what it allows that was not used.
func (r *ReplayReport) Text() []byte {
	var b strings.Builder
	b.WriteString(r.headline() + ".\n\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT BLOCK\tDESTINATION\tCOUNT\tTHEN\tNOW")
	for _, d := range r.Destinations {
		now := periodText(d.Now)
		if d.Breaks {
			now = "BREAKS: " + now
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", blockText(d.ClientBlock), hostPort(d.Host, d.Port), d.Count, thenText(d.Then), now)
	}
	tw.Flush()
	if r.Breaks == 0 {
		b.WriteString("\nThe policy breaks no recorded traffic.\n")
	} else {
		fmt.Fprintf(&b, "\nThe policy would break %s (%s that passed):\n", text.Plural(int64(r.Breaks), "recorded destination"), text.Plural(r.BrokenConnections, "connection"))
		for _, d := range r.Destinations {
			if d.Breaks {
				fmt.Fprintf(&b, "  %s %s: %s; now %s\n", blockText(d.ClientBlock), hostPort(d.Host, d.Port), thenText(d.Then), periodText(d.Now))
			}
		}
	}
	if len(r.Unused) == 0 {
		b.WriteString("\nEvery destination the policy allows was used.\n")
	} else {
		fmt.Fprintf(&b, "\nAllowed, but never used in the records (%d):\n", len(r.Unused))
		for _, u := range r.Unused {
			fmt.Fprintf(&b, "  %s rule %q (%s): %s\n", u.ClientBlock, u.Rule, u.Pos, destText(u.Destination, u.Ports))
		}
	}
	return []byte(b.String())
}

// Markdown renders the report as a review document.
func (r *ReplayReport) Markdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "## Replay against `%s`\n\n%s.\n", r.Policy, mdEscape(r.headline()))
	if r.Breaks > 0 {
		fmt.Fprintf(&b, "\n### Would break: %s (%s that passed)\n\n", text.Plural(int64(r.Breaks), "recorded destination"), text.Plural(r.BrokenConnections, "connection"))
		b.WriteString("| client block | destination | recorded | now |\n|---|---|---|---|\n")
		for _, d := range r.Destinations {
			if d.Breaks {
				fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", blockText(d.ClientBlock), hostPort(d.Host, d.Port), mdEscape(thenText(d.Then)), mdEscape(periodText(d.Now)))
			}
		}
	} else {
		b.WriteString("\nThe policy breaks no recorded traffic.\n")
	}
	fmt.Fprintf(&b, "\n### Allowed, never used (%d)\n\n", len(r.Unused))
	for _, u := range r.Unused {
		fmt.Fprintf(&b, "- `%s` rule `%s` (`%s`): `%s`\n", u.ClientBlock, u.Rule, u.Pos, destText(u.Destination, u.Ports))
	}
	b.WriteString("\n### Every recorded destination\n\n| client block | destination | count | then | now |\n|---|---|---|---|---|\n")
	for _, d := range r.Destinations {
		now := mdEscape(periodText(d.Now))
		if d.Breaks {
			now = "**breaks**: " + now
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %d | %s | %s |\n", blockText(d.ClientBlock), hostPort(d.Host, d.Port), d.Count, mdEscape(thenText(d.Then)), now)
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\n### Skipped lines\n\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(&b, "- %s\n", mdEscape(w))
		}
	}
	return []byte(b.String())
}
