package azfw

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/text"
)

// ExportOptions configures Export.
type ExportOptions struct {
	// GroupName is the rule collection group's name; "" means "azegress".
	GroupName string
	// Priority is the group's priority, 100 to 65000; 0 means 500.
	Priority int
	// Now is when rules' expiry is judged: rules expired by then are left
	// out. The zero value means time.Now().
	Now time.Time
}

// Export writes p as an ARM template with one firewall policy
// rule collection group (Microsoft.Network/firewallPolicies/
// ruleCollectionGroups), deployable with
//
//	az deployment group create -g RG --template-file FILE --parameters firewallPolicyName=NAME
//
// Each client block becomes a Deny collection (its deny rules) and an
// Allow collection (its allow rules), the Deny one at a higher priority;
// rules with addresses become TCP network rules in collections of their
// own. Sources are the block's sources less those of more specific blocks,
// so each address gets the rules of the block azegress would pick. It
// returns warnings for what Azure Firewall cannot express (learn mode,
// limits, expires, the destination guard's addresses) and for identity
// blocks, which it leaves out.
func Export(p *policy.Policy, opt ExportOptions) ([]byte, []string, error) {
	opt.GroupName = cmp.Or(opt.GroupName, "azegress")
	opt.Priority = cmp.Or(opt.Priority, 500)
	if opt.Priority < 100 || opt.Priority > 65000 {
		return nil, nil, fmt.Errorf("group priority %d is out of range; Azure takes 100 to 65000", opt.Priority)
	}
	if !validAzureName(opt.GroupName) {
		return nil, nil, fmt.Errorf("group name %q is not a valid Azure name: letters, digits, \"_\", \".\" and \"-\", starting with a letter or digit, at most 80 characters", opt.GroupName)
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	var warnings []string
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	var colls []any
	denyPrio, allowPrio := 1000, 30000
	for _, c := range p.Clients() {
		where := fmt.Sprintf("%s: client %q", text.Pos(c.Range), c.Name)
		if c.Identity != nil {
			warn("%s: not exported: Azure Firewall cannot select by identity, and its rules given to its sources would let every workload there reach them", where)
			continue
		}
		if c.Mode == policy.ModeLearn {
			warn("%s: mode learn has no Azure Firewall equivalent; the rules are exported as enforced", where)
		}
		if c.Limits != (policy.Limits{}) {
			warn("%s: limits have no Azure Firewall equivalent and are not exported", where)
		}
		if c.AllowSNIMismatch {
			warn("%s: allow_sni_mismatch is not exported; Azure Firewall matches the SNI of HTTPS application rules", where)
		}
		srcs := exportSources(p, c)
		if len(srcs) == 0 {
			if len(c.Rules)+len(c.Denies) > 0 {
				warn("%s: not exported: more specific client blocks cover all its sources", where)
			}
			continue
		}
		if allowPrio+10 > 65000 {
			return nil, nil, errors.New("too many client blocks for Azure rule collection priorities")
		}
		name := azureName(c.Name)
		for _, kind := range []struct {
			rules  []*policy.Rule
			suffix string
			action string
			prio   int
		}{
			{c.Denies, "-deny", "Deny", denyPrio},
			{c.Rules, "-allow", "Allow", allowPrio},
		} {
			var app, network []any
			for _, r := range kind.rules {
				rwhere := fmt.Sprintf("%s: %s rule %q", text.Pos(r.Range), r.Kind(), r.Name)
				if r.Expired(now) {
					warn("%s: not exported: it expired at %s", rwhere, r.Expires.UTC().Format(time.RFC3339))
					continue
				}
				if !r.Expires.IsZero() {
					warn("%s: expires %s has no Azure Firewall equivalent; the rule is exported without it: remove it from the firewall then",
						rwhere, r.Expires.UTC().Format(time.RFC3339))
				}
				var appPorts []any
				var netPorts []any
				for _, port := range slices.Sorted(slices.Values(r.Ports)) {
					netPorts = append(netPorts, strconv.Itoa(int(port)))
					if port > 64000 {
						warn("%s: port %d is above Azure application rules' limit of 64000 and is not exported", rwhere, port)
						continue
					}
					proto := "Https"
					if port == 80 {
						proto = "Http"
					}
					appPorts = append(appPorts, jobj{"protocolType": proto, "port": int(port)})
				}
				if len(r.Hosts) > 0 && len(appPorts) > 0 {
					app = append(app, jobj{
						"ruleType":        "ApplicationRule",
						"name":            azureName(r.Name),
						"description":     fmt.Sprintf("azegress client %q rule %q (%s)", c.Name, r.Name, text.Pos(r.Range)),
						"sourceAddresses": srcs,
						"protocols":       appPorts,
						"targetFqdns":     r.Hosts,
						"terminateTLS":    false,
					})
				}
				if len(r.Addresses) > 0 {
					addrs := make([]string, len(r.Addresses))
					for i, a := range r.Addresses {
						addrs[i] = text.Prefix(a)
					}
					network = append(network, jobj{
						"ruleType":             "NetworkRule",
						"name":                 azureName(r.Name),
						"description":          fmt.Sprintf("azegress client %q rule %q (%s): IP destinations", c.Name, r.Name, text.Pos(r.Range)),
						"ipProtocols":          []string{"TCP"},
						"sourceAddresses":      srcs,
						"destinationAddresses": addrs,
						"destinationPorts":     netPorts,
					})
					if len(r.Hosts) > 0 && !r.Deny {
						warn("%s: addresses are exported as a network rule to those IP destinations; what they also mean in azegress, the private ranges the rule's hosts may resolve to, has no Azure Firewall equivalent (Azure Firewall does not refuse private answers)", rwhere)
					}
				}
			}
			if len(network) > 0 {
				colls = append(colls, jobj{
					"ruleCollectionType": "FirewallPolicyFilterRuleCollection",
					"name":               name + kind.suffix + "-ip",
					"priority":           kind.prio + 5,
					"action":             jobj{"type": kind.action},
					"rules":              network,
				})
			}
			if len(app) > 0 {
				colls = append(colls, jobj{
					"ruleCollectionType": "FirewallPolicyFilterRuleCollection",
					"name":               name + kind.suffix,
					"priority":           kind.prio,
					"action":             jobj{"type": kind.action},
					"rules":              app,
				})
			}
		}
		denyPrio += 10
		allowPrio += 10
	}
	if colls == nil {
		colls = []any{}
	}
	tmpl := jobj{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"metadata": jobj{
			"description": fmt.Sprintf("Generated by azegress export-azfw from %s (cloud %s). Deny collections come before Allow collections, as azegress evaluates deny rules first.", p.Filename(), p.Cloud()),
		},
		"parameters": jobj{
			"firewallPolicyName": jobj{"type": "string", "metadata": jobj{"description": "The existing firewall policy that receives the rule collection group."}},
		},
		"resources": []any{jobj{
			"type":       "Microsoft.Network/firewallPolicies/ruleCollectionGroups",
			"apiVersion": "2023-09-01",
			"name":       fmt.Sprintf("[format('{0}/%s', parameters('firewallPolicyName'))]", opt.GroupName),
			"properties": jobj{
				"priority":        opt.Priority,
				"ruleCollections": colls,
			},
		}},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(orderedJSON(tmpl)); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), warnings, nil
}

// exportSources returns a block's sources less those of more specific
// blocks, as Azure address strings. Identity blocks' sources take nothing
// away: azegress never selects a block by them.
func exportSources(p *policy.Policy, c *policy.Client) []string {
	var out []string
	for _, s := range c.Sources {
		rest := []netip.Prefix{s}
		for _, o := range p.Clients() {
			if o.Identity != nil {
				continue
			}
			for _, q := range o.Sources {
				if q.Bits() > s.Bits() && s.Contains(q.Addr()) {
					rest = subtractPrefix(rest, q)
				}
			}
		}
		for _, r := range rest {
			out = append(out, text.Prefix(r))
		}
	}
	return out
}

// subtractPrefix returns the prefixes covering ps except q.
func subtractPrefix(ps []netip.Prefix, q netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		switch {
		case !p.Overlaps(q):
			out = append(out, p)
		case q.Bits() <= p.Bits():
			// q covers p: nothing left.
		default:
			// Split p in halves until q is one of them.
			for p.Bits() < q.Bits() {
				lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
				hi := netip.PrefixFrom(lastAddr(lo).Next(), p.Bits()+1)
				if lo.Contains(q.Addr()) {
					out = append(out, hi)
					p = lo
				} else {
					out = append(out, lo)
					p = hi
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// azureName makes an azegress name valid for Azure: it must start with a
// letter or digit and end with a letter, digit or "_".
func azureName(s string) string {
	if s == "" || !isLetter(s[0]) && !isDigit(s[0]) {
		s = "x" + s
	}
	if last := s[len(s)-1]; !isLetter(last) && !isDigit(last) && last != '_' {
		s += "_"
	}
	return s
}

func validAzureName(s string) bool {
	if s == "" || len(s) > 80 || azureName(s) != s {
		return false
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; !isLetter(ch) && !isDigit(ch) && ch != '-' && ch != '_' && ch != '.' {
			return false
		}
	}
	return true
}

// orderedJSON returns v with the keys of ARM objects in a conventional
// order (type, apiVersion, name first), for readable output.
func orderedJSON(v any) any {
	switch x := v.(type) {
	case jobj:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		rank := func(k string) int {
			if i := slices.Index(jsonKeyOrder, k); i >= 0 {
				return i
			}
			return len(jsonKeyOrder)
		}
		slices.SortStableFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
		out := make(orderedObj, len(keys))
		for i, k := range keys {
			out[i] = kv{k, orderedJSON(x[k])}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = orderedJSON(e)
		}
		return out
	}
	return v
}

var jsonKeyOrder = []string{
	"$schema", "contentVersion", "metadata", "parameters", "resources",
	"type", "apiVersion", "name", "ruleCollectionType", "ruleType", "description", "priority", "action", "properties",
	"ruleCollections", "rules", "ipProtocols", "sourceAddresses", "protocols", "protocolType", "port",
	"targetFqdns", "destinationAddresses", "destinationPorts", "terminateTLS",
}

type kv struct {
	k string
	v any
}

type orderedObj []kv

func (o orderedObj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
