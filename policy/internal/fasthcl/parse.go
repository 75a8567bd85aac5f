package fasthcl

import (
	"math"

	"github.com/hashicorp/hcl/v2"
)

// AttrFunc takes an attribute of the body being parsed: its name, and the
// attribute, whose Expr is a *Lit or a *List. It returns false to decline
// the source, for an attribute the schema does not have.
type AttrFunc func(name string, a *hcl.Attribute) bool

// BlockFunc takes a block of the body being parsed, after its header: its
// type, labels and definition range (type and labels). The parser is then
// at the first token of the block's body, which BlockFunc must parse with
// Body. It returns false to decline the source, for a block the schema
// does not have or whose body Body declined. A nil BlockFunc declines
// every block.
type BlockFunc func(typ string, labels []Label, def hcl.Range) bool

// A Label is a block label; Parser.Label gives its text and range.
type Label tok

// NewParser returns a parser for src, or false for a source it declines
// from the start: one with a byte order mark (it shifts positions; leave it
// to hclsyntax), one of 2 GiB or more (compact values hold 32-bit
// offsets), or one whose first token is outside the subset.
func NewParser(src []byte, filename string) (*Parser, bool) {
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		return nil, false
	}
	if len(src) > math.MaxInt32 {
		return nil, false
	}
	p := &Parser{src: string(src), filename: filename, line: 1}
	p.srcFile = &file{src: p.src, filename: filename}
	if p.peek().kind == tOther {
		return nil, false
	}
	return p, true
}

// File parses the top-level body, up to the end of the source, and
// reports whether it accepts it: every item in the subset, and attr and
// block accepting every attribute and block.
func (p *Parser) File(attr AttrFunc, block BlockFunc) bool {
	_, ok := p.items(tEOF, attr, block, -1)
	return ok
}

// Body parses the body of the block whose header was just read, up to and
// including its "}", whose range it returns, and reports whether it
// accepts it, as File does.
func (p *Parser) Body(attr AttrFunc, block BlockFunc) (hcl.Range, bool) {
	return p.items(tCBrace, attr, block, -1)
}

// items parses the items of a body up to end, which it consumes and
// returns the range of. It calls attr for each attribute and block after
// each block header (the parser then at the first token of the block's
// body), and fails if either returns false or block is nil.
//
// With stopAt at least 0, items stops before an item that starts at byte
// stopAt and sets p.stopped.
func (p *Parser) items(end tokKind,
	attr AttrFunc,
	block BlockFunc,
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
			a := p.hclAttrs.New()
			*a = hcl.Attribute{Name: name, Expr: expr, Range: hcl.RangeBetween(p.rng(t), endRange), NameRange: p.rng(t)}
			if !attr(name, a) {
				return hcl.Range{}, false
			}
		case tString, tOBrace:
			var labels [2]Label
			n := 0
			for p.peek().kind == tString {
				if n == len(labels) {
					return hcl.Range{}, false
				}
				labels[n] = Label(p.read())
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
				def = hcl.RangeBetween(def, p.rng(tok(labels[n-1])))
			}
			if block == nil || !block(name, labels[:n], def) || !p.endOfLine() {
				return hcl.Range{}, false
			}
		default:
			return hcl.Range{}, false
		}
	}
}

// endOfLine consumes the newline that must end an item, or sees EOF.
func (p *Parser) endOfLine() bool {
	switch p.peek().kind {
	case tNewline:
		p.read()
		return true
	case tEOF:
		return true
	}
	return false
}

// Label returns a label's text, without the quotes, and its range.
func (p *Parser) Label(l Label) (string, hcl.Range) {
	return p.src[l.start+1 : l.end-1], p.rng(tok(l))
}

// listElems parses the elements of a list, after its "[", up to and
// including the "]" it returns: elements separated by commas, a trailing
// comma allowed, newlines anywhere. It passes each element's token to elem
// and fails if elem does.
func (p *Parser) listElems(elem func(tok) bool) (close tok, ok bool) {
	for {
		if t := p.peekSkipNL(); t.kind == tCBrack {
			return p.read(), true
		}
		if !elem(p.read()) {
			return tok{}, false
		}
		t := p.peekSkipNL()
		if t.kind == tCBrack {
			return p.read(), true
		}
		if t.kind != tComma {
			return tok{}, false
		}
		p.read()
	}
}

// compactExpr parses an attribute's value as expr does, into a Lit or
// a List, and returns it with the range of its last token.
func (p *Parser) compactExpr() (hcl.Expression, hcl.Range, bool) {
	t := p.read()
	if t.kind != tOBrack {
		if !p.validTerm(t) {
			return nil, hcl.Range{}, false
		}
		l := p.flits.New()
		*l = p.lit(t)
		return l, p.rng(t), true
	}
	open := t
	base := len(p.litStack)
	close, ok := p.listElems(func(t tok) bool {
		if !p.validTerm(t) {
			return false
		}
		p.litStack = append(p.litStack, p.lit(t))
		return true
	})
	if !ok {
		return nil, hcl.Range{}, false
	}
	l := p.flists.New()
	*l = List{
		f:    p.srcFile,
		open: int32(open.start), openLine: int32(open.line), openCol: int32(open.col),
		close: int32(close.start), closeLine: int32(close.line), closeCol: int32(close.col),
	}
	if n := len(p.litStack) - base; n > 0 {
		l.elems = p.flits.Slice(n)
		copy(l.elems, p.litStack[base:])
		p.litStack = p.litStack[:base]
	}
	return l, p.rng(close), true
}

func (p *Parser) lit(t tok) Lit {
	return Lit{f: p.srcFile, start: int32(t.start), end: int32(t.end), line: int32(t.line), col: int32(t.col), kind: t.kind}
}

// validTerm reports whether term would accept t.
func (p *Parser) validTerm(t tok) bool {
	switch t.kind {
	case tString:
		return true
	case tNumber:
		l := p.lit(t)
		if _, ok := l.SmallInt(); ok {
			return true
		}
		_, ok := numberVal(p.src[t.start:t.end])
		return ok
	case tIdent:
		switch p.src[t.start:t.end] {
		case "true", "false", "null":
			return true
		}
	}
	return false
}
