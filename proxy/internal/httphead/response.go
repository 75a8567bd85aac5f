package httphead

import (
	"bytes"
	"errors"
)

// Errors in Response.Err: the origin's head is malformed or its framing
// ambiguous. They go into the proxy's records of the exchange.
var (
	errRespHeadTooLarge      = errors.New("resphead: response head exceeds 1 MiB")
	errStatusLine            = errors.New(`resphead: malformed status line (want "HTTP/1.x DDD reason", DDD from 100)`)
	errRespHeaderLine        = errors.New("resphead: malformed header line")
	errRespObsFold           = errors.New("resphead: obsolete line folding in header")
	errRespHeaderValue       = errors.New("resphead: control character in a header value")
	errRespContentLength     = errors.New("resphead: invalid Content-Length")
	errRespContentLengths    = errors.New("resphead: differing Content-Length values")
	errRespTransferEncoding  = errors.New("resphead: malformed Transfer-Encoding (empty, a parameter, or chunked twice)")
	errRespTransferEncoding0 = errors.New("resphead: Transfer-Encoding in an HTTP/1.0 response")
	errRespConnection        = errors.New("resphead: Connection names more than 32 fields")
)

// Response is a parsed origin response head.
type Response struct {
	Status  int // e.g. 200; 1xx are interim
	HeadLen int // bytes of the head, the empty line included
	Framing Framing
	Length  int64 // for FrameLength
	Close   bool  // the origin will close: Connection: close, or HTTP/1.0 without keep-alive
	Err     error // the head is malformed or ambiguous: the caller answers 502 and closes both sides
}

// Framing is how a response's body ends (RFC 9112 §6.3).
type Framing uint8

const (
	FrameNone    Framing = iota // no body: a response to HEAD, 1xx, 204, 304
	FrameLength                 // Content-Length: Length bytes
	FrameChunked                // chunked as the final coding: follow it with Chunked
	FrameClose                  // the body ends when the origin closes
)

func (f Framing) String() string {
	switch f {
	case FrameNone:
		return "none"
	case FrameLength:
		return "length"
	case FrameChunked:
		return "chunked"
	case FrameClose:
		return "close"
	}
	return "Framing(?)"
}

// ParseResponse parses the response head at the start of b, to the request
// method (HEAD: no body). It reports false until the head is complete (the
// caller reads more); a prefix of a head never gives another result than
// the whole, and a status line that cannot be one gives Err as soon as its
// first bytes show it. On Err the other fields are zero.
//
// It is strict (FuzzParseResponse lists where net/http is more lenient):
//   - the status line is "HTTP/1.x DDD[ reason]", x a digit, DDD from 100
//     to 999, one space between the parts, no control byte in the reason;
//   - field names are tokens, with no whitespace before the colon; obs-fold
//     is Err (RFC 9112 §5.2 lets a proxy answer 502 for it), and so is a
//     control byte other than tab in a value;
//   - Content-Length is digits, its values identical, even where the
//     response has no body;
//   - Transfer-Encoding is a list of bare tokens with chunked at most once,
//     and Err in an HTTP/1.0 response (RFC 9112 §6.1: faulty framing).
//     With Content-Length, Transfer-Encoding wins and Close is set (RFC
//     9112 §6.3); a final coding other than chunked is FrameClose;
//   - the head is at most 1 MiB.
//
// Like net/http and the request parser, it takes a bare LF for CRLF (RFC
// 9112 §2.2 lets a recipient): AppendResponseHead ends every line it sends
// with CRLF, so no client reads the head otherwise. A bare CR is Err.
//
// Interim responses are the caller's to count and skip (HeadLen), and a 101
// the caller's to refuse.
func ParseResponse(b []byte, method string) (Response, bool) {
	end := headEnd(b)
	first := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		first = b[:i+1]
	}
	if !statusLineOK(first) {
		return Response{Err: errStatusLine}, true
	}
	switch {
	case end < 0 && len(b) <= maxHeadBytes:
		return Response{}, false
	case end < 0 || end > maxHeadBytes:
		return Response{Err: errRespHeadTooLarge}, true
	}
	r, err := parseResponse(b[:end], method)
	if err != nil {
		return Response{Err: err}, true
	}
	return r, true
}

// parseResponse parses head, a complete response head.
func parseResponse(head []byte, method string) (Response, error) {
	line, rest, _ := nextLine(head)
	r := Response{
		Status:  int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0'),
		HeadLen: len(head),
	}
	http10 := line[7] == '0'

	var (
		conn       connNames
		te         codings
		hasTE      bool
		length     []byte // the first Content-Length value
		hasLength  bool
		lengthDiff bool
	)
	for {
		line, rest, _ = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, k := fieldLine(line)
		switch {
		case k == lineFold:
			return Response{}, errRespObsFold
		case k == lineBad:
			return Response{}, errRespHeaderLine
		case hasCTL(value):
			return Response{}, errRespHeaderValue
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			if hasLength && string(value) != string(length) {
				lengthDiff = true
			}
			if !hasLength {
				length, hasLength = value, true
			}
		case asciiEqualFold(name, "transfer-encoding"):
			hasTE = true
			te.add(value)
		case asciiEqualFold(name, "connection"):
			conn.add(value)
		}
	}

	if conn.over {
		return Response{}, errRespConnection
	}
	if lengthDiff {
		return Response{}, errRespContentLengths
	}
	if hasLength {
		n, ok := parseLength(length)
		if !ok {
			return Response{}, errRespContentLength
		}
		r.Length = n
	}
	if hasTE {
		switch {
		case http10:
			return Response{}, errRespTransferEncoding0
		case te.n == 0 || te.bad || te.chunked > 1:
			return Response{}, errRespTransferEncoding
		}
	}

	r.Close = conn.close || http10 && !conn.keepAlive
	switch {
	case method == "HEAD" || r.Status < 200 || r.Status == 204 || r.Status == 304:
		r.Framing, r.Length = FrameNone, 0
	case hasTE:
		r.Framing, r.Length = FrameClose, 0
		if te.lastChunked {
			r.Framing = FrameChunked
		}
		// Content-Length beside Transfer-Encoding may be an attempt at
		// response splitting: the connection is not used again.
		r.Close = r.Close || hasLength
	case hasLength:
		r.Framing = FrameLength
	default:
		r.Framing = FrameClose
	}
	if r.Framing == FrameClose {
		r.Close = true
	}
	return r, nil
}

// statusLineOK reports whether line, a status line with its line ending or
// the start of one, is or may become "HTTP/1.x DDD[ reason]", x a digit and
// DDD from 100 to 999.
func statusLineOK(line []byte) bool {
	complete := false
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line, complete = line[:n-1], true
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1] // CRLF, or the CR of one to come
	}
	const proto = "HTTP/1."
	for i, c := range line {
		var ok bool
		switch {
		case i < len(proto):
			ok = c == proto[i]
		case i == 7 || i == 10 || i == 11:
			ok = '0' <= c && c <= '9'
		case i == 9:
			ok = '1' <= c && c <= '9'
		case i == 8 || i == 12:
			ok = c == ' '
		default: // reason-phrase: HTAB, SP, VCHAR, obs-text
			ok = c == '\t' || c >= ' ' && c != 0x7f
		}
		if !ok {
			return false
		}
	}
	return !complete || len(line) >= len("HTTP/1.1 200")
}

// parseLength parses a Content-Length value: 1 to 18 digits, or 19 up to
// the largest int64.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// AppendResponseHead appends to dst the head to send the client for the
// origin head b, which ParseResponse parsed as r without Err: "HTTP/1.1 " +
// the origin's status code and reason, then the origin's header lines in
// order and spelling, each ended by CRLF, except the hop-by-hop ones and
// those a Connection value names (as ForwardRequest), X-Azegress-Reason (an
// origin must not forge the proxy's verdict) and Proxy-Authenticate (the
// origin's, not this proxy's challenge); then "Connection: close" if close,
// then the empty line.
//
// The framing fields follow the body, which is passed through as is:
// Transfer-Encoding is kept when r is FrameChunked or FrameClose (a final
// coding other than chunked still applies to the bytes sent), whatever
// Connection names; Content-Length is dropped when Transfer-Encoding is
// present, and otherwise kept whatever Connection names. Pass close true
// when r.Close is, or the client asked to close.
func AppendResponseHead(dst, b []byte, r Response, close bool) []byte {
	head := b[:r.HeadLen]
	line, fields, _ := nextLine(head)
	dst = append(dst, "HTTP/1.1 "...)
	dst = append(dst, line[len("HTTP/1.1 "):]...)
	if len(line) == len("HTTP/1.1 200") {
		dst = append(dst, ' ') // RFC 9112 §4: the space comes even without a reason
	}
	dst = append(dst, "\r\n"...)

	var conn connNames
	hasTE := false
	for rest := fields; ; {
		line, rest, _ = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, _ := fieldLine(line)
		switch {
		case asciiEqualFold(name, "connection"):
			conn.add(value)
		case asciiEqualFold(name, "transfer-encoding"):
			hasTE = true
		}
	}
	keepTE := r.Framing == FrameChunked || r.Framing == FrameClose
	for {
		line, fields, _ = nextLine(fields)
		if len(line) == 0 {
			break
		}
		name := fieldName(line)
		switch {
		case asciiEqualFold(name, "transfer-encoding"):
			if !keepTE {
				continue
			}
		case asciiEqualFold(name, "content-length"):
			if hasTE {
				continue
			}
		case hopByHop(name) || asciiEqualFold(name, "x-azegress-reason") || conn.has(name):
			continue
		}
		dst = append(dst, line...)
		dst = append(dst, "\r\n"...)
	}
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}
