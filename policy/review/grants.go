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

// Grant is one destination a rule names, a host pattern or an address
// prefix, with its ports, where the rule is, and what the catalog says
// about it.
type Grant struct {
	// Kind is the rule's kind: "allow" or "deny".
	Kind string `json:"kind"`
	// Destination is a host pattern, or an address prefix: the IP-literal
	// destinations the rule names.
	Destination string `json:"destination"`
	// Ports are the rule's ports.
	Ports []uint16 `json:"ports"`
	// ResolvesTo are, for a host of an allow rule, the rule's addresses
	// that name guarded (private) ranges: where the destination guard lets
	// the host resolve to.
	ResolvesTo []string `json:"resolves_to,omitempty"`
	// Rule is the rule's name, and Pos where it is (file:line:col).
	Rule string `json:"rule"`
	Pos  string `json:"pos"`
	// Group is the catalog group the host comes from (endpoints) or falls
	// under, Label the catalog's label of it, and Source where the
	// catalog's entry comes from: the documentation behind it.
	Group  string `json:"group,omitempty"`
	Label  string `json:"label,omitempty"`
	Source string `json:"source,omitempty"`
	// Expires is when the rule stops matching; nil means never.
	Expires *time.Time `json:"expires,omitempty"`
	// Status is what the policy does with the destination at the instant
	// asked about: "reachable", "refused by deny rule NAME", "expired", ...
	// for an allow rule; "refuses", "expired", ... for a deny rule. Ports
	// with different answers are listed one by one ("443: reachable; 80:
	// expired").
	Status string `json:"status"`

	rule    *policy.Rule
	pattern string       // the host pattern, or ""
	prefix  netip.Prefix // the prefix, for an address
	probe   host.Host    // the destination asked about for it (space)
}

// grants returns the destinations of client block c's rules, allow rules
// then deny rules, each in file order, hosts before addresses, with their
// status at at.
func grants(p *policy.Policy, c *policy.Client, at time.Time) []Grant {
	sp := newSpace(at, c)
	var out []Grant
	for _, r := range slices.Concat(c.Rules, c.Denies) {
		base := Grant{Kind: r.Kind(), Ports: r.Ports, Rule: r.Name, Pos: text.Pos(r.Range), rule: r}
		if !r.Expires.IsZero() {
			t := r.Expires.UTC()
			base.Expires = &t
		}
		var resolves []string
		if !r.Deny {
			for _, a := range r.Addresses {
				if namesGuarded(a) {
					resolves = append(resolves, text.Prefix(a))
				}
			}
		}
		for i, h := range r.Hosts {
			g := base
			g.Destination, g.pattern, g.ResolvesTo = h, h, resolves
			g.Label = r.Labels[i]
			g.Group, g.Source = catalogOf(p.Cloud(), r, h)
			g.probe = sp.probe[h]
			g.Status = status(c, r, g.probe, at)
			out = append(out, g)
		}
		for _, a := range r.Addresses {
			g := base
			g.Destination, g.prefix = text.Prefix(a), a
			probe, ok := sp.addr[a]
			if !ok {
				probe = a.Addr() // the prefix is tiled by smaller ones
			}
			g.probe = host.Host{IP: probe}
			g.Status = status(c, r, g.probe, at)
			out = append(out, g)
		}
	}
	return out
}

// namesGuarded reports whether prefix p lies inside a guarded range, and
// so lets names resolve there (policy.Client.AddressAllowed).
func namesGuarded(p netip.Prefix) bool {
	rng, _, ok := policy.GuardedRange(p.Addr())
	return ok && p.Bits() >= rng.Bits()
}

// catalogOf returns the catalog group host pattern h of rule r comes from
// (one of the rule's endpoints groups whose expansion has it) or falls
// under, and the source of its catalog entry.
func catalogOf(cloud string, r *policy.Rule, h string) (group, source string) {
	for _, name := range r.Endpoints {
		if g, ok := catalog.LookupGroup(cloud, name); ok {
			if hosts, _ := catalog.Expand(cloud, g); slices.Contains(hosts, h) {
				group = name
				break
			}
		}
	}
	found, e, ok := catalog.Find(cloud, h)
	if !ok {
		return group, ""
	}
	if group == "" {
		group = found
	}
	return group, e.Source
}

// status says what client block c does at at with the destination probe
// of rule r, on each of r's ports.
func status(c *policy.Client, r *policy.Rule, probe host.Host, at time.Time) string {
	var parts []string
	var ports []uint16
	for _, port := range r.Ports {
		parts = append(parts, statusOn(c, r, probe, port, at))
		ports = append(ports, port)
	}
	if len(slices.Compact(slices.Clone(parts))) == 1 {
		return parts[0]
	}
	var b strings.Builder
	for i, s := range parts {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d: %s", ports[i], s)
	}
	return b.String()
}

func statusOn(c *policy.Client, r *policy.Rule, probe host.Host, port uint16, at time.Time) string {
	if r.Expired(at) {
		return "expired"
	}
	p := decideAt(c, probe, port, at)
	if r.Deny {
		if p.reason != reasonDenyRule || p.rule == r {
			return "refuses"
		}
		return fmt.Sprintf("refuses (deny rule %q matches first)", p.rule.Name)
	}
	switch {
	case p.verdict == policy.VerdictAllow && p.rule == r:
		return "reachable"
	case p.verdict == policy.VerdictAllow:
		return fmt.Sprintf("reachable (rule %q decides)", p.rule.Name)
	case p.reason == reasonDenyRule:
		return fmt.Sprintf("refused by deny rule %q", p.rule.Name)
	case p.reason == reasonBlockedAddress:
		return "refused by the destination guard: the prefix is wider than the guarded range it is in"
	}
	return "refused: " + p.reason
}
