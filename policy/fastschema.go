package policy

import "github.com/hashicorp/hcl/v2"

// parseFastSchema parses src as parseFast does, but straight into the
// schema structs, without the block bodies and attribute maps that only
// decoding reads: a third of the allocations of a large policy. It
// declines, like parseFast, anything outside the subset, and also
// anything the decoder would report: an attribute or block the schema does
// not name, a block with the wrong number of labels. The structs are
// those decoder.file fills from hclsyntax's body, except that Body is nil;
// FuzzParseFast checks that.
func parseFastSchema(src []byte, filename string) (*fileSchema, bool) {
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		return nil, false
	}
	p := &fastParser{src: string(src), filename: filename, line: 1}
	if p.peek().kind == tOther {
		return nil, false
	}
	fs := &fileSchema{}
	_, ok := p.items(tEOF, func(name string, a *hcl.Attribute) bool {
		switch name {
		case "cloud":
			fs.Cloud = a
		case "mode":
			fs.Mode = a
		default:
			return false
		}
		return true
	}, func(typ string, labels []tok, def, open hcl.Range) bool {
		if typ != "client" || len(labels) != 1 {
			return false
		}
		cs, ok := p.client(labels[0], def, open)
		fs.Clients = append(fs.Clients, cs)
		return ok
	})
	if !ok {
		return nil, false
	}
	return fs, true
}

// items parses the items of a body up to end, which it consumes and
// returns the range of. It calls attr for each attribute and block after
// each block header (the parser then at the first token of the block's
// body), and fails if either returns false.
func (p *fastParser) items(end tokKind,
	attr func(name string, a *hcl.Attribute) bool,
	block func(typ string, labels []tok, def, open hcl.Range) bool,
) (hcl.Range, bool) {
	var names [8]string // attribute names seen, for "Attribute redefined"
	nNames := 0
	for {
		t := p.peek()
		switch t.kind {
		case end:
			p.read()
			return p.rng(t), true
		case tNewline:
			p.read()
			continue
		case tIdent:
		default:
			return hcl.Range{}, false
		}
		p.read()
		name := p.src[t.start:t.end]
		switch p.peek().kind {
		case tEqual:
			for _, prev := range names[:nNames] {
				if prev == name {
					return hcl.Range{}, false
				}
			}
			if nNames == len(names) {
				return hcl.Range{}, false
			}
			names[nNames] = name
			nNames++
			p.read() // "="
			expr, endRange, ok := p.expr()
			if !ok || !p.endOfLine() {
				return hcl.Range{}, false
			}
			a := p.hclAttrs.new()
			*a = hcl.Attribute{Name: name, Expr: expr, Range: hcl.RangeBetween(p.rng(t), endRange), NameRange: p.rng(t)}
			if !attr(name, a) {
				return hcl.Range{}, false
			}
		case tString, tOBrace:
			var labels [2]tok
			n := 0
			for p.peek().kind == tString {
				if n == len(labels) {
					return hcl.Range{}, false
				}
				labels[n] = p.read()
				n++
			}
			open := p.read()
			if open.kind != tOBrace {
				return hcl.Range{}, false
			}
			if k := p.peek().kind; k != tNewline && k != tCBrace {
				return hcl.Range{}, false
			}
			def := p.rng(t)
			if n > 0 {
				def = hcl.RangeBetween(def, p.rng(labels[n-1]))
			}
			if !block(name, labels[:n], def, p.rng(open)) || !p.endOfLine() {
				return hcl.Range{}, false
			}
		default:
			return hcl.Range{}, false
		}
	}
}

// endOfLine consumes the newline that must end an item, or sees EOF.
func (p *fastParser) endOfLine() bool {
	switch p.peek().kind {
	case tNewline:
		p.read()
		return true
	case tEOF:
		return true
	}
	return false
}

// label returns a quoted label's text and range.
func (p *fastParser) label(t tok) (string, hcl.Range) {
	return p.src[t.start+1 : t.end-1], p.rng(t)
}

func (p *fastParser) client(label tok, def, open hcl.Range) (*clientSchema, bool) {
	cs := &clientSchema{DefRange: def}
	cs.Name, cs.NameRange = p.label(label)
	end, ok := p.items(tCBrace, func(name string, a *hcl.Attribute) bool {
		switch name {
		case "sources":
			cs.Sources = a
		case "mode":
			cs.Mode = a
		case "allow_sni_mismatch":
			cs.AllowSNIMismatch = a
		default:
			return false
		}
		return true
	}, func(typ string, labels []tok, def, open hcl.Range) bool {
		switch {
		case typ == "allow" && len(labels) == 1:
			as := p.allows.new()
			*as = allowSchema{DefRange: def}
			as.Name, as.NameRange = p.label(labels[0])
			end, ok := p.items(tCBrace, func(name string, a *hcl.Attribute) bool {
				switch name {
				case "hosts":
					as.Hosts = a
				case "addresses":
					as.Addresses = a
				case "ports":
					as.Ports = a
				case "endpoints":
					as.Endpoints = a
				case "keyvaults":
					as.KeyVaults = a
				case "storage_accounts":
					as.StorageAccounts = a
				case "registries":
					as.Registries = a
				case "expires":
					as.Expires = a
				default:
					return false
				}
				return true
			}, noBlocks)
			as.rng = hcl.RangeBetween(def, end)
			cs.Allows = append(cs.Allows, as)
			return ok
		case typ == "deny" && len(labels) == 1:
			ds := &denySchema{DefRange: def}
			ds.Name, ds.NameRange = p.label(labels[0])
			end, ok := p.items(tCBrace, func(name string, a *hcl.Attribute) bool {
				switch name {
				case "hosts":
					ds.Hosts = a
				case "addresses":
					ds.Addresses = a
				case "ports":
					ds.Ports = a
				case "expires":
					ds.Expires = a
				default:
					return false
				}
				return true
			}, noBlocks)
			ds.rng = hcl.RangeBetween(def, end)
			cs.Denies = append(cs.Denies, ds)
			return ok
		case typ == "limits" && len(labels) == 0:
			ls := &limitsSchema{DefRange: def}
			end, ok := p.items(tCBrace, func(name string, a *hcl.Attribute) bool {
				switch name {
				case "connections_per_second":
					ls.ConnectionsPerSecond = a
				case "burst":
					ls.Burst = a
				case "max_tunnels":
					ls.MaxTunnels = a
				default:
					return false
				}
				return true
			}, noBlocks)
			ls.rng = hcl.RangeBetween(def, end)
			cs.Limits = append(cs.Limits, ls)
			return ok
		}
		return false
	})
	cs.rng = hcl.RangeBetween(def, end)
	return cs, ok
}

func noBlocks(string, []tok, hcl.Range, hcl.Range) bool { return false }
