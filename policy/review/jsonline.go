package review

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// lineFields are the members of one JSON line that replay reads, from a
// proxy log record or an observation. Strings point into the line (or
// into buf when they had escapes) and are valid until the next scan.
type lineFields struct {
	msg, run, block, host, decision, rule, reason []byte

	hasMsg, hasRun, hasPort, hasCount bool
	port                              uint16
	count                             int64

	buf []byte // unescaped strings
}

// scanLine reads the JSON object in b, as encoding/json would decode it
// into a struct with these fields, without reflection: replay reads
// gigabytes of log lines, and this is most of its time. Other members are
// checked for syntax and skipped; a member of the wrong type is an error.
// Member names are matched exactly (slog and the recorder write them so).
func (f *lineFields) scan(b []byte) error {
	*f = lineFields{buf: f.buf[:0]}
	s := scanner{b: b}
	err := f.object(&s)
	if errors.Is(err, errSyntax) {
		return s.syntaxError()
	}
	return err
}

func (f *lineFields) object(s *scanner) error {
	s.ws()
	if !s.eat('{') {
		return errNotObject
	}
	if err := s.members(&f.buf, func(key []byte) error { return f.member(s, key) }); err != nil {
		return err
	}
	return s.end()
}

// members reads the members of an object whose "{" is read, through its
// "}", calling value to read each member's value; buf is for names with
// escapes, nil when the names do not matter.
func (s *scanner) members(buf *[]byte, value func(name []byte) error) error {
	s.ws()
	if s.eat('}') {
		return nil
	}
	for {
		s.ws()
		name, err := s.str(buf)
		if err != nil {
			return err
		}
		s.ws()
		if !s.eat(':') {
			return errSyntax
		}
		s.ws()
		if err := value(name); err != nil {
			return err
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return nil
		}
		return errSyntax
	}
}

var (
	errNotObject = errors.New("not a JSON object")
	errSyntax    = errors.New("invalid JSON")
	errType      = errors.New("wrong type")
)

// syntaxError is errSyntax at an offset.
func (s *scanner) syntaxError() error {
	return fmt.Errorf("%w at byte %d", errSyntax, s.i+1)
}

func (f *lineFields) member(s *scanner, key []byte) error {
	var dst *[]byte
	var has *bool
	switch string(key) {
	case "msg":
		dst, has = &f.msg, &f.hasMsg
	case "run":
		dst, has = &f.run, &f.hasRun
	case "client_block":
		dst = &f.block
	case "host":
		dst = &f.host
	case "decision":
		dst = &f.decision
	case "rule":
		dst = &f.rule
	case "reason":
		dst = &f.reason
	case "port":
		n, ok, err := s.uint(65535)
		if ok {
			f.port, f.hasPort = uint16(n), true
		}
		if errors.Is(err, errType) {
			return errors.New(`"port" is not a whole number from 0 to 65535`)
		}
		return err
	case "count":
		n, ok, err := s.int()
		if ok {
			f.count, f.hasCount = n, true
		}
		if errors.Is(err, errType) {
			return errors.New(`"count" is not a whole number`)
		}
		return err
	default:
		return s.skip(0)
	}
	if s.null() {
		return nil
	}
	if s.peek() != '"' {
		if err := s.skip(0); err != nil {
			return err
		}
		return fmt.Errorf("%q is not a string", key)
	}
	v, err := s.str(&f.buf)
	if err != nil {
		return err
	}
	*dst = v
	if has != nil {
		*has = true
	}
	return nil
}

// scanner walks a JSON text.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.peek() == c && s.i < len(s.b) {
		s.i++
		return true
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// end checks that only white space follows.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

func (s *scanner) null() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// str reads a string and returns its content: a slice of the input, or,
// when it has escapes, of *buf, where the decoded text is appended. With
// buf nil it only checks the string, for a value skipped.
func (s *scanner) str(buf *[]byte) ([]byte, error) {
	if !s.eat('"') {
		return nil, errSyntax
	}
	b, start, escaped := s.b, s.i, false
	for i := start; i < len(b); {
		c := b[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			i++ // the common case, kept tight: local index, one test
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			if !escaped || buf == nil {
				return b[start:i], nil
			}
			return unescape(buf, b[start-1:i+1])
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return nil, errSyntax
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return nil, errSyntax
					}
				}
				i += 6
			default:
				return nil, errSyntax
			}
		default: // a control character
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

// unescape decodes the quoted string q with its escapes, which is rare
// in the members replay reads, with encoding/json itself.
func unescape(buf *[]byte, q []byte) ([]byte, error) {
	var v string
	if err := json.Unmarshal(q, &v); err != nil {
		return nil, errSyntax
	}
	start := len(*buf)
	*buf = append(*buf, v...)
	return (*buf)[start:], nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	s.eat('-')
	switch {
	case s.eat('0'):
	case '1' <= s.peek() && s.peek() <= '9':
		s.digits()
	default:
		return nil, errSyntax
	}
	if s.eat('.') {
		if !s.digits() {
			return nil, errSyntax
		}
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if !s.digits() {
			return nil, errSyntax
		}
	}
	return s.b[start:s.i], nil
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// uint reads a whole number from 0 to max, or null (ok false).
func (s *scanner) uint(max uint64) (n uint64, ok bool, err error) {
	if s.null() {
		return 0, false, nil
	}
	t, err := s.numberOrType()
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.ParseUint(string(t), 10, 64)
	if err != nil || n > max {
		return 0, false, errType
	}
	return n, true, nil
}

// int reads a whole number that fits int64, or null (ok false).
func (s *scanner) int() (n int64, ok bool, err error) {
	if s.null() {
		return 0, false, nil
	}
	t, err := s.numberOrType()
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.ParseInt(string(t), 10, 64)
	if err != nil {
		return 0, false, errType
	}
	return n, true, nil
}

// numberOrType reads a number, or skips another value and reports the
// wrong type.
func (s *scanner) numberOrType() ([]byte, error) {
	c := s.peek()
	if c == '-' || '0' <= c && c <= '9' {
		return s.number()
	}
	if err := s.skip(0); err != nil {
		return nil, err
	}
	return nil, errType
}

// maxDepth bounds nesting, as encoding/json does (10000).
const maxDepth = 10000

// skip reads any value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errSyntax
	}
	switch c := s.peek(); {
	case c == '"':
		_, err := s.str(nil)
		return err
	case c == '{':
		s.i++
		return s.members(nil, func([]byte) error { return s.skip(depth + 1) })
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return nil
		}
		for {
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			if s.eat(']') {
				return nil
			}
			return errSyntax
		}
	case c == '-' || '0' <= c && c <= '9':
		_, err := s.number()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errSyntax
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return nil
	}
	return errSyntax
}
