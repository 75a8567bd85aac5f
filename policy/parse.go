package policy

import (
	"math"
	"runtime"

	"github.com/azegress/azegress/policy/internal/fasthcl"
	"github.com/azegress/azegress/policy/internal/slab"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// A policy file is parsed into the schema structs (schema.go) one of two
// ways:
//
//   - parseFast: the fast front end (package fasthcl) for the plain HCL
//     subset policies are written in, its items bound to the structs'
//     fields below. It declines anything outside the subset and anything
//     the other way would report.
//   - parseSyntax: hclsyntax and gohcl.DecodeBody, the reference, and the
//     fallback for whatever parseFast declines, so every syntax and schema
//     diagnostic is hclsyntax's or gohcl's.
//
// TestParsePaths pushes every attribute and block of the schema through
// both and compares the compiled policies; FuzzParseFast compares them,
// their decisions and their diagnostics on any input.

// parseFast parses src into the schema structs with the fast front end,
// or declines. Body fields are nil.
func parseFast(src []byte, filename string) (*fileSchema, bool) {
	minSplit := parallelParseBytes
	if runtime.GOMAXPROCS(0) < 2 {
		minSplit = math.MaxInt
	}
	fs, _, ok := parseFastSplit(src, filename, minSplit)
	return fs, ok
}

// parallelParseBytes is the file size from which parseFast parses the
// second half of a large client block on another goroutine.
const parallelParseBytes = 1 << 20

// parseFastSplit is parseFast with the size from which it splits, so
// that tests can split small files; joined reports whether the second
// half's result was used.
func parseFastSplit(src []byte, filename string, minSplit int) (fs *fileSchema, joined, ok bool) {
	p, ok := fasthcl.NewParser(src, filename)
	if !ok {
		return nil, false, false
	}
	b := &binder{}
	if len(src) >= minSplit {
		b.split = fasthcl.StartSplit(p, []string{"allow", "deny"}, func(q *fasthcl.Parser) (*clientSchema, hcl.Range, bool) {
			cs := &clientSchema{}
			end, ok := q.Body((&binder{}).clientItems(q, cs))
			return cs, end, ok
		})
		if b.split != nil {
			defer b.split.Stop()
		}
	}
	fs = &fileSchema{}
	ok = p.File(func(name string, a *hcl.Attribute) bool {
		switch name {
		case "cloud":
			fs.Cloud = a
		case "mode":
			fs.Mode = a
		default:
			return false
		}
		return true
	}, func(typ string, labels []fasthcl.Label, def hcl.Range) bool {
		switch {
		case typ == "client" && len(labels) == 1:
			cs, ok := b.client(p, labels[0], def)
			fs.Clients = append(fs.Clients, cs)
			return ok
		case typ == "entra" && len(labels) == 0:
			es := &entraSchema{DefRange: def}
			end, ok := p.Body(func(name string, a *hcl.Attribute) bool {
				switch name {
				case "tenant_id":
					es.TenantID = a
				case "audiences":
					es.Audiences = a
				case "clock_skew":
					es.ClockSkew = a
				case "authority":
					es.Authority = a
				default:
					return false
				}
				return true
			}, nil)
			es.rng = hcl.RangeBetween(def, end)
			fs.Entra = append(fs.Entra, es)
			return ok
		}
		return false
	})
	if !ok {
		return nil, false, false
	}
	return fs, b.joined, true
}

// binder binds the items the fast front end parses to the schema structs.
type binder struct {
	allows slab.Of[allowSchema]
	split  *fasthcl.Split[*clientSchema] // the second half of a large file
	joined bool                          // the second half's result was used
}

func (b *binder) client(p *fasthcl.Parser, label fasthcl.Label, def hcl.Range) (*clientSchema, bool) {
	cs := &clientSchema{DefRange: def}
	cs.Name, cs.NameRange = p.Label(label)
	var end hcl.Range
	var ok bool
	if b.split == nil {
		end, ok = p.Body(b.clientItems(p, cs))
	} else {
		attr, block := b.clientItems(p, cs)
		var second *clientSchema
		var joined bool
		second, joined, end, ok = b.split.Body(p, attr, block)
		if joined {
			b.joined = true
			ok = joinClient(cs, second)
		}
	}
	cs.rng = hcl.RangeBetween(def, end)
	return cs, ok
}

// joinClient adds to cs what the second half of its body holds, and
// reports whether the two halves agree: an attribute set in both is
// "Attribute redefined".
func joinClient(cs, second *clientSchema) bool {
	for _, f := range []struct{ dst, src **hcl.Attribute }{
		{&cs.Sources, &second.Sources}, {&cs.Mode, &second.Mode}, {&cs.AllowSNIMismatch, &second.AllowSNIMismatch},
	} {
		if *f.src != nil {
			if *f.dst != nil {
				return false
			}
			*f.dst = *f.src
		}
	}
	cs.Identity = append(cs.Identity, second.Identity...)
	cs.Allows = append(cs.Allows, second.Allows...)
	cs.Denies = append(cs.Denies, second.Denies...)
	cs.Limits = append(cs.Limits, second.Limits...)
	return true
}

// clientItems binds the items of a client block's body to cs. An
// attribute already set in cs is a duplicate, which hclsyntax reports.
func (b *binder) clientItems(p *fasthcl.Parser, cs *clientSchema) (fasthcl.AttrFunc, fasthcl.BlockFunc) {
	return func(name string, a *hcl.Attribute) bool {
			var f **hcl.Attribute
			switch name {
			case "sources":
				f = &cs.Sources
			case "mode":
				f = &cs.Mode
			case "allow_sni_mismatch":
				f = &cs.AllowSNIMismatch
			default:
				return false
			}
			if *f != nil {
				return false
			}
			*f = a
			return true
		}, func(typ string, labels []fasthcl.Label, def hcl.Range) bool {
			switch {
			case typ == "allow" && len(labels) == 1:
				as := b.allows.New()
				*as = allowSchema{DefRange: def}
				as.Name, as.NameRange = p.Label(labels[0])
				end, ok := p.Body(func(name string, a *hcl.Attribute) bool {
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
				}, nil)
				as.rng = hcl.RangeBetween(def, end)
				cs.Allows = append(cs.Allows, as)
				return ok
			case typ == "deny" && len(labels) == 1:
				ds := &denySchema{DefRange: def}
				ds.Name, ds.NameRange = p.Label(labels[0])
				end, ok := p.Body(func(name string, a *hcl.Attribute) bool {
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
				}, nil)
				ds.rng = hcl.RangeBetween(def, end)
				cs.Denies = append(cs.Denies, ds)
				return ok
			case typ == "identity" && len(labels) == 0:
				is := &identitySchema{DefRange: def}
				end, ok := p.Body(func(name string, a *hcl.Attribute) bool {
					switch name {
					case "object_ids":
						is.ObjectIDs = a
					case "client_ids":
						is.ClientIDs = a
					default:
						return false
					}
					return true
				}, nil)
				is.rng = hcl.RangeBetween(def, end)
				cs.Identity = append(cs.Identity, is)
				return ok
			case typ == "limits" && len(labels) == 0:
				ls := &limitsSchema{DefRange: def}
				end, ok := p.Body(func(name string, a *hcl.Attribute) bool {
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
				}, nil)
				ls.rng = hcl.RangeBetween(def, end)
				cs.Limits = append(cs.Limits, ls)
				return ok
			}
			return false
		}
}

// parseSyntax parses src with hclsyntax and decodes it into the schema
// structs with gohcl. fs is nil if src does not parse.
func parseSyntax(src []byte, filename string) (*fileSchema, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() || file == nil {
		return nil, diags
	}
	fs := &fileSchema{}
	diags = append(diags, gohcl.DecodeBody(file.Body, nil, fs)...)
	for _, e := range fs.Entra {
		e.rng = blockRange(e.DefRange, e.Body)
	}
	for _, c := range fs.Clients {
		c.rng = blockRange(c.DefRange, c.Body)
		for _, i := range c.Identity {
			i.rng = blockRange(i.DefRange, i.Body)
		}
		for _, a := range c.Allows {
			a.rng = blockRange(a.DefRange, a.Body)
		}
		for _, d := range c.Denies {
			d.rng = blockRange(d.DefRange, d.Body)
		}
		for _, l := range c.Limits {
			l.rng = blockRange(l.DefRange, l.Body)
		}
	}
	return fs, diags
}
