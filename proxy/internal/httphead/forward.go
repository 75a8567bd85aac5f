package httphead

import "bytes"

// Forward is what ForwardRequest learned of a request it rewrote.
type Forward struct {
	Authority string // the target's authority, as written
	Close     bool   // the client sent Connection: close
}

// ForwardRequest appends to dst the origin-form request for the client head
// (request line to the empty line, as the Parser accepted it; bytes after
// the empty line are not looked at) whose target is absolute-form
// http://authority[/path][?query]: "METHOD /path?query HTTP/1.1",
// "Host: authority" (replacing the client's Host), then every client header
// line in its order and spelling, ended by CRLF, except: Host,
// Proxy-Authorization, Proxy-Connection, Connection, Keep-Alive, TE,
// Transfer-Encoding, Upgrade, Proxy-Authenticate and every field named in a
// Connection value; then the empty line.
//
// It reports in Forward whether the client asked to close (Connection:
// close) and whether the request is plain enough for the event loop: ok is
// false, and out is dst, for anything net/http must handle or refuse:
//   - a request line that is not token SP target SP "HTTP/1.1", or CONNECT;
//   - a target that is not "http://" + authority + ("" | "/"... | "?"...),
//     with bytes outside the visible ASCII range, a '#', or in its path a
//     '%' not followed by two hex digits (net/http refuses those);
//   - an authority that is empty or holds anything but RFC 3986's
//     unreserved and sub-delims characters, ':', '[' and ']': no userinfo
//     ('@'), no percent-encoding, which net/http would read differently;
//   - other than one Host field (net/http refuses the request);
//   - an Expect or Upgrade field, Transfer-Encoding, or a Content-Length
//     other than a single "0": more than one request and one response;
//   - obs-fold, a malformed field line, or a control byte in a value;
//   - more than 32 names in Connection, or a head over 1 MiB.
//
// The authority is returned as written: deciding on it, and lower-casing
// it, is the caller's.
func ForwardRequest(dst, head []byte) (out []byte, f Forward, ok bool) {
	line, fields, ok := nextLine(head)
	if !ok {
		return dst, Forward{}, false
	}
	method, s, ok1 := bytes.Cut(line, []byte{' '})
	target, proto, ok2 := bytes.Cut(s, []byte{' '})
	if !ok1 || !ok2 || !isToken(method) || string(method) == "CONNECT" || string(proto) != "HTTP/1.1" {
		return dst, Forward{}, false
	}
	authority, origin, ok := httpTarget(target)
	if !ok {
		return dst, Forward{}, false
	}

	var conn connNames
	hosts, lengths := 0, 0
	rest := fields
	for {
		line, rest, ok = nextLine(rest)
		if !ok {
			return dst, Forward{}, false // no empty line
		}
		if len(line) == 0 {
			break
		}
		name, value, k := fieldLine(line)
		if k != lineField || hasCTL(value) {
			return dst, Forward{}, false
		}
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
		case asciiEqualFold(name, "content-length"):
			lengths++
			if string(value) != "0" {
				return dst, Forward{}, false
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "expect"), asciiEqualFold(name, "upgrade"):
			return dst, Forward{}, false
		case asciiEqualFold(name, "connection"):
			conn.add(value)
		}
	}
	if hosts != 1 || lengths > 1 || conn.over || len(head)-len(rest) > maxHeadBytes {
		return dst, Forward{}, false
	}

	out = append(dst, method...)
	out = append(out, ' ')
	if len(origin) == 0 || origin[0] == '?' {
		out = append(out, '/')
	}
	out = append(out, origin...)
	out = append(out, " HTTP/1.1\r\nHost: "...)
	out = append(out, authority...)
	out = append(out, "\r\n"...)
	for {
		line, fields, _ = nextLine(fields)
		if len(line) == 0 {
			break
		}
		name := fieldName(line)
		if asciiEqualFold(name, "host") || hopByHop(name) || conn.has(name) {
			continue
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "\r\n"...)
	return out, Forward{Authority: string(authority), Close: conn.close}, true
}

// httpTarget splits an absolute-form target "http://" authority ["/" path]
// ["?" query] into its authority and the rest, the origin form without its
// leading '/' if the target had none. It reports false for any other
// target, and for one ForwardRequest leaves to net/http.
func httpTarget(t []byte) (authority, origin []byte, ok bool) {
	rest, ok := bytes.CutPrefix(t, []byte("http://"))
	if !ok {
		return nil, nil, false
	}
	i := bytes.IndexAny(rest, "/?")
	if i < 0 {
		i = len(rest)
	}
	authority, origin = rest[:i], rest[i:]
	if len(authority) == 0 {
		return nil, nil, false
	}
	for _, c := range authority {
		if !authorityByte(c) {
			return nil, nil, false
		}
	}
	path := true // in the path, before any '?'
	for i, c := range origin {
		switch {
		case c <= ' ' || c >= 0x7f || c == '#':
			return nil, nil, false
		case c == '?':
			path = false
		case c == '%' && path:
			if i+2 >= len(origin) || !isHex(origin[i+1]) || !isHex(origin[i+2]) {
				return nil, nil, false
			}
		}
	}
	return authority, origin, true
}

// authorityByte reports whether c may stand in an authority ForwardRequest
// accepts: RFC 3986's unreserved and sub-delims, ':' before a port, and
// the brackets of an IP literal.
func authorityByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("-._~!$&'()*+,;=:[]"), c) >= 0
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}
