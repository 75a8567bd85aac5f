package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// dialFlow resolves the destination itself, checks every address against
// the destination guard, and connects to an address it checked: the name is
// never resolved a second time, so DNS rebinding cannot swap the address.
func (s *Server) dialFlow(ctx context.Context, fl *flow) (net.Conn, *denial) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()

	var addrs []netip.Addr
	if fl.host.IsIP() {
		addrs = []netip.Addr{fl.host.IP}
	} else {
		var err error
		addrs, err = s.cfg.Resolver.LookupNetIP(ctx, "ip", fl.host.Name)
		if err != nil {
			return nil, resolveFailed(fl, err)
		}
	}

	checked := make([]netip.Addr, 0, len(addrs))
	var refused *denial
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if s.isSelf(a, fl.port) {
			refused = blockedAddress(fl, a, selfWhat)
			continue
		}
		if guarded, what := Guarded(a); guarded && !fl.block.AddressAllowed(fl.host, fl.port, a) {
			if refused == nil {
				refused = blockedAddress(fl, a, what)
			}
			continue
		}
		checked = append(checked, a)
	}
	if len(checked) == 0 {
		if refused != nil {
			return nil, refused
		}
		return nil, &denial{status: http.StatusBadGateway, reason: ReasonDialFailed,
			detail: fmt.Sprintf("%s has no addresses", fl.host)}
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

func resolveFailed(fl *flow, err error) *denial {
	d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed}
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		d.detail = fmt.Sprintf("%s does not resolve (no such host)", fl.host)
		d.fix = "Check the name, and that the proxy host's DNS (for private endpoints: the private DNS zone link) resolves it."
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &de) && de.IsTimeout):
		d.status = http.StatusGatewayTimeout
		d.detail = fmt.Sprintf("resolving %s timed out", fl.host)
	default:
		d.detail = fmt.Sprintf("resolving %s failed", fl.host)
	}
	return d
}

func dialFailed(fl *flow, ip netip.Addr, err error) *denial {
	d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, dstIP: ip}
	what := "failed"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		d.status, what = http.StatusGatewayTimeout, "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		what = "was refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		what = "is unreachable"
	}
	d.detail = fmt.Sprintf("connecting to %s (%s) %s", fl.target(), ip, what)
	return d
}
