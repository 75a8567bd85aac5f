package policy

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The decoder in this file fills the schema structs the way gohcl.DecodeBody
// does, without gohcl's reflection, which cost a fifth of a 100,000-rule
// load. The schemas are still derived from the struct tags, and a body that
// holds anything its schema does not allow is checked with the same
// Body.Content call gohcl makes, so every diagnostic is gohcl's.

var (
	fileBodySchema   = impliedSchema(fileSchema{})
	clientBodySchema = impliedSchema(clientSchema{})
	allowBodySchema  = impliedSchema(allowSchema{})
	denyBodySchema   = impliedSchema(denySchema{})
	limitsBodySchema = impliedSchema(limitsSchema{})
)

func impliedSchema(v any) *hcl.BodySchema {
	s, partial := gohcl.ImpliedBodySchema(v)
	if partial {
		panic("policy: schema structs must not have a remain field")
	}
	return s
}

// decoder decodes one file. Its diagnostics are in the order gohcl would
// produce them for each body, which finishDiags then sorts by position.
type decoder struct {
	diags hcl.Diagnostics
	attrs slab[hcl.Attribute]
}

// content checks b against s and reports whether the item is wanted: an
// attribute named in s, or a block of a type in s with exactly its labels.
// If b has anything else, the diagnostics of b.Content(s) are added; the
// wanted items are the ones Content would return.
func (d *decoder) content(b *hclsyntax.Body, s *hcl.BodySchema) {
	for name := range b.Attributes {
		if !schemaHasAttr(s, name) {
			d.addContentDiags(b, s)
			return
		}
	}
	for _, blk := range b.Blocks {
		if !schemaWantsBlock(s, blk) {
			d.addContentDiags(b, s)
			return
		}
	}
}

func (d *decoder) addContentDiags(b *hclsyntax.Body, s *hcl.BodySchema) {
	_, diags := b.Content(s)
	d.diags = append(d.diags, diags...)
}

func schemaHasAttr(s *hcl.BodySchema, name string) bool {
	for i := range s.Attributes {
		if s.Attributes[i].Name == name {
			return true
		}
	}
	return false
}

func schemaWantsBlock(s *hcl.BodySchema, b *hclsyntax.Block) bool {
	for i := range s.Blocks {
		if s.Blocks[i].Type == b.Type {
			return len(b.Labels) == len(s.Blocks[i].LabelNames)
		}
	}
	return false
}

// attr returns b's attribute name as gohcl would set it, or nil.
func (d *decoder) attr(b *hclsyntax.Body, name string) *hcl.Attribute {
	a, ok := b.Attributes[name]
	if !ok {
		return nil
	}
	return d.attr1(a)
}

func (d *decoder) attr1(a *hclsyntax.Attribute) *hcl.Attribute {
	p := d.attrs.new()
	*p = hcl.Attribute{Name: a.Name, Expr: a.Expr, Range: a.SrcRange, NameRange: a.NameRange}
	return p
}

// blocks calls f for each block of b of type typ that content wants, in
// file order.
func blocksOf(b *hclsyntax.Body, s *hcl.BodySchema, typ string, f func(*hclsyntax.Block)) {
	for _, blk := range b.Blocks {
		if blk.Type == typ && schemaWantsBlock(s, blk) {
			f(blk)
		}
	}
}

func (d *decoder) file(b *hclsyntax.Body) *fileSchema {
	fs := &fileSchema{}
	d.content(b, fileBodySchema)
	fs.Cloud = d.attr(b, "cloud")
	fs.Mode = d.attr(b, "mode")
	n := 0
	blocksOf(b, fileBodySchema, "client", func(*hclsyntax.Block) { n++ })
	if n > 0 {
		fs.Clients = make([]*clientSchema, 0, n)
	}
	blocksOf(b, fileBodySchema, "client", func(blk *hclsyntax.Block) {
		fs.Clients = append(fs.Clients, d.client(blk))
	})
	return fs
}

func (d *decoder) client(blk *hclsyntax.Block) *clientSchema {
	b := blk.Body
	cs := &clientSchema{
		Name: blk.Labels[0], NameRange: blk.LabelRanges[0],
		DefRange: blk.DefRange(), Body: b,
	}
	cs.rng = blockRange(cs.DefRange, b)
	d.content(b, clientBodySchema)
	cs.Sources = d.attr(b, "sources")
	cs.Mode = d.attr(b, "mode")
	cs.AllowSNIMismatch = d.attr(b, "allow_sni_mismatch")
	nAllow, nDeny := 0, 0
	for _, blk := range b.Blocks {
		switch blk.Type {
		case "allow":
			nAllow++
		case "deny":
			nDeny++
		}
	}
	var allows []allowSchema
	if nAllow > 0 {
		allows = make([]allowSchema, 0, nAllow)
		cs.Allows = make([]*allowSchema, 0, nAllow)
	}
	blocksOf(b, clientBodySchema, "allow", func(blk *hclsyntax.Block) {
		allows = append(allows, allowSchema{})
		as := &allows[len(allows)-1]
		d.allow(blk, as)
		cs.Allows = append(cs.Allows, as)
	})
	if nDeny > 0 {
		cs.Denies = make([]*denySchema, 0, nDeny)
	}
	blocksOf(b, clientBodySchema, "deny", func(blk *hclsyntax.Block) {
		cs.Denies = append(cs.Denies, d.deny(blk))
	})
	blocksOf(b, clientBodySchema, "limits", func(blk *hclsyntax.Block) {
		cs.Limits = append(cs.Limits, d.limits(blk))
	})
	return cs
}

func (d *decoder) allow(blk *hclsyntax.Block, as *allowSchema) {
	b := blk.Body
	*as = allowSchema{
		Name: blk.Labels[0], NameRange: blk.LabelRanges[0],
		DefRange: blk.DefRange(), Body: b,
	}
	as.rng = blockRange(as.DefRange, b)
	d.content(b, allowBodySchema)
	for name, a := range b.Attributes {
		p := &as.Hosts
		switch name {
		case "hosts":
		case "addresses":
			p = &as.Addresses
		case "ports":
			p = &as.Ports
		case "endpoints":
			p = &as.Endpoints
		case "keyvaults":
			p = &as.KeyVaults
		case "storage_accounts":
			p = &as.StorageAccounts
		case "registries":
			p = &as.Registries
		case "expires":
			p = &as.Expires
		default:
			continue
		}
		*p = d.attr1(a)
	}
}

func (d *decoder) deny(blk *hclsyntax.Block) *denySchema {
	b := blk.Body
	ds := &denySchema{
		Name: blk.Labels[0], NameRange: blk.LabelRanges[0],
		DefRange: blk.DefRange(), Body: b,
	}
	ds.rng = blockRange(ds.DefRange, b)
	d.content(b, denyBodySchema)
	ds.Hosts = d.attr(b, "hosts")
	ds.Addresses = d.attr(b, "addresses")
	ds.Ports = d.attr(b, "ports")
	ds.Expires = d.attr(b, "expires")
	return ds
}

func (d *decoder) limits(blk *hclsyntax.Block) *limitsSchema {
	b := blk.Body
	ls := &limitsSchema{DefRange: blk.DefRange(), Body: b}
	ls.rng = blockRange(ls.DefRange, b)
	d.content(b, limitsBodySchema)
	ls.ConnectionsPerSecond = d.attr(b, "connections_per_second")
	ls.Burst = d.attr(b, "burst")
	ls.MaxTunnels = d.attr(b, "max_tunnels")
	return ls
}
