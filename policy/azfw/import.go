package azfw

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Input is one JSON document for Import.
type Input struct {
	// Name is the document's name in warnings, usually its file name.
	Name string
	// Data is the JSON text.
	Data []byte
}

// Imported is the result of Import.
type Imported struct {
	// HCL is the azegress policy.
	HCL []byte
	// Warnings say what was changed or could not be carried over, one line
	// each, "FILE: GROUP/COLLECTION/RULE: what and what to do". They are
	// also comments at the top of HCL.
	Warnings []string
}

// Import converts the application rules of Azure Firewall exports to an
// azegress policy for cloud (a name catalog.Clouds returns; "" means
// AzureCloud). It returns an error only when a document is not JSON or no
// document holds rule collections; everything it cannot carry over is a
// warning.
func Import(cloud string, inputs ...Input) (*Imported, error) {
	cloud = cmp.Or(cloud, catalog.DefaultCloud)
	if clouds := catalog.Clouds(); !slices.Contains(clouds, cloud) {
		return nil, fmt.Errorf("unknown cloud %q; use one of %s", cloud, text.QuoteList(clouds))
	}
	imp := &importer{cloud: cloud, ipGroups: map[string][]string{}, seen: map[string]bool{}}
	docs := make([]any, len(inputs))
	for i, in := range inputs {
		d := json.NewDecoder(bytes.NewReader(in.Data))
		d.UseNumber()
		if err := d.Decode(&docs[i]); err != nil {
			return nil, fmt.Errorf("%s: not JSON: %w", in.Name, err)
		}
	}
	// IP Groups first, so that rules in any document can use them.
	for i, in := range inputs {
		imp.file = in.Name
		imp.walk(docs[i], nil, imp.ipGroup)
	}
	for i, in := range inputs {
		imp.file = in.Name
		imp.walk(docs[i], nil, imp.resource)
	}
	if imp.collections == 0 {
		names := make([]string, len(inputs))
		for i, in := range inputs {
			names[i] = in.Name
		}
		return nil, fmt.Errorf("%s: no Azure Firewall rule collections found; export a firewall policy's rule collection groups "+
			"(az network firewall policy rule-collection-group list, or an ARM template with Microsoft.Network/firewallPolicies/ruleCollectionGroups) "+
			"or a classic firewall (Microsoft.Network/azureFirewalls)", strings.Join(names, ", "))
	}
	names := make([]string, len(inputs))
	for i, in := range inputs {
		names[i] = in.Name
	}
	src := imp.render(names)
	return &Imported{HCL: src, Warnings: imp.warnings}, nil
}

// importer holds the state of one Import call.
type importer struct {
	cloud       string
	file        string              // the document being read
	ipGroups    map[string][]string // lowercase IP Group name or ID -> addresses
	rules       []*azRule
	collections int
	warnings    []string
	seen        map[string]bool // warnings already given
}

// azRule is one Azure rule, converted.
type azRule struct {
	where     string // "file: group/collection/rule", for warnings
	comment   string // the rule's origin, as a comment in the HCL
	group     string
	groupPrio int
	classic   bool // from a classic firewall, which has no groups
	collPrio  int
	seq       int // reading order
	coll      string
	name      string
	deny      bool
	sources   []netip.Prefix
	hosts     []string // normalized patterns
	endpoints []string // catalog groups (allow rules only)
	addresses []netip.Prefix
	ports     []uint16
	notes     []string // placeholder comments: what was not carried
}

func (imp *importer) warn(where, format string, args ...any) {
	line := where + ": " + fmt.Sprintf(format, args...)
	if !imp.seen[line] {
		imp.seen[line] = true
		imp.warnings = append(imp.warnings, line)
	}
}

// JSON helpers. ARM property names are case-insensitive.

type jobj = map[string]any

func field(v any, key string) any {
	m, ok := v.(jobj)
	if !ok {
		return nil
	}
	if x, ok := m[key]; ok {
		return x
	}
	for k, x := range m {
		if strings.EqualFold(k, key) {
			return x
		}
	}
	return nil
}

// props returns v's properties object, or v itself for the Azure CLI's
// flattened output.
func props(v any) any {
	if p, ok := field(v, "properties").(jobj); ok {
		return p
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func num(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(n.String())
		return i, err == nil
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// typeIs reports whether an ARM resource type ends in suffix (a nested
// resource in a template has only its last segments).
func typeIs(v any, suffix string) bool {
	t := strings.ToLower(str(field(v, "type")))
	suffix = strings.ToLower(suffix)
	return t == suffix || strings.HasSuffix(t, "/"+suffix)
}

// walk calls visit for every resource-like object in v: the document
// itself, the elements of a top-level array or a REST list's value, and
// the resources of ARM templates and their nested resources. A template's
// parameters and variables are evaluated in ARM expressions below it.
func (imp *importer) walk(v any, ev *armEval, visit func(v any, ev *armEval)) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			imp.walk(e, ev, visit)
		}
	case jobj:
		if field(x, "$schema") != nil || field(x, "parameters") != nil && field(x, "resources") != nil {
			ev = newARMEval(x)
		}
		visit(x, ev)
		for _, key := range []string{"value", "resources"} {
			if l, ok := field(x, key).([]any); ok {
				imp.walk(l, ev, visit)
			}
		}
	}
}

// ipGroup records a Microsoft.Network/ipGroups resource.
func (imp *importer) ipGroup(v any, ev *armEval) {
	if !typeIs(v, "Microsoft.Network/ipGroups") {
		return
	}
	name, ok := ev.value(str(field(v, "name")))
	if !ok || name == "" {
		return
	}
	addrs := strs(field(props(v), "ipAddresses"))
	imp.ipGroups[strings.ToLower(lastSegment(name))] = addrs
	if id := str(field(v, "id")); id != "" {
		imp.ipGroups[strings.ToLower(id)] = addrs
	}
}

// resource converts a rule collection group or a classic firewall.
func (imp *importer) resource(v any, ev *armEval) {
	p := props(v)
	switch {
	case typeIs(v, "ruleCollectionGroups") || field(v, "type") == nil && field(p, "ruleCollections") != nil:
		imp.group(v, ev)
	case typeIs(v, "Microsoft.Network/azureFirewalls") || field(v, "type") == nil && field(p, "applicationRuleCollections") != nil:
		imp.classic(v, ev)
	case typeIs(v, "Microsoft.Network/firewallPolicies"):
		if field(p, "basePolicy") != nil {
			imp.warn(imp.file+": firewall policy "+displayName(str(field(v, "name"))), "has a parent (basePolicy) whose rule collections Azure applies first; import the parent's rule collection groups too")
		}
	}
}

// displayName is a resource name for comments: an ARM expression's last
// literal path segment ("[concat(parameters('p'), '/Group')]" is "Group").
func displayName(name string) string {
	if isExpr(name) {
		name = strings.TrimRight(strings.TrimSuffix(name, "]"), "')")
	}
	return lastSegment(name)
}

func lastSegment(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func (imp *importer) group(v any, ev *armEval) {
	p := props(v)
	name := str(field(v, "name"))
	if n, ok := ev.eval(name); ok {
		name = n
	}
	name = displayName(name)
	prio, _ := num(field(p, "priority"))
	for _, c := range list(field(p, "ruleCollections")) {
		imp.collections++
		cname := displayName(str(field(c, "name")))
		cprio, _ := num(field(c, "priority"))
		where := fmt.Sprintf("%s: %s/%s", imp.file, name, cname)
		ctype := str(field(c, "ruleCollectionType"))
		if strings.EqualFold(ctype, "FirewallPolicyNatRuleCollection") {
			imp.warn(where, "NAT (DNAT) rule collection not carried over: azegress is an egress proxy; keep inbound DNAT on a firewall or load balancer")
			continue
		}
		action := str(field(field(c, "action"), "type"))
		for _, r := range list(field(c, "rules")) {
			rule := &azRule{group: name, groupPrio: prio, coll: cname, collPrio: cprio, deny: strings.EqualFold(action, "Deny")}
			imp.rule(r, rule, where, ev, str(field(r, "ruleType")))
		}
	}
}

// classicGroupPriority orders a classic firewall's collections before
// those of rule collection groups, which the same export rarely mixes.
const classicGroupPriority = 0

func (imp *importer) classic(v any, ev *armEval) {
	p := props(v)
	fw := displayName(str(field(v, "name")))
	if pol := field(p, "firewallPolicy"); pol != nil {
		imp.warn(imp.file+": firewall "+fw, "uses firewall policy %s, whose rule collection groups are not in this document; import them too", lastSegment(str(field(pol, "id"))))
	}
	for _, kind := range []struct{ key, ruleType string }{
		{"applicationRuleCollections", "ApplicationRule"},
		{"networkRuleCollections", "NetworkRule"},
		{"natRuleCollections", "NatRule"},
	} {
		for _, c := range list(field(p, kind.key)) {
			imp.collections++
			cp := props(c)
			cname := displayName(str(field(c, "name")))
			cprio, _ := num(field(cp, "priority"))
			where := fmt.Sprintf("%s: %s/%s", imp.file, fw, cname)
			if kind.ruleType == "NatRule" {
				imp.warn(where, "NAT (DNAT) rule collection not carried over: azegress is an egress proxy; keep inbound DNAT on a firewall or load balancer")
				continue
			}
			action := str(field(field(cp, "action"), "type"))
			for _, r := range list(field(cp, "rules")) {
				rule := &azRule{group: fw, groupPrio: classicGroupPriority, classic: true, coll: cname, collPrio: cprio, deny: strings.EqualFold(action, "Deny")}
				imp.rule(r, rule, where, ev, kind.ruleType)
			}
		}
	}
}

// rule converts one rule of a collection.
func (imp *importer) rule(v any, r *azRule, where string, ev *armEval, ruleType string) {
	r.name = displayName(str(field(v, "name")))
	r.where = where + "/" + r.name
	r.seq = len(imp.rules)
	action := "Allow"
	if r.deny {
		action = "Deny"
	}
	r.comment = fmt.Sprintf("%s (priority %d) / %s (priority %d, %s) / %s", r.group, r.groupPrio, r.coll, r.collPrio, action, r.name)
	if r.classic {
		r.comment = fmt.Sprintf("classic firewall %s / %s (priority %d, %s) / %s", r.group, r.coll, r.collPrio, action, r.name)
	}
	switch {
	case strings.EqualFold(ruleType, "ApplicationRule"):
		imp.appRule(v, r, ev)
	case strings.EqualFold(ruleType, "NetworkRule"):
		imp.networkRule(v, r, ev)
	default:
		imp.warn(r.where, "%s not carried over: azegress carries application rules (and TCP network rules to IP addresses)", cmp.Or(ruleType, "rule without a ruleType"))
		return
	}
}

// sources resolves a rule's sourceAddresses and sourceIpGroups.
func (imp *importer) sources(v any, r *azRule, ev *armEval) {
	p := props(v)
	var srcs []string
	for _, s := range strs(field(p, "sourceAddresses")) {
		if val, ok := imp.value(s, r, ev, "source address"); ok {
			srcs = append(srcs, val)
		}
	}
	for _, g := range strs(field(p, "sourceIpGroups")) {
		id, ok := imp.evalRule(g, r, ev)
		addrs, found := imp.ipGroups[strings.ToLower(id)]
		if !found {
			addrs, found = imp.ipGroups[strings.ToLower(lastSegment(id))]
		}
		switch {
		case !ok:
			imp.warn(r.where, "source IP Group %s not resolved: the ARM expression cannot be evaluated without a deployment; import the deployed resources (az network firewall policy rule-collection-group list, az network ip-group list), or list the addresses", g)
			r.notes = append(r.notes, "not carried: source IP Group "+g+" (unresolved)")
			continue
		case !found:
			imp.warn(r.where, "source IP Group %s not resolved: its addresses are not in the input; add the ipGroups resource (az network ip-group show) to the input, or list the addresses", id)
			r.notes = append(r.notes, "not carried: source IP Group "+lastSegment(id)+" (unresolved)")
			continue
		}
		srcs = append(srcs, addrs...)
	}
	for _, s := range srcs {
		pfxs, err := parseAzureAddress(s)
		if err != nil {
			imp.warn(r.where, "source %q not carried over: %v", s, err)
			r.notes = append(r.notes, fmt.Sprintf("not carried: source %q", s))
			continue
		}
		for _, p := range pfxs {
			if !slices.Contains(r.sources, p) {
				r.sources = append(r.sources, p)
			}
		}
	}
}

// evalRule evaluates an ARM expression in a rule's value and warns about
// template parameters it took the default value of: a deployment may have
// passed others.
func (imp *importer) evalRule(s string, r *azRule, ev *armEval) (string, bool) {
	if ev == nil || !isExpr(s) {
		return ev.eval(s)
	}
	n := len(ev.defaults)
	val, ok := ev.eval(s)
	if !ok {
		ev.defaults = ev.defaults[:n] // warned about as unresolved instead
		return val, ok
	}
	for _, p := range ev.defaults[n:] {
		imp.warn(imp.file+": template parameter "+p, "used its defaultValue %v; if the deployment passed another value, edit the policy or import the deployed resources (az network firewall policy rule-collection-group list)",
			jsonText(field(field(ev.params, p), "defaultValue")))
	}
	return val, ok
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// value evaluates an ARM expression in a rule's value, warning if it
// cannot.
func (imp *importer) value(s string, r *azRule, ev *armEval, what string) (string, bool) {
	val, ok := imp.evalRule(s, r, ev)
	if !ok {
		imp.warn(r.where, "%s %s not carried over: ARM expressions other than parameters (with a defaultValue), variables, concat, format and resourceId cannot be evaluated; deploy the template and export the result, or write the value", what, s)
		r.notes = append(r.notes, fmt.Sprintf("not carried: %s %s", what, s))
	}
	return val, ok
}

func (imp *importer) appRule(v any, r *azRule, ev *armEval) {
	p := props(v)
	imp.sources(v, r, ev)
	for _, proto := range list(field(p, "protocols")) {
		pt := str(field(proto, "protocolType"))
		port, ok := num(field(proto, "port"))
		switch {
		case strings.EqualFold(pt, "Mssql"):
			imp.warn(r.where, "protocol Mssql:%d not carried over: azegress proxies HTTP and TLS (CONNECT), not the SQL Server protocol", port)
			r.notes = append(r.notes, fmt.Sprintf("not carried: Mssql:%d", port))
		case !ok || port < 1 || port > 65535:
			imp.warn(r.where, "protocol %s with port %v not carried over: not a port number", pt, field(proto, "port"))
		default:
			if !slices.Contains(r.ports, uint16(port)) {
				r.ports = append(r.ports, uint16(port))
			}
		}
	}
	for _, t := range strs(field(p, "targetFqdns")) {
		if val, ok := imp.value(t, r, ev, "target FQDN"); ok {
			imp.target(val, r)
		}
	}
	for _, tag := range strs(field(p, "fqdnTags")) {
		imp.fqdnTag(tag, r)
	}
	if u := strs(field(p, "targetUrls")); len(u) > 0 {
		imp.warn(r.where, "target URLs %s not carried over: azegress sees host names, never paths inside TLS; to allow the whole hosts, add them to hosts", text.QuoteList(u))
		r.notes = append(r.notes, "not carried: target URLs "+strings.Join(u, ", "))
	}
	if c := strs(field(p, "webCategories")); len(c) > 0 {
		imp.warn(r.where, "web categories %s not carried over: azegress has no category database; list the hosts", text.QuoteList(c))
		r.notes = append(r.notes, "not carried: web categories "+strings.Join(c, ", "))
	}
	if b, _ := field(p, "terminateTLS").(bool); b {
		imp.warn(r.where, "TLS inspection (terminateTLS) not carried over: azegress matches the CONNECT host and the TLS SNI and never decrypts")
		r.notes = append(r.notes, "not carried: TLS inspection (terminateTLS)")
	}
	if h := list(field(p, "httpHeadersToInsert")); len(h) > 0 {
		imp.warn(r.where, "httpHeadersToInsert not carried over: azegress does not rewrite requests")
	}
	if d := strs(field(p, "destinationAddresses")); len(d) > 0 {
		imp.warn(r.where, "destination addresses %s of an application rule not carried over", text.QuoteList(d))
	}
	imp.finish(r)
}

// networkRule carries a TCP network rule whose destinations are IP
// addresses or CIDRs and whose ports are listed, as a rule with addresses:
// azegress then allows (or refuses) CONNECT to those IP literals. Anything
// else is listed as not carried over.
func (imp *importer) networkRule(v any, r *azRule, ev *armEval) {
	p := props(v)
	protos := strs(field(p, "ipProtocols"))
	if protos == nil {
		protos = strs(field(p, "protocols")) // classic network rules
	}
	tcp := slices.ContainsFunc(protos, func(s string) bool { return strings.EqualFold(s, "TCP") || strings.EqualFold(s, "Any") })
	if !tcp {
		imp.warn(r.where, "network rule (%s) not carried over: azegress proxies TCP only", strings.Join(protos, ", "))
		return
	}
	if slices.ContainsFunc(protos, func(s string) bool { return !strings.EqualFold(s, "TCP") }) {
		imp.warn(r.where, "network rule protocols %s: only TCP is carried over", strings.Join(protos, ", "))
	}
	imp.sources(v, r, ev)
	var dsts []string
	for _, d := range strs(field(p, "destinationAddresses")) {
		if val, ok := imp.value(d, r, ev, "destination address"); ok {
			dsts = append(dsts, val)
		}
	}
	for _, g := range strs(field(p, "destinationIpGroups")) {
		id, _ := imp.evalRule(g, r, ev)
		addrs, found := imp.ipGroups[strings.ToLower(lastSegment(id))]
		if !found {
			imp.warn(r.where, "destination IP Group %s not resolved; add the ipGroups resource to the input", displayName(g))
			continue
		}
		dsts = append(dsts, addrs...)
	}
	for _, d := range dsts {
		pfxs, err := parseAzureAddress(d)
		if err != nil || d == "*" {
			why := "a service tag or name"
			if d == "*" {
				why = "every address"
			}
			imp.warn(r.where, "network rule destination %q (%s) not carried over: azegress allows IP destinations only by address", d, why)
			continue
		}
		r.addresses = append(r.addresses, pfxs...)
	}
	if f := strs(field(p, "destinationFqdns")); len(f) > 0 {
		imp.warn(r.where, "network rule destination FQDNs %s not carried over: Azure filters their resolved addresses at layer 4; allow them by name with an application rule (hosts)", text.QuoteList(f))
	}
	for _, ps := range strs(field(p, "destinationPorts")) {
		ports, err := parsePortRange(ps)
		if err != nil {
			imp.warn(r.where, "network rule port %q not carried over: %v", ps, err)
			continue
		}
		for _, port := range ports {
			if !slices.Contains(r.ports, port) {
				r.ports = append(r.ports, port)
			}
		}
	}
	if len(r.addresses) > 0 {
		effect := "allows"
		if r.deny {
			effect = "refuses"
		}
		imp.warn(r.where, "TCP network rule carried over as a rule with addresses: azegress %s CONNECT to these IP addresses; unlike Azure, it does not apply to names that resolve to them", effect)
	}
	imp.finish(r)
}

// parsePortRange parses a network rule port: "443" or "8000-8010" (at
// most 16 ports).
func parsePortRange(s string) ([]uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case s == "*":
		return nil, errors.New("every port cannot be listed; name the ports")
	case err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b:
		return nil, errors.New("not a port or port range")
	case b-a >= 16:
		return nil, fmt.Errorf("a range of %d ports is too wide to list; name the ports", b-a+1)
	}
	var out []uint16
	for p := a; p <= b; p++ {
		out = append(out, uint16(p))
	}
	return out, nil
}

// finish records a converted rule, or says why it was skipped.
func (imp *importer) finish(r *azRule) {
	switch {
	case len(r.sources) == 0:
		imp.warn(r.where, "rule skipped: none of its sources could be carried over")
	case len(r.ports) == 0:
		imp.warn(r.where, "rule skipped: none of its protocols or ports could be carried over")
	case len(r.hosts) == 0 && len(r.endpoints) == 0 && len(r.addresses) == 0:
		imp.warn(r.where, "rule skipped: no destination azegress can match")
	default:
		imp.rules = append(imp.rules, r)
	}
}

// target converts one target FQDN.
func (imp *importer) target(t string, r *azRule) {
	t = strings.TrimSpace(t)
	if t == "*" {
		imp.warn(r.where, `target FQDN "*" (every host) not carried over: azegress allows named domains only; list them, or learn them with mode = "learn"`)
		r.notes = append(r.notes, `not carried: target FQDN "*"`)
		return
	}
	patterns := []string{t}
	if rest, ok := strings.CutPrefix(t, "*"); ok && !strings.HasPrefix(rest, ".") && rest != "" {
		patterns = []string{rest, "*." + rest}
		imp.warn(r.where, "target FQDN %q became %q and %q: Azure Firewall also matched look-alikes such as %q, which no longer match; add any you need by name",
			t, rest, "*."+rest, "evil"+rest)
	}
	for _, p := range patterns {
		if h, err := host.Parse(p); err == nil && h.IsIP() {
			r.addresses = append(r.addresses, netip.PrefixFrom(h.IP, h.IP.BitLen()))
			imp.warn(r.where, "target FQDN %q is an IP address: carried over in addresses", t)
			continue
		}
		pat, err := policy.NormalizeHostPattern(p)
		if err != nil {
			imp.warn(r.where, "target FQDN %q not carried over: %s", t, err)
			r.notes = append(r.notes, fmt.Sprintf("not carried: target FQDN %q", t))
			return
		}
		if !slices.Contains(r.hosts, pat) {
			r.hosts = append(r.hosts, pat)
		}
	}
}

// fqdnTags maps Azure Firewall FQDN tags to catalog groups.
var fqdnTags = map[string]struct {
	group string
	note  string
}{
	"azurekubernetesservice": {"azure.aks", "the tag also covers the cluster's API server (*.hcp.<region>.azmk8s.io), which azure.aks leaves out because every cluster of every tenant shares it: add your API server's name to hosts"},
}

func (imp *importer) fqdnTag(tag string, r *azRule) {
	m, ok := fqdnTags[strings.ToLower(tag)]
	g, inCloud := catalog.LookupGroup(imp.cloud, m.group)
	if !ok || !inCloud {
		imp.warn(r.where, "FQDN tag %q not carried over: the azegress catalog has no group for it; list the hosts the workload needs (learn them with mode = \"learn\")", tag)
		r.notes = append(r.notes, fmt.Sprintf("not carried: FQDN tag %q", tag))
		return
	}
	if r.deny {
		hosts, _ := catalog.Expand(imp.cloud, g)
		imp.warn(r.where, "FQDN tag %q in a Deny collection became the hosts of catalog group %s (deny rules take hosts)", tag, g.Name)
		for _, h := range hosts {
			if !slices.Contains(r.hosts, h) {
				r.hosts = append(r.hosts, h)
			}
		}
		return
	}
	imp.warn(r.where, "FQDN tag %q became catalog group %s; %s", tag, g.Name, m.note)
	if !slices.Contains(r.endpoints, g.Name) {
		r.endpoints = append(r.endpoints, g.Name)
	}
}

// parseAzureAddress parses a source or destination address of a rule: an
// IP address, a CIDR (host bits are cleared, as Azure does), a range
// "10.0.0.1-10.0.0.10", or "*" (every address).
func parseAzureAddress(s string) ([]netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
		b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) {
			return nil, errors.New("not an address range")
		}
		return rangePrefixes(a.Unmap(), b.Unmap()), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, errors.New("not a CIDR")
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, errors.New("not an IP address, CIDR or range (service tags and names are not sources)")
	}
	a = a.Unmap()
	return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
}

// rangePrefixes returns the fewest prefixes covering a through b.
func rangePrefixes(a, b netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		bits := a.BitLen()
		// Widen while a stays the start of the prefix and it ends by b.
		for bits > 0 {
			p := netip.PrefixFrom(a, bits-1).Masked()
			if p.Addr() != a || lastAddr(p).Compare(b) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(a, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last.Compare(b) >= 0 {
			return out
		}
		a = last.Next()
	}
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Rendering.

// block is a client block of the imported policy.
type block struct {
	name    string
	sources []netip.Prefix
	rules   []*azRule
}

// blocks groups the rules by client. An address gets the rules of every
// Azure rule whose sources contain it; azegress gives it the block of its
// longest matching source prefix. So each distinct prefix p gets the rules
// with a source that contains p (which, p being the longest prefix that
// contains an address, are exactly the rules containing that address), and
// prefixes with the same rules share a block.
func (imp *importer) blocks() []*block {
	slices.SortStableFunc(imp.rules, func(a, b *azRule) int {
		return cmp.Or(cmp.Compare(a.groupPrio, b.groupPrio), cmp.Compare(a.collPrio, b.collPrio), cmp.Compare(a.seq, b.seq))
	})
	var prefixes []netip.Prefix
	for _, r := range imp.rules {
		for _, p := range r.sources {
			if !slices.Contains(prefixes, p) {
				prefixes = append(prefixes, p)
			}
		}
	}
	var out []*block
	bySig := map[string]*block{}
	for _, p := range prefixes {
		var rules []*azRule
		var sig strings.Builder
		for i, r := range imp.rules {
			if slices.ContainsFunc(r.sources, func(q netip.Prefix) bool {
				return q.Addr().Is4() == p.Addr().Is4() && q.Bits() <= p.Bits() && q.Contains(p.Addr())
			}) {
				rules = append(rules, r)
				fmt.Fprintf(&sig, "%d,", i)
			}
		}
		b := bySig[sig.String()]
		if b == nil {
			b = &block{rules: rules}
			bySig[sig.String()] = b
			out = append(out, b)
		}
		b.sources = append(b.sources, p)
	}
	names := map[string]bool{}
	for _, b := range out {
		b.name = uniqueName(imp.blockName(b), names)
	}
	return out
}

// blockName names a block after the IP Group whose addresses are exactly
// its sources, else after its first source.
func (imp *importer) blockName(b *block) string {
	for _, name := range slices.Sorted(maps.Keys(imp.ipGroups)) {
		addrs := imp.ipGroups[name]
		if strings.Contains(name, "/") {
			continue
		}
		var pfxs []netip.Prefix
		for _, a := range addrs {
			p, err := parseAzureAddress(a)
			if err != nil {
				pfxs = nil
				break
			}
			pfxs = append(pfxs, p...)
		}
		if len(pfxs) > 0 && len(pfxs) == len(b.sources) && !slices.ContainsFunc(pfxs, func(p netip.Prefix) bool { return !slices.Contains(b.sources, p) }) {
			return sanitizeName(name)
		}
	}
	first, more := b.sources[0], len(b.sources)-1
	name := "net-" + strings.NewReplacer("/", "-", ":", "-").Replace(text.Prefix(first))
	if first.Bits() == 0 {
		name = "any"
		if more == 1 && b.sources[1].Bits() == 0 {
			more = 0 // 0.0.0.0/0 and ::/0: Azure's "*"
		}
	}
	if more > 0 {
		name += fmt.Sprintf("-and-%d-more", more)
	}
	return sanitizeName(name)
}

// sanitizeName makes s a valid client or rule name: letters, digits, "-",
// "_" and "."; at most 64 bytes, shortened with a hash.
func sanitizeName(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !isLetter(ch) && !isDigit(ch) && ch != '-' && ch != '_' && ch != '.' {
			b[i] = '-'
		}
	}
	n := string(b)
	if n == "" {
		n = "rule"
	}
	if len(n) > 64 {
		sum := sha256.Sum256([]byte(s))
		n = n[:55] + "-" + hex.EncodeToString(sum[:4])
	}
	return n
}

// uniqueName returns name, or name-2, name-3, ... if taken, and marks it
// taken.
func uniqueName(name string, taken map[string]bool) string {
	n := name
	for i := 2; taken[n]; i++ {
		suffix := "-" + strconv.Itoa(i)
		n = name[:min(len(name), 64-len(suffix))] + suffix
	}
	taken[n] = true
	return n
}

// render writes the policy.
func (imp *importer) render(files []string) []byte {
	blocks := imp.blocks()
	imp.checkPriorities(blocks)
	var b strings.Builder
	fmt.Fprintf(&b, "# Imported by azegress import-azfw from %s.\n", strings.Join(files, ", "))
	b.WriteString("# Azure Firewall applies rule collections in priority order; azegress refuses what a\n" +
		"# deny rule matches first, then allows what an allow rule matches (exact names before\n" +
		"# wildcards). Client blocks are the distinct source sets; each carries every rule whose\n" +
		"# Azure sources contain its addresses. Review, then run: azegress check -lint FILE\n")
	if len(imp.warnings) > 0 {
		b.WriteString("#\n# Changed or not carried over:\n")
		for _, w := range imp.warnings {
			fmt.Fprintf(&b, "#   %s\n", text.OneLine(w))
		}
	}
	fmt.Fprintf(&b, "\ncloud = %q\n", imp.cloud)
	for _, blk := range blocks {
		src := make([]string, len(blk.sources))
		for i, p := range blk.sources {
			src[i] = text.Prefix(p)
		}
		fmt.Fprintf(&b, "\nclient %q {\n  sources = [%s]\n", blk.name, text.QuoteList(src))
		names := map[string]bool{}
		for _, r := range blk.rules {
			kind := "allow"
			if r.deny {
				kind = "deny"
			}
			fmt.Fprintf(&b, "\n  # %s\n", text.OneLine(r.comment))
			for _, n := range r.notes {
				fmt.Fprintf(&b, "  # %s\n", text.OneLine(n))
			}
			fmt.Fprintf(&b, "  %s %q {\n", kind, uniqueName(sanitizeName(r.coll+"."+r.name), names))
			if len(r.hosts) > 0 {
				fmt.Fprintf(&b, "    hosts = [%s]\n", text.QuoteList(r.hosts))
			}
			if len(r.endpoints) > 0 {
				fmt.Fprintf(&b, "    endpoints = [%s]\n", text.QuoteList(r.endpoints))
			}
			if len(r.addresses) > 0 {
				addrs := make([]string, len(r.addresses))
				for i, p := range r.addresses {
					addrs[i] = text.Prefix(p)
				}
				fmt.Fprintf(&b, "    addresses = [%s]\n", text.QuoteList(addrs))
			}
			ports := make([]string, len(r.ports))
			for i, p := range slices.Sorted(slices.Values(r.ports)) {
				ports[i] = strconv.Itoa(int(p))
			}
			fmt.Fprintf(&b, "    ports = [%s]\n  }\n", strings.Join(ports, ", "))
		}
		b.WriteString("}\n")
	}
	return hclwrite.Format([]byte(b.String()))
}

// checkPriorities warns where a Deny collection comes after an Allow
// collection that overlaps it for some client: Azure Firewall lets the
// overlap through, azegress refuses it.
func (imp *importer) checkPriorities(blocks []*block) {
	type pair struct{ deny, allow *azRule }
	warned := map[pair]bool{}
	for _, blk := range blocks {
		for i, a := range blk.rules {
			if a.deny {
				continue
			}
			for _, d := range blk.rules[i+1:] {
				if !d.deny || warned[pair{d, a}] {
					continue
				}
				host, ok := imp.overlap(d, a)
				if !ok {
					continue
				}
				warned[pair{d, a}] = true
				imp.warn(d.where, "this Deny rule (collection priority %d) overlaps Allow rule %s/%s (collection priority %d), for example on %s: Azure Firewall allows it, because the Allow collection comes first; azegress evaluates deny rules first and refuses it. If the allow should win, remove the overlap from the deny rule",
					d.collPrio, a.coll, a.name, a.collPrio, host)
			}
		}
	}
}

// overlap reports whether some host:port matches both rules, and an
// example.
func (imp *importer) overlap(d, a *azRule) (string, bool) {
	port := -1
	for _, p := range d.ports {
		if slices.Contains(a.ports, p) {
			port = int(p)
			break
		}
	}
	if port < 0 {
		return "", false
	}
	ahosts := slices.Clone(a.hosts)
	for _, e := range a.endpoints {
		if g, ok := catalog.LookupGroup(imp.cloud, e); ok {
			h, _ := catalog.Expand(imp.cloud, g)
			ahosts = append(ahosts, h...)
		}
	}
	for _, dh := range d.hosts {
		for _, ah := range ahosts {
			if policy.PatternsOverlap(dh, ah) {
				ex := dh
				if strings.HasPrefix(ex, "*.") {
					ex = ah
				}
				if strings.HasPrefix(ex, "*.") {
					ex = "x" + ex[1:]
				}
				return fmt.Sprintf("%s:%d", ex, port), true
			}
		}
	}
	for _, dp := range d.addresses {
		for _, ap := range a.addresses {
			if dp.Overlaps(ap) {
				return fmt.Sprintf("%s port %d", text.Prefix(dp), port), true
			}
		}
	}
	return "", false
}

func isLetter(ch byte) bool { return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' }
func isDigit(ch byte) bool  { return '0' <= ch && ch <= '9' }
