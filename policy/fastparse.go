package policy

import (
	"math/big"
	"sync/atomic"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// parseFast is a front end for the plain subset of HCL that policies are
// written in. It returns the body hclsyntax.ParseConfig would return for
// src, node for node and range for range, about ten times faster, or
// ok=false when src has anything outside that subset or anything
// hclsyntax would report. The caller then parses with hclsyntax, so every
// syntax diagnostic still comes from hclsyntax. FuzzParseFast checks the
// equivalence.
//
// The subset: ASCII text (other valid UTF-8 only inside line comments);
// newlines "\n" or "\r\n"; "#", "//" and "/* */" comments; attributes whose
// value is a string, a number, true, false, null or a one-level list of
// those; and blocks with quoted labels whose "{" ends its line or is
// followed by "}". Strings have no escapes, "$" or "%" (so no templates).
//
// Labels and strings are substrings of one copy of src, so a loaded policy
// keeps its source text in memory.
func parseFast(src []byte, filename string) (body *hclsyntax.Body, ok bool) {
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		return nil, false // a byte order mark shifts positions; leave it to hclsyntax
	}
	p := &fastParser{src: string(src), filename: filename, line: 1}
	return p.file()
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tNewline
	tIdent
	tNumber
	tString
	tEqual
	tOBrack
	tCBrack
	tComma
	tOBrace
	tCBrace
	tOther // anything the fast path does not handle
)

// tok is a token. A token never spans lines, except a newline or a line
// comment, which ends the line it is on.
type tok struct {
	kind       tokKind
	start, end int // byte offsets
	line, col  int // of start
}

type fastParser struct {
	src       string
	filename  string
	pos       int // next byte to scan
	line      int // line of pos
	lineStart int // byte offset of the start of line

	la    tok // lookahead, valid if hasLA
	hasLA bool

	// For parseFastSchema's split (fastschema.go).
	split   *parseSplit  // the second half being parsed, until joined
	stopped bool         // items stopped at split.at
	joined  bool         // the second half's result was used
	abort   *atomic.Bool // set: give up (this parser is a second half)

	// Scratch stacks for the items of the bodies and lists being parsed.
	attrStack  []*hclsyntax.Attribute
	blockStack []*hclsyntax.Block
	exprStack  []hclsyntax.Expression

	// For parseFastSchema's compact values (fastexpr.go).
	srcFile  *fastFile
	litStack []fastLit
	flits    slab[fastLit]
	flists   slab[fastList]

	blocks    slab[hclsyntax.Block]
	bodies    slab[hclsyntax.Body]
	attrs     slab[hclsyntax.Attribute]
	tuples    slab[hclsyntax.TupleConsExpr]
	tmpls     slab[hclsyntax.TemplateExpr]
	lits      slab[hclsyntax.LiteralValueExpr]
	exprs     slab[hclsyntax.Expression]
	labels    slab[string]
	hclAttrs  slab[hcl.Attribute]
	allows    slab[allowSchema]
	labelRngs slab[hcl.Range]
}

// slab hands out values from shared backing arrays, one allocation per
// slabSize values instead of one each. The values live as long as any of
// them does, which suits the parts of one policy.
type slab[T any] struct{ buf []T }

const slabSize = 256

func (s *slab[T]) new() *T {
	if len(s.buf) == 0 {
		s.buf = make([]T, slabSize)
	}
	p := &s.buf[0]
	s.buf = s.buf[1:]
	return p
}

// slice returns a slice of n values with capacity n.
func (s *slab[T]) slice(n int) []T {
	if n > slabSize/4 {
		return make([]T, n)
	}
	if len(s.buf) < n {
		s.buf = make([]T, slabSize)
	}
	r := s.buf[:n:n]
	s.buf = s.buf[n:]
	return r
}

func (p *fastParser) rng(t tok) hcl.Range {
	return hcl.Range{
		Filename: p.filename,
		Start:    hcl.Pos{Line: t.line, Column: t.col, Byte: t.start},
		End:      hcl.Pos{Line: t.line, Column: t.col + t.end - t.start, Byte: t.end},
	}
}

func (p *fastParser) peek() tok {
	if !p.hasLA {
		p.la, p.hasLA = p.scan(), true
	}
	return p.la
}

func (p *fastParser) read() tok {
	t := p.peek()
	if t.kind != tEOF { // EOF stays, as in hclsyntax's peeker
		p.hasLA = false
	}
	return t
}

// peekSkipNL peeks past newlines, as hclsyntax does inside brackets.
func (p *fastParser) peekSkipNL() tok {
	for {
		t := p.peek()
		if t.kind != tNewline {
			return t
		}
		p.read()
	}
}

func isIdentStart(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

func isIdentPart(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' || c == '-' }

// identPart[c] is isIdentPart(c), for the scanner's inner loop.
var identPart = func() (t [256]bool) {
	for c := range t {
		t[c] = isIdentPart(byte(c))
	}
	return t
}()

// punct maps the one-byte punctuation tokens to their kinds.
var punct = [256]tokKind{'[': tOBrack, ']': tCBrack, ',': tComma, '{': tOBrace, '}': tCBrace}

func (p *fastParser) scan() tok {
	s := p.src
	for {
		i := p.pos
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		p.pos = i
		t := tok{start: i, line: p.line, col: i - p.lineStart + 1}
		if i >= len(s) {
			t.kind, t.end = tEOF, i
			return t
		}
		c := s[i]
		switch c {
		case '=':
			if i+1 < len(s) && (s[i+1] == '=' || s[i+1] == '>') {
				t.kind = tOther
				return t
			}
			p.pos, t.kind, t.end = i+1, tEqual, i+1
			return t
		case '[', ']', ',', '{', '}':
			p.pos, t.kind, t.end = i+1, punct[c], i+1
			return t
		}
		var next byte
		if i+1 < len(s) {
			next = s[i+1]
		}
		switch {
		case c == '\n' || c == '\r' && next == '\n':
			t.kind, t.end = tNewline, i+1
			if c == '\r' {
				t.end++
			}
			p.newline(t.end)
			return t
		case c == '#' || c == '/' && next == '/':
			j := i
			for j < len(s) && s[j] != '\n' {
				j++
			}
			if j == len(s) {
				// A comment at the end of the file: its length sets the
				// EOF position, so it must be ASCII.
				if !isASCII(s[i:]) {
					t.kind = tOther
					return t
				}
				p.pos = j
				continue
			}
			// hclsyntax counts lines by grapheme cluster, and in invalid
			// UTF-8 a cluster may swallow the newline.
			if !utf8.ValidString(s[i:j]) {
				t.kind = tOther
				return t
			}
			// hclsyntax turns a comment that ends a line into a newline.
			t.kind, t.end = tNewline, j+1
			p.newline(t.end)
			return t
		case c == '/' && next == '*':
			j := i + 2
			for j+1 < len(s) && !(s[j] == '*' && s[j+1] == '/') {
				j++
			}
			if j+1 >= len(s) || !isASCII(s[i:j]) {
				t.kind = tOther
				return t
			}
			for k := i; k < j; k++ {
				if s[k] == '\n' {
					p.line++
					p.lineStart = k + 1
				}
			}
			p.pos = j + 2
			continue
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if ch := s[j]; ch < ' ' && ch != '\t' || ch > '~' || ch == '\\' || ch == '$' || ch == '%' {
					t.kind = tOther
					return t
				}
				j++
			}
			if j == len(s) {
				t.kind = tOther
				return t
			}
			t.kind, t.end = tString, j+1
		case isDigit(c):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				j += 2
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			if j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E' || isIdentPart(s[j]) || s[j] >= 0x80) {
				t.kind = tOther
				return t
			}
			t.kind, t.end = tNumber, j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && identPart[s[j]] {
				j++
			}
			if j < len(s) && s[j] >= 0x80 {
				t.kind = tOther // may continue the identifier
				return t
			}
			t.kind, t.end = tIdent, j
		default:
			t.kind = tOther
			return t
		}
		p.pos = t.end
		return t
	}
}

func (p *fastParser) newline(end int) {
	p.pos = end
	p.line++
	p.lineStart = end
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (p *fastParser) file() (*hclsyntax.Body, bool) {
	first := p.peek()
	if first.kind == tOther {
		return nil, false
	}
	b, _, ok := p.body(tEOF, p.rng(first))
	if !ok || p.peek().kind != tEOF {
		return nil, false
	}
	return b, true
}

// body parses the items of a body up to end, which it consumes and
// returns the range of. start is the range hclsyntax starts the body's
// range with.
func (p *fastParser) body(end tokKind, start hcl.Range) (*hclsyntax.Body, hcl.Range, bool) {
	attrBase, blockBase := len(p.attrStack), len(p.blockStack)
	var endRange hcl.Range
	for done := false; !done; {
		t := p.peek()
		switch t.kind {
		case end:
			endRange = p.rng(t)
			p.read()
			done = true
		case tNewline:
			p.read()
		case tIdent:
			p.read()
			switch p.peek().kind {
			case tEqual:
				a, ok := p.attribute(t)
				if !ok {
					return nil, hcl.Range{}, false
				}
				for _, prev := range p.attrStack[attrBase:] {
					if prev.Name == a.Name {
						return nil, hcl.Range{}, false // "Attribute redefined"
					}
				}
				p.attrStack = append(p.attrStack, a)
			case tString, tOBrace:
				blk, ok := p.block(t)
				if !ok {
					return nil, hcl.Range{}, false
				}
				p.blockStack = append(p.blockStack, blk)
			default:
				return nil, hcl.Range{}, false
			}
		default:
			return nil, hcl.Range{}, false
		}
	}
	b := p.bodies.new()
	b.Attributes = make(hclsyntax.Attributes, len(p.attrStack)-attrBase)
	for _, a := range p.attrStack[attrBase:] {
		b.Attributes[a.Name] = a
	}
	p.attrStack = p.attrStack[:attrBase]
	if n := len(p.blockStack) - blockBase; n > 0 {
		b.Blocks = make(hclsyntax.Blocks, n)
		copy(b.Blocks, p.blockStack[blockBase:])
		clear(p.blockStack[blockBase:])
		p.blockStack = p.blockStack[:blockBase]
	} else {
		b.Blocks = hclsyntax.Blocks{}
	}
	b.SrcRange = hcl.RangeBetween(start, endRange)
	b.EndRange = hcl.Range{Filename: p.filename, Start: endRange.End, End: endRange.End}
	return b, endRange, true
}

func (p *fastParser) attribute(ident tok) (*hclsyntax.Attribute, bool) {
	eq := p.read()
	expr, endRange, ok := p.expr()
	if !ok {
		return nil, false
	}
	if !p.endOfLine() {
		return nil, false
	}
	a := p.attrs.new()
	*a = hclsyntax.Attribute{
		Name:        p.src[ident.start:ident.end],
		Expr:        expr,
		SrcRange:    hcl.RangeBetween(p.rng(ident), endRange),
		NameRange:   p.rng(ident),
		EqualsRange: p.rng(eq),
	}
	return a, true
}

func (p *fastParser) block(ident tok) (*hclsyntax.Block, bool) {
	n := 0
	var labels [2]tok
	for p.peek().kind == tString {
		if n == len(labels) {
			return nil, false
		}
		labels[n] = p.read()
		n++
	}
	oBrace := p.read()
	if oBrace.kind != tOBrace {
		return nil, false
	}
	if k := p.peek().kind; k != tNewline && k != tCBrace {
		return nil, false // a one-line block, or a block missing its "}"
	}
	body, cBrace, ok := p.body(tCBrace, p.rng(oBrace))
	if !ok {
		return nil, false
	}
	if !p.endOfLine() {
		return nil, false
	}
	blk := p.blocks.new()
	blk.Type = p.src[ident.start:ident.end]
	blk.Body = body
	blk.TypeRange = p.rng(ident)
	blk.OpenBraceRange = p.rng(oBrace)
	blk.CloseBraceRange = cBrace
	if n > 0 {
		blk.Labels = p.labels.slice(n)
		blk.LabelRanges = p.labelRngs.slice(n)
		for i, l := range labels[:n] {
			blk.Labels[i] = p.src[l.start+1 : l.end-1]
			blk.LabelRanges[i] = p.rng(l)
		}
	}
	return blk, true
}

// expr parses an attribute's value and returns it with the range of its
// last token.
func (p *fastParser) expr() (hclsyntax.Expression, hcl.Range, bool) {
	t := p.peek()
	if t.kind != tOBrack {
		e, ok := p.term()
		return e, p.rng(t), ok
	}
	open := p.read()
	base := len(p.exprStack)
	close, ok := p.listElems(func(t tok) bool {
		e, ok := p.termNode(t)
		if ok {
			p.exprStack = append(p.exprStack, e)
		}
		return ok
	})
	if !ok {
		return nil, hcl.Range{}, false
	}
	tc := p.tuples.new()
	if n := len(p.exprStack) - base; n > 0 {
		tc.Exprs = p.exprs.slice(n)
		copy(tc.Exprs, p.exprStack[base:])
		clear(p.exprStack[base:])
		p.exprStack = p.exprStack[:base]
	}
	closeRange := p.rng(close)
	tc.SrcRange = hcl.RangeBetween(p.rng(open), closeRange)
	tc.OpenRange = p.rng(open)
	return tc, closeRange, true
}

// listElems parses the elements of a list, after its "[", up to and
// including the "]" it returns: elements separated by commas, a trailing
// comma allowed, newlines anywhere. It passes each element's token to elem
// and fails if elem does.
func (p *fastParser) listElems(elem func(tok) bool) (close tok, ok bool) {
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

// term parses a string, number, true, false or null.
func (p *fastParser) term() (hclsyntax.Expression, bool) {
	return p.termNode(p.read())
}

// termNode returns the node of the string, number, true, false or null t.
func (p *fastParser) termNode(t tok) (hclsyntax.Expression, bool) {
	switch t.kind {
	case tString:
		tmpl := p.tmpls.new()
		tmpl.SrcRange = p.rng(t)
		lit := p.lits.new()
		lit.Val = cty.StringVal(p.src[t.start+1 : t.end-1])
		if t.end-t.start > 2 {
			lit.SrcRange = p.rng(tok{start: t.start + 1, end: t.end - 1, line: t.line, col: t.col + 1})
		} else {
			// hclsyntax places an empty string's part just after its
			// closing quote.
			lit.SrcRange = p.rng(tok{start: t.end, end: t.end, line: t.line, col: t.col + 2})
		}
		tmpl.Parts = p.exprs.slice(1)
		tmpl.Parts[0] = lit
		return tmpl, true
	case tNumber:
		v, ok := numberVal(p.src[t.start:t.end])
		if !ok {
			return nil, false
		}
		lit := p.lits.new()
		lit.Val, lit.SrcRange = v, p.rng(t)
		return lit, true
	case tIdent:
		lit := p.lits.new()
		switch p.src[t.start:t.end] {
		case "true":
			lit.Val = cty.True
		case "false":
			lit.Val = cty.False
		case "null":
			lit.Val = cty.NullVal(cty.DynamicPseudoType)
		default:
			return nil, false
		}
		lit.SrcRange = p.rng(t)
		return lit, true
	}
	return nil, false
}

// numberVal returns the value hclsyntax gives the number literal s. A
// whole number of up to 18 digits is converted without parsing it as a
// decimal fraction, which is most of the cost; the result is identical.
func numberVal(s string) (cty.Value, bool) {
	if len(s) <= 18 {
		n, whole := int64(0), true
		for i := 0; i < len(s) && whole; i++ {
			whole = isDigit(s[i])
			n = n*10 + int64(s[i]-'0')
		}
		if whole {
			return cty.NumberVal(new(big.Float).SetPrec(512).SetMode(big.ToNearestEven).SetInt64(n)), true
		}
	}
	v, err := cty.ParseNumberVal(s)
	return v, err == nil
}
