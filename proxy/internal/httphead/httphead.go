package httphead

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	// maxHeadBytes caps one request head, request line to the empty line
	// included; it matches http.DefaultMaxHeaderBytes.
	maxHeadBytes = 1 << 20
	// maxChunkLineBytes caps a chunk-size line without its line ending, as
	// net/http does.
	maxChunkLineBytes = 4096
	// maxTrailerBytes caps the trailer section of a chunked body.
	maxTrailerBytes = maxHeadBytes
	// maxQueuedHeads caps the heads parsed but not yet taken by NextHead.
	maxQueuedHeads = 64
	// keepHeadBuf is the largest head buffer kept between heads.
	keepHeadBuf = 64 << 10
)

// Errors recorded in Head.Err. Their text does not depend on how the
// stream was split into reads; it goes into the proxy's deny records, so it
// keeps the "reqhead:" prefix of the file this package was split from.
var (
	errHeadTooLarge      = errors.New("reqhead: request head exceeds 1 MiB")
	errRequestLine       = errors.New("reqhead: malformed request line")
	errHTTPVersion       = errors.New("reqhead: not an HTTP/1.x request")
	errHeaderLine        = errors.New("reqhead: malformed header line")
	errObsFold           = errors.New("reqhead: obsolete line folding in header")
	errTransferEncoding  = errors.New("reqhead: Transfer-Encoding whose final coding is not chunked")
	errTransferEncoding0 = errors.New("reqhead: Transfer-Encoding in an HTTP/1.0 request")
	errContentLength     = errors.New("reqhead: invalid Content-Length")
	errContentLengths    = errors.New("reqhead: differing Content-Length values")
	errChunkLine         = errors.New("reqhead: malformed chunk-size line")
	errChunkData         = errors.New("reqhead: chunk data not followed by CRLF")
	errTrailerTooLarge   = errors.New("reqhead: chunked trailer section exceeds 1 MiB")
	errTooManyHeads      = errors.New("reqhead: too many request heads not yet taken")
)

// Head is the head of one request as it appeared on the wire.
type Head struct {
	Method, Target, Proto string   // from the request line, raw
	Host                  []string // every Host header value, trimmed of OWS
	ContentLength         []string // every Content-Length value, trimmed of OWS
	TransferEncoding      []string // every Transfer-Encoding value, trimmed of OWS
	// ProxyAuthorization is every Proxy-Authorization value, trimmed of
	// OWS: the credentials of a CONNECT the front door answers itself.
	ProxyAuthorization []string

	// End is the offset in the connection's byte stream just past the
	// head's empty line: where a CONNECT's tunnel bytes start.
	End int64
	// Unusual is set if a header value holds a control byte, which net/http
	// refuses with a bare 400; the proxy's front door leaves such heads to
	// it.
	Unusual bool
	// Leading is set if empty lines came before the request line. RFC 9112
	// §2.2 lets a server ignore them, and this parser does, but net/http
	// refuses them on a connection's first request (it skips them only
	// after a POST), so the front door leaves such heads to net/http too.
	Leading bool

	// Err, if non-nil, means the parser could not follow the framing at or
	// before this head. It is the last head of its connection: the proxy
	// refuses the request and closes. Fields the parser did not reach are
	// empty; in particular a malformed body queues a head with only Err,
	// which the next request served on the connection (if any) receives.
	Err error
}

// Conn is a net.Conn that parses, independently of net/http, the head of
// every HTTP/1.x request read through it.
//
// It stops parsing, and records nothing more, after a CONNECT head, after a
// head with an Upgrade header (the handler may hijack the connection) and
// after a head with Err. A request served after that has no head: NextHead
// reports false and the handler must refuse.
type Conn struct {
	net.Conn

	// stopped is set once p has stopped; Read then skips the lock.
	stopped atomic.Bool

	mu sync.Mutex
	p  parser // guarded by mu
}

var _ net.Conn = (*Conn)(nil)

// NewConn returns c wrapped so that request heads read through it are
// recorded.
func NewConn(c net.Conn) *Conn {
	return &Conn{Conn: c}
}

// Read reads from the inner connection and feeds the bytes read to the
// parser. It never changes them.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.stopped.Load() {
		c.mu.Lock()
		c.p.feed(b[:n])
		if c.p.state == stStopped {
			c.stopped.Store(true)
		}
		c.mu.Unlock()
	}
	return n, err
}

// PeekHead returns the oldest head not yet taken, without taking it.
func (c *Conn) PeekHead() (Head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.peek()
}

func (p *parser) peek() (Head, bool) {
	if p.qhead == len(p.queue) {
		return Head{}, false
	}
	return p.queue[p.qhead], true
}

// NextHead removes and returns the oldest head not yet taken. net/http
// serves the requests of one connection in order, so the n-th call belongs to
// the n-th request. It reports false if there is none.
func (c *Conn) NextHead() (Head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.pop()
}

// Unwrap returns the inner connection.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// PartialHead reports the head the parser is in the middle of, if any: how
// many of its bytes were read, and its method if the request line got that
// far. On a closed connection this is a head net/http gave up on before it
// was complete (too large, or not sent within the header timeout).
func (c *Conn) PartialHead() (method string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p.partial()
}

func (p *parser) partial() (method string, n int) {
	if p.state != stHead || len(p.buf) == 0 {
		return "", 0
	}
	if m, _, ok := bytes.Cut(p.buf, []byte{' '}); ok && isToken(m) {
		method = string(m)
	}
	return method, len(p.buf)
}

// Parser parses the request heads of a byte stream given to it in order,
// as Conn does with the bytes read through it: for a reader that is not a
// net.Conn (the proxy's event loop).
type Parser struct{ p parser }

// Feed parses b, the stream's next bytes.
func (p *Parser) Feed(b []byte) { p.p.feed(b) }

// Head returns the stream's first head, once it is complete.
func (p *Parser) Head() (Head, bool) { return p.p.peek() }

// Partial is Conn.PartialHead for the stream.
func (p *Parser) Partial() (method string, n int) { return p.p.partial() }

// parseState is where parser is in the byte stream.
type parseState uint8

const (
	stStart   parseState = iota // before a request: skip CR and LF
	stHead                      // in a head: accumulate lines in buf
	stBody                      // in a Content-Length body: skip remain bytes
	stChunked                   // in a chunked body: ch follows it
	stStopped                   // not parsing any more
)

// parser is an incremental parser of a client's request stream. Its zero
// value is ready to use. Feeding a stream in any split gives the same heads.
type parser struct {
	state parseState

	buf       []byte // stHead: the head so far
	lineStart int    // stHead: offset of the current line in buf

	remain uint64       // stBody: bytes left
	ch     chunkMachine // stChunked: the body's framing

	queue []Head // queue[qhead:] are the heads not yet taken
	qhead int
	// first backs queue until a second head is queued: a connection's
	// first head, often its only one (a CONNECT), costs no allocation. A
	// parser is not copied once fed (Conn and Parser are used by pointer).
	first [1]Head

	fed     int64 // bytes fed so far
	leading bool  // empty lines came before the current head's request line
}

// pop removes and returns the oldest queued head.
func (p *parser) pop() (Head, bool) {
	if p.qhead == len(p.queue) {
		return Head{}, false
	}
	h := p.queue[p.qhead]
	p.queue[p.qhead] = Head{}
	p.qhead++
	if p.qhead == len(p.queue) {
		p.queue, p.qhead = p.queue[:0], 0
	}
	return h, true
}

// push queues h. Past maxQueuedHeads it queues h with errTooManyHeads and
// stops.
func (p *parser) push(h Head) {
	if len(p.queue)-p.qhead >= maxQueuedHeads {
		if h.Err == nil {
			h.Err = errTooManyHeads
		}
	}
	if p.queue == nil {
		p.queue = p.first[:0]
	}
	if p.qhead > 0 && len(p.queue) == cap(p.queue) {
		n := copy(p.queue, p.queue[p.qhead:])
		clear(p.queue[n:])
		p.queue, p.qhead = p.queue[:n], 0
	}
	p.queue = append(p.queue, h)
	if h.Err != nil {
		p.stop()
	}
}

// fail records a head carrying only err and stops.
func (p *parser) fail(err error) { p.push(Head{Err: err}) }

func (p *parser) stop() {
	p.state = stStopped
	p.buf = nil
}

// feed advances the parser over b.
func (p *parser) feed(b []byte) {
	p.fed += int64(len(b))
	for len(b) > 0 {
		switch p.state {
		case stStopped:
			return

		case stStart:
			// RFC 9112 §2.2: ignore empty lines before a request line.
			// net/http skips CR and LF bytes alike.
			i := 0
			for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
				i++
			}
			b = b[i:]
			if i > 0 {
				p.leading = true
			}
			if len(b) > 0 {
				p.state = stHead
				p.buf = p.buf[:0]
				p.lineStart = 0
			}

		case stHead:
			q := len(p.queue)
			b = p.feedHead(b)
			if len(p.queue) > q {
				p.queue[len(p.queue)-1].End = p.fed - int64(len(b))
			}

		case stBody:
			n := uint64(len(b))
			if n > p.remain {
				n = p.remain
			}
			b = b[n:]
			p.remain -= n
			if p.remain == 0 {
				p.state = stStart
			}

		case stChunked:
			n, done, err := p.ch.scan(b)
			if err != nil {
				p.fail(reqChunkErr(err))
				return
			}
			b = b[n:]
			if done {
				p.state = stStart
			}
		}
	}
}

// feedHead accumulates head bytes from b and returns the rest of b.
func (p *parser) feedHead(b []byte) []byte {
	if len(p.buf) == 0 {
		// A whole head in b, as a head mostly comes, is parsed where it
		// is, not copied first. (Its first line is not empty: stStart
		// skipped CR and LF, as headEnd skips the first line.)
		if n := headEnd(b); n > 0 && n <= maxHeadBytes {
			p.finishHead(b[:n])
			return b[n:]
		}
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i+1]
		}
		if len(p.buf)+len(seg) > maxHeadBytes {
			p.fail(errHeadTooLarge)
			return nil
		}
		p.buf = append(p.buf, seg...)
		b = b[len(seg):]
		if i < 0 {
			return nil
		}
		line := p.buf[p.lineStart : len(p.buf)-1]
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			p.finishHead(p.buf)
			return b
		}
		p.lineStart = len(p.buf)
	}
	return nil
}

// finishHead parses the complete head in head (p.buf, or the bytes fed if
// they held all of it), queues it and sets up the framing of its body.
func (p *parser) finishHead(head []byte) {
	h, next, length := parseHead(head)
	h.Leading, p.leading = p.leading, false
	if cap(p.buf) > keepHeadBuf {
		p.buf = nil
	}
	switch next {
	case stStopped:
		p.stop()
	case stChunked:
		p.ch = chunkMachine{}
		p.state = stChunked
	default:
		p.state, p.remain = next, length
	}
	p.push(h)
}

// parseHead parses a complete head (request line to empty line included).
// It returns the head, the state to parse its body in (stStart if it has
// none, stStopped if the parser must not go on) and, for stBody, the body's
// length.
func parseHead(buf []byte) (h Head, next parseState, length uint64) {
	next = stStopped
	line, rest := cutLine(buf)
	// One string for the request line's three: one allocation, not three.
	method, s, ok1 := strings.Cut(string(line), " ")
	target, proto, ok2 := strings.Cut(s, " ")
	if !ok1 || !ok2 {
		h.Err = errRequestLine
		return h, next, 0
	}
	h.Method, h.Target, h.Proto = method, target, proto
	if !isHTTP1(proto) {
		h.Err = errHTTPVersion
		return h, next, 0
	}
	upgrade := false
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, k := fieldLine(line)
		switch k {
		case lineFold:
			h.Err = errObsFold
			return h, next, 0
		case lineBad:
			h.Err = errHeaderLine
			return h, next, 0
		}
		if !h.Unusual && hasCTL(value) {
			h.Unusual = true
		}
		switch {
		case asciiEqualFold(name, "host"):
			v := h.Target // the usual spelling of a CONNECT's Host: no copy
			if string(value) != v {
				v = string(value)
			}
			h.Host = append(h.Host, v)
		case asciiEqualFold(name, "content-length"):
			h.ContentLength = append(h.ContentLength, string(value))
		case asciiEqualFold(name, "transfer-encoding"):
			h.TransferEncoding = append(h.TransferEncoding, string(value))
		case asciiEqualFold(name, "upgrade"):
			upgrade = true
		case asciiEqualFold(name, "proxy-authorization"):
			h.ProxyAuthorization = append(h.ProxyAuthorization, string(value))
		}
	}

	// The handler hijacks CONNECT and may hijack an upgrade: what follows is
	// not HTTP/1.x any more.
	if h.Method == "CONNECT" || upgrade {
		return h, next, 0
	}

	// RFC 9112 §6.3.
	switch {
	case len(h.TransferEncoding) > 0:
		if h.Proto == "HTTP/1.0" {
			// net/http ignores it and frames by Content-Length instead.
			h.Err = errTransferEncoding0
			return h, next, 0
		}
		if !finalChunked(h.TransferEncoding) {
			h.Err = errTransferEncoding
			return h, next, 0
		}
		next = stChunked
	case len(h.ContentLength) > 0:
		// Repeated identical values are one length (RFC 9110 §8.6), as
		// net/http reads them: no ambiguity to refuse.
		first := h.ContentLength[0]
		for _, v := range h.ContentLength[1:] {
			if v != first {
				h.Err = errContentLengths
				return h, next, 0
			}
		}
		n, err := strconv.ParseUint(first, 10, 63)
		if err != nil {
			h.Err = errContentLength
			return h, next, 0
		}
		next, length = stBody, n
		if n == 0 {
			next = stStart
		}
	default:
		next = stStart
	}
	return h, next, length
}

// finalChunked reports whether the last transfer coding in values is
// chunked and no other one is.
func finalChunked(values []string) bool {
	var c codings
	for _, v := range values {
		c.add([]byte(v))
	}
	return c.finalOnly()
}

// cutLine returns the first line of b without its LF or CRLF, and the rest.
// A bare LF ends a line, as net/http reads it (RFC 9112 §2.2 allows it):
// both framers agree, and the request goes upstream re-serialized.
func cutLine(b []byte) (line, rest []byte) {
	line, rest, ok := nextLine(b)
	if !ok {
		return bytes.TrimSuffix(b, []byte{'\r'}), nil
	}
	return line, rest
}

// isHTTP1 reports whether proto is HTTP/1.x, x a digit.
func isHTTP1(proto string) bool {
	return len(proto) == len("HTTP/1.1") && proto[:len("HTTP/1.")] == "HTTP/1." &&
		'0' <= proto[7] && proto[7] <= '9'
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

// tokenByte tells the bytes of an RFC 9110 token (tchar).
var tokenByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// trimOWS trims spaces and horizontal tabs at both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold reports whether b equals the lower-case ASCII string lower,
// ignoring ASCII case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// unhex returns the value of the hex digit c.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hasCTL reports whether v holds a byte net/http does not allow in a header
// value: a control byte other than horizontal tab. It reads eight bytes at
// a time (a Proxy-Authorization with a token runs to kilobytes) and looks
// at single bytes only in a word that may hold one; a tab does.
func hasCTL(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; len(v) >= 8; v = v[8:] {
		w := binary.LittleEndian.Uint64(v)
		del := w ^ 0x7f*ones
		// (x - n*ones) &^ x & highs is not zero if a byte of x is below n
		// (n <= 0x80): below ' ' in w, or 0 in del (0x7f in w).
		if ((w-' '*ones)&^w|(del-ones)&^del)&highs != 0 && hasCTLBytes(v[:8]) {
			return true
		}
	}
	return hasCTLBytes(v)
}

// hasCTLBytes is hasCTL one byte at a time.
func hasCTLBytes(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}
