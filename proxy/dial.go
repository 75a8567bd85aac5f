package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/dnscache"
)

// dialFlow resolves the destination itself, checks every address against
// the destination guard, and connects to an address it checked: the name is
// never resolved a second time, so DNS rebinding cannot swap the address.
func (s *Server) dialFlow(ctx context.Context, fl *flow) (net.Conn, *denial) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()

	addrs, err := resolve(ctx, s.cfg.Resolver, fl.host)
	if err != nil {
		return nil, resolveFailed(fl, err)
	}

	checked, refused := appendGuarded(ctx, make([]netip.Addr, 0, len(addrs)), nil, fl, addrs, s.cfg.Resolver, s.isSelf)
	if len(checked) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, noAddresses(fl)
	}
	// A guarded address among public ones is dropped, not dialed: only
	// checked addresses are ever used.
	var lastErr error
	for i, a := range checked {
		dctx := ctx
		if n := len(checked) - i; n > 1 {
			// Leave time for the remaining addresses.
			if dl, ok := ctx.Deadline(); ok {
				var c context.CancelFunc
				dctx, c = context.WithTimeout(ctx, time.Until(dl)/time.Duration(n))
				defer c()
			}
		}
		c, err := s.cfg.Dial(dctx, "tcp", netip.AddrPortFrom(a, fl.port).String())
		if err == nil {
			s.m.dialSeconds.Observe(time.Since(start).Seconds())
			return c, nil
		}
		lastErr = err
	}
	return nil, dialFailed(fl, checked[len(checked)-1], lastErr)
}

// newDNSResolver is the resolver of a Config without one: Go's, behind a
// cache of its answers (dnscache) whose counters cfg.Registerer gets, or
// alone if cfg.DNSCacheSize is negative. The cache
// keeps only what the resolver answered, and dialFlow checks every address
// it returns, so a kept answer is guarded as a fresh one is.
func newDNSResolver(cfg Config) Resolver {
	if cfg.DNSCacheSize < 0 {
		if cfg.DNSDial != nil {
			return &net.Resolver{PreferGo: true, Dial: cfg.DNSDial}
		}
		return net.DefaultResolver
	}
	c := dnscache.New(dnscache.Config{Size: cfg.DNSCacheSize, MaxTTL: cfg.DNSCacheMaxTTL,
		NegativeTTL: cfg.DNSCacheNegativeTTL, Dial: cfg.DNSDial})
	cfg.Registerer.MustRegister(dnsCollector{c})
	return c
}

// resolve returns the addresses of h: its own for an IP literal, else what
// the resolver answers for the name as a fully qualified name. The trailing
// dot keeps resolv.conf's search list out (with Kubernetes' ndots:5,
// "allowed.example" would be tried as "allowed.example.<namespace>.svc..."
// first): the policy names hosts, never relative names.
func resolve(ctx context.Context, r Resolver, h host.Host) ([]netip.Addr, error) {
	if h.IsIP() {
		return []netip.Addr{h.IP}, nil
	}
	return r.LookupNetIP(ctx, "ip", fqdn(h.Name))
}

// fqdn is name, normalized without its trailing dot (host.Host.Name), as
// an absolute DNS name. A single-label name (localhost, a hosts-file alias)
// stays as written: it has no absolute form the hosts file knows (Go's
// resolver keys single labels there without the dot, so "localhost." goes
// to DNS), and a policy that names one means the local name.
func fqdn(name string) string {
	if strings.IndexByte(name, '.') < 0 {
		return name
	}
	return name + "."
}

// guardAddrs runs the destination guard over the addresses a destination
// resolved to. A VM-local endpoint is refused whatever the rules say; a
// guarded address passes only through a rule that names its range
// (policy.Client.AddressAllowed) or a private endpoint of an allowed name. It returns the addresses that may be dialed, the verdict on
// each, and the refusal for the first address refused. self reports the
// proxy's own listeners (nil: none). The same code serves dialing and
// `azegress explain`, so the two never disagree.
func guardAddrs(ctx context.Context, fl *flow, addrs []netip.Addr, r Resolver, self func(netip.Addr, uint16) bool) (checked []netip.Addr, verdicts []AddrCheck, refused *denial) {
	checked, refused = appendGuarded(ctx, make([]netip.Addr, 0, len(addrs)), &verdicts, fl, addrs, r, self)
	return checked, verdicts, refused
}

// appendGuarded is guardAddrs appending the addresses that may be dialed to
// checked, and the verdicts to *verdicts unless verdicts is nil: a dial,
// which needs no verdicts, costs no allocation for them (or for checked,
// given room).
func appendGuarded(ctx context.Context, checked []netip.Addr, verdicts *[]AddrCheck, fl *flow, addrs []netip.Addr, r Resolver, self func(netip.Addr, uint16) bool) ([]netip.Addr, *denial) {
	var refused *denial
	privateLink := -1 // unknown; 0 or 1 once looked up
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		v := AddrCheck{IP: a, Allowed: true}
		if !a.IsValid() {
			// A resolver's answer that is no address: nothing to check or
			// dial (the zero Addr is in no guarded range).
			v.Allowed, v.What = false, "not an IP address"
		} else if self != nil && self(a, fl.port) {
			v.Allowed, v.What = false, selfWhat
			if refused == nil {
				refused = blockedAddress(fl, a, selfWhat)
			}
		} else if label, ok := localEndpointOf(a, fl.port); ok {
			// IMDS, WireServer and Arc's HIMDS, whatever the rules say:
			// behind them is the proxy host's own identity.
			v.Allowed, v.What = false, label
			if refused == nil {
				refused = localEndpointAt(fl, a, label)
			}
		} else if guarded, what := Guarded(a); guarded {
			v.What = what
			switch {
			case fl.block.AddressAllowed(fl.host, fl.port, a):
			case privateEndpointRange(a) && privateLinkOnce(&privateLink, ctx, fl, r):
				v.What += ", private endpoint of an allowed Azure name"
			default:
				v.Allowed = false
				if refused == nil {
					refused = blockedAddress(fl, a, what)
				}
			}
		}
		if v.Allowed {
			checked = append(checked, a)
		}
		if verdicts != nil {
			*verdicts = append(*verdicts, v)
		}
	}
	return checked, refused
}

// privateLinkOnce looks the canonical name up at most once per destination.
func privateLinkOnce(state *int, ctx context.Context, fl *flow, r Resolver) bool {
	if *state < 0 {
		*state = 0
		if privateLinkCNAME(ctx, fl, r) {
			*state = 1
		}
	}
	return *state == 1
}

// cnameResolver is implemented by resolvers that can report a name's
// canonical name, as *net.Resolver does.
type cnameResolver interface {
	LookupCNAME(ctx context.Context, host string) (string, error)
}

// privateLinkCNAME reports whether an allowed name is served by a private
// endpoint of its Azure service: its canonical name is the same name in the
// service's privatelink.* zone (kv.vault.azure.net is
// kv.privatelink.vaultcore.azure.net), which only the workload's own
// private DNS zone resolves to a private address. It needs a rule that
// allows the name, a service the catalog knows for the policy's cloud, and a
// resolver that reports canonical names.
func privateLinkCNAME(ctx context.Context, fl *flow, res Resolver) bool {
	if fl.rule == nil || fl.host.IsIP() {
		return false
	}
	want, ok := catalog.PrivateLinkName(fl.gen.pol.Cloud(), fl.host.Name)
	if !ok {
		return false
	}
	r, ok := res.(cnameResolver)
	if !ok {
		return false
	}
	cname, err := r.LookupCNAME(ctx, fqdn(fl.host.Name))
	return err == nil && strings.EqualFold(strings.TrimSuffix(cname, "."), want)
}

// privateEndpointRanges are where private endpoints get their addresses:
// virtual network address space. Loopback, link-local (IMDS), WireServer
// and the other guarded ranges are never private endpoints.
var privateEndpointRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// privateEndpointRange reports whether a guarded address may belong to a
// private endpoint.
func privateEndpointRange(a netip.Addr) bool {
	for _, p := range privateEndpointRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// noAddresses refuses a destination whose name resolved to no address the
// proxy may dial, none of them refused by the guard.
func noAddresses(fl *flow) *denial {
	return &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, proxyError: psDNSError,
		detail: fmt.Sprintf("%s has no addresses", fl.host)}
}

func resolveFailed(fl *flow, err error) *denial {
	d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, proxyError: psDNSError}
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		d.detail = fmt.Sprintf("%s does not resolve (no such host)", fl.host)
		d.fix = "Check the name, and that the proxy host's DNS (for private endpoints: the private DNS zone link) resolves it."
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &de) && de.IsTimeout):
		d.status, d.proxyError = http.StatusGatewayTimeout, psDNSTimeout
		d.detail = fmt.Sprintf("resolving %s timed out", fl.host)
	default:
		d.detail = fmt.Sprintf("resolving %s failed", fl.host)
	}
	return d
}

func dialFailed(fl *flow, ip netip.Addr, err error) *denial {
	d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, dstIP: ip, proxyError: psDestUnavailable}
	what := "failed"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		d.status, d.proxyError, what = http.StatusGatewayTimeout, psConnTimeout, "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		d.proxyError, what = psConnRefused, "was refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		d.proxyError, what = psIPUnroutable, "is unreachable"
	}
	d.detail = fmt.Sprintf("connecting to %s (%s) %s", fl.target(), ip, what)
	return d
}
