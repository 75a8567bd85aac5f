package fasthcl

import (
	"math/big"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// The parser gives attributes compact values, Lit and List, instead of
// hclsyntax's nodes: a literal in a list costs 32 bytes instead of about
// 200 in three nodes, and a compiler can read strings and ports straight
// from the source (IsString, Text, SmallInt, Elems). Each stands for the
// nodes hclsyntax would build for it; every method hcl.Expression has is
// answered by those nodes, built on demand, and the tests compare them
// with hclsyntax's.

// file is the source the literals of one parse refer to.
type file struct {
	src      string
	filename string
}

// Lit is a string (without escapes or templates), number, true, false or
// null: one token of the source.
type Lit struct {
	f          *file
	start, end int32 // byte offsets
	line, col  int32 // of start
	kind       tokKind
}

// List is a list of literals: [ elems ].
type List struct {
	f           *file
	elems       []Lit
	open, close int32 // byte offsets of "[" and "]"
	openLine    int32
	openCol     int32
	closeLine   int32
	closeCol    int32
}

var (
	_ hcl.Expression = (*Lit)(nil)
	_ hcl.Expression = (*List)(nil)
)

func (l *Lit) tok() tok {
	return tok{kind: l.kind, start: int(l.start), end: int(l.end), line: int(l.line), col: int(l.col)}
}

// IsString reports whether the literal is a quoted string.
func (l *Lit) IsString() bool { return l.kind == tString }

// Text returns the literal's source text, without the quotes of a string:
// for a string, its value.
func (l *Lit) Text() string {
	if l.kind == tString {
		return l.f.src[l.start+1 : l.end-1]
	}
	return l.f.src[l.start:l.end]
}

// Val returns the literal's value: the Val of the LiteralValueExpr
// hclsyntax builds for it.
func (l *Lit) Val() cty.Value {
	switch s := l.Text(); {
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

// SmallInt returns a number literal's value if it is a whole number of up
// to 18 digits written with digits only, which Val converts exactly.
func (l *Lit) SmallInt() (int64, bool) {
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
func (l *Lit) Range() hcl.Range {
	return srcRange(l.f, int(l.start), int(l.end), int(l.line), int(l.col))
}

func srcRange(f *file, start, end, line, col int) hcl.Range {
	return hcl.Range{
		Filename: f.filename,
		Start:    hcl.Pos{Line: line, Column: col, Byte: start},
		End:      hcl.Pos{Line: line, Column: col + end - start, Byte: end},
	}
}

func (l *Lit) syntax() hclsyntax.Expression {
	return newSyntaxParser(l.f).litNode(l)
}

func (l *Lit) StartRange() hcl.Range { return l.syntax().StartRange() }

func (l *Lit) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return l.syntax().Value(ctx)
}

func (l *Lit) Variables() []hcl.Traversal { return l.syntax().Variables() }

// Elems returns the list's elements. The caller must not modify them.
func (l *List) Elems() []Lit { return l.elems }

func (l *List) openRange() hcl.Range {
	return srcRange(l.f, int(l.open), int(l.open)+1, int(l.openLine), int(l.openCol))
}

func (l *List) closeRange() hcl.Range {
	return srcRange(l.f, int(l.close), int(l.close)+1, int(l.closeLine), int(l.closeCol))
}

func (l *List) Range() hcl.Range { return hcl.RangeBetween(l.openRange(), l.closeRange()) }

func (l *List) StartRange() hcl.Range { return l.openRange() }

func (l *List) syntax() *hclsyntax.TupleConsExpr {
	return newSyntaxParser(l.f).listNode(l)
}

func (l *List) Value(ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return l.syntax().Value(ctx)
}

func (l *List) Variables() []hcl.Traversal { return l.syntax().Variables() }

// ExprList is for hcl.ExprList.
func (l *List) ExprList() []hcl.Expression { return l.syntax().ExprList() }

// newSyntaxParser returns a parser that builds hclsyntax nodes for the
// compact values of f.
func newSyntaxParser(f *file) *Parser {
	return &Parser{src: f.src, filename: f.filename}
}

// Syntax returns the hclsyntax nodes e stands for if it is a compact
// value (a *Lit or *List), else e: for tests that compare them with
// hclsyntax's.
func Syntax(e hcl.Expression) hcl.Expression {
	switch e := e.(type) {
	case *Lit:
		return e.syntax()
	case *List:
		return e.syntax()
	}
	return e
}

// litNode returns the node hclsyntax builds for l.
func (p *Parser) litNode(l *Lit) hclsyntax.Expression {
	e, _ := p.termNode(l.tok())
	return e
}

// listNode returns the node hclsyntax builds for l.
func (p *Parser) listNode(l *List) *hclsyntax.TupleConsExpr {
	tc := p.tuples.New()
	if n := len(l.elems); n > 0 {
		tc.Exprs = p.exprs.Slice(n)
		for i := range l.elems {
			tc.Exprs[i] = p.litNode(&l.elems[i])
		}
	}
	tc.SrcRange = l.Range()
	tc.OpenRange = l.openRange()
	return tc
}

// termNode returns the node of the string, number, true, false or null t.
func (p *Parser) termNode(t tok) (hclsyntax.Expression, bool) {
	switch t.kind {
	case tString:
		tmpl := p.tmpls.New()
		tmpl.SrcRange = p.rng(t)
		lit := p.lits.New()
		lit.Val = cty.StringVal(p.src[t.start+1 : t.end-1])
		if t.end-t.start > 2 {
			lit.SrcRange = p.rng(tok{start: t.start + 1, end: t.end - 1, line: t.line, col: t.col + 1})
		} else {
			// hclsyntax places an empty string's part just after its
			// closing quote.
			lit.SrcRange = p.rng(tok{start: t.end, end: t.end, line: t.line, col: t.col + 2})
		}
		tmpl.Parts = p.exprs.Slice(1)
		tmpl.Parts[0] = lit
		return tmpl, true
	case tNumber:
		v, ok := numberVal(p.src[t.start:t.end])
		if !ok {
			return nil, false
		}
		lit := p.lits.New()
		lit.Val, lit.SrcRange = v, p.rng(t)
		return lit, true
	case tIdent:
		lit := p.lits.New()
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
