package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/azegress/azegress/identity"
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

	// Status is the HTTP status the proxy would answer on its explicit
	// listener: 200 for a tunnel or a forwarded request, else the
	// refusal's (403, 407, ...). Challenge reports a 407 that asks for
	// credentials (Proxy-Authenticate), as a request without them gets
	// under a policy with an entra block.
	Status    int
	Challenge bool
	// Identity is the managed identity the credential named (a valid
	// token's, or ExplainAs's Credential.Identity); nil without one.
	Identity *identity.Identity
	// AuthResult and AuthReason are how the credential was judged, as the
	// proxy logs them (auth_result, auth_reason); empty without an entra
	// block.
	AuthResult, AuthReason string
}

// Credential is what a request explained by ExplainAs presents.
type Credential struct {
	// Identity, if non-nil, is a managed identity whose valid token the
	// request carries (explain -identity): ObjectID, and AppID if known.
	Identity *identity.Identity
	// Token, if non-empty, is an access token that Validator checks
	// first, exactly as the proxy checks one (explain -token -jwks, with
	// keys from identity.NewStaticKeys).
	Token     string
	Validator *identity.Validator
}

// AddrCheck is the destination guard's verdict on one address.
type AddrCheck struct {
	IP      netip.Addr
	Allowed bool
	What    string // the guarded range, when guarded
}

// Explain decides target (host[:port], port 443 if absent) for client under
// p, for a request without credentials. With a non-nil resolver it also
// resolves the name and runs the destination guard on every address, as the
// proxy does before dialing.
func Explain(ctx context.Context, p *policy.Policy, client netip.Addr, target string, r Resolver) (*Explanation, error) {
	return ExplainAs(ctx, p, Credential{}, client, target, r)
}

// ExplainAs is Explain for a request on the explicit listener that
// presents cred: its identity's client block is selected, or its token
// refused, through the proxy's own code. A credential needs an entra
// block in p.
func ExplainAs(ctx context.Context, p *policy.Policy, cred Credential, client netip.Addr, target string, r Resolver) (*Explanation, error) {
	gen, hdr, err := explainGeneration(p, cred)
	if err != nil {
		return nil, err
	}
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
	fl := &flow{client: netip.AddrPortFrom(client, 0), host: h, port: port, gen: gen}
	e := &Explanation{Client: client, Host: h, Port: port, Status: http.StatusOK}
	defer e.setAuth(fl)
	deny := func(d *denial) (*Explanation, error) {
		challenge(fl, d) // as refused does
		e.Decision, e.Reason, e.Detail, e.Fix = policy.VerdictDeny, d.reason, d.detail, d.fix
		e.Status, e.Challenge = d.status, d.challenge
		return e, nil
	}
	if d := authenticate(ctx, fl, hdr); d != nil {
		return deny(d)
	}
	if cred.Identity != nil {
		fl.auth, fl.authReason, fl.id = authOK, "", *cred.Identity
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

// explainGeneration is the generation ExplainAs decides under, and the
// Proxy-Authorization values cred stands for.
func explainGeneration(p *policy.Policy, cred Credential) (*generation, []string, error) {
	gen := &generation{pol: p}
	e := p.Entra()
	if e == nil {
		if cred.Identity != nil || cred.Token != "" {
			return nil, nil, errors.New("the policy has no entra block, so no credential selects a client block; the proxy ignores Proxy-Authorization")
		}
		return gen, nil, nil
	}
	gen.entra = &entraState{entra: e}
	switch {
	case cred.Token != "" && cred.Identity != nil:
		return nil, nil, errors.New("explain a token or an identity, not both")
	case cred.Token != "":
		if cred.Validator == nil {
			return nil, nil, errors.New("a token needs a Validator to check it")
		}
		gen.entra.keys, gen.entra.v = cred.Validator.Keys(), cred.Validator
		return gen, []string{"Bearer " + cred.Token}, nil
	}
	return gen, nil, nil
}

// setAuth records how fl's credential was judged.
func (e *Explanation) setAuth(fl *flow) {
	e.AuthResult, e.AuthReason = fl.auth.String(), fl.authReason
	if fl.id.ObjectID != "" {
		id := fl.id
		e.Identity = &id
	}
}
