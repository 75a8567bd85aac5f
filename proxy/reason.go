package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
)

// Reasons a request is refused. They appear in logs, metrics, the
// X-Azegress-Reason header, the details of the Proxy-Status header and the
// 403 body; they are stable.
const (
	ReasonNoRule         = "no_rule"
	ReasonDenyRule       = "deny_rule"
	ReasonBlockedAddress = "blocked_address"
	ReasonClientUnknown  = "client_unknown"
	ReasonRateLimited    = "rate_limited"
	ReasonTooManyTunnels = "too_many_tunnels"
	ReasonBadRequest     = "bad_request"
	ReasonDialFailed     = "dial_failed"
	ReasonLocalEndpoint  = "local_endpoint"
	// ReasonNoSNI: a transparent TLS connection whose ClientHello names no
	// host (no SNI, or an IP address).
	ReasonNoSNI = "no_sni"
	// ReasonECH: a transparent TLS connection with an Encrypted Client
	// Hello whose outer (public) name is not allowed.
	ReasonECH = "ech"
	// ReasonSNIMismatch: a CONNECT tunnel whose ClientHello names another
	// host than the CONNECT target, one the client block does not allow;
	// or, on CONNECT and the transparent TLS listener, a second ClientHello
	// after a HelloRetryRequest that names another server than the first.
	ReasonSNIMismatch = "sni_mismatch"
	// ReasonUpstreamTLS: an absolute-form https:// request whose
	// destination failed the proxy's TLS handshake (a certificate it does
	// not trust or that does not name the host, no TLS, a timeout).
	ReasonUpstreamTLS = "upstream_tls"
	// ReasonTooManyConnections: a client connection over the global
	// connection cap (-max-conns), refused at accept with a 503. It is
	// counted by azegress_client_connections_shed_total, not logged.
	ReasonTooManyConnections = "too_many_connections"
	// ReasonAllowed labels allowed decisions in metrics.
	ReasonAllowed = "allowed"
)

// Proxy error types of RFC 9209 (the error parameter of Proxy-Status) that
// the proxy's refusals carry.
const (
	psRequestDenied   = "http_request_denied"       // refused by the policy or the proxy's configuration; nothing was sent on
	psRequestError    = "http_request_error"        // the request itself is at fault (RFC 9209: what a forward proxy answers when the request names no next hop it can use)
	psIPProhibited    = "destination_ip_prohibited" // the proxy may not connect to the next hop's address
	psLoopDetected    = "proxy_loop_detected"       // the next hop is the proxy itself
	psDNSError        = "dns_error"                 // resolving the name failed, or gave no address
	psDNSTimeout      = "dns_timeout"               // resolving the name timed out
	psConnRefused     = "connection_refused"        // the next hop refused the connection
	psConnTimeout     = "connection_timeout"        // connecting (or the TLS handshake) timed out
	psConnTerminated  = "connection_terminated"     // the next hop closed the connection before a response
	psIPUnroutable    = "destination_ip_unroutable" // no route to the next hop's address
	psDestUnavailable = "destination_unavailable"   // connecting failed otherwise
	psTLSCertificate  = "tls_certificate_error"     // the next hop's certificate does not verify
	psTLSAlert        = "tls_alert_received"        // the next hop refused the TLS handshake with an alert
	psTLSProtocol     = "tls_protocol_error"        // the TLS handshake failed otherwise
	psHTTPProtocol    = "http_protocol_error"       // the next hop's HTTP response could not be used
	psResponseTimeout = "http_response_timeout"     // no complete response in time
	psUpgradeFailed   = "http_upgrade_failed"       // the next hop switched protocols, which the proxy does not relay on plain HTTP
	psInternal        = "proxy_internal_error"      // the proxy cannot judge the request now (no signing keys)
)

// proxyErrors is the RFC 9209 error type of each reason's refusals, where
// the cause does not pick a more precise one (denial.proxyError: a
// dial_failed by how resolving or connecting failed, an upstream_tls by how
// the handshake did, a blocked_address at the proxy's own listener). The
// README's table lists it.
var proxyErrors = func() map[string]string {
	m := map[string]string{
		ReasonNoRule:             psRequestDenied,
		ReasonDenyRule:           psRequestDenied,
		ReasonClientUnknown:      psRequestDenied,
		ReasonIdentityUnknown:    psRequestDenied,
		ReasonIdentitySource:     psRequestDenied,
		ReasonRateLimited:        psRequestDenied,
		ReasonTooManyTunnels:     psRequestDenied,
		ReasonTooManyConnections: psRequestDenied,
		ReasonNoSNI:              psRequestDenied, // answered with a TLS alert, or after the 200: never in a header
		ReasonECH:                psRequestDenied,
		ReasonSNIMismatch:        psRequestDenied,
		ReasonBlockedAddress:     psIPProhibited,
		ReasonLocalEndpoint:      psIPProhibited,
		ReasonBadRequest:         psRequestError,
		ReasonDialFailed:         psDestUnavailable,
		ReasonUpstreamTLS:        psTLSProtocol,
	}
	for _, r := range identity.Reasons() { // refused credentials: 407
		m[string(r)] = psRequestDenied
	}
	m[string(identity.ReasonHeaderTooLarge)] = psRequestError // 431
	m[string(identity.ReasonKeysUnavailable)] = psInternal    // 503
	return m
}()

// proxyStatus is the Proxy-Status header (RFC 9209) of a refusal for
// reason with the error type errType: the proxy names itself, the error
// and, in details, the reason code, for clients that drop a refused
// CONNECT's body.
func proxyStatus(errType, reason string) string {
	return "azegress; error=" + errType + "; details=" + sfString(reason)
}

// sfString writes s as a Structured Field string (RFC 8941): quoted, with
// quotes and backslashes escaped, anything but printable ASCII dropped.
func sfString(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= ' ' && c <= '~':
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// proxyStatus is d's Proxy-Status header.
func (d *denial) proxyStatus() string {
	errType := d.proxyError
	if errType == "" {
		errType = proxyErrors[d.reason]
	}
	if errType == "" { // a reason missing from proxyErrors (TestProxyStatusEveryReason)
		errType = psRequestDenied
		if d.status >= 500 {
			errType = psInternal
		}
	}
	return proxyStatus(errType, d.reason)
}

// Request kinds.
const (
	kindConnect         = "connect"
	kindHTTP            = "http"
	kindTransparentTLS  = "transparent_tls"  // a redirected TLS connection, decided on its SNI
	kindTransparentHTTP = "transparent_http" // a request on a redirected HTTP connection, decided on its Host
)

// denial is a refused request: what the client is told and what is logged.
type denial struct {
	status     int
	reason     string
	detail     string        // one sentence: what was wrong
	fix        string        // what to do about it, often an HCL snippet
	retryAfter time.Duration // for 429
	closeConn  bool          // the client connection cannot be trusted further
	challenge  bool          // a 407 that asks for credentials (Proxy-Authenticate)
	dstIP      netip.Addr    // the refused address, for blocked_address
	proxyError string        // the RFC 9209 error type, when the cause picks it; "": the reason's (proxyErrors)
}

func badRequest(format string, args ...any) *denial {
	return &denial{
		status:    http.StatusBadRequest,
		reason:    ReasonBadRequest,
		detail:    fmt.Sprintf(format, args...),
		fix:       "Send CONNECT host:port for TLS, or an absolute-form request (GET http://host/path) with a matching Host header.",
		closeConn: true,
	}
}

func noRule(fl *flow) *denial {
	d := &denial{
		status: http.StatusForbidden,
		reason: ReasonNoRule,
		detail: fmt.Sprintf("no allow rule in client block %q matches %s", fl.block.Name, fl.target()),
		fix: fmt.Sprintf("To allow it, add this rule to client %q in %s:\n\n%s",
			fl.block.Name, fl.gen.pol.Filename(), suggestRule(fl.host, fl.port)),
	}
	if fl.host.IsIP() {
		switch guarded, what := Guarded(fl.host.IP); {
		case isLocalEndpoint(fl.host.IP):
			d.fix = noProxyAdvice
		case guarded:
			d.fix = fmt.Sprintf("%s is a %s. Only if it is yours (for example a private endpoint), add this rule to client %q in %s:\n\n%s",
				fl.host.IP, what, fl.block.Name, fl.gen.pol.Filename(), suggestRule(fl.host, fl.port))
		}
	}
	return d
}

// refusal turns a policy decision that did not allow the flow into its
// denial: deny_rule when a deny rule matched, no_rule otherwise. For a deny
// rule it also records the rule in fl.rule, so that the denial's log
// record names it (the rule key); the flow ends at the denial.
func refusal(fl *flow, d policy.Decision) *denial {
	if d.Deny == nil {
		return noRule(fl)
	}
	fl.rule = d.Deny
	return denyRule(fl, d.Deny)
}

// denyRule refuses a flow that a deny rule matches.
func denyRule(fl *flow, r *policy.Rule) *denial {
	at := fmt.Sprintf("%s:%d:%d", r.Range.Filename, r.Range.Start.Line, r.Range.Start.Column)
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonDenyRule,
		detail: fmt.Sprintf("deny rule %q (%s) in client block %q matches %s", r.Name, at, fl.block.Name, fl.target()),
		fix: fmt.Sprintf("This destination is refused on purpose. If the client needs it, narrow or remove deny rule %q in client %q at %s; deny rules are evaluated before allow rules.",
			r.Name, fl.block.Name, at),
	}
}

// noProxyAdvice is the fix for a client that sends a VM-local Azure endpoint
// to the proxy: the endpoint only answers on the VM itself.
const noProxyAdvice = "This endpoint is local to the VM and must not go through a proxy. Add it to NO_PROXY in the client's environment, e.g.\n\n" +
	"  NO_PROXY=169.254.169.254,168.63.129.16,localhost,127.0.0.1\n\n" +
	"(Arc-enabled servers: localhost and 127.0.0.1 cover the HIMDS identity endpoint on port 40342.)\n"

// localEndpoint refuses a VM-local Azure endpoint sent through the proxy.
func localEndpoint(fl *flow, label string) *denial {
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonLocalEndpoint,
		detail: fmt.Sprintf("%s is the %s, which answers only on the VM itself and must not be sent to a proxy", fl.target(), label),
		fix:    noProxyAdvice,
	}
}

// localEndpointAt refuses a name that resolved to a VM-local Azure endpoint.
// No rule allows it: on Azure it would hand the client the proxy host's own
// managed-identity token.
func localEndpointAt(fl *flow, ip netip.Addr, label string) *denial {
	if fl.host.IsIP() {
		return localEndpoint(fl, label)
	}
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonLocalEndpoint,
		dstIP:  ip,
		detail: fmt.Sprintf("%s resolves to %s, the %s, which answers only on the machine itself; the proxy never connects to it, whatever the rules say", fl.host, ip, label),
		fix:    fmt.Sprintf("A public name should not resolve to a VM-local endpoint: check the DNS records of %s and who answers for them. Clients that need the endpoint itself reach it directly, with it in NO_PROXY.", fl.host),
	}
}

func clientUnknown(fl *flow) *denial {
	a := fl.client.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonClientUnknown,
		detail: fmt.Sprintf("client address %s is in no client block's sources", a),
		fix: fmt.Sprintf("To let this client use the proxy, add its address to a client block's sources in %s, for example:\n\n"+
			"  client \"new-workload\" {\n    sources = [\"%s\"]\n\n%s  }\n",
			fl.gen.pol.Filename(), netip.PrefixFrom(a, bits), indent(suggestRule(fl.host, fl.port), "  ")),
	}
}

func blockedAddress(fl *flow, ip netip.Addr, what string) *denial {
	d := &denial{
		status: http.StatusForbidden,
		reason: ReasonBlockedAddress,
		dstIP:  ip,
	}
	name := fl.host.String()
	if fl.host.IsIP() {
		d.detail = fmt.Sprintf("%s is a %s", ip, what)
	} else {
		d.detail = fmt.Sprintf("%s resolves to %s, a %s", name, ip, what)
	}
	switch {
	case what == selfWhat:
		d.proxyError = psLoopDetected
		d.fix = "The proxy never connects to its own listeners."
	case isLocalEndpoint(ip):
		d.fix = noProxyAdvice
	case fl.rule != nil:
		d.fix = fmt.Sprintf("If this address is yours (for example a private endpoint), let rule %q in client %q reach it in %s:\n\n  addresses = [\"%s\"]\n",
			fl.rule.Name, fl.block.Name, fl.gen.pol.Filename(), netip.PrefixFrom(ip, ip.BitLen()))
	default:
		d.fix = "Guarded addresses are reachable only through a rule that lists them in addresses."
	}
	return d
}

const selfWhat = "listener of this proxy"

// isLocalEndpoint reports whether ip is one of the Azure endpoints that live
// on the VM itself (IMDS, WireServer): a client sending them to a proxy has a
// NO_PROXY problem, not a policy problem.
func isLocalEndpoint(ip netip.Addr) bool {
	_, ok := catalog.LocalEndpoint(host.Host{IP: ip.Unmap()}, 0)
	return ok
}

// suggestRule renders the HCL allow block that would let host:port through.
func suggestRule(h host.Host, port uint16) string {
	var b strings.Builder
	name := h.String()
	if h.IsIP() {
		name = "ip-" + name
	}
	name = strings.NewReplacer(".", "-", ":", "-").Replace(name)
	fmt.Fprintf(&b, "  allow %q {\n", name)
	if h.IsIP() {
		fmt.Fprintf(&b, "    addresses = [\"%s\"]\n", netip.PrefixFrom(h.IP, h.IP.BitLen()))
	} else {
		fmt.Fprintf(&b, "    hosts = [\"%s\"]\n", h.Name)
	}
	if port != 443 {
		fmt.Fprintf(&b, "    ports = [%d]\n", port)
	}
	b.WriteString("  }\n")
	return b.String()
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" && l != "\n" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// body renders the plain-text explanation sent with a refusal.
func (d *denial) body(method, target string, fl *flow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "azegress denied %s %s\n", method, target)
	if fl != nil && fl.client.IsValid() {
		if fl.block != nil {
			fmt.Fprintf(&b, "client:  %s (client block %q)\n", fl.client.Addr().Unmap(), fl.block.Name)
		} else {
			fmt.Fprintf(&b, "client:  %s\n", fl.client.Addr().Unmap())
		}
	}
	fmt.Fprintf(&b, "reason:  %s: %s\n", d.reason, d.detail)
	if fl != nil && fl.gen != nil {
		fmt.Fprintf(&b, "policy:  %s\n", fl.gen.pol.Filename())
	}
	if d.fix != "" {
		b.WriteString("\n")
		b.WriteString(d.fix)
		if !strings.HasSuffix(d.fix, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

func statusText(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

// hostPort joins a host and a port, bracketing IPv6.
func hostPort(h host.Host, port uint16) string {
	return net.JoinHostPort(h.String(), strconv.Itoa(int(port)))
}
