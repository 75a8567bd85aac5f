package host

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Host is a connection destination as the client named it: either a DNS
// name or an IP literal. Exactly one of Name and IP is set.
type Host struct {
	// Name is the normalized DNS name: lowercase ASCII, IDNA (punycode)
	// encoded, without a trailing dot. It is empty for IP literals.
	Name string
	// IP is the destination address for IP literals. It is the zero
	// netip.Addr for names.
	IP netip.Addr
}

// String returns the host name, or the IP address in its canonical text
// form. IPv6 addresses are not bracketed; callers that join a host with a
// port should use net.JoinHostPort.
func (h Host) String() string {
	if h.IP.IsValid() {
		return h.IP.String()
	}
	return h.Name
}

// IsIP reports whether h is an IP literal.
func (h Host) IsIP() bool { return h.IP.IsValid() }

// hostError is a Parse error. msg is short and user-readable; hint, if
// not empty, tells a policy author how to fix a host pattern.
type hostError struct {
	msg  string
	hint string
}

func (e *hostError) Error() string { return e.msg }

// Errors returned by Parse. They are preallocated so that rejecting
// hostile input costs nothing.
var (
	errEmptyHost    = &hostError{"empty host name", ""}
	errEmptyLabel   = &hostError{"empty label in host name", "Remove the extra dot."}
	errLongLabel    = &hostError{"label longer than 63 bytes", "Each dot-separated part of a host name may be at most 63 bytes long."}
	errLongName     = &hostError{"host name longer than 253 bytes", ""}
	errPercent      = &hostError{"percent-encoded characters are not allowed in host names", "Write the name itself, not its URL encoding."}
	errZone         = &hostError{"IPv6 zone not allowed", "Remove the %zone suffix."}
	errBadIPv6      = &hostError{"invalid IPv6 address", ""}
	errBracketIPv4  = &hostError{"brackets are only allowed around IPv6 addresses", ""}
	errBadIPv4      = &hostError{"invalid IPv4 address", "An IPv4 address has at most four dot-separated parts."}
	errIPv4Range    = &hostError{"IPv4 address part out of range", "Each part of an IPv4 address must be from 0 to 255."}
	errEndsInNumber = &hostError{"host name ends in a number but is not a valid IPv4 address", "A DNS name cannot end in an all-numeric label."}
	errIDNA         = &hostError{"invalid internationalized domain name", ""}
	errBadChar      = &hostError{"invalid character in host name", hostCharHint}
	errSpace        = &hostError{"space in host name", "List each host as a separate string."}
	errControl      = &hostError{"control character in host name", ""}
	errWildcard     = &hostError{"wildcard in host name", ""}
	errUTF8         = &hostError{"invalid UTF-8 in host name", ""}
)

const hostCharHint = `Host names may contain only letters, digits, "-", "_" and dots.`

// idnaProfile converts internationalized names to ASCII. It maps and
// validates like idna.Lookup, but it allows "_" (STD3 rules off) and leaves
// hyphen placement alone; validName then enforces the ASCII character set.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
	idna.BidiRule(),
	idna.Transitional(false),
)

// Parse parses a destination host as a client wrote it in a CONNECT
// target, a URL or a TLS server name, with any port already removed.
//
// IPv6 literals may be bracketed and must not carry a zone. IPv4 literals
// are accepted in every inet_aton spelling (2130706433, 0177.0.0.1,
// 0x7f.0.0.1, 127.1) and normalized, because that is how resolvers and
// browsers read them. As in the WHATWG URL standard, a name whose last
// label is numeric must be a valid IPv4 address. Anything else is a DNS
// name: it is lowercased, one trailing dot is removed, and it is converted
// to IDNA ASCII (punycode). Percent-encoding is rejected, not decoded.
//
// Parse does not allocate for names that are already normalized.
func Parse(s string) (Host, error) {
	if name, ok := normalName(s); ok {
		return Host{Name: name}, nil
	}
	return parse(s)
}

// normalName reports whether s, without one trailing dot, is a name that
// parse returns as it is, and returns it: checked in one pass instead of
// parse's several (the name of every CONNECT is parsed). It is lowercase
// LDH-or-underscore ASCII in non-empty labels of at most 63 bytes, at most
// 253 in all, no label starts with "xn--" (IDNA checks those), and the last
// label does not start with a digit (so it is no number: endsInNumber).
func normalName(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	label := 0 // bytes of the current label so far
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if label == 0 {
				return "", false
			}
			label = 0
			continue
		case c == 'x' && label == 0 && strings.HasPrefix(s[i:], "xn--"):
			return "", false
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", false
		}
		label++
		if label > 63 {
			return "", false
		}
	}
	if label == 0 || '0' <= s[len(s)-label] && s[len(s)-label] <= '9' {
		return "", false
	}
	return s, true
}

// parse is Parse without its shortcut for normalized names.
func parse(s string) (Host, error) {
	if s == "" {
		return Host{}, errEmptyHost
	}
	if s[0] == '[' {
		if len(s) < 2 || s[len(s)-1] != ']' {
			return Host{}, errBadIPv6
		}
		return parseIPv6(s[1 : len(s)-1])
	}
	if strings.IndexByte(s, ':') >= 0 {
		return parseIPv6(s)
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
		if s == "" {
			return Host{}, errEmptyHost
		}
	}
	name, err := toASCII(s)
	if err != nil {
		return Host{}, err
	}
	if endsInNumber(name) {
		ip, err := parseIPv4(name)
		if err != nil {
			return Host{}, err
		}
		return Host{IP: ip}, nil
	}
	if err := validName(name); err != nil {
		return Host{}, err
	}
	return Host{Name: name}, nil
}

func parseIPv6(s string) (Host, error) {
	if strings.IndexByte(s, '%') >= 0 {
		return Host{}, errZone
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return Host{}, errBadIPv6
	}
	if !ip.Is6() {
		return Host{}, errBracketIPv4
	}
	return Host{IP: ip}, nil
}

// toASCII lowercases s and converts it to IDNA ASCII form. Input that is
// already lowercase LDH-or-underscore ASCII without punycode labels is
// returned as is, without allocating.
func toASCII(s string) (string, error) {
	upper := false
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '%':
			return "", errPercent
		case c == ' ':
			return "", errSpace
		case c < 0x20 || c == 0x7f:
			return "", errControl
		case c == '*':
			return "", errWildcard
		default:
			simple = false
		}
	}
	if simple {
		if upper {
			s = strings.ToLower(s)
		}
		if !hasPunycodeLabel(s) {
			return s, nil
		}
	}
	if !utf8.ValidString(s) {
		return "", errUTF8
	}
	a, err := idnaProfile.ToASCII(s)
	if err != nil {
		return "", errIDNA
	}
	// The result must be stable: converting it again must not change it
	// or fail, so that a normalized name always parses to itself.
	if b, err := idnaProfile.ToASCII(a); err != nil || b != a {
		return "", errIDNA
	}
	return a, nil
}

// hasPunycodeLabel reports whether a lowercase name has a label starting
// with the IDNA ACE prefix "xn--", which needs checking by the IDNA code.
func hasPunycodeLabel(s string) bool {
	for {
		if strings.HasPrefix(s, "xn--") {
			return true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
}

// validName checks a lowercase ASCII name without a trailing dot.
func validName(s string) error {
	if s == "" {
		return errEmptyHost
	}
	if len(s) > 253 {
		return errLongName
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return errEmptyLabel
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == ' ':
			return errSpace
		case c < 0x20 || c == 0x7f:
			return errControl
		default:
			return errBadChar
		}
		label++
		if label > 63 {
			return errLongLabel
		}
	}
	if label == 0 {
		return errEmptyLabel
	}
	return nil
}

// endsInNumber implements the WHATWG URL "ends in a number" check: the
// last label is all digits or is a valid 0x-hex number.
func endsInNumber(s string) bool {
	last := s
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		last = s[i+1:]
	}
	if last == "" {
		return false
	}
	digits := true
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			digits = false
			break
		}
	}
	if digits {
		return true
	}
	_, ok := parseIPv4Number(last)
	return ok
}

// parseIPv4 parses an IPv4 address in any inet_aton spelling: one to four
// dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last
// part fills the remaining bytes.
func parseIPv4(s string) (netip.Addr, error) {
	var parts [4]uint64
	n := 0
	for {
		i := strings.IndexByte(s, '.')
		part := s
		if i >= 0 {
			part = s[:i]
		}
		if n == len(parts) {
			return netip.Addr{}, errBadIPv4
		}
		v, ok := parseIPv4Number(part)
		if !ok {
			return netip.Addr{}, errEndsInNumber
		}
		parts[n] = v
		n++
		if i < 0 {
			break
		}
		s = s[i+1:]
	}
	for i := 0; i < n-1; i++ {
		if parts[i] > 255 {
			return netip.Addr{}, errIPv4Range
		}
	}
	if parts[n-1] >= 1<<(8*(5-n)) {
		return netip.Addr{}, errIPv4Range
	}
	v := parts[n-1]
	for i := 0; i < n-1; i++ {
		v |= parts[i] << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// parseIPv4Number implements the WHATWG IPv4 number parser. Values above
// 2^32 saturate so that callers see them as out of range.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		if v <= 1<<32 {
			v = v*base + d
		}
	}
	return v, true
}

// Hint returns the fix-it hint of a Parse error for a policy author, or "".
func Hint(err error) string {
	if he, ok := err.(*hostError); ok {
		return he.hint
	}
	return ""
}

var _ fmt.Stringer = Host{}
