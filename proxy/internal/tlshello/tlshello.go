package tlshello

import (
	"errors"
	"strings"
)

// MaxBytes caps the bytes a ClientHello may span on the wire: a message of
// 16 KiB plus room for the headers of one fragmented over hundreds of
// records. Readers never need more buffer than this.
const MaxBytes = maxHelloLen + 4<<10

const (
	// maxHelloLen caps the ClientHello handshake message, its 4-byte header
	// included. Real ones are 200 B to 2 KiB; post-quantum key shares and
	// ECH grow them to a few KiB.
	maxHelloLen = 16 << 10

	recordHeaderLen          = 5
	maxPlaintextLen          = 1 << 14 // RFC 8446 §5.1
	recordTypeCCS            = 20
	recordTypeHandshake      = 22
	recordTypeHeartbeat      = 24
	maxRecordMinor           = 4 // record versions 3.0 (SSL 3.0) to 3.4
	handshakeTypeHello       = 1
	handshakeTypeServerHello = 2

	extServerName        = 0x0000
	extALPN              = 0x0010
	extSupportedVersions = 0x002b
	extECH               = 0xfe0d

	versionTLS13 = 0x0304
)

// ClientHello is what the proxy reads from a TLS ClientHello. Its byte
// slices alias the parsed input (or, for a message fragmented over several
// records, a reassembly buffer).
type ClientHello struct {
	// ServerName is the host_name entry of the server_name extension, as
	// sent; nil if there is none.
	ServerName []byte
	// ECH reports whether the ClientHello carries an encrypted_client_hello
	// extension: ServerName is then the outer, public name, and the name the
	// client wants is encrypted.
	ECH bool
	// TLS13 reports whether supported_versions offers TLS 1.3.
	TLS13 bool
	// End is the length of the records that hold the ClientHello: what a
	// server reads before it answers.
	End int

	// alpn is the ProtocolNameList of the ALPN extension without its length
	// prefix; nil if there is none.
	alpn []byte
	// need, when parsing returned ErrIncomplete, is the smallest input
	// length that can change the answer. It is never more than MaxBytes.
	need int
}

// Need is, after ErrIncomplete, the smallest input length that can change
// the answer: a reader reads at least that much before it asks again.
func (h ClientHello) Need() int { return h.need }

// ALPN returns the offered application protocols in client order.
func (h *ClientHello) ALPN() []string {
	var out []string
	for b := h.alpn; len(b) > 0; {
		n := int(b[0])
		out = append(out, string(b[1:1+n]))
		b = b[1+n:]
	}
	return out
}

// helloError is a reason a ClientHello was refused. The values are
// preallocated, so refusing hostile input does not allocate.
type helloError struct{ msg string }

func (e *helloError) Error() string { return e.msg }

var (
	// ErrIncomplete means the input is a proper prefix of what may still
	// become a valid ClientHello: read more (up to ClientHello.Need).
	ErrIncomplete error = &helloError{"incomplete ClientHello"}
	// ErrNotTLS means the first byte is not a TLS record type.
	ErrNotTLS error = &helloError{"not TLS"}

	errHelloRecordType  = &helloError{"ClientHello interleaved with a non-handshake TLS record"}
	errHelloRecordVer   = &helloError{"TLS record version outside 3.0 to 3.4"}
	errHelloTrailing    = &helloError{"TLS record carries more than the ClientHello"}
	errHelloCCS         = &helloError{"malformed change_cipher_spec record"}
	errHelloEmptyRecord = &helloError{"empty TLS handshake record"}
	errHelloRecordLen   = &helloError{"TLS record longer than 16 KiB"}
	errHelloType        = &helloError{"first handshake message is not a ClientHello"}
	errHelloTooLarge    = &helloError{"ClientHello larger than 16 KiB, or spread over too many records"}
	errHelloSyntax      = &helloError{"malformed ClientHello"}
	errHelloDupExt      = &helloError{"ClientHello repeats an extension"}
	errHelloSNI         = &helloError{"malformed server_name extension"}
	errHelloALPN        = &helloError{"malformed ALPN extension"}
	errHelloVersions    = &helloError{"malformed supported_versions extension"}

	// errHelloFirst are the refusals of a TLS record other than a
	// handshake before the ClientHello, by record type.
	errHelloFirst = [...]*helloError{
		recordTypeCCS - recordTypeCCS:       {"TLS change_cipher_spec record before the ClientHello"},
		21 - recordTypeCCS:                  {"TLS alert record before the ClientHello"},
		23 - recordTypeCCS:                  {"TLS application_data record before the ClientHello"},
		recordTypeHeartbeat - recordTypeCCS: {"TLS heartbeat record before the ClientHello"},
	}
)

// Parse parses the TLS ClientHello at the start of b, which may
// continue past it. It returns ErrIncomplete while b is too short to
// decide, ErrNotTLS if b does not start with a TLS record type, another
// *helloError if the input is TLS but not a well-formed ClientHello alone in
// its records, and nil when it is complete and well formed. Any answer but
// ErrIncomplete is final: appending bytes to b does not change it. It
// allocates only to reassemble a message fragmented over several records.
func Parse(b []byte) (ClientHello, error) {
	if len(b) == 0 {
		return incomplete(1)
	}
	switch t := b[0]; {
	case t < recordTypeCCS || t > recordTypeHeartbeat:
		return ClientHello{}, ErrNotTLS
	case t != recordTypeHandshake:
		return ClientHello{}, errHelloFirst[t-recordTypeCCS]
	}
	body, end, need, err := handshakeMessage(b, handshakeTypeHello, true)
	if err != nil {
		return ClientHello{need: need}, err
	}
	h, err := parseHelloBody(body)
	h.End = end
	return h, err
}

// ParseSecond parses what a client sends after a HelloRetryRequest:
// its second ClientHello, after at most one change_cipher_spec record
// (RFC 8446 §D.4, middlebox compatibility).
func ParseSecond(b []byte) (ClientHello, error) {
	if len(b) == 0 || b[0] != recordTypeCCS {
		return Parse(b)
	}
	if len(b) > MaxBytes {
		b = b[:MaxBytes] // as in handshakeMessage, so the answer is final
	}
	const ccsLen = recordHeaderLen + 1
	ccs := [ccsLen]byte{recordTypeCCS, 3, 0, 0, 1, 1}
	for i := 1; i < ccsLen; i++ {
		switch {
		case i == len(b):
			return incomplete(i + 1)
		case i == 2 && b[i] > maxRecordMinor, i != 2 && b[i] != ccs[i]:
			return ClientHello{}, errHelloCCS
		}
	}
	h, err := Parse(b[ccsLen:])
	if err == ErrIncomplete {
		return incomplete(ccsLen + h.need)
	}
	h.End += ccsLen
	return h, err
}

// ServerHello is what the proxy reads from a server's first handshake
// message.
type ServerHello struct {
	// Retry reports whether it is a HelloRetryRequest.
	Retry bool
	// need is as in ClientHello.
	need int
}

// Need is as ClientHello.Need.
func (h ServerHello) Need() int { return h.need }

// hrrRandom is the random of a ServerHello that is a HelloRetryRequest
// (RFC 8446 §4.1.3).
var hrrRandom = [32]byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// ParseServerHello decides whether what a server sent first, b, starts with
// a HelloRetryRequest. It returns ErrIncomplete while b is too short to
// decide, errHelloTooLarge if the first handshake message is too large to
// tell, and nil otherwise: anything but a HelloRetryRequest (a ServerHello,
// an alert, bytes that are not TLS) is not one. Like Parse, an
// answer other than ErrIncomplete is final.
func ParseServerHello(b []byte) (ServerHello, error) {
	if len(b) == 0 {
		return ServerHello{need: 1}, ErrIncomplete
	}
	if b[0] != recordTypeHandshake {
		return ServerHello{}, nil
	}
	body, _, need, err := handshakeMessage(b, handshakeTypeServerHello, false)
	switch err {
	case nil:
		// legacy_version, then random
		return ServerHello{Retry: len(body) >= 2+32 && [32]byte(body[2:34]) == hrrRandom}, nil
	case ErrIncomplete, errHelloTooLarge:
		return ServerHello{need: need}, err
	}
	return ServerHello{}, nil
}

// handshakeMessage returns the body of the handshake message at the start
// of the handshake records b starts with, which must be of type typ, and
// the length of the records up to its end. With alone set, the message must
// end its record. It returns ErrIncomplete (and the length that can
// change the answer) while b is too short to decide, and any other answer
// is final.
func handshakeMessage(b []byte, typ byte, alone bool) (body []byte, end, need int, err error) {
	if len(b) > MaxBytes {
		b = b[:MaxBytes] // nothing past the cap may decide
	}
	var (
		hdr    [4]byte // the handshake header, which may itself span records
		got    int     // message bytes, header included, in the records before off
		msgEnd = -1    // message length, header included, once hdr is complete
	)
	for off := 0; ; {
		// The record header is checked byte by byte, so that a decision
		// never waits for bytes it does not need.
		avail := len(b) - off
		switch {
		case avail < 1:
			return need1(off + 1)
		case b[off] != recordTypeHandshake:
			return nil, 0, 0, errHelloRecordType
		case avail < 2:
			return need1(off + 2)
		case b[off+1] != 3:
			return nil, 0, 0, errHelloRecordVer
		case avail < 3:
			return need1(off + 3)
		case b[off+2] > maxRecordMinor:
			return nil, 0, 0, errHelloRecordVer
		case avail < recordHeaderLen:
			return need1(off + recordHeaderLen)
		}
		rlen := int(b[off+3])<<8 | int(b[off+4])
		switch {
		case rlen == 0:
			return nil, 0, 0, errHelloEmptyRecord // RFC 8446 §5.1 forbids it
		case rlen > maxPlaintextLen:
			return nil, 0, 0, errHelloRecordLen
		}
		start := off + recordHeaderLen
		payload := b[start : start+min(rlen, avail-recordHeaderLen)]

		for i := 0; got+i < 4 && i < len(payload); i++ {
			hdr[got+i] = payload[i]
			switch got + i {
			case 0:
				if hdr[0] != typ {
					return nil, 0, 0, errHelloType
				}
			case 3:
				msgEnd = 4 + (int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3]))
				if msgEnd > maxHelloLen {
					return nil, 0, 0, errHelloTooLarge
				}
			}
		}
		if msgEnd < 0 {
			if len(payload) < rlen {
				return need1(len(b) + 1) // the next header byte decides
			}
			got += rlen
			off = start + rlen
			continue
		}
		if got+rlen >= msgEnd {
			// The message ends in this record; with alone, so must the
			// record. Anything after the message is not read.
			if alone && got+rlen > msgEnd {
				return nil, 0, 0, errHelloTrailing
			}
			end := start + msgEnd - got
			if len(b) < end {
				return need1(end)
			}
			if got == 0 {
				return b[start+4 : end], end, 0, nil
			}
			return reassemble(b, msgEnd), end, 0, nil
		}
		if len(payload) < rlen {
			return need1(start + rlen + 1) // the next record header decides
		}
		got += rlen
		off = start + rlen
	}
}

// need1 is incomplete for handshakeMessage.
func need1(need int) ([]byte, int, int, error) {
	h, err := incomplete(need)
	return nil, 0, h.need, err
}

// incomplete asks for at least need bytes, or refuses the input if that is
// more than a ClientHello may span.
func incomplete(need int) (ClientHello, error) {
	if need > MaxBytes {
		return ClientHello{}, errHelloTooLarge
	}
	return ClientHello{need: need}, ErrIncomplete
}

// reassemble copies the body of a handshake message of msgEnd bytes (header
// included) out of the records at the start of b, which the caller has
// checked hold all of it.
func reassemble(b []byte, msgEnd int) []byte {
	msg := make([]byte, 0, msgEnd)
	for off := 0; len(msg) < msgEnd; {
		rlen := int(b[off+3])<<8 | int(b[off+4])
		// The last record may be cut short after the message ends.
		frag := b[off+recordHeaderLen : min(off+recordHeaderLen+rlen, len(b))]
		msg = append(msg, frag[:min(len(frag), msgEnd-len(msg))]...)
		off += recordHeaderLen + rlen
	}
	return msg[4:]
}

// parseHelloBody parses a ClientHello message body (RFC 8446 §4.1.2).
func parseHelloBody(p []byte) (ClientHello, error) {
	var h ClientHello
	// legacy_version, random
	if len(p) < 2+32 {
		return ClientHello{}, errHelloSyntax
	}
	p = p[2+32:]
	// legacy_session_id<0..32>
	sid, p, ok := vec8(p)
	if !ok || len(sid) > 32 {
		return ClientHello{}, errHelloSyntax
	}
	// cipher_suites<2..2^16-2>
	cs, p, ok := vec16(p)
	if !ok || len(cs) < 2 || len(cs)%2 != 0 {
		return ClientHello{}, errHelloSyntax
	}
	// legacy_compression_methods<1..2^8-1>
	cm, p, ok := vec8(p)
	if !ok || len(cm) < 1 {
		return ClientHello{}, errHelloSyntax
	}
	if len(p) == 0 {
		return h, nil // no extensions (SSL 3.0 style); so no SNI
	}
	exts, p, ok := vec16(p)
	if !ok || len(p) != 0 {
		return ClientHello{}, errHelloSyntax
	}
	var seenExt [1 << 16 / 64]uint64 // one bit per extension type
	for len(exts) > 0 {
		if len(exts) < 4 {
			return ClientHello{}, errHelloSyntax
		}
		typ := uint16(exts[0])<<8 | uint16(exts[1])
		var data []byte
		data, exts, ok = vec16(exts[2:])
		if !ok {
			return ClientHello{}, errHelloSyntax
		}
		if seenExt[typ/64]&(1<<(typ%64)) != 0 {
			return ClientHello{}, errHelloDupExt
		}
		seenExt[typ/64] |= 1 << (typ % 64)
		switch typ {
		case extServerName:
			name, err := parseServerName(data)
			if err != nil {
				return ClientHello{}, err
			}
			h.ServerName = name
		case extALPN:
			list, rest, ok := vec16(data)
			if !ok || len(rest) != 0 || len(list) == 0 {
				return ClientHello{}, errHelloALPN
			}
			for q := list; len(q) > 0; {
				var name []byte
				name, q, ok = vec8(q)
				if !ok || len(name) == 0 {
					return ClientHello{}, errHelloALPN
				}
			}
			h.alpn = list
		case extSupportedVersions:
			list, rest, ok := vec8(data)
			if !ok || len(rest) != 0 || len(list) < 2 || len(list)%2 != 0 {
				return ClientHello{}, errHelloVersions
			}
			for q := list; len(q) > 0; q = q[2:] {
				h.TLS13 = h.TLS13 || uint16(q[0])<<8|uint16(q[1]) == versionTLS13
			}
		case extECH:
			h.ECH = true
		}
	}
	return h, nil
}

// parseServerName returns the host_name of a server_name extension (RFC
// 6066 §3), or nil if the list holds only other name types.
func parseServerName(data []byte) ([]byte, error) {
	list, rest, ok := vec16(data)
	if !ok || len(rest) != 0 || len(list) == 0 {
		return nil, errHelloSNI
	}
	var host []byte
	for len(list) > 0 {
		typ := list[0]
		var name []byte
		name, list, ok = vec16(list[1:])
		if !ok || len(name) == 0 {
			return nil, errHelloSNI
		}
		if typ != 0 { // not host_name
			continue
		}
		if host != nil {
			return nil, errHelloSNI // at most one name of each type
		}
		host = name
	}
	return host, nil
}

// vec8 splits a vector with a one-byte length prefix off p.
func vec8(p []byte) (v, rest []byte, ok bool) {
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		return nil, nil, false
	}
	n := 1 + int(p[0])
	return p[1:n:n], p[n:], true
}

// vec16 splits a vector with a two-byte length prefix off p.
func vec16(p []byte) (v, rest []byte, ok bool) {
	if len(p) < 2 {
		return nil, nil, false
	}
	n := 2 + (int(p[0])<<8 | int(p[1]))
	if len(p) < n {
		return nil, nil, false
	}
	return p[2:n:n], p[n:], true
}

// isHelloMalformed reports whether err is a final refusal of the input as a
// ClientHello, as opposed to incomplete input.
func isHelloMalformed(err error) bool {
	var he *helloError
	return errors.As(err, &he) && err != ErrIncomplete
}

// PrintableSNI returns a server name for logs: non-printable bytes are
// escaped and long names truncated.
func PrintableSNI(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i == 255 {
			sb.WriteString("...")
			break
		}
		if c < 0x21 || c > 0x7e || c == '\\' {
			const hex = "0123456789abcdef"
			sb.WriteString(`\x`)
			sb.WriteByte(hex[c>>4])
			sb.WriteByte(hex[c&15])
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}
