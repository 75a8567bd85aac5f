package policy

import (
	"math"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
)

// parseFastSchema parses src as parseFast does, but straight into the
// schema structs, without the block bodies and attribute maps that only
// decoding reads: a third of the allocations of a large policy. It
// declines, like parseFast, anything outside the subset, and also
// anything the decoder would report: an attribute or block the schema does
// not name, a block with the wrong number of labels. The structs are
// those decoder.file fills from hclsyntax's body, except that Body is nil;
// FuzzParseFast checks that.
func parseFastSchema(src []byte, filename string) (*fileSchema, bool) {
	minSplit := parallelParseBytes
	if runtime.GOMAXPROCS(0) < 2 {
		minSplit = math.MaxInt
	}
	fs, _, ok := parseFastSchemaSplit(src, filename, minSplit)
	return fs, ok
}

// parallelParseBytes is the file size from which parseFastSchema parses
// the second half of a large client block on another goroutine.
const parallelParseBytes = 1 << 20

// parseFastSchemaSplit is parseFastSchema with the size from which it
// splits, so that tests can split small files; joined reports whether the
// second half's result was used.
func parseFastSchemaSplit(src []byte, filename string, minSplit int) (fs *fileSchema, joined, ok bool) {
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		return nil, false, false
	}
	if len(src) > math.MaxInt32 {
		return nil, false, false // compact values hold 32-bit offsets
	}
	p := &fastParser{src: string(src), filename: filename, line: 1}
	p.srcFile = &fastFile{src: p.src, filename: filename}
	if p.peek().kind == tOther {
		return nil, false, false
	}
	if len(src) >= minSplit {
		if sp := p.startSplit(); sp != nil {
			defer func() {
				sp.abort.Store(true)
				<-sp.done
			}()
		}
	}
	fs = &fileSchema{}
	_, ok = p.items(tEOF, func(name string, a *hcl.Attribute) bool {
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
	}, -1)
	if !ok {
		return nil, false, false
	}
	return fs, p.joined, true
}

// items parses the items of a body up to end, which it consumes and
// returns the range of. It calls attr for each attribute and block after
// each block header (the parser then at the first token of the block's
// body), and fails if either returns false.
//
// With stopAt at least 0, items stops before an item that starts at byte
// stopAt and sets p.stopped.
func (p *fastParser) items(end tokKind,
	attr func(name string, a *hcl.Attribute) bool,
	block func(typ string, labels []tok, def, open hcl.Range) bool,
	stopAt int,
) (hcl.Range, bool) {
	var names [8]string // attribute names seen, for "Attribute redefined"
	nNames := 0
	for {
		if p.abort != nil && p.abort.Load() {
			return hcl.Range{}, false
		}
		if stopAt >= 0 && !p.hasLA && p.pos == stopAt {
			p.stopped = true
			return hcl.Range{}, true
		}
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
			expr, endRange, ok := p.compactExpr()
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
	stopAt := -1
	if p.split != nil {
		stopAt = p.split.at
	}
	end, ok := p.clientBody(cs, stopAt)
	if p.stopped {
		p.stopped = false
		end, ok = p.joinSplit(cs)
	}
	cs.rng = hcl.RangeBetween(def, end)
	return cs, ok
}

// clientBody parses the items of a client block's body into cs. An
// attribute already set in cs is a duplicate, which hclsyntax reports.
func (p *fastParser) clientBody(cs *clientSchema, stopAt int) (hcl.Range, bool) {
	return p.items(tCBrace, func(name string, a *hcl.Attribute) bool {
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
			}, noBlocks, -1)
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
			}, noBlocks, -1)
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
			}, noBlocks, -1)
			ls.rng = hcl.RangeBetween(def, end)
			cs.Limits = append(cs.Limits, ls)
			return ok
		}
		return false
	}, stopAt)
}

// parseSplit is the second half of a large file, parsed on its own
// goroutine from a line that looks like the start of a rule block in a
// client block. The guess is checked: the result is used only if the
// first half's parse reaches an item boundary of a client block's body at
// exactly that byte and line, from where parsing is a function of the
// position alone, so the result is what one pass would produce.
type parseSplit struct {
	at, line int // where the second half starts: byte offset, line
	abort    atomic.Bool
	done     chan struct{}

	q   *fastParser   // the second half's parser, in its final state
	cs  *clientSchema // what it parsed of the client block's body
	end hcl.Range     // the body's closing brace
	ok  bool
}

// startSplit starts parsing the second half of p's source, if it finds a
// place to split, and returns the job or nil.
func (p *fastParser) startSplit() *parseSplit {
	s := p.src
	at := len(s) / 2
	for n := 0; ; n++ {
		j := strings.IndexByte(s[at:], '\n')
		if j < 0 || n == 1000 {
			return nil
		}
		at += j + 1
		k := at
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if strings.HasPrefix(s[k:], "allow \"") || strings.HasPrefix(s[k:], "deny \"") {
			break
		}
	}
	sp := &parseSplit{at: at, line: 1 + strings.Count(s[:at], "\n"), done: make(chan struct{})}
	q := &fastParser{src: s, filename: p.filename, pos: at, line: sp.line, lineStart: at, abort: &sp.abort, srcFile: p.srcFile}
	go func() {
		defer close(sp.done)
		cs := &clientSchema{}
		sp.end, sp.ok = q.clientBody(cs, -1)
		sp.q, sp.cs = q, cs
	}()
	p.split = sp
	return sp
}

// joinSplit continues the client block cs, whose body p stopped parsing
// at p.split.at, with the second half's result if it applies, or by
// parsing on.
func (p *fastParser) joinSplit(cs *clientSchema) (hcl.Range, bool) {
	sp := p.split
	p.split = nil // one join only
	<-sp.done
	if !sp.ok || p.line != sp.line || p.lineStart != sp.at {
		return p.clientBody(cs, -1)
	}
	for _, f := range []struct{ dst, src **hcl.Attribute }{
		{&cs.Sources, &sp.cs.Sources}, {&cs.Mode, &sp.cs.Mode}, {&cs.AllowSNIMismatch, &sp.cs.AllowSNIMismatch},
	} {
		if *f.src != nil {
			if *f.dst != nil {
				return hcl.Range{}, false // set in both halves: "Attribute redefined"
			}
			*f.dst = *f.src
		}
	}
	cs.Allows = append(cs.Allows, sp.cs.Allows...)
	cs.Denies = append(cs.Denies, sp.cs.Denies...)
	cs.Limits = append(cs.Limits, sp.cs.Limits...)
	q := sp.q
	p.pos, p.line, p.lineStart, p.la, p.hasLA = q.pos, q.line, q.lineStart, q.la, q.hasLA
	p.joined = true
	return sp.end, true
}

func noBlocks(string, []tok, hcl.Range, hcl.Range) bool { return false }
