package policy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/fasthcl"
	"github.com/azegress/azegress/policy/internal/slab"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

var maxPort = big.NewFloat(65535)

// maxLimit bounds every limits attribute, so that values fit the token
// bucket and counters without overflow.
const maxLimit = 1_000_000

// compiler turns decoded schema structs into a Policy, collecting
// diagnostics as it goes. It never stops at the first problem.
type compiler struct {
	filename string
	diags    hcl.Diagnostics

	// sources maps each source prefix of an address-keyed client block to
	// where it was first defined.
	sources map[netip.Prefix]sourceDef
	// guids maps each GUID of an identity block to where it was first
	// listed.
	guids map[guid]guidDef
	// entra is the policy's entra block, nil if it has none.
	entraBlock *Entra

	// cloud is the policy's cloud, whose catalog the catalog attributes
	// use; cloudOK is false if the cloud attribute is invalid.
	cloud   string
	cloudOK bool

	ruleBuf []Rule // backing array for the rules of the client being compiled

	// Backing arrays for the small values every rule has, so that they do
	// not take an allocation each.
	ranges  slab.Of[hcl.Range]
	strs    slab.Of[string]
	elems   slab.Of[hcl.Expression]
	rngList slab.Of[hcl.Range]
	bools   slab.Of[bool]
}

// rangePtr returns a pointer to a copy of r.
func (c *compiler) rangePtr(r hcl.Range) *hcl.Range {
	p := c.ranges.New()
	*p = r
	return p
}

// newRule returns a zero rule from c.ruleBuf, so that a client's rules take one
// allocation rather than one each.
func (c *compiler) newRule() *Rule {
	if len(c.ruleBuf) == 0 {
		return new(Rule)
	}
	r := &c.ruleBuf[0]
	c.ruleBuf = c.ruleBuf[1:]
	return r
}

// parallelRules is the number of rules in a client block from which its
// rules are compiled on two goroutines.
const parallelRules = 4096

// rules compiles n allow or deny blocks, schema(i) being the i-th. Many
// rules are compiled in two halves at once, each half's diagnostics in
// file order after the other's, as one pass would add them.
func (c *compiler) rules(n int, schema func(int) *allowSchema, ctx *hcl.Range, deny bool) []*Rule {
	if n == 0 {
		return nil
	}
	out := make([]*Rule, n)
	compile := func(c *compiler, lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = c.rule(schema(i), ctx, deny)
		}
	}
	if n < parallelRules || runtime.GOMAXPROCS(0) < 2 {
		compile(c, 0, n)
		return out
	}
	mid := n / 2
	half := func(lo, hi int) *compiler {
		h := &compiler{filename: c.filename, cloud: c.cloud, cloudOK: c.cloudOK}
		if len(c.ruleBuf) >= hi-lo {
			h.ruleBuf, c.ruleBuf = c.ruleBuf[:hi-lo], c.ruleBuf[hi-lo:]
		}
		return h
	}
	first, second := half(0, mid), half(mid, n)
	var wg sync.WaitGroup
	wg.Go(func() { compile(second, mid, n) })
	compile(first, 0, mid)
	wg.Wait()
	c.diags = append(c.diags, first.diags...)
	c.diags = append(c.diags, second.diags...)
	return out
}

type sourceDef struct {
	client string
	rng    hcl.Range
}

func (c *compiler) add(d *hcl.Diagnostic) { c.diags = append(c.diags, d) }

func (c *compiler) compile(fs *fileSchema) *Policy {
	p := &Policy{filename: c.filename, cloud: catalog.DefaultCloud}
	c.sources = make(map[netip.Prefix]sourceDef)
	c.guids = make(map[guid]guidDef)

	c.cloud, c.cloudOK = catalog.DefaultCloud, fs.Cloud == nil
	if s, rng, ok := c.stringAttr(fs.Cloud, nil); ok {
		if clouds := catalog.Clouds(); slices.Contains(clouds, s) {
			p.cloud = s
			c.cloud, c.cloudOK = s, true
		} else {
			hint := ""
			for _, v := range clouds {
				if strings.EqualFold(v, s) {
					hint = fmt.Sprintf(" Did you mean %q? Cloud names are case-sensitive.", v)
				}
			}
			c.add(errorf(rng, nil, "Invalid cloud",
				"%q is not a known Azure cloud. Use one of %s.%s", s, text.QuoteList(clouds), hint))
		}
	}
	defMode := c.mode(fs.Mode, nil, ModeEnforce)
	p.entra = c.entra(fs.Entra)
	c.entraBlock = p.entra

	if len(fs.Clients) == 0 {
		c.add(warnf(&hcl.Range{Filename: c.filename, Start: hcl.InitialPos, End: hcl.InitialPos}, nil,
			"No client blocks", "The policy has no client blocks, so every connection will be refused as client_unknown."))
	}

	clientNames := make(map[string]hcl.Range)
	for _, cs := range fs.Clients {
		cl := c.client(cs, defMode)
		if prev, dup := clientNames[cs.Name]; dup {
			c.add(errorf(cs.NameRange.Ptr(), nil, "Duplicate client block",
				"A client block named %q is already defined; previous definition at %s. Give each client block a unique name.",
				cs.Name, text.Pos(prev)))
		} else {
			clientNames[cs.Name] = cs.DefRange
		}
		p.clients = append(p.clients, cl)
		p.ruleCount += len(cl.Rules)
		for _, r := range slices.Concat(cl.Denies, cl.Rules) {
			if r.expiresUnix != 0 {
				p.expiries = append(p.expiries, RuleExpiry{Client: cl, Rule: r})
			}
		}
	}
	slices.SortStableFunc(p.expiries, func(a, b RuleExpiry) int { return cmp.Compare(a.Rule.expiresUnix, b.Rule.expiresUnix) })
	p.byObject, p.byClient = identityIndex(p.clients)
	p.v4 = c.prefixTable(p.clients, true)
	p.v6 = c.prefixTable(p.clients, false)
	return p
}

func (c *compiler) prefixTable(clients []*Client, v4 bool) prefixTable {
	t := prefixTable{byPrefix: make(map[netip.Prefix]*Client)}
	for _, cl := range clients {
		if cl.Identity != nil {
			continue // selected by identity only (ClientForIdentity)
		}
		for _, pfx := range cl.Sources {
			if pfx.Addr().Is4() != v4 {
				continue
			}
			if _, dup := t.byPrefix[pfx]; dup {
				continue // already reported
			}
			t.byPrefix[pfx] = cl
			if !slices.Contains(t.bits, pfx.Bits()) {
				t.bits = append(t.bits, pfx.Bits())
			}
		}
	}
	slices.Sort(t.bits)
	slices.Reverse(t.bits)
	return t
}

func (c *compiler) client(cs *clientSchema, defMode Mode) *Client {
	block := cs.rng
	ctx := &block
	cl := &Client{
		Name:             cs.Name,
		Range:            cs.DefRange,
		Mode:             c.mode(cs.Mode, ctx, defMode),
		AllowSNIMismatch: c.boolAttr(cs.AllowSNIMismatch, ctx),
	}
	c.checkName(cs.Name, cs.NameRange, ctx, "client block")

	for i, is := range cs.Identity {
		if i == 0 {
			cl.Identity = c.identity(is, cs, c.entraBlock)
			continue
		}
		c.add(errorf(is.DefRange.Ptr(), ctx, "Duplicate identity block",
			"Client block %q already has an identity block; previous definition at %s. Merge them into one.", cs.Name, text.Pos(cs.Identity[0].DefRange)))
	}

	switch {
	case cs.Sources == nil && cl.Identity == nil:
		c.add(errorf(cs.DefRange.Ptr(), ctx, "Missing sources",
			"Client block %q needs sources, the client addresses it applies to, like sources = [\"10.0.1.0/24\"].", cs.Name))
	case cs.Sources != nil:
		elems, ok := c.listAttr(cs.Sources, ctx, `sources = ["10.0.1.0/24"]`)
		if ok && len(elems) == 0 {
			if cl.Identity != nil {
				c.add(errorf(cs.Sources.Expr.Range().Ptr(), ctx, "Empty sources",
					"An empty sources list lets client block %q's identities connect from nowhere. Remove sources to accept them from any address, or list client CIDRs or IP addresses, like sources = [\"10.0.1.0/24\"].", cs.Name))
			} else {
				c.add(errorf(cs.Sources.Expr.Range().Ptr(), ctx, "Empty sources",
					"Client block %q must list at least one client CIDR or IP address in sources, like sources = [\"10.0.1.0/24\"].", cs.Name))
			}
		}
		var own map[netip.Prefix]hcl.Range // an identity block's sources: its own, not unique across blocks
		for _, e := range elems {
			pfx, rng, ok := c.prefixElem(e, ctx, "sources")
			if !ok {
				continue
			}
			if cl.Identity != nil {
				if prev, dup := own[pfx]; dup {
					c.add(errorf(rng, ctx, "Duplicate source",
						"%s is listed twice in client block %q; previous definition at %s. Remove one.", pfx, cs.Name, text.Pos(prev)))
					continue
				}
				if own == nil {
					own = make(map[netip.Prefix]hcl.Range, len(elems))
				}
				own[pfx] = *rng
				cl.Sources = append(cl.Sources, pfx)
				continue
			}
			if prev, dup := c.sources[pfx]; dup {
				if prev.client == cs.Name {
					c.add(errorf(rng, ctx, "Duplicate source",
						"%s is listed twice in client block %q; previous definition at %s. Remove one.", pfx, cs.Name, text.Pos(prev.rng)))
				} else {
					c.add(errorf(rng, ctx, "Duplicate source",
						"%s is already a source of client block %q; previous definition at %s. A source prefix may belong to only one client block.",
						pfx, prev.client, text.Pos(prev.rng)))
				}
				continue
			}
			c.sources[pfx] = sourceDef{client: cs.Name, rng: *rng}
			cl.Sources = append(cl.Sources, pfx)
		}
	}

	for i, ls := range cs.Limits {
		if i == 0 {
			cl.Limits = c.limits(ls)
			continue
		}
		c.add(errorf(ls.DefRange.Ptr(), ctx, "Duplicate limits block",
			"Client block %q already has a limits block; previous definition at %s. Merge them into one.", cs.Name, text.Pos(cs.Limits[0].DefRange)))
	}

	// Allow and deny rules share one namespace: logs and metrics name rules
	// by client block and rule name alone.
	n := len(cs.Allows) + len(cs.Denies)
	c.ruleBuf = make([]Rule, n)
	ruleNames := make(map[string]*Rule, n)
	addRule := func(r *Rule, nameRange hcl.Range) {
		if prev, dup := ruleNames[r.Name]; dup {
			kind, prevKind := r.Kind(), prev.Kind()
			c.add(errorf(nameRange.Ptr(), ctx, "Duplicate "+kind+" rule",
				"A%s %s rule named %q is already defined in client block %q; previous definition at %s. Give each rule a unique name.",
				article(prevKind), prevKind, r.Name, cs.Name, text.Pos(prev.Range)))
		} else {
			ruleNames[r.Name] = r
		}
		cl.expiring = cl.expiring || r.expiresUnix != 0
	}
	cl.Rules = c.rules(len(cs.Allows), func(i int) *allowSchema { return cs.Allows[i] }, ctx, false)
	for i, r := range cl.Rules {
		r.Index = i
		addRule(r, cs.Allows[i].NameRange)
	}
	cl.Denies = c.rules(len(cs.Denies), func(i int) *allowSchema {
		ds := cs.Denies[i]
		return &allowSchema{
			Name: ds.Name, NameRange: ds.NameRange, Hosts: ds.Hosts, Addresses: ds.Addresses, Ports: ds.Ports,
			Expires: ds.Expires, DefRange: ds.DefRange, Body: ds.Body, rng: ds.rng,
		}
	}, ctx, true)
	for i, r := range cl.Denies {
		r.Index = i
		addRule(r, cs.Denies[i].NameRange)
	}
	cl.allow.build(cl.Rules)
	cl.deny.build(cl.Denies)
	return cl
}

func article(word string) string {
	if strings.HasPrefix(word, "a") {
		return "n"
	}
	return ""
}

// build indexes rules, which are in file order, so every list in the maps
// is in file order. The maps are sized up front, and the one-rule lists
// most keys have share one backing array.
func (x *ruleIndex) build(rules []*Rule) {
	nExact, nWild, nIP := 0, 0, 0
	for _, r := range rules {
		for _, h := range r.Hosts {
			if strings.HasPrefix(h, "*.") {
				nWild++
			} else {
				nExact++
			}
		}
		if len(r.Addresses) > 0 {
			nIP++
		}
	}
	x.exact, x.wild = make(map[string][]*Rule, nExact), make(map[string][]*Rule, nWild)
	if nIP > 0 {
		x.ipRules = make([]*Rule, 0, nIP)
	}
	singles := make([]*Rule, nExact+nWild)
	for _, r := range rules {
		for _, h := range r.Hosts {
			m, key := x.exact, h
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				m, key = x.wild, suffix
				x.maxWild = max(x.maxWild, 1+strings.Count(suffix, "."))
			}
			switch rs := m[key]; {
			case len(rs) == 0:
				singles[0] = r
				m[key], singles = singles[:1:1], singles[1:]
			case rs[len(rs)-1] != r:
				m[key] = append(rs, r)
			}
		}
		if len(r.Addresses) > 0 {
			x.ipRules = append(x.ipRules, r)
		}
	}
}

// rule compiles an allow block or, with deny set, a deny block (whose
// schema has no catalog attributes, so those fields are nil).
func (c *compiler) rule(as *allowSchema, clientCtx *hcl.Range, deny bool) *Rule {
	ctx := &as.rng
	r := c.newRule() // zero: field by field is much cheaper than copying a whole Rule into fresh memory
	r.Name, r.Range, r.Deny = as.Name, as.DefRange, deny
	kind := "allow"
	if deny {
		kind = "deny"
	}
	c.checkName(as.Name, as.NameRange, clientCtx, kind+" rule")

	if as.Hosts != nil {
		elems, _ := c.listAttr(as.Hosts, ctx, `hosts = ["api.example.com"]`)
		if n := len(elems); n > 0 {
			r.Hosts, r.Labels = c.strs.Slice(n)[:0], c.strs.Slice(n)[:0]
			r.hostRanges, r.fromCatalog = c.rngList.Slice(n)[:0], c.bools.Slice(n)[:0]
		}
		for _, e := range elems {
			s, rng, ok := c.stringElem(e, ctx, "hosts")
			if !ok {
				continue
			}
			if deny && s == "*" {
				c.add(errorf(c.rangePtr(rng), ctx, "Invalid host pattern",
					`"*" would refuse every host, and whatever no allow rule matches is refused already. List the domains to refuse, like "*.example.com".`))
				continue
			}
			if pat, ok := c.hostPattern(s, rng, ctx); ok {
				n := len(r.Hosts)
				r.addHost(pat, catalog.PatternLabel(c.cloud, pat))
				if len(r.Hosts) > n {
					r.hostRanges = append(r.hostRanges, rng)
					r.fromCatalog = append(r.fromCatalog, false)
				}
			}
		}
	}
	if len(r.Hosts) == 0 {
		r.Hosts, r.Labels, r.hostRanges, r.fromCatalog = nil, nil, nil, nil
	}
	var srcBuf [4]portSource
	portSrcs := srcBuf[:0]
	if len(r.Hosts) > 0 {
		portSrcs = append(portSrcs, portSource{what: "hosts", ports: portsHTTPS, expr: as.Hosts.Expr})
	}
	portSrcs = append(portSrcs, c.catalogAttrs(as, ctx, r)...)
	for len(r.hostRanges) < len(r.Hosts) {
		r.hostRanges = append(r.hostRanges, as.NameRange)
		r.fromCatalog = append(r.fromCatalog, true)
	}
	c.expires(as.Expires, ctx, r)
	hasAddresses := false
	if as.Addresses != nil {
		elems, _ := c.listAttr(as.Addresses, ctx, `addresses = ["10.20.0.0/24"]`)
		hasAddresses = len(elems) > 0
		for _, e := range elems {
			pfx, rng, ok := c.prefixElem(e, ctx, "addresses")
			if ok && !slices.Contains(r.Addresses, pfx) {
				r.Addresses = append(r.Addresses, pfx)
				r.addrRanges = append(r.addrRanges, *rng)
			}
		}
	}
	named := c.hasListElems(as.Hosts) || c.hasListElems(as.Endpoints) || c.hasListElems(as.KeyVaults) ||
		c.hasListElems(as.StorageAccounts) || c.hasListElems(as.Registries)
	known := []string{"hosts", "addresses", "ports", "expires", "endpoints", "keyvaults", "storage_accounts", "registries"}
	if deny {
		known = known[:4]
	}
	if len(r.Hosts) == 0 && !hasAddresses && !named && !hasUnknownAttrs(as.Body, known...) {
		if deny {
			c.add(errorf(as.DefRange.Ptr(), ctx, "Empty deny rule",
				"Deny rule %q names no destination, so it can never match. Add hosts = [\"api.example.com\"] or addresses = [\"20.1.2.3\"].", as.Name))
		} else {
			c.add(errorf(as.DefRange.Ptr(), ctx, "Empty allow rule",
				"Allow rule %q names no destination, so it can never match. Add hosts = [\"api.example.com\"], addresses = [\"10.20.0.0/24\"], or catalog endpoints, keyvaults, storage_accounts or registries.", as.Name))
		}
	}

	if as.Ports == nil {
		r.Ports = c.rulePorts(portSrcs, ctx)
	} else {
		elems, ok := c.listAttr(as.Ports, ctx, `ports = [443]`)
		if ok && len(elems) == 0 {
			c.add(errorf(as.Ports.Expr.Range().Ptr(), ctx, "Empty ports",
				"An empty ports list allows nothing. List the ports, like ports = [443], or remove the attribute to allow only 443."))
		}
		for _, e := range elems {
			if p, ok := c.portElem(e, ctx); ok && !slices.Contains(r.Ports, p) {
				r.Ports = append(r.Ports, p)
			}
		}
	}
	if !deny {
		c.localAddresses(r, ctx)
	}
	return r
}

// localAddresses refuses allow-rule addresses that cover a VM-local
// endpoint (IMDS, WireServer, or Arc's HIMDS on a port the rule allows).
// The proxy never connects to those, whatever the rules say, so such a
// prefix cannot mean what it says; and a lazy one ("0.0.0.0/0") is how a
// name that resolves to IMDS would have handed out the proxy host's own
// token. There is no exception for naming the endpoint: it only ever
// answers on the machine itself.
func (c *compiler) localAddresses(r *Rule, ctx *hcl.Range) {
	for i, pfx := range r.Addresses {
		for _, e := range catalog.LocalEndpoints() {
			if !e.Addr().IsValid() || !pfx.Contains(e.Addr()) {
				continue
			}
			if e.Ports != nil && !slices.ContainsFunc(r.Ports, func(p uint16) bool { return slices.Contains(e.Ports, p) }) {
				continue
			}
			covers := fmt.Sprintf("%s, which covers %s", text.Prefix(pfx), e.Addr())
			if pfx.IsSingleIP() {
				covers = e.Addr().String()
			}
			fix := "List only the ranges the rule's destinations use, like \"10.20.0.0/24\" for a private endpoint subnet or \"20.1.2.3\" for a public address; names that resolve to public addresses need no addresses at all."
			if pfx.Bits() == 0 {
				fix = "To allow IP-literal destinations anywhere, list the public ranges you need; names that resolve to public addresses need no addresses at all."
			}
			c.add(errorf(&r.addrRanges[i], ctx, "Address range covers a local endpoint",
				"Allow rule %q lists %s, the %s. It answers only on the machine itself, and the proxy never connects to it whatever the rules say: it would answer as the proxy host (IMDS with the host's managed-identity tokens). %s Clients reach %s directly, with it in NO_PROXY.",
				r.Name, covers, e.Label, fix, e.Addr()))
			break
		}
	}
}

// expires decodes a rule's expires attribute into r: a date, which is
// valid through the end of that day in UTC, or an RFC 3339 time.
func (c *compiler) expires(attr *hcl.Attribute, ctx *hcl.Range, r *Rule) {
	s, rng, ok := c.stringAttr(attr, ctx)
	if !ok {
		return
	}
	t, ok := ParseExpires(s)
	if !ok {
		c.add(errorf(rng, ctx, "Invalid expires",
			"%q is not a date or time. Write a date like \"2026-12-31\" (the rule matches through the end of that day, UTC) or an RFC 3339 time like \"2026-12-31T18:00:00Z\".", s))
		return
	}
	r.Expires, r.expiresRng = t, rng
	r.expiresUnix = t.Unix()
	if r.expiresUnix == 0 {
		r.expiresUnix = -1 // 0 means "never"
	}
}

// ParseExpires parses the value of an expires attribute and returns the
// instant the rule stops matching: for a date ("2026-12-31") the start of
// the next day in UTC, for an RFC 3339 time ("2026-12-31T18:00:00+01:00")
// that instant.
func ParseExpires(s string) (time.Time, bool) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.AddDate(0, 0, 1), true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// hasUnknownAttrs reports whether body has attributes other than known,
// which gohcl has already reported; a misspelled "host" should not also
// produce an "Empty allow rule" error.
func hasUnknownAttrs(body hcl.Body, known ...string) bool {
	b, ok := body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	for name := range b.Attributes {
		if !slices.Contains(known, name) {
			return true
		}
	}
	return false
}

// hasListElems reports whether attr is a list expression with at least one
// element, so that an invalid-but-present hosts list does not also produce
// an "Empty allow rule" error.
func (c *compiler) hasListElems(attr *hcl.Attribute) bool {
	if attr == nil {
		return false
	}
	switch t := attr.Expr.(type) {
	case *fasthcl.List:
		return len(t.Elems()) > 0
	case *hclsyntax.TupleConsExpr:
		return len(t.Exprs) > 0
	}
	elems, diags := hcl.ExprList(attr.Expr)
	return !diags.HasErrors() && len(elems) > 0
}

// hostPattern validates and normalizes one element of hosts, written at
// rng (a value, copied only for a diagnostic).
func (c *compiler) hostPattern(s string, rng hcl.Range, ctx *hcl.Range) (string, bool) {
	pat, summary, detail := normalizeHostPattern(s)
	if summary != "" {
		c.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: c.rangePtr(rng), Context: ctx})
		return "", false
	}
	return pat, true
}

// NormalizeHostPattern validates a host pattern as the hosts attribute
// takes it and returns its normalized form: an exact name or "*." and a
// domain of at least two labels, lowercase, IDNA (punycode) encoded,
// without a trailing dot. The error says what is wrong and what to write.
func NormalizeHostPattern(s string) (string, error) {
	pat, summary, detail := normalizeHostPattern(s)
	if summary != "" {
		return "", errors.New(detail)
	}
	return pat, nil
}

// normalizeHostPattern is NormalizeHostPattern, with the summary and
// detail of the diagnostic for an invalid pattern.
func normalizeHostPattern(s string) (pattern, summary, detail string) {
	bad := func(format string, args ...any) (string, string, string) {
		return "", "Invalid host pattern", fmt.Sprintf(format, args...)
	}
	const example = `Use an exact name like "api.example.com" or a wildcard like "*.example.com".`
	switch {
	case s == "*":
		return bad(`"*" would allow every host. List the domains the client needs, like "*.example.com".`)
	case s == "*.":
		return bad(`"*." has no domain after the wildcard. Write the domain it covers, like "*.example.com".`)
	}
	suffix, wildcard := strings.CutPrefix(s, "*.")
	if strings.Contains(suffix, "*") {
		fixed := strings.TrimLeft(s, "*.")
		switch {
		case strings.HasPrefix(s, "*") && !strings.Contains(fixed, "*") && fixed != "":
			return bad(`A wildcard must be a whole first label followed by a dot. Did you mean "*.%s"?`, fixed)
		default:
			return bad(`%q has a wildcard that is not the whole first label. A wildcard may only appear as "*." at the start, like "*.example.com".`, s)
		}
	}
	h, err := host.Parse(suffix)
	if err != nil {
		hint := host.Hint(err)
		if hint == "" {
			hint = example
		}
		return bad("%q is not a valid host name: %s. %s", s, err, hint)
	}
	if h.IsIP() {
		if wildcard {
			return bad(`%q puts a wildcard over an IP address. Put IP addresses and CIDRs in addresses, not hosts.`, s)
		}
		return "", "IP address in hosts",
			fmt.Sprintf(`%q is an IP address, but hosts takes DNS names. Put IP addresses and CIDRs in addresses instead.`, s)
	}
	if wildcard && !strings.Contains(h.Name, ".") {
		return bad(`%q would allow every host under the top-level domain %q. Name at least two labels after "*.", like "*.example.%s".`, s, h.Name, h.Name)
	}
	if wildcard {
		return "*." + h.Name, "", ""
	}
	return h.Name, "", ""
}

// limits validates a limits block.
func (c *compiler) limits(ls *limitsSchema) Limits {
	block := ls.rng
	ctx := &block
	var l Limits
	if v, rng, ok := c.numberAttr(ls.ConnectionsPerSecond, ctx); ok {
		f, _ := v.Float64()
		if v.Sign() <= 0 || f > maxLimit {
			c.add(errorf(rng, ctx, "Invalid connections_per_second",
				"connections_per_second is %s; it must be greater than 0 and at most %d. Remove it for no rate limit.", numText(v), maxLimit))
		} else {
			l.ConnectionsPerSecond = f
		}
	}
	burst, burstRange, burstOK := c.intLimit(ls.Burst, ctx, "burst")
	if tunnels, _, ok := c.intLimit(ls.MaxTunnels, ctx, "max_tunnels"); ok {
		l.MaxTunnels = tunnels
	}
	if l.ConnectionsPerSecond > 0 {
		l.Burst = max(1, int(math.Ceil(l.ConnectionsPerSecond)))
		if burstOK {
			l.Burst = burst
		}
	} else if burstOK && ls.ConnectionsPerSecond == nil {
		c.add(warnf(burstRange, ctx, "Ignored burst",
			"burst has no effect without connections_per_second. Set connections_per_second or remove burst."))
	}
	return l
}

// intLimit decodes an integer limit in 1..maxLimit.
func (c *compiler) intLimit(attr *hcl.Attribute, ctx *hcl.Range, name string) (int, *hcl.Range, bool) {
	v, rng, ok := c.numberAttr(attr, ctx)
	if !ok {
		return 0, nil, false
	}
	if !v.IsInt() || v.Sign() <= 0 || v.Cmp(big.NewFloat(maxLimit)) > 0 {
		c.add(errorf(rng, ctx, "Invalid "+name,
			"%s is %s; it must be a whole number from 1 to %d.", name, numText(v), maxLimit))
		return 0, nil, false
	}
	n, _ := v.Int64()
	return int(n), rng, true
}

// mode decodes a mode attribute; def is returned if attr is absent or
// invalid.
func (c *compiler) mode(attr *hcl.Attribute, ctx *hcl.Range, def Mode) Mode {
	s, rng, ok := c.stringAttr(attr, ctx)
	if !ok {
		return def
	}
	switch s {
	case "enforce":
		return ModeEnforce
	case "learn":
		return ModeLearn
	}
	c.add(errorf(rng, ctx, "Invalid mode", `%q is not a mode. Use "enforce" to refuse denied connections or "learn" to log them and let them through.`, s))
	return def
}

// boolAttr decodes an optional bool attribute; absent or invalid is false.
func (c *compiler) boolAttr(attr *hcl.Attribute, ctx *hcl.Range) bool {
	if attr == nil {
		return false
	}
	v, ok := c.value(attr.Expr)
	if !ok {
		return false
	}
	if v.IsNull() || v.Type() != cty.Bool {
		c.add(errorf(attr.Expr.Range().Ptr(), ctx, "Incorrect attribute value type",
			"%s must be true or false, without quotes.", attr.Name))
		return false
	}
	return v.True()
}

// checkName validates a client or rule label. Names appear in logs and
// metric labels, so they are kept to a safe character set.
func (c *compiler) checkName(name string, rng hcl.Range, ctx *hcl.Range, what string) {
	ok := name != "" && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		ch := name[i]
		ok = 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.'
	}
	if !ok {
		c.add(errorf(rng.Ptr(), ctx, "Invalid "+what+" name",
			"%q is not a valid name. Names must be 1 to 64 letters, digits, \"-\", \"_\" or \".\", because they appear in logs and metrics.", name))
	}
}

// value evaluates a constant expression.
func (c *compiler) value(expr hcl.Expression) (cty.Value, bool) {
	if v, ok := literalValue(expr); ok {
		return v, true
	}
	v, diags := expr.Value(nil)
	c.diags = append(c.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// literalValue returns the value of a literal or of a quoted string
// without interpolations, which is what expr.Value(nil) returns for them,
// without evaluating a template. ok is false for other expressions.
func literalValue(expr hcl.Expression) (cty.Value, bool) {
	switch e := expr.(type) {
	case *fasthcl.Lit:
		return e.Val(), true
	case *hclsyntax.LiteralValueExpr:
		if e.Val.IsWhollyKnown() && !e.Val.IsMarked() {
			return e.Val, true
		}
	case *hclsyntax.TemplateExpr:
		if len(e.Parts) != 1 {
			break
		}
		if lit, ok := e.Parts[0].(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String &&
			lit.Val.IsKnown() && !lit.Val.IsNull() && !lit.Val.IsMarked() {
			return lit.Val, true
		}
	}
	return cty.NilVal, false
}

// stringAttr decodes a string attribute. ok is false if attr is nil or
// invalid (invalid ones get a diagnostic).
func (c *compiler) stringAttr(attr *hcl.Attribute, ctx *hcl.Range) (string, *hcl.Range, bool) {
	if attr == nil {
		return "", nil, false
	}
	rng := attr.Expr.Range().Ptr()
	v, ok := c.value(attr.Expr)
	if !ok {
		return "", nil, false
	}
	if v.IsNull() || v.Type() != cty.String {
		c.add(errorf(rng, ctx, "Incorrect attribute value type",
			"%s must be a string in quotes, like %s = %q.", attr.Name, attr.Name, exampleFor(attr.Name)))
		return "", nil, false
	}
	return v.AsString(), rng, true
}

func exampleFor(name string) string {
	switch name {
	case "cloud":
		return catalog.DefaultCloud
	case "mode":
		return "enforce"
	case "expires":
		return "2026-12-31"
	case "tenant_id":
		return "11111111-2222-3333-4444-555555555555"
	case "clock_skew":
		return "60s"
	case "authority":
		return "https://login.microsoftonline.com"
	}
	return "..."
}

// numberAttr decodes a number attribute.
func (c *compiler) numberAttr(attr *hcl.Attribute, ctx *hcl.Range) (*big.Float, *hcl.Range, bool) {
	if attr == nil {
		return nil, nil, false
	}
	rng := attr.Expr.Range().Ptr()
	v, ok := c.value(attr.Expr)
	if !ok {
		return nil, nil, false
	}
	if v.IsNull() || v.Type() != cty.Number {
		c.add(errorf(rng, ctx, "Incorrect attribute value type",
			"%s must be a number without quotes, like %s = 100.", attr.Name, attr.Name))
		return nil, nil, false
	}
	return v.AsBigFloat(), rng, true
}

// listAttr returns the element expressions of a list attribute, so that
// each element's diagnostics point at the element itself.
func (c *compiler) listAttr(attr *hcl.Attribute, ctx *hcl.Range, example string) ([]hcl.Expression, bool) {
	switch t := attr.Expr.(type) {
	case *fasthcl.List:
		lits := t.Elems()
		elems := c.elems.Slice(len(lits))
		for i := range lits {
			elems[i] = &lits[i]
		}
		return elems, true
	case *hclsyntax.TupleConsExpr:
		elems := c.elems.Slice(len(t.Exprs))
		for i, e := range t.Exprs {
			elems[i] = e
		}
		return elems, true
	}
	elems, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		c.add(errorf(attr.Expr.Range().Ptr(), ctx, "Incorrect attribute value type",
			"%s must be a list in square brackets, like %s.", attr.Name, example))
		return nil, false
	}
	return elems, true
}

// stringElem decodes one string element of a list attribute.
// The range is a value: callers copy it to the slab (rangePtr) only where
// they keep a pointer, so a valid host costs no copy.
func (c *compiler) stringElem(e hcl.Expression, ctx *hcl.Range, attr string) (string, hcl.Range, bool) {
	rng := e.Range()
	if l, ok := e.(*fasthcl.Lit); ok && l.IsString() {
		return l.Text(), rng, true // what value and AsString return, without the cty value
	}
	v, ok := c.value(e)
	if !ok {
		return "", hcl.Range{}, false
	}
	if v.IsNull() || v.Type() != cty.String {
		c.add(errorf(c.rangePtr(rng), ctx, "Incorrect value type",
			"Each element of %s must be a string in quotes.", attr))
		return "", hcl.Range{}, false
	}
	return v.AsString(), rng, true
}

// prefixElem decodes one CIDR or IP element of sources or addresses.
func (c *compiler) prefixElem(e hcl.Expression, ctx *hcl.Range, attr string) (netip.Prefix, *hcl.Range, bool) {
	s, erng, ok := c.stringElem(e, ctx, attr)
	if !ok {
		return netip.Prefix{}, nil, false
	}
	rng := c.rangePtr(erng)
	pfx, detail := parsePrefix(s)
	if detail != "" {
		summary := "Invalid address"
		if attr == "sources" {
			summary = "Invalid source"
		}
		c.add(errorf(rng, ctx, summary, "%s", detail))
		return netip.Prefix{}, nil, false
	}
	return pfx, rng, true
}

// parsePrefix parses a CIDR or a bare IP address (a /32 or /128). On
// failure it returns a user-readable explanation.
func parsePrefix(s string) (netip.Prefix, string) {
	const want = `Write a CIDR like "10.0.1.0/24" or a single address like "10.0.1.5".`
	addrPart, bitsPart, isCIDR := strings.Cut(s, "/")
	if strings.Contains(addrPart, "%") {
		return netip.Prefix{}, fmt.Sprintf("%q has an IPv6 zone, which is not allowed. %s", s, want)
	}
	ip, err := netip.ParseAddr(addrPart)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR. %s", s, want)
	}
	if ip.Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 address. Write it in IPv4 form, like %q.", s, ip.Unmap().String())
	}
	if !isCIDR {
		return netip.PrefixFrom(ip, ip.BitLen()), ""
	}
	bits, err := strconv.Atoi(bitsPart)
	if err != nil || bits < 0 || bitsPart != strconv.Itoa(bits) {
		return netip.Prefix{}, fmt.Sprintf("%q has an invalid prefix length %q. %s", s, bitsPart, want)
	}
	if bits > ip.BitLen() {
		family := "IPv6"
		if ip.Is4() {
			family = "IPv4"
		}
		return netip.Prefix{}, fmt.Sprintf("%q has prefix length /%d, but an %s prefix can be at most /%d.", s, bits, family, ip.BitLen())
	}
	pfx := netip.PrefixFrom(ip, bits)
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Sprintf("%q has host bits set after the /%d prefix length. Did you mean %s?", s, bits, m)
	}
	return pfx, ""
}

// portElem decodes one element of ports.
func (c *compiler) portElem(e hcl.Expression, ctx *hcl.Range) (uint16, bool) {
	if l, ok := e.(*fasthcl.Lit); ok {
		if n, ok := l.SmallInt(); ok && n >= 1 && n <= 65535 {
			return uint16(n), true
		}
	}
	rng := c.rangePtr(e.Range())
	v, ok := c.value(e)
	if !ok {
		return 0, false
	}
	if !v.IsNull() && v.Type() == cty.String {
		c.add(errorf(rng, ctx, "Incorrect value type",
			"Ports are numbers: write %s, not %q.", v.AsString(), v.AsString()))
		return 0, false
	}
	if v.IsNull() || v.Type() != cty.Number {
		c.add(errorf(rng, ctx, "Incorrect value type", "Each element of ports must be a port number, like 443."))
		return 0, false
	}
	f := v.AsBigFloat()
	if !f.IsInt() || f.Sign() <= 0 || f.Cmp(maxPort) > 0 {
		c.add(errorf(rng, ctx, "Invalid port",
			"Port %s is out of range. A port must be a whole number from 1 to 65535.", numText(f)))
		return 0, false
	}
	n, _ := f.Int64()
	return uint16(n), true
}

// numText formats a number from a policy file for a diagnostic.
func numText(f *big.Float) string {
	if a := new(big.Float).Abs(f); a.Cmp(big.NewFloat(1e15)) < 0 {
		return f.Text('f', -1)
	}
	return f.Text('g', 6)
}
