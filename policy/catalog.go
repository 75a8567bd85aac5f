package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// This file compiles the catalog attributes of allow blocks (endpoints,
// keyvaults, storage_accounts and registries) with the data of package
// catalog.

// portsHTTPS is the default ports of a rule, and of the hosts the resource
// helpers name.
var portsHTTPS = []uint16{443}

// portSource is a set of a rule's hosts and the ports they are served on,
// for a rule without a ports attribute.
type portSource struct {
	what  string // "hosts", `group "azure.pki"`
	ports []uint16
	rng   *hcl.Range
	expr  hcl.Expression // if rng is nil, rng is expr's range
}

// subject returns where s came from, for a diagnostic.
func (s portSource) subject() *hcl.Range {
	if s.rng == nil {
		return s.expr.Range().Ptr()
	}
	return s.rng
}

// addHost adds a normalized host pattern and its label to r, once.
func (r *Rule) addHost(pattern, label string) {
	if slices.Contains(r.Hosts, pattern) {
		return
	}
	r.Hosts = append(r.Hosts, pattern)
	r.Labels = append(r.Labels, label)
}

// catalogAttrs expands the catalog attributes of an allow block into r's
// hosts, each with its label, and returns where the hosts came from and
// their ports.
func (c *compiler) catalogAttrs(as *allowSchema, ctx *hcl.Range, r *Rule) []portSource {
	if as.Endpoints == nil && as.KeyVaults == nil && as.StorageAccounts == nil && as.Registries == nil {
		return nil
	}
	var srcs []portSource
	if as.Endpoints != nil {
		srcs = append(srcs, c.endpoints(as.Endpoints, ctx, r)...)
	}
	helpers := []struct {
		attr    *hcl.Attribute
		example string
		host    func(s string, rng, ctx *hcl.Range) []string
	}{
		{as.KeyVaults, `keyvaults = ["kv-prod-01"]`, c.keyVault},
		{as.StorageAccounts, `storage_accounts = ["stprod01", "stprod01.queue"]`, c.storageAccount},
		{as.Registries, `registries = ["acrprod"]`, c.registry},
	}
	for _, h := range helpers {
		if h.attr == nil {
			continue
		}
		elems, _ := c.listAttr(h.attr, ctx, h.example)
		n := len(r.Hosts)
		for _, e := range elems {
			s, rng, ok := c.stringElem(e, ctx, h.attr.Name)
			if !ok {
				continue
			}
			for _, name := range h.host(s, c.rangePtr(rng), ctx) {
				r.addHost(name, catalog.Label(c.cloud, host.Host{Name: name}))
			}
		}
		if len(r.Hosts) > n {
			srcs = append(srcs, portSource{what: h.attr.Name, ports: portsHTTPS, expr: h.attr.Expr})
		}
	}
	return srcs
}

// rulePorts returns the ports of a rule without a ports attribute: the
// ports its hosts are served on, 443 unless it names a group on other
// ports. An allow rule has one ports list for all its hosts, so a rule that
// mixes hosts served on different ports is an error.
func (c *compiler) rulePorts(srcs []portSource, ctx *hcl.Range) []uint16 {
	if len(srcs) == 0 {
		return slices.Clone(portsHTTPS)
	}
	first := srcs[0]
	for _, s := range srcs[1:] {
		if !samePorts(s.ports, first.ports) {
			c.add(errorf(s.subject(), ctx, "Mixed ports",
				"%s %s served on %s, but %s %s on %s, and an allow rule has one ports list for all its hosts. Put them in separate allow rules, or set ports to the ports all of them may use.",
				s.what, isAre(s.what), portList(s.ports), first.what, isAre(first.what), portList(first.ports)))
			break
		}
	}
	return slices.Clone(first.ports)
}

func isAre(what string) string {
	if strings.HasPrefix(what, "group ") {
		return "is"
	}
	return "are"
}

func samePorts(a, b []uint16) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func portList(ps []uint16) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	if len(s) == 1 {
		return "port " + s[0]
	}
	return "ports " + strings.Join(s, ", ")
}

// endpoints resolves the catalog groups of an endpoints attribute.
func (c *compiler) endpoints(attr *hcl.Attribute, ctx *hcl.Range, r *Rule) []portSource {
	elems, _ := c.listAttr(attr, ctx, `endpoints = ["azure.entra", "azure.arm"]`)
	var srcs []portSource
	for _, e := range elems {
		s, erng, ok := c.stringElem(e, ctx, "endpoints")
		if !ok {
			continue
		}
		rng := c.rangePtr(erng)
		g := c.catalogGroup(s, rng, ctx)
		if g == nil || slices.Contains(r.Endpoints, g.Name) {
			continue
		}
		r.Endpoints = append(r.Endpoints, g.Name)
		hosts, labels := catalog.Expand(c.cloud, g)
		var risky []string
		for i, h := range hosts {
			r.addHost(h, labels[i])
			if _, ok := catalog.MultiTenantWildcard(c.cloud, h); ok {
				risky = append(risky, h)
			}
		}
		if len(risky) > 0 {
			c.add(warnf(rng, ctx, "Broad data-plane wildcard",
				"Group %q allows %s, which every Azure tenant shares, so data can leave to resources you do not own. %s",
				g.Name, strings.Join(risky, ", "), narrowerAdvice(g.Name)))
		}
		srcs = append(srcs, portSource{what: fmt.Sprintf("group %q", g.Name), ports: g.Ports, rng: rng})
	}
	return srcs
}

// narrowerAdvice tells how to allow only one's own resources instead of a
// multi-tenant group.
func narrowerAdvice(group string) string {
	switch {
	case group == "azure.keyvault":
		return `Name your vaults instead: keyvaults = ["kv-prod-01"].`
	case strings.HasPrefix(group, "azure.storage"):
		return `Name your accounts instead: storage_accounts = ["stprod01", "stprod01.queue"].`
	case group == "azure.acr":
		return `Name your registries instead: registries = ["acrprod"].`
	}
	return "List your own resources' exact names in hosts instead."
}

// localAdvice is, per local group, what it is and the NO_PROXY entry
// clients need instead.
var localAdvice = map[string]struct{ what, noProxy string }{
	catalog.GroupIMDS:       {"the Azure Instance Metadata Service (169.254.169.254), which issues managed-identity tokens and refuses proxied requests", "169.254.169.254"},
	catalog.GroupWireServer: {"the Azure platform address 168.63.129.16 (WireServer, Azure DNS)", "168.63.129.16"},
	catalog.GroupArcHIMDS:   {"the Azure Arc HIMDS token endpoint (localhost:40342) and Arc Proxy (localhost:40343) on the Arc-enabled machine", "localhost,127.0.0.1"},
}

// catalogGroup finds a group for the endpoints attribute, or reports why it
// cannot be used.
func (c *compiler) catalogGroup(s string, rng, ctx *hcl.Range) *catalog.Group {
	if g, ok := catalog.LookupGroup(c.cloud, s); ok {
		if g.Local {
			a := localAdvice[g.Name]
			c.add(errorf(rng, ctx, "Local endpoint in endpoints",
				"%q is %s. It is local to the machine and must never go through a proxy, so no rule can allow it. Remove it here and add %s to NO_PROXY in the client's environment.",
				s, a.what, a.noProxy))
			return nil
		}
		return g
	}
	var in []string
	for _, cl := range catalog.Clouds() {
		if _, ok := catalog.LookupGroup(cl, s); ok {
			in = append(in, cl)
		}
	}
	switch {
	case len(in) > 0 && !c.cloudOK:
		// The cloud attribute is invalid and already reported.
	case len(in) > 0:
		c.add(errorf(rng, ctx, "Catalog group not in this cloud",
			"Group %q is not available in %s; the catalog defines it for %s only. Remove it, or list the hosts %s uses in hosts.",
			s, c.cloud, strings.Join(in, " and "), c.cloud))
	default:
		hint := ""
		if m := closeGroups(c.cloud, s); len(m) == 1 {
			hint = fmt.Sprintf(" Did you mean %q?", m[0])
		} else if len(m) > 1 {
			hint = fmt.Sprintf(" Did you mean one of %s?", text.QuoteList(m))
		}
		c.add(errorf(rng, ctx, "Unknown catalog group",
			"%q is not a group of the Azure endpoint catalog.%s Run \"azegress catalog -cloud %s\" to list the groups.", s, hint, c.cloud))
	}
	return nil
}

// closeGroups returns up to three non-local group names of cloud close to
// s: within a small edit distance, or ending in s ("keyvault" for
// "azure.keyvault").
func closeGroups(cloud, s string) []string {
	ls := strings.ToLower(s)
	if g, ok := catalog.LookupGroup(cloud, ls); ok && !g.Local {
		return []string{g.Name}
	}
	type cand struct {
		name string
		dist int
	}
	var cs []cand
	for _, g := range catalog.Groups(cloud) {
		if g.Local {
			continue
		}
		d := min(editDistance(ls, g.Name), editDistance("azure."+ls, g.Name))
		if strings.HasSuffix(g.Name, "."+ls) {
			d = min(d, 1)
		}
		if d <= max(2, len(g.Name)/5) {
			cs = append(cs, cand{g.Name, d})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.dist - b.dist })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keyVault validates a keyvaults element and returns the vault's host.
func (c *compiler) keyVault(s string, rng, ctx *hcl.Range) []string {
	suffix := catalog.KeyVaultSuffix(c.cloud)
	if name, _, ok := strings.Cut(s, "."); ok {
		c.add(errorf(rng, ctx, "Invalid Key Vault name",
			"%q is a host name, but keyvaults takes vault names and adds %q itself. Write %q, or put the host in hosts.", s, "."+suffix, name))
		return nil
	}
	if why := keyVaultNameProblem(s); why != "" {
		c.add(errorf(rng, ctx, "Invalid Key Vault name",
			"%q is not a valid Key Vault name: %s. Vault names are 3 to 24 letters, digits and hyphens; they start with a letter, end with a letter or digit, and have no two hyphens in a row.", s, why))
		return nil
	}
	return []string{strings.ToLower(s) + "." + suffix}
}

// keyVaultNameProblem says what is wrong with a Key Vault name, or "".
func keyVaultNameProblem(s string) string {
	switch {
	case len(s) < 3 || len(s) > 24:
		return fmt.Sprintf("it is %d characters long", len(s))
	case !isLetter(s[0]):
		return fmt.Sprintf("it starts with %q", s[:1])
	case s[len(s)-1] == '-':
		return "it ends with a hyphen"
	case strings.Contains(s, "--"):
		return "it has two hyphens in a row"
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) && s[i] != '-' {
			return fmt.Sprintf("it contains %q", s[i:i+1])
		}
	}
	return ""
}

// storageAccount validates a storage_accounts element, "account" or
// "account.kind", and returns the account's host for that kind (blob by
// default).
func (c *compiler) storageAccount(s string, rng, ctx *hcl.Range) []string {
	suffix := catalog.StorageSuffix(c.cloud)
	account, kind, hasKind := strings.Cut(s, ".")
	if strings.Contains(kind, ".") {
		hint := ""
		if k, _, _ := strings.Cut(kind, "."); strings.HasSuffix(s, "."+suffix) {
			hint = fmt.Sprintf(" Write %q.", account+"."+k)
		}
		c.add(errorf(rng, ctx, "Invalid storage account",
			"%q is a host name, but storage_accounts takes \"account\" or \"account.kind\" and adds %q itself.%s", s, "."+suffix, hint))
		return nil
	}
	ok := true
	if why := storageAccountProblem(account); why != "" {
		c.add(errorf(rng, ctx, "Invalid storage account name",
			"%q is not a valid storage account name: %s. Account names are 3 to 24 lowercase letters and digits.", account, why))
		ok = false
	}
	if !hasKind {
		kind = "blob"
	}
	switch {
	case kind == "web":
		c.add(errorf(rng, ctx, "Invalid storage endpoint kind",
			"Static website hosts carry a zone number (%s.z13.web.%s), so storage_accounts cannot build them. List the exact host in hosts.", account, suffix))
		return nil
	case !catalog.IsStorageKind(kind):
		c.add(errorf(rng, ctx, "Invalid storage endpoint kind",
			"%q is not a storage endpoint kind. Use \"blob\" (the default), \"file\", \"queue\", \"table\" or \"dfs\", like %q.", kind, account+".queue"))
		return nil
	case !ok:
		return nil
	}
	return []string{account + "." + kind + "." + suffix}
}

// storageAccountProblem says what is wrong with a storage account name, or
// "".
func storageAccountProblem(s string) string {
	if len(s) < 3 || len(s) > 24 {
		return fmt.Sprintf("it is %d characters long", len(s))
	}
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case 'A' <= ch && ch <= 'Z':
			if storageAccountProblem(strings.ToLower(s)) == "" {
				return fmt.Sprintf("it has uppercase letters (did you mean %q?)", strings.ToLower(s))
			}
			return "it has uppercase letters"
		case !isDigit(ch) && !('a' <= ch && ch <= 'z'):
			return fmt.Sprintf("it contains %q", s[i:i+1])
		}
	}
	return ""
}

// registry validates a registries element, "registry" or
// "registry.region", and returns the registry's login server and, with a
// region, its dedicated data endpoint in that region.
func (c *compiler) registry(s string, rng, ctx *hcl.Range) []string {
	suffix := catalog.RegistrySuffix(c.cloud)
	name, region, hasRegion := strings.Cut(s, ".")
	if strings.Contains(region, ".") {
		hint := ""
		if strings.HasSuffix(s, "."+suffix) {
			if r, _, _ := strings.Cut(region, "."); strings.HasSuffix(s, ".data."+suffix) {
				hint = fmt.Sprintf(" Write %q.", name+"."+r)
			} else {
				hint = fmt.Sprintf(" Write %q.", name)
			}
		}
		c.add(errorf(rng, ctx, "Invalid registry",
			"%q is a host name, but registries takes \"registry\" or \"registry.region\" and adds %q itself.%s", s, "."+suffix, hint))
		return nil
	}
	ok := true
	if why := registryNameProblem(name); why != "" {
		c.add(errorf(rng, ctx, "Invalid registry name",
			"%q is not a valid container registry name: %s. Registry names are 5 to 50 letters and digits.", name, why))
		ok = false
	}
	if hasRegion && !validRegion(region) {
		c.add(errorf(rng, ctx, "Invalid registry region",
			"%q is not an Azure region name. Write the region of the registry's data endpoint as \"az account list-locations\" names it, like %q.", region, name+".westeurope"))
		ok = false
	}
	if !ok {
		return nil
	}
	name = strings.ToLower(name)
	hosts := []string{name + "." + suffix}
	if hasRegion {
		hosts = append(hosts, name+"."+region+".data."+suffix)
	}
	return hosts
}

// registryNameProblem says what is wrong with a container registry name,
// or "".
func registryNameProblem(s string) string {
	if len(s) < 5 || len(s) > 50 {
		return fmt.Sprintf("it is %d characters long", len(s))
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return fmt.Sprintf("it contains %q", s[i:i+1])
		}
	}
	return ""
}

// validRegion reports whether s looks like an Azure region name:
// lowercase letters and digits, like "westeurope" or "usgovvirginia".
func validRegion(s string) bool {
	if len(s) < 2 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && !('a' <= s[i] && s[i] <= 'z') {
			return false
		}
	}
	return true
}

func isLetter(ch byte) bool { return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' }
func isDigit(ch byte) bool  { return '0' <= ch && ch <= '9' }

// Label returns the catalog label of h in the policy's cloud; see
// catalog.Label.
func (p *Policy) Label(h host.Host) string {
	if p == nil {
		return ""
	}
	return catalog.Label(p.cloud, h)
}
