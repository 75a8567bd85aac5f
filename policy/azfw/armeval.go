package azfw

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// ARM template expressions.

// isExpr reports whether s is an ARM template expression: "[...]", but not
// the escaped literal "[[...".
func isExpr(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && !strings.HasPrefix(s, "[[")
}

// armEval evaluates the ARM template expressions azegress can evaluate
// without a deployment: string and number literals, parameters (their
// defaultValue), variables, concat, format, toLower, toUpper and
// resourceId (which yields "TYPE/NAME").
type armEval struct {
	params, vars jobj
	defaults     []string // parameters whose defaultValue an evaluation used
}

func newARMEval(template jobj) *armEval {
	e := &armEval{params: jobj{}, vars: jobj{}}
	if p, ok := field(template, "parameters").(jobj); ok {
		e.params = p
	}
	if v, ok := field(template, "variables").(jobj); ok {
		e.vars = v
	}
	return e
}

// eval returns s evaluated: s itself if it is not an expression.
func (e *armEval) eval(s string) (string, bool) {
	if !isExpr(s) {
		return strings.TrimPrefix(s, "["), true // "[[x]" is the literal "[x]"
	}
	if e == nil {
		return "", false
	}
	v, ok := e.expr(s[1:len(s)-1], 0)
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// value evaluates s like eval, for resource names (nil e: literal only).
func (e *armEval) value(s string) (string, bool) { return e.eval(s) }

func (e *armEval) expr(s string, depth int) (any, bool) {
	p := &armParser{s: s}
	v, ok := e.parse(p, depth)
	p.space()
	return v, ok && p.i == len(p.s)
}

type armParser struct {
	s string
	i int
}

func (p *armParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (e *armEval) parse(p *armParser, depth int) (any, bool) {
	if depth > 16 {
		return nil, false
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, false
	}
	switch ch := p.s[p.i]; {
	case ch == '\'':
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			if p.s[p.i] == '\'' {
				if p.i+1 < len(p.s) && p.s[p.i+1] == '\'' {
					b.WriteByte('\'')
					p.i++
					continue
				}
				p.i++
				return b.String(), true
			}
			b.WriteByte(p.s[p.i])
		}
		return nil, false
	case isDigit(ch):
		start := p.i
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
		return json.Number(p.s[start:p.i]), true
	case isLetter(ch):
		start := p.i
		for p.i < len(p.s) && (isLetter(p.s[p.i]) || isDigit(p.s[p.i])) {
			p.i++
		}
		fn := strings.ToLower(p.s[start:p.i])
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '(' {
			return nil, false
		}
		p.i++
		var args []any
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ')' {
				p.i++
				break
			}
			v, ok := e.parse(p, depth+1)
			if !ok {
				return nil, false
			}
			args = append(args, v)
			p.space()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
			}
		}
		return e.call(fn, args, depth)
	}
	return nil, false
}

func (e *armEval) call(fn string, args []any, depth int) (any, bool) {
	sargs := make([]string, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case string:
			sargs[i] = x
		case json.Number:
			sargs[i] = x.String()
		default:
			return nil, false
		}
	}
	switch {
	case fn == "parameters" && len(args) == 1:
		d := field(field(e.params, sargs[0]), "defaultValue")
		if d != nil && !slices.Contains(e.defaults, sargs[0]) {
			e.defaults = append(e.defaults, sargs[0])
		}
		if s, ok := d.(string); ok && isExpr(s) {
			return e.expr(s[1:len(s)-1], depth+1)
		}
		return d, d != nil
	case fn == "variables" && len(args) == 1:
		v := field(e.vars, sargs[0])
		if s, ok := v.(string); ok && isExpr(s) {
			return e.expr(s[1:len(s)-1], depth+1)
		}
		return v, v != nil
	case fn == "concat":
		return strings.Join(sargs, ""), true
	case fn == "tolower" && len(args) == 1:
		return strings.ToLower(sargs[0]), true
	case fn == "toupper" && len(args) == 1:
		return strings.ToUpper(sargs[0]), true
	case fn == "format" && len(args) >= 1:
		out := sargs[0]
		for i, a := range sargs[1:] {
			out = strings.ReplaceAll(out, "{"+strconv.Itoa(i)+"}", a)
		}
		return out, true
	case fn == "resourceid" && len(args) >= 2:
		return strings.Join(sargs, "/"), true
	}
	return nil, false
}
