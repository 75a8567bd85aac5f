package proxy

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
)

// Explanation is what the proxy would decide for one client and target,
// computed with the same code the proxy runs.
type Explanation struct {
	Client    netip.Addr
	Block     *policy.Client // nil: no client block covers Client
	Host      host.Host
	Port      uint16
	Decision  policy.Verdict
	Reason    string       // a Reason* constant
	Rule      *policy.Rule // the allowing rule, if any
	DenyRule  *policy.Rule // the deny rule that refused it, if any (reason deny_rule)
	Detail    string       // one sentence
	Fix       string       // what would allow it, if denied
	Addresses []AddrCheck  // the destination guard's verdict per resolved address
}

// AddrCheck is the destination guard's verdict on one address.
type AddrCheck struct {
	IP      netip.Addr
	Allowed bool
	What    string // the guarded range, when guarded
}

// Explain decides target (host[:port], port 443 if absent) for client under
// p. With a non-nil resolver it also resolves the name and runs the
// destination guard on every address, as the proxy does before dialing.
func Explain(ctx context.Context, p *policy.Policy, client netip.Addr, target string, r Resolver) (*Explanation, error) {
	name, port, err := splitAuthority(target, "443")
	if err != nil {
		return nil, err
	}
	// Unlike a client's (wireHost), an operator's Unicode name is taken:
	// explain decides its IDNA form, the one a client must send.
	h, err := host.Parse(name)
	if err != nil {
		return nil, fmt.Errorf("invalid host %q: %w", name, err)
	}
	client = client.Unmap()
	fl := &flow{client: netip.AddrPortFrom(client, 0), host: h, port: port, gen: &generation{pol: p}}
	e := &Explanation{Client: client, Host: h, Port: port}
	deny := func(d *denial) (*Explanation, error) {
		e.Decision, e.Reason, e.Detail, e.Fix = policy.VerdictDeny, d.reason, d.detail, d.fix
		return e, nil
	}
	d := classify(fl)
	e.Block = fl.block
	if d != nil {
		return deny(d)
	}
	dec, d := applyRules(fl)
	switch {
	case d != nil:
		e.DenyRule = dec.Deny
		return deny(d)
	case fl.rule == nil:
		e.Decision, e.Reason = policy.VerdictWouldDeny, ReasonNoRule
		e.Detail = noRule(fl).detail + "; learning mode lets it through"
	default:
		e.Decision, e.Reason, e.Rule = policy.VerdictAllow, ReasonAllowed, fl.rule
		e.Detail = fmt.Sprintf("rule %q in client block %q allows %s", fl.rule.Name, fl.block.Name, fl.target())
	}
	if r == nil {
		return e, nil
	}
	addrs, err := resolve(ctx, r, h)
	if err != nil {
		d := resolveFailed(fl, err)
		e.Detail += "; but " + d.detail
		return e, nil
	}
	// Explain runs without the proxy's listeners: it cannot refuse them.
	checked, verdicts, refused := guardAddrs(ctx, fl, addrs, r, nil)
	e.Addresses = verdicts
	switch {
	case len(checked) > 0:
	case refused != nil:
		return deny(refused)
	default: // as dialFlow: nothing to dial
		e.Detail += "; but " + noAddresses(fl).detail
	}
	return e, nil
}
