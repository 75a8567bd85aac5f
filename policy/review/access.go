package review

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/text"
)

// AccessReport is the effective egress of one client block, for an access
// review: every destination its rules name, with the rule, where it is,
// what the catalog says about it and where that comes from, its expiry,
// and whether the policy lets it through at At.
type AccessReport struct {
	Policy string `json:"policy"`
	// PolicySHA256 is the policy's hash (policy.Policy.SHA256).
	PolicySHA256 string    `json:"policy_sha256"`
	At           time.Time `json:"at"`
	// ClientBlock is the block's name, Pos where it is, SelectedBy how it
	// was asked for ("client NAME", "identity GUID", "source IP").
	ClientBlock string `json:"client_block"`
	Pos         string `json:"pos"`
	SelectedBy  string `json:"selected_by"`
	Mode        string `json:"mode"`
	// Sources are the block's sources: the client addresses it applies
	// to or, with an identity block, where its identities are accepted
	// from (none: anywhere).
	Sources  []string     `json:"sources"`
	Identity *IdentityIDs `json:"identity,omitempty"`
	// Destinations are its rules' destinations: allow rules, then deny
	// rules, in file order.
	Destinations []Grant `json:"destinations"`
}

// IdentityIDs are the identities of an identity block.
type IdentityIDs struct {
	ObjectIDs []string `json:"object_ids"`
	ClientIDs []string `json:"client_ids"`
}

// Access reports the effective egress of client block c of p at at;
// selectedBy says how the block was chosen.
func Access(p *policy.Policy, c *policy.Client, selectedBy string, at time.Time) *AccessReport {
	a := &AccessReport{Policy: p.Filename(), PolicySHA256: p.SHA256(), At: at.UTC(), ClientBlock: c.Name, Pos: text.Pos(c.Range), SelectedBy: selectedBy,
		Mode: c.Mode.String(), Sources: []string{}, Destinations: grants(p, c, at)}
	for _, s := range c.Sources {
		a.Sources = append(a.Sources, s.String())
	}
	if id := c.Identity; id != nil {
		a.Identity = &IdentityIDs{ObjectIDs: append([]string{}, id.ObjectIDs...), ClientIDs: append([]string{}, id.ClientIDs...)}
	}
	if a.Destinations == nil {
		a.Destinations = []Grant{}
	}
	return a
}

// ClientByName returns the client block of p named name.
func ClientByName(p *policy.Policy, name string) (*policy.Client, error) {
	var names []string
	for _, c := range p.Clients() {
		if c.Name == name {
			return c, nil
		}
		names = append(names, c.Name)
	}
	return nil, fmt.Errorf("%s has no client block %q; its blocks are %s", p.Filename(), name, text.QuoteList(names))
}

// ClientBySource returns the client block the proxy selects for a
// connection without credentials from addr (policy.Policy.Client).
func ClientBySource(p *policy.Policy, addr netip.Addr) (*policy.Client, error) {
	if c := p.Client(addr); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%s is in no address-keyed client block of %s: the proxy refuses it as client_unknown (identity blocks are selected by identity only)", addr, p.Filename())
}

// ClientByIdentity returns the client block a token with id as its object
// ID or client ID selects (policy.Policy.ClientForIdentity) from src. With
// no src, a block that takes the identity only from its sources is
// found by asking from each of them.
func ClientByIdentity(p *policy.Policy, id string, src netip.Addr) (*policy.Client, error) {
	c, listed := p.ClientForIdentity(id, id, src)
	if c != nil {
		return c, nil
	}
	if !listed {
		return nil, fmt.Errorf("identity %s is listed in no identity block of %s (as an object ID or a client ID): a token for it selects nothing", id, p.Filename())
	}
	if src.IsValid() {
		return nil, fmt.Errorf("identity %s is listed in %s, but its client block does not accept it from %s", id, p.Filename(), src)
	}
	for _, b := range p.Clients() {
		if b.Identity == nil || len(b.Sources) == 0 {
			continue
		}
		if c, _ := p.ClientForIdentity(id, id, b.Sources[0].Addr()); c != nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("identity %s is listed in %s, but selects no block", id, p.Filename())
}

// JSON renders the report as indented JSON, in the form the package
// documentation describes.
func (a *AccessReport) JSON() ([]byte, error) { return marshal(a) }

func (a *AccessReport) headline() string {
	return fmt.Sprintf("client block %q (%s), selected by %s, mode %s, decided at %s, policy sha256:%s", a.ClientBlock, a.Pos, a.SelectedBy, a.Mode, a.At.Format(time.RFC3339), a.PolicySHA256)
}

func (a *AccessReport) whoLines() []string {
	var out []string
	switch {
	case a.Identity != nil && len(a.Sources) == 0:
		out = append(out, "Selected by identity: object IDs "+listOrNone(a.Identity.ObjectIDs)+"; client IDs "+listOrNone(a.Identity.ClientIDs)+"; from any address.")
	case a.Identity != nil:
		out = append(out, "Selected by identity: object IDs "+listOrNone(a.Identity.ObjectIDs)+"; client IDs "+listOrNone(a.Identity.ClientIDs)+"; only from "+strings.Join(a.Sources, ", ")+".")
	default:
		out = append(out, "Sources: "+strings.Join(a.Sources, ", ")+".")
	}
	if a.Mode == policy.ModeLearn.String() {
		out = append(out, "Learn mode: whatever no rule allows passes too (would_deny), except what deny rules refuse.")
	}
	return out
}

func listOrNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

func portsText(ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	return strings.Join(ps, ",")
}

func expiresText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339)
}

func destWithResolve(g Grant) string {
	if len(g.ResolvesTo) == 0 {
		return g.Destination
	}
	return g.Destination + " (may resolve to " + strings.Join(g.ResolvesTo, ", ") + ")"
}

// Text renders the report for a terminal; the catalog's sources are
// numbered notes under the table.
func (a *AccessReport) Text() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "azegress access: %s.\n", a.headline())
	for _, l := range a.whoLines() {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n")
	if len(a.Destinations) == 0 {
		b.WriteString("No rules: every connection is refused.\n")
		return b.Bytes()
	}
	var notes []string
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tDESTINATION\tPORTS\tRULE\tEXPIRES\tSTATUS\tCATALOG")
	for _, g := range a.Destinations {
		cat := ""
		if g.Group != "" || g.Label != "" {
			cat = strings.TrimPrefix(g.Group+": "+g.Label, ": ")
		}
		if g.Source != "" {
			i := slices.Index(notes, g.Source)
			if i < 0 {
				i = len(notes)
				notes = append(notes, g.Source)
			}
			cat += fmt.Sprintf(" [%d]", i+1)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s\t%s\t%s\n", g.Kind, destWithResolve(g), portsText(g.Ports), g.Rule, g.Pos, cmp.Or(expiresText(g.Expires), "-"), g.Status, cat)
	}
	tw.Flush()
	b.Write(trimLines(table.Bytes()))
	if len(notes) > 0 {
		b.WriteString("\nCatalog sources:\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "[%d] %s\n", i+1, n)
		}
	}
	return b.Bytes()
}

// trimLines removes the spaces tabwriter leaves at the end of lines whose
// last cells are empty.
func trimLines(b []byte) []byte {
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " ")
	}
	return bytes.Join(lines, []byte("\n"))
}

// Markdown renders the report as a review document.
func (a *AccessReport) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "## Access of client block `%s` (`%s`)\n\n%s.\n\n", a.ClientBlock, a.Policy, mdEscape(a.headline()))
	for _, l := range a.whoLines() {
		b.WriteString(mdEscape(l) + "\n")
	}
	if len(a.Destinations) == 0 {
		b.WriteString("\nNo rules: every connection is refused.\n")
		return b.Bytes()
	}
	b.WriteString("\n| kind | destination | ports | rule | expires | status | catalog group | label | source |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, g := range a.Destinations {
		dest := "`" + g.Destination + "`"
		if len(g.ResolvesTo) > 0 {
			dest += " (may resolve to `" + strings.Join(g.ResolvesTo, "`, `") + "`)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` (`%s`) | %s | %s | %s | %s | %s |\n", g.Kind, dest, portsText(g.Ports), g.Rule, g.Pos,
			cmp.Or(expiresText(g.Expires), "never"), mdEscape(g.Status), g.Group, mdEscape(g.Label), mdEscape(g.Source))
	}
	return b.Bytes()
}

// CSV renders the report as one row per destination, with a header, for
// a spreadsheet.
func (a *AccessReport) CSV() ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"client_block", "kind", "destination", "ports", "resolves_to", "rule", "pos", "expires", "status", "group", "label", "source", "policy_sha256"})
	for _, g := range a.Destinations {
		_ = w.Write([]string{a.ClientBlock, g.Kind, g.Destination, portsText(g.Ports), strings.Join(g.ResolvesTo, " "), g.Rule, g.Pos,
			expiresText(g.Expires), g.Status, g.Group, g.Label, g.Source, a.PolicySHA256})
	}
	w.Flush()
	return b.Bytes(), w.Error()
}
