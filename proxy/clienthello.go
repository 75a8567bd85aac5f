package proxy

import (
	"errors"
	"strings"
)

// ClientHello parsing.
//
// The transparent TLS listener and the CONNECT domain-fronting check read a
// TLS ClientHello without terminating TLS: they need its server_name (SNI),
// whether it carries an Encrypted Client Hello, its ALPN list, and whether
// it offers TLS 1.3 (and so may meet a HelloRetryRequest). The bytes
// come straight off a client socket, so the parser is written for hostile
// input: bounded, allocation-free on the common path, and a pure function of
// the bytes seen so far. A reader calls parseClientHello on everything it
// has read after each read; once the answer is not errHelloIncomplete, more
// bytes never change it (FuzzParseClientHello checks this).
//
// The ClientHello may be split over several TCP segments (any reader
// handles that) and over several TLS records (RFC 8446 §5.1 allows a
// handshake message to be fragmented across records); the parser reassembles
// the message. References: RFC 8446 §4.1.2 (ClientHello), §4.2 (extensions,
// no duplicates), §4.2.1 (supported_versions), §4.1.4 (HelloRetryRequest),
// RFC 6066 §3 (server_name), RFC 7301 §3.1 (ALPN), and draft-ietf-tls-esni
// (encrypted_client_hello, 0xfe0d).
//
// What looks like TLS must be a ClientHello and nothing else: servers differ
// in what they skip before one (Go's and OpenSSL's serve a ClientHello after
// a warning alert, and Go's takes any record version below 0x1000), and
// whatever a server may read as a ClientHello must be what the proxy
// checked. So input whose first byte is a TLS record type (change_cipher_spec
// to heartbeat, 20 to 24) is a ClientHello in records of versions 3.0 to 3.4,
// alone in its last record, or it is refused; anything else is not TLS.

const (
	// maxHelloLen caps the ClientHello handshake message, its 4-byte header
	// included. Real ones are 200 B to 2 KiB; post-quantum key shares and
	// ECH grow them to a few KiB.
	maxHelloLen = 16 << 10
	// maxHelloBytes caps the bytes a ClientHello may span on the wire:
	// maxHelloLen plus room for the headers of a message fragmented over
	// hundreds of records. Readers never need more buffer than this.
	maxHelloBytes = maxHelloLen + 4<<10

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

// clientHello is what the proxy reads from a TLS ClientHello. Its byte
// slices alias the parsed input (or, for a message fragmented over several
// records, a reassembly buffer).
type clientHello struct {
	// serverName is the host_name entry of the server_name extension, as
	// sent; nil if there is none.
	serverName []byte
	// ech reports whether the ClientHello carries an encrypted_client_hello
	// extension: serverName is then the outer, public name, and the name the
	// client wants is encrypted.
	ech bool
	// alpn is the ProtocolNameList of the ALPN extension without its length
	// prefix; nil if there is none.
	alpn []byte
	// tls13 reports whether supported_versions offers TLS 1.3.
	tls13 bool
	// end is the length of the records that hold the ClientHello: what a
	// server reads before it answers.
	end int
	// need, when parsing returned errHelloIncomplete, is the smallest input
	// length that can change the answer. It is never more than
	// maxHelloBytes.
	need int
}

// SNI returns the server name, or "" if the ClientHello has none.
func (h *clientHello) SNI() string { return string(h.serverName) }

// ALPN returns the offered application protocols in client order.
func (h *clientHello) ALPN() []string {
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
	// errHelloIncomplete means the input is a proper prefix of what may
	// still become a valid ClientHello: read more (up to clientHello.need).
	errHelloIncomplete = &helloError{"incomplete ClientHello"}
	// errNotTLS means the first byte is not a TLS record type.
	errNotTLS = &helloError{"not TLS"}

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

// parseClientHello parses the TLS ClientHello at the start of b, which may
// continue past it. It returns errHelloIncomplete while b is too short to
// decide, errNotTLS if b does not start with a TLS record type, another
// *helloError if the input is TLS but not a well-formed ClientHello alone in
// its records, and nil when it is complete and well formed. Any answer but
// errHelloIncomplete is final: appending bytes to b does not change it. It
// allocates only to reassemble a message fragmented over several records.
func parseClientHello(b []byte) (clientHello, error) {
	if len(b) == 0 {
		return incomplete(1)
	}
	switch t := b[0]; {
	case t < recordTypeCCS || t > recordTypeHeartbeat:
		return clientHello{}, errNotTLS
	case t != recordTypeHandshake:
		return clientHello{}, errHelloFirst[t-recordTypeCCS]
	}
	body, end, need, err := handshakeMessage(b, handshakeTypeHello, true)
	if err != nil {
		return clientHello{need: need}, err
	}
	h, err := parseHelloBody(body)
	h.end = end
	return h, err
}

// parseSecondHello parses what a client sends after a HelloRetryRequest:
// its second ClientHello, after at most one change_cipher_spec record
// (RFC 8446 §D.4, middlebox compatibility).
func parseSecondHello(b []byte) (clientHello, error) {
	if len(b) == 0 || b[0] != recordTypeCCS {
		return parseClientHello(b)
	}
	if len(b) > maxHelloBytes {
		b = b[:maxHelloBytes] // as in handshakeMessage, so the answer is final
	}
	const ccsLen = recordHeaderLen + 1
	ccs := [ccsLen]byte{recordTypeCCS, 3, 0, 0, 1, 1}
	for i := 1; i < ccsLen; i++ {
		switch {
		case i == len(b):
			return incomplete(i + 1)
		case i == 2 && b[i] > maxRecordMinor, i != 2 && b[i] != ccs[i]:
			return clientHello{}, errHelloCCS
		}
	}
	h, err := parseClientHello(b[ccsLen:])
	if err == errHelloIncomplete {
		return incomplete(ccsLen + h.need)
	}
	h.end += ccsLen
	return h, err
}

// serverHello is what the proxy reads from a server's first handshake
// message.
type serverHello struct {
	// retry reports whether it is a HelloRetryRequest.
	retry bool
	// need is as in clientHello.
	need int
}

// hrrRandom is the random of a ServerHello that is a HelloRetryRequest
// (RFC 8446 §4.1.3).
var hrrRandom = [32]byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// parseServerHello decides whether what a server sent first, b, starts with
// a HelloRetryRequest. It returns errHelloIncomplete while b is too short to
// decide, errHelloTooLarge if the first handshake message is too large to
// tell, and nil otherwise: anything but a HelloRetryRequest (a ServerHello,
// an alert, bytes that are not TLS) is not one. Like parseClientHello, an
// answer other than errHelloIncomplete is final.
func parseServerHello(b []byte) (serverHello, error) {
	if len(b) == 0 {
		return serverHello{need: 1}, errHelloIncomplete
	}
	if b[0] != recordTypeHandshake {
		return serverHello{}, nil
	}
	body, _, need, err := handshakeMessage(b, handshakeTypeServerHello, false)
	switch err {
	case nil:
		// legacy_version, then random
		return serverHello{retry: len(body) >= 2+32 && [32]byte(body[2:34]) == hrrRandom}, nil
	case errHelloIncomplete, errHelloTooLarge:
		return serverHello{need: need}, err
	}
	return serverHello{}, nil
}

// handshakeMessage returns the body of the handshake message at the start
// of the handshake records b starts with, which must be of type typ, and
// the length of the records up to its end. With alone set, the message must
// end its record. It returns errHelloIncomplete (and the length that can
// change the answer) while b is too short to decide, and any other answer
// is final.
func handshakeMessage(b []byte, typ byte, alone bool) (body []byte, end, need int, err error) {
	if len(b) > maxHelloBytes {
		b = b[:maxHelloBytes] // nothing past the cap may decide
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
func incomplete(need int) (clientHello, error) {
	if need > maxHelloBytes {
		return clientHello{}, errHelloTooLarge
	}
	return clientHello{need: need}, errHelloIncomplete
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
func parseHelloBody(p []byte) (clientHello, error) {
	var h clientHello
	// legacy_version, random
	if len(p) < 2+32 {
		return clientHello{}, errHelloSyntax
	}
	p = p[2+32:]
	// legacy_session_id<0..32>
	sid, p, ok := vec8(p)
	if !ok || len(sid) > 32 {
		return clientHello{}, errHelloSyntax
	}
	// cipher_suites<2..2^16-2>
	cs, p, ok := vec16(p)
	if !ok || len(cs) < 2 || len(cs)%2 != 0 {
		return clientHello{}, errHelloSyntax
	}
	// legacy_compression_methods<1..2^8-1>
	cm, p, ok := vec8(p)
	if !ok || len(cm) < 1 {
		return clientHello{}, errHelloSyntax
	}
	if len(p) == 0 {
		return h, nil // no extensions (SSL 3.0 style); so no SNI
	}
	exts, p, ok := vec16(p)
	if !ok || len(p) != 0 {
		return clientHello{}, errHelloSyntax
	}
	var seenExt [1 << 16 / 64]uint64 // one bit per extension type
	for len(exts) > 0 {
		if len(exts) < 4 {
			return clientHello{}, errHelloSyntax
		}
		typ := uint16(exts[0])<<8 | uint16(exts[1])
		var data []byte
		data, exts, ok = vec16(exts[2:])
		if !ok {
			return clientHello{}, errHelloSyntax
		}
		if seenExt[typ/64]&(1<<(typ%64)) != 0 {
			return clientHello{}, errHelloDupExt
		}
		seenExt[typ/64] |= 1 << (typ % 64)
		switch typ {
		case extServerName:
			name, err := parseServerName(data)
			if err != nil {
				return clientHello{}, err
			}
			h.serverName = name
		case extALPN:
			list, rest, ok := vec16(data)
			if !ok || len(rest) != 0 || len(list) == 0 {
				return clientHello{}, errHelloALPN
			}
			for q := list; len(q) > 0; {
				var name []byte
				name, q, ok = vec8(q)
				if !ok || len(name) == 0 {
					return clientHello{}, errHelloALPN
				}
			}
			h.alpn = list
		case extSupportedVersions:
			list, rest, ok := vec8(data)
			if !ok || len(rest) != 0 || len(list) < 2 || len(list)%2 != 0 {
				return clientHello{}, errHelloVersions
			}
			for q := list; len(q) > 0; q = q[2:] {
				h.tls13 = h.tls13 || uint16(q[0])<<8|uint16(q[1]) == versionTLS13
			}
		case extECH:
			h.ech = true
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
	return errors.As(err, &he) && err != errHelloIncomplete
}

// printableSNI returns a server name for logs: non-printable bytes are
// escaped and long names truncated.
func printableSNI(b []byte) string {
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
