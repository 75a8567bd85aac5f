package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
)

// Flows: what a request asks for, and the decision on it.
//
// A flow is one request (a CONNECT, a plain-HTTP request, a transparent
// connection) from its head to its decision: the target parsed and checked
// against the Host header, the client block, the rate limit, and the rules.
// Every listener decides through decide, and explain through classify and
// applyRules, so that they never disagree.

// flow is one decided request: who asked for what, and under which policy.
type flow struct {
	kind   string
	method string
	client netip.AddrPort
	host   host.Host
	port   uint16
	gen    *generation
	block  *policy.Client
	state  *blockState
	rule   *policy.Rule // nil for a learn-mode would_deny
	start  time.Time

	// Credentials (identity.go): how they were judged, and why not when
	// refused; the valid token's identity; a refused token's fingerprint.
	auth       authState
	authReason string
	id         identity.Identity
	tokenFP    string
}

func (fl *flow) target() string { return hostPort(fl.host, fl.port) }

func (fl *flow) decision() string {
	if fl.rule == nil {
		return "would_deny"
	}
	return "allow"
}

func (fl *flow) blockName() string {
	if fl.block == nil {
		return ""
	}
	return fl.block.Name
}

func (fl *flow) mode() string {
	if fl.block == nil {
		return ""
	}
	return fl.block.Mode.String()
}

// admit runs every check that needs no network: request hygiene,
// credentials, client block, rate limit and policy. A nil denial means the
// flow may proceed to the dial, where the destination guard runs. Only a
// request on the explicit listener has credentials: on the transparent one
// Proxy-Authorization is not addressed to the proxy.
func (s *Server) admit(r *http.Request, kind string) (*flow, *denial) {
	fl := s.newFlow(r, kind)
	if d := s.checkHygiene(r, fl); d != nil {
		return fl, d
	}
	if transparentFrom(r.Context()) != nil {
		return fl, s.decide(fl)
	}
	return fl, s.decideExplicit(r.Context(), fl, r.Header["Proxy-Authorization"])
}

// newFlow starts the flow of r under the current policy.
func (s *Server) newFlow(r *http.Request, kind string) *flow {
	client, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		client = netip.AddrPort{}
	}
	return s.newFlowFrom(kind, r.Method, client)
}

// newFlowFrom is newFlow for a request whose client address is at hand
// (the zero AddrPort if unknown), as the engine has it: no string to parse.
func (s *Server) newFlowFrom(kind, method string, client netip.AddrPort) *flow {
	fl := &flow{kind: kind, method: method, start: time.Now(), gen: s.gen.Load()}
	if client.IsValid() {
		fl.client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	}
	return fl
}

// decide is the part of admit that every listener shares: it selects
// fl.client's block, takes a token from the block's rate limit and applies
// its rules to fl.host and fl.port. A nil denial means the flow may proceed
// to the dial, where the destination guard runs.
func (s *Server) decide(fl *flow) *denial {
	if d := classify(fl); d != nil {
		return d
	}
	fl.state = s.blocks.get(fl.block.Name)
	if ok, wait := fl.state.allow(fl.start); !ok {
		l := fl.state.limits.Load()
		return &denial{
			status:     http.StatusTooManyRequests,
			reason:     ReasonRateLimited,
			detail:     fmt.Sprintf("client block %q is over its limit of %g new connections per second (burst %d)", fl.block.Name, l.ConnectionsPerSecond, l.Burst),
			fix:        fmt.Sprintf("Retry later, or raise limits.connections_per_second for client %q in %s.", fl.block.Name, fl.gen.pol.Filename()),
			retryAfter: wait,
		}
	}
	_, d := applyRules(fl)
	return d
}

// classify finds fl's client block and refuses what no rule may allow:
// IMDS, WireServer and Arc's HIMDS, which answer only on the VM itself (a
// client sending them here has a NO_PROXY problem, whatever its block), and
// clients in no block. A flow with a valid token gets its identity's block
// (classifyIdentity); any other, the address-keyed block of its address.
// The proxy and explain both decide through it.
func classify(fl *flow) *denial {
	if fl.auth == authOK {
		return classifyIdentity(fl)
	}
	fl.block = fl.gen.pol.Client(fl.client.Addr())
	if d := checkLocalEndpoint(fl); d != nil {
		return d
	}
	if fl.block == nil {
		return clientUnknown(fl)
	}
	return nil
}

// checkLocalEndpoint refuses a VM-local endpoint as the destination.
func checkLocalEndpoint(fl *flow) *denial {
	if label, ok := catalog.LocalEndpoint(fl.host, fl.port); ok {
		return localEndpoint(fl, label)
	}
	return nil
}

// applyRules decides fl under its client block's rules and sets fl.rule
// to the allowing rule. Deny rules refuse in learn mode too: they are a
// decision the policy's author made, not a gap to learn. Otherwise learn
// mode lets through what no rule allows (a nil denial with a nil fl.rule).
func applyRules(fl *flow) (policy.Decision, *denial) {
	d := fl.block.Decide(fl.host, fl.port)
	if !d.Allowed && (fl.block.Mode != policy.ModeLearn || d.Deny != nil) {
		return d, refusal(fl, d)
	}
	fl.rule = d.Rule
	return d, nil
}

// checkHygiene parses the request target into fl and refuses anything
// ambiguous: the absolute-form URL (or CONNECT authority) is the only thing
// that decides, and nothing may disagree with it.
func (s *Server) checkHygiene(r *http.Request, fl *flow) *denial {
	hc, _ := r.Context().Value(connKey{}).(*clientConn)
	if hc == nil {
		return badRequest("request did not arrive on a proxy connection")
	}
	head, ok := hc.NextHead()
	if !ok || head.Err != nil {
		return badRequest("request framing could not be verified")
	}
	if head.Method != r.Method || head.Target != r.RequestURI {
		return badRequest("request framing is ambiguous")
	}
	if len(head.TransferEncoding) > 0 && len(head.ContentLength) > 0 {
		return badRequest("request has both Content-Length and Transfer-Encoding")
	}
	if len(head.Host) > 1 {
		return badRequest("request has more than one Host header")
	}
	if strings.IndexByte(head.Target, '#') >= 0 {
		// A request target has no fragment (RFC 9112 §3.2); net/url keeps
		// one in the path, which would go upstream as %23.
		return badRequest("request target must not carry a fragment (#)")
	}
	if tc := transparentFrom(r.Context()); tc != nil {
		return checkTransparentHygiene(r, head, tc, fl) // origin-form, on that listener only
	}
	return checkTarget(fl, r.Method, r.RequestURI, r.URL, head.Host)
}

// checkTarget parses the request target (the CONNECT authority, or the
// absolute-form URL u) into fl, and refuses a Host header that names
// anything else. hosts are the request's raw Host header values.
func checkTarget(fl *flow, method, requestURI string, u *url.URL, hosts []string) *denial {
	var authority, defPort string
	if method == http.MethodConnect {
		if strings.HasPrefix(requestURI, "/") || strings.Contains(requestURI, "://") {
			return badRequest("CONNECT target must be host:port, got %q", requestURI)
		}
		if strings.Contains(requestURI, "@") {
			return badRequest("CONNECT target must not carry userinfo")
		}
		authority = requestURI
	} else {
		if !u.IsAbs() {
			return badRequest("request target must be an absolute URL")
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			defPort = "80"
		case "https":
			defPort = "443"
		default:
			return badRequest("unsupported URL scheme %q", u.Scheme)
		}
		if u.User != nil {
			return badRequest("request URL must not carry userinfo")
		}
		authority = u.Host
	}
	name, port, err := splitAuthority(authority, defPort)
	if err != nil {
		return badRequest("%v", err)
	}
	h, err := wireHost(name)
	if err != nil {
		return badRequest("invalid destination host %q: %v", truncate(name, 80), err)
	}
	// Case and one trailing dot are normalized, not refused: they spell the
	// same DNS name, which is the one decided and dialed. Without a Host
	// header (HTTP/1.0, CONNECT) the target alone decides.
	fl.host, fl.port = h, port
	// A Host spelled as the target (as clients send it) names the same
	// authority: only another spelling is parsed again.
	if len(hosts) == 1 && hosts[0] != authority {
		// A port-less Host on a CONNECT names the same authority.
		hostDefPort := defPort
		if method == http.MethodConnect {
			hostDefPort = strconv.Itoa(int(port))
		}
		hh, hp, err := splitAuthority(hosts[0], hostDefPort)
		var hph host.Host
		if err == nil {
			hph, err = wireHost(hh)
		}
		if err != nil || hph != h || hp != port {
			return badRequest("Host header %q disagrees with the request target %s", truncate(hosts[0], 80), fl.target())
		}
	}
	return nil
}

// errNonASCIIHost refuses a host name a client sent in Unicode.
var errNonASCIIHost = errors.New("host name is not ASCII; send its IDNA ASCII (xn--) form")

// wireHost parses a host a client sent: a request target, a Host header or
// a TLS server name, where names are ASCII (RFC 3986 reg-name, RFC 6066).
// A Unicode spelling would be decided on its IDNA mapping but reach the
// origin as sent, where another reading may name another host (Go's
// Request.Write makes allowed.example。com allowed.xn--examplecom-th3i), so
// it is refused rather than mapped.
func wireHost(s string) (host.Host, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return host.Host{}, errNonASCIIHost
		}
	}
	return host.Parse(s)
}

// splitAuthority splits host[:port]. A missing port takes defPort; with no
// default (CONNECT) the port is required.
func splitAuthority(a, defPort string) (string, uint16, error) {
	if a == "" {
		return "", 0, errors.New("empty destination")
	}
	host, portStr, err := net.SplitHostPort(a)
	if err != nil {
		if defPort == "" {
			return "", 0, fmt.Errorf("destination %q has no port", truncate(a, 80))
		}
		// No port: a bare name, or an IPv6 literal in brackets.
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(a, "[")) {
			return "", 0, fmt.Errorf("invalid destination %q", truncate(a, 80))
		}
	}
	if strings.HasPrefix(a, "[") {
		// Brackets hold an IPv6 literal and nothing else (RFC 3986
		// §3.2.2): "[1]" is no name to decide on, and net/http refuses it.
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			return "", 0, fmt.Errorf("destination %q: brackets must hold an IPv6 address", truncate(a, 80))
		}
	}
	if portStr == "" {
		portStr = defPort
	}
	for _, c := range portStr {
		if c < '0' || c > '9' {
			return "", 0, fmt.Errorf("invalid port %q", truncate(portStr, 20))
		}
	}
	// Leading zeros read as decimal, as URL parsers, curl and Go's dialer
	// read them: the port dialed is the port decided.
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q is outside 1-65535", truncate(portStr, 20))
	}
	return host, uint16(p), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
