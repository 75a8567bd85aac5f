package httphead

import "errors"

// Errors of a chunked body (RFC 9112 §7.1). The request parser records its
// own "reqhead:" versions of them (reqChunkErr).
var (
	errChunkedLine    = errors.New("chunked: malformed chunk-size line")
	errChunkedData    = errors.New("chunked: chunk data not followed by CRLF")
	errChunkedTrailer = errors.New("chunked: trailer section exceeds 1 MiB")
)

// Chunked follows a chunked body passed through unchanged, to find where it
// ends (trailer section included). Its zero value is ready. The request
// parser follows request bodies with the same machine: the same grammar and
// limits.
type Chunked struct{ m chunkMachine }

// Scan reads b, the body's next bytes, and returns how many belong to the
// body and whether it ended there; err if the framing is malformed (the
// caller closes both sides). n is len(b) unless the body ended or failed
// inside b: then it counts the bytes up to the end, or those before the
// byte that broke the framing. Any split of a body into calls gives the
// same total n, done and err. After the end Scan reports (0, true, nil),
// after an error (0, false, err) again.
func (c *Chunked) Scan(b []byte) (n int, done bool, err error) { return c.m.scan(b) }

// chunkState is where chunkMachine is in a chunked body.
type chunkState uint8

const (
	chSize    chunkState = iota // at the start of a chunk-size line
	chDigits                    // in the hex digits of a chunk size
	chOWS                       // in whitespace after the chunk size
	chExt                       // in a chunk extension
	chLF                        // after the CR that ends a chunk-size line
	chData                      // in chunk data: skip remain bytes
	chDataCR                    // expecting the CR after chunk data
	chDataLF                    // expecting the LF after chunk data
	chTrailer                   // in the trailer section
	chDone                      // past the trailer section's empty line
	chFailed                    // the framing is malformed: err
)

// chunkMachine follows a chunked body byte stream in any split. Its zero
// value is at the start of a body.
type chunkMachine struct {
	state   chunkState
	remain  uint64 // chData: bytes left; chDigits: the size so far
	digits  int    // chDigits: hex digits seen
	lineLen int    // chunk-size or trailer line: bytes seen, line ending excluded
	lastCR  bool   // chTrailer: the last byte of the line was CR
	total   int    // chTrailer: bytes of the trailer section so far
	err     error  // chFailed: why
}

// scan is Chunked.Scan.
func (m *chunkMachine) scan(b []byte) (n int, done bool, err error) {
	for n < len(b) {
		switch m.state {
		case chData:
			k := uint64(len(b) - n)
			if k > m.remain {
				k = m.remain
			}
			n += int(k)
			m.remain -= k
			if m.remain == 0 {
				m.state = chDataCR
			}

		case chDataCR, chDataLF:
			want := byte('\r')
			if m.state == chDataLF {
				want = '\n'
			}
			if b[n] != want {
				return n, false, m.fail(errChunkedData)
			}
			n++
			if m.state == chDataCR {
				m.state = chDataLF
			} else {
				m.startLine()
			}

		case chTrailer:
			k, end := m.trailer(b[n:])
			n += k
			if m.state == chFailed {
				return n, false, m.err
			}
			if end {
				return n, true, nil
			}

		case chDone:
			return n, true, nil

		case chFailed:
			return n, false, m.err

		default: // the chunk-size line
			if !m.lineByte(b[n]) {
				return n, false, m.fail(errChunkedLine)
			}
			n++
		}
	}
	switch m.state {
	case chDone:
		return n, true, nil
	case chFailed:
		return n, false, m.err
	}
	return n, false, nil
}

func (m *chunkMachine) fail(err error) error {
	m.state, m.err = chFailed, err
	return err
}

// startLine readies the machine for a chunk-size line.
func (m *chunkMachine) startLine() {
	m.state = chSize
	m.remain, m.digits, m.lineLen = 0, 0, 0
}

// lineByte advances over one byte of a chunk-size line:
//
//	1*16HEXDIG *OWS [ ";" chunk-ext ] CRLF
//
// Chunk extensions are skipped unparsed, as net/http does. A bare LF does
// not end the line: RFC 9112 §2.2 lets a recipient take one for CRLF in a
// head, not in chunked framing (errata 7633), and a body passed through
// must end where a strict client ends it. It reports false if c is not
// allowed.
func (m *chunkMachine) lineByte(c byte) bool {
	if m.state == chLF {
		if c != '\n' {
			return false
		}
		m.endLine()
		return true
	}
	switch c {
	case '\n':
		return false // a bare LF (RFC 9112 errata 7633; net/http refuses it too)
	case '\r':
		if m.state == chSize {
			return false // no digits
		}
		m.state = chLF
		return true
	}
	m.lineLen++
	if m.lineLen >= maxChunkLineBytes {
		return false
	}
	switch m.state {
	case chSize, chDigits:
		if v, ok := unhex(c); ok {
			if m.digits == 16 {
				return false
			}
			m.remain = m.remain<<4 | uint64(v)
			m.digits++
			m.state = chDigits
			return true
		}
		if m.state == chSize {
			return false
		}
		fallthrough
	case chOWS:
		switch c {
		case ' ', '\t':
			m.state = chOWS
		case ';':
			m.state = chExt
		default:
			return false
		}
	}
	return true
}

// endLine moves to the chunk data, or to the trailer section after the
// last chunk.
func (m *chunkMachine) endLine() {
	if m.remain == 0 {
		m.state = chTrailer
		m.lineLen, m.lastCR, m.total = 0, false, 0
		return
	}
	m.state = chData
}

// trailer skips trailer lines up to the empty line. It returns how many
// bytes of b it took and whether the empty line was among them.
func (m *chunkMachine) trailer(b []byte) (int, bool) {
	for i, c := range b {
		m.total++
		if m.total > maxTrailerBytes {
			m.fail(errChunkedTrailer)
			return i, false
		}
		if c != '\n' {
			m.lineLen++
			m.lastCR = c == '\r'
			continue
		}
		if m.lineLen == 0 || m.lineLen == 1 && m.lastCR {
			m.state = chDone
			return i + 1, true
		}
		m.lineLen, m.lastCR = 0, false
	}
	return len(b), false
}

// reqChunkErr is err, from a chunkMachine, as the request parser records
// it.
func reqChunkErr(err error) error {
	switch err {
	case errChunkedLine:
		return errChunkLine
	case errChunkedData:
		return errChunkData
	case errChunkedTrailer:
		return errTrailerTooLarge
	}
	return err
}
