package fasthcl

import (
	"strings"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
)

// A Split is the second half of a large source, parsed on its own
// goroutine as the rest of a block's body, from a line that looks like the
// start of a labelled block inside that body. The guess is checked: the
// result is used only if the first half's parse reaches an item boundary
// of a block's body at exactly that byte and line, from where parsing is a
// function of the position alone, so the result is what one pass would
// produce.
type Split[T any] struct {
	at, line int // where the second half starts: byte offset, line
	abort    atomic.Bool
	done     chan struct{}
	used     bool // Body stopped at the split once

	q   *Parser   // the second half's parser, in its final state
	val T         // what it parsed of the block's body
	end hcl.Range // the body's closing brace
	ok  bool
}

// StartSplit looks, from the middle of p's source on, for a line whose
// first token is one of types followed by a quoted label. If it finds one,
// it parses from there on another goroutine with body, which parses the
// rest of a block's body with q.Body into a T of its own, and returns the
// Split; else nil. The caller must call Stop when done with p.
func StartSplit[T any](p *Parser, types []string, body func(q *Parser) (T, hcl.Range, bool)) *Split[T] {
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
		if startsBlock(s[k:], types) {
			break
		}
	}
	sp := &Split[T]{at: at, line: 1 + strings.Count(s[:at], "\n"), done: make(chan struct{})}
	q := &Parser{src: s, filename: p.filename, pos: at, line: sp.line, lineStart: at, abort: &sp.abort, srcFile: p.srcFile}
	go func() {
		defer close(sp.done)
		val, end, ok := body(q)
		sp.q, sp.val, sp.end, sp.ok = q, val, end, ok
	}()
	return sp
}

// startsBlock reports whether s starts with one of types, a space and a
// quote.
func startsBlock(s string, types []string) bool {
	for _, typ := range types {
		if strings.HasPrefix(s, typ) && strings.HasPrefix(s[len(typ):], " \"") {
			return true
		}
	}
	return false
}

// Stop makes the second half give up, if it is still parsing, and waits
// for it.
func (s *Split[T]) Stop() {
	s.abort.Store(true)
	<-s.done
}

// Body parses the items of a block's body with p, as p.Body does, except
// that the first time it reaches the start of the second half at an item
// boundary it takes the second half's result if it applies: then it
// returns that result with joined true, and p is after the body. The
// caller merges it with what attr and block took of the first half. If the
// result does not apply, Body parses on, and joined is false.
func (s *Split[T]) Body(p *Parser, attr AttrFunc, block BlockFunc) (second T, joined bool, end hcl.Range, ok bool) {
	if s.used {
		end, ok = p.Body(attr, block)
		return second, false, end, ok
	}
	end, ok = p.items(tCBrace, attr, block, s.at)
	if !p.stopped {
		return second, false, end, ok
	}
	p.stopped = false
	s.used = true // one join only
	<-s.done
	if !s.ok || p.line != s.line || p.lineStart != s.at {
		end, ok = p.Body(attr, block)
		return second, false, end, ok
	}
	q := s.q
	p.pos, p.line, p.lineStart, p.la, p.hasLA = q.pos, q.line, q.lineStart, q.la, q.hasLA
	return s.val, true, s.end, true
}
