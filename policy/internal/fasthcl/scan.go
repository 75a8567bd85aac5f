package fasthcl

import (
	"sync/atomic"
	"unicode/utf8"

	"github.com/azegress/azegress/policy/internal/slab"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

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

// Parser parses one source. Its methods are not safe for concurrent use;
// a Split parses the second half of a source with a Parser of its own.
type Parser struct {
	src       string
	filename  string
	pos       int // next byte to scan
	line      int // line of pos
	lineStart int // byte offset of the start of line

	la    tok // lookahead, valid if hasLA
	hasLA bool

	stopped bool         // items stopped at its stopAt (split.go)
	abort   *atomic.Bool // set: give up (this parser is a second half)

	// Compact values (expr.go) and the attributes that hold them.
	srcFile  *file
	litStack []Lit
	flits    slab.Of[Lit]
	flists   slab.Of[List]
	hclAttrs slab.Of[hcl.Attribute]

	// hclsyntax nodes for compact values, built on demand (expr.go).
	tuples slab.Of[hclsyntax.TupleConsExpr]
	tmpls  slab.Of[hclsyntax.TemplateExpr]
	lits   slab.Of[hclsyntax.LiteralValueExpr]
	exprs  slab.Of[hclsyntax.Expression]
}

func (p *Parser) rng(t tok) hcl.Range {
	return hcl.Range{
		Filename: p.filename,
		Start:    hcl.Pos{Line: t.line, Column: t.col, Byte: t.start},
		End:      hcl.Pos{Line: t.line, Column: t.col + t.end - t.start, Byte: t.end},
	}
}

func (p *Parser) peek() tok {
	if !p.hasLA {
		p.la, p.hasLA = p.scan(), true
	}
	return p.la
}

func (p *Parser) read() tok {
	t := p.peek()
	if t.kind != tEOF { // EOF stays, as in hclsyntax's peeker
		p.hasLA = false
	}
	return t
}

// peekSkipNL peeks past newlines, as hclsyntax does inside brackets.
func (p *Parser) peekSkipNL() tok {
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

func (p *Parser) scan() tok {
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

func (p *Parser) newline(end int) {
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

func isDigit(ch byte) bool { return '0' <= ch && ch <= '9' }
