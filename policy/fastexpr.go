package policy

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// parseFastSchema gives attributes compact values, fastLit and fastList,
// instead of hclsyntax's nodes: a literal in a list costs 32 bytes
// instead of about 200 in three nodes, and the compiler reads strings and
// ports straight from the source. Each stands for the nodes parseFast
// would build, which syntax returns; every method hcl.Expression has that
// the compiler does not answer itself is answered by those nodes, and
// FuzzParseFast compares them with hclsyntax's.

// fastFile is the source the literals of one parse refer to.
type fastFile struct {
	src      string
	filename string
}

// fastLit is a string (without escapes or templates), number, true, false
// or null: one token of f.src.
type fastLit struct {
	f          *fastFile
	start, end int32 // byte offsets
	line, col  int32 // of start
	kind       tokKind
}

// fastList is a list of literals: [ elems ].
type fastList struct {
	f           *fastFile
	elems       []fastLit
	open, close int32 // byte offsets of "[" and "]"
	openLine    int32
	openCol     int32
	closeLine   int32
	closeCol    int32
}

var (
	_ hcl.Expression = (*fastLit)(nil)
	_ hcl.Expression = (*fastList)(nil)
)

func (l *fastLit) tok() tok {
	return tok{kind: l.kind, start: int(l.start), end: int(l.end), line: int(l.line), col: int(l.col)}
}

// text returns the literal's source text, without the quotes of a string.
func (l *fastLit) text() string {
	if l.kind == tString {
		return l.f.src[l.start+1 : l.end-1]
	}
	return l.f.src[l.start:l.end]
}

// value returns the literal's value: the Val of the LiteralValueExpr
// hclsyntax builds for it.
func (l *fastLit) value() cty.Value {
	switch s := l.text(); {
	case l.kind == tString:
		return cty.StringVal(s)
	case l.kind == tNumber:
		v, _ := numberVal(s) // checked by the parser
		return v
	case s == "true":
		return cty.True
	case s == "false":
		return cty.False
	}
	return cty.NullVal(cty.DynamicPseudoType)
}

// smallInt returns a number literal's value if it is a whole number
// written with digits only, which numberVal converts exactly.
func (l *fastLit) smallInt() (int64, bool) {
	if l.kind != tNumber || l.end-l.start > 18 {
		return 0, false
	}
	n := int64(0)
	for _, c := range []byte(l.f.src[l.start:l.end]) {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Range is the range of the literal's token, quotes included.
func (l *fastLit) Range() hcl.Range {
	return fastRange(l.f, int(l.start), int(l.end), int(l.line), int(l.col))
}

func fastRange(f *fastFile, start, end, line, col int) hcl.Range {
	return hcl.Range{
		Filename: f.filename,
		Start:    hcl.Pos{Line: line, Column: col, Byte: start},
		End:      hcl.Pos{Line: line, Column: col + end - start, Byte: end},
	}
}

func (l *fastLit) syntax() hclsyntax.Expression {
	return newSyntaxParser(l.f).litNode(l)
}

func (l *fastLit) StartRange() hcl.Range { return l.syntax().StartRange() }

func (l *fastLit) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return l.syntax().Value(ctx)
}

func (l *fastLit) Variables() []hcl.Traversal { return l.syntax().Variables() }

func (l *fastList) openRange() hcl.Range {
	return fastRange(l.f, int(l.open), int(l.open)+1, int(l.openLine), int(l.openCol))
}

func (l *fastList) closeRange() hcl.Range {
	return fastRange(l.f, int(l.close), int(l.close)+1, int(l.closeLine), int(l.closeCol))
}

func (l *fastList) Range() hcl.Range { return hcl.RangeBetween(l.openRange(), l.closeRange()) }

func (l *fastList) StartRange() hcl.Range { return l.openRange() }

func (l *fastList) syntax() *hclsyntax.TupleConsExpr {
	return newSyntaxParser(l.f).listNode(l)
}

func (l *fastList) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return l.syntax().Value(ctx)
}

func (l *fastList) Variables() []hcl.Traversal { return l.syntax().Variables() }

// ExprList is for hcl.ExprList.
func (l *fastList) ExprList() []hcl.Expression { return l.syntax().ExprList() }

// newSyntaxParser returns a parser that builds hclsyntax nodes for the
// compact values of f.
func newSyntaxParser(f *fastFile) *fastParser {
	return &fastParser{src: f.src, filename: f.filename}
}

// litNode returns the node parseFast builds for l.
func (p *fastParser) litNode(l *fastLit) hclsyntax.Expression {
	e, _ := p.termNode(l.tok())
	return e
}

// listNode returns the node parseFast builds for l.
func (p *fastParser) listNode(l *fastList) *hclsyntax.TupleConsExpr {
	tc := p.tuples.new()
	if n := len(l.elems); n > 0 {
		tc.Exprs = p.exprs.slice(n)
		for i := range l.elems {
			tc.Exprs[i] = p.litNode(&l.elems[i])
		}
	}
	tc.SrcRange = l.Range()
	tc.OpenRange = l.openRange()
	return tc
}

// syntaxExpr returns the hclsyntax nodes e stands for, e itself if it is
// not a compact value.
func (p *fastParser) syntaxExpr(e hcl.Expression) hcl.Expression {
	switch e := e.(type) {
	case *fastLit:
		return p.litNode(e)
	case *fastList:
		return p.listNode(e)
	}
	return e
}

// compactExpr parses an attribute's value as expr does, into a fastLit or
// a fastList, and returns it with the range of its last token.
func (p *fastParser) compactExpr() (hcl.Expression, hcl.Range, bool) {
	t := p.read()
	if t.kind != tOBrack {
		if !p.validTerm(t) {
			return nil, hcl.Range{}, false
		}
		l := p.flits.new()
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
	l := p.flists.new()
	*l = fastList{
		f:    p.srcFile,
		open: int32(open.start), openLine: int32(open.line), openCol: int32(open.col),
		close: int32(close.start), closeLine: int32(close.line), closeCol: int32(close.col),
	}
	if n := len(p.litStack) - base; n > 0 {
		l.elems = p.flits.slice(n)
		copy(l.elems, p.litStack[base:])
		p.litStack = p.litStack[:base]
	}
	return l, p.rng(close), true
}

func (p *fastParser) lit(t tok) fastLit {
	return fastLit{f: p.srcFile, start: int32(t.start), end: int32(t.end), line: int32(t.line), col: int32(t.col), kind: t.kind}
}

// validTerm reports whether term would accept t.
func (p *fastParser) validTerm(t tok) bool {
	switch t.kind {
	case tString:
		return true
	case tNumber:
		l := p.lit(t)
		if _, ok := l.smallInt(); ok {
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
