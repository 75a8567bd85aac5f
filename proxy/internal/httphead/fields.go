package httphead

import "bytes"

// Pieces of header sections shared by the request parser, ForwardRequest
// and the response functions.

// maxConnNames caps the field names a message's Connection fields may list.
// A message that lists more is left to net/http (a request) or refused (a
// response): checking every field against an unbounded list would let one
// head cost time quadratic in its size.
const maxConnNames = 32

// nextLine cuts the first line off b: its bytes without the LF or CRLF that
// ends it, and what follows. It reports false if b holds no LF.
func nextLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line, rest = b[:i], b[i+1:]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	return line, rest, true
}

// headEnd returns the length of the head at the start of b, its empty line
// included, or -1 if b holds no empty line. The first line is never taken
// for the empty one.
func headEnd(b []byte) int {
	_, rest, ok := nextLine(b)
	for ok {
		var line []byte
		line, rest, ok = nextLine(rest)
		if ok && len(line) == 0 {
			return len(b) - len(rest)
		}
	}
	return -1
}

// lineKind is what fieldLine found.
type lineKind uint8

const (
	lineField lineKind = iota // name ":" value
	lineFold                  // obs-fold: the line starts with whitespace
	lineBad                   // no colon, or a name that is not a token
)

// fieldLine splits a header line into its name and its value trimmed of
// OWS.
func fieldLine(line []byte) (name, value []byte, k lineKind) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return nil, nil, lineFold
	}
	i := bytes.IndexByte(line, ':')
	if i < 0 || !isToken(line[:i]) {
		return nil, nil, lineBad
	}
	return line[:i], trimOWS(line[i+1:]), lineField
}

// fieldName returns the name of a header line fieldLine found a field.
func fieldName(line []byte) []byte {
	return line[:bytes.IndexByte(line, ':')]
}

// nextElement cuts the first element off v, a comma-separated list (RFC
// 9110 §5.6.1), trimmed of OWS; it may be empty.
func nextElement(v []byte) (elem, rest []byte) {
	elem, rest, _ = bytes.Cut(v, []byte{','})
	return trimOWS(elem), rest
}

// connNames are the elements of a message's Connection fields: the names of
// the fields that belong to this connection only (RFC 9110 §7.6.1), among
// them close and keep-alive.
type connNames struct {
	names     [maxConnNames][]byte
	n         int
	over      bool // more than maxConnNames names
	close     bool // close is among them
	keepAlive bool // keep-alive is among them
}

// add takes the elements of v, a Connection field's value.
func (c *connNames) add(v []byte) {
	for len(v) > 0 {
		var e []byte
		e, v = nextElement(v)
		switch {
		case len(e) == 0:
			continue
		case asciiEqualFold(e, "close"):
			c.close = true
		case asciiEqualFold(e, "keep-alive"):
			c.keepAlive = true
		}
		if c.n == maxConnNames {
			c.over = true
			continue
		}
		c.names[c.n] = e
		c.n++
	}
}

// has reports whether name is listed, ignoring ASCII case.
func (c *connNames) has(name []byte) bool {
	for _, n := range c.names[:c.n] {
		if len(n) == len(name) && bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// hopByHopNames are the fields a proxy never forwards: those that describe
// one connection (RFC 9110 §7.6.1), and a proxy's credentials and challenge.
var hopByHopNames = [...]string{"connection", "proxy-connection", "keep-alive", "te", "transfer-encoding",
	"upgrade", "proxy-authorization", "proxy-authenticate"}

// hopByHop reports whether the field name is one of hopByHopNames.
func hopByHop(name []byte) bool {
	for _, h := range hopByHopNames {
		if asciiEqualFold(name, h) {
			return true
		}
	}
	return false
}

// codings follows the transfer codings that Transfer-Encoding values list,
// in the order they were applied.
type codings struct {
	n           int  // codings listed
	chunked     int  // how many of them are chunked
	lastChunked bool // the last one is chunked
	bad         bool // an element is not a bare token (a parameter, a quote)
}

// add takes the elements of v, a Transfer-Encoding field's value.
func (c *codings) add(v []byte) {
	for len(v) > 0 {
		var e []byte
		e, v = nextElement(v)
		if len(e) == 0 { // RFC 9110 §5.6.1: empty list elements
			continue
		}
		c.n++
		c.lastChunked = asciiEqualFold(e, "chunked")
		if c.lastChunked {
			c.chunked++
		}
		if !isToken(e) {
			c.bad = true
		}
	}
}

// finalOnly reports whether the last coding is chunked and no other one
// is: the only way a body is chunked exactly once.
func (c *codings) finalOnly() bool { return c.lastChunked && c.chunked == 1 }
