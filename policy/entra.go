package policy

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// This file is identity-keyed selection: the entra block, identity blocks,
// and Policy.ClientForIdentity.

// Entra is the compiled entra block: which Entra ID tokens the proxy
// accepts as credentials. Validating them is package identity's job.
type Entra struct {
	// TenantID is the tenant's ID, a lower-case GUID.
	TenantID string
	// Audiences are the aud values a token may carry: App ID URIs as
	// written and client IDs in lower case, of the proxy's own app
	// registration. None is a Microsoft resource (catalog.MicrosoftAudience).
	Audiences []string
	// ClockSkew is the leeway on a token's exp and nbf: clock_skew, or 60s.
	// It is at most 5 minutes and may be 0.
	ClockSkew time.Duration
	// Authority is the scheme and host that tokens and signing keys come
	// from, like "https://login.microsoftonline.com", lower case, without a
	// trailing slash: authority, or the Entra ID authority of the policy's
	// cloud (catalog.EntraAuthority).
	Authority string
	// Range is the definition range of the entra block.
	Range hcl.Range
}

// Identity is a compiled identity block: the managed identities (service
// principals) whose tokens select its client block.
type Identity struct {
	// ObjectIDs are the identities' object IDs (a managed identity's
	// principalId), lower-case GUIDs, in file order.
	ObjectIDs []string
	// ClientIDs are the identities' application (client) IDs, lower-case
	// GUIDs, in file order.
	ClientIDs []string
	// Entra is the policy's entra block, under which the tokens are
	// validated; never nil in a loaded policy.
	Entra *Entra
	// Range is the definition range of the identity block.
	Range hcl.Range
}

const (
	defaultClockSkew = 60 * time.Second
	maxClockSkew     = 5 * time.Minute
)

// Entra returns the policy's entra block, or nil if it has none: then no
// client block has an identity block and no credential selects anything.
func (p *Policy) Entra() *Entra {
	if p == nil {
		return nil
	}
	return p.entra
}

// ClientForIdentity returns the client block a validated token selects:
// the one block whose identity block lists objectID (the token's oid) or,
// only when no block lists objectID, the one that lists clientID (its
// appid or azp). Load guarantees that a GUID is listed in at most one
// block. listed reports whether such a block exists.
//
// When that block has sources, src (unmapped if IPv4-mapped) must lie in
// one of them, else ClientForIdentity returns nil and listed true: the
// identity is known but not from there, and the connection is refused;
// it never falls back to another block, nor to address-keyed ones. A
// block without sources takes the identity from any address.
//
// GUIDs match in any case. ClientForIdentity does not allocate.
func (p *Policy) ClientForIdentity(objectID, clientID string, src netip.Addr) (c *Client, listed bool) {
	if p == nil {
		return nil, false
	}
	if g, ok := parseGUID(objectID); ok {
		c = p.byObject[g]
	}
	if c == nil {
		if g, ok := parseGUID(clientID); ok {
			c = p.byClient[g]
		}
	}
	if c == nil {
		return nil, false
	}
	if len(c.Sources) == 0 {
		return c, true
	}
	if !src.IsValid() {
		return nil, true
	}
	src = src.Unmap().WithZone("")
	for _, pfx := range c.Sources {
		if pfx.Contains(src) {
			return c, true
		}
	}
	return nil, true
}

// guid is a parsed GUID, the key of identity lookups.
type guid [16]byte

// parseGUID parses a GUID in the 8-4-4-4-12 hex form, in any case.
func parseGUID(s string) (g guid, ok bool) {
	if len(s) != 36 {
		return g, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if ch != '-' {
				return guid{}, false
			}
			continue
		}
		var v byte
		switch {
		case '0' <= ch && ch <= '9':
			v = ch - '0'
		case 'a' <= ch && ch <= 'f':
			v = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			v = ch - 'A' + 10
		default:
			return guid{}, false
		}
		g[n/2] |= v << (4 * (1 - n%2))
		n++
	}
	return g, true
}

// guidDef is where a GUID of an identity block was first listed.
type guidDef struct {
	client string
	rng    hcl.Range
}

// entra compiles the entra blocks: the first one, and an error for each
// other.
func (c *compiler) entra(blocks []*entraSchema) *Entra {
	if len(blocks) == 0 {
		return nil
	}
	for _, dup := range blocks[1:] {
		c.add(errorf(dup.DefRange.Ptr(), nil, "Duplicate entra block",
			"The policy already has an entra block; previous definition at %s. A policy trusts one tenant: merge them into one.",
			text.Pos(blocks[0].DefRange)))
	}
	es := blocks[0]
	block := es.rng
	ctx := &block
	e := &Entra{Range: es.DefRange, ClockSkew: defaultClockSkew, Authority: catalog.EntraAuthority(c.cloud)}

	if es.TenantID == nil {
		c.add(errorf(es.DefRange.Ptr(), ctx, "Missing tenant_id",
			`The entra block needs tenant_id, the ID of the tenant whose tokens the proxy accepts, like tenant_id = "11111111-2222-3333-4444-555555555555" (az account show --query tenantId).`))
	} else if s, rng, ok := c.stringAttr(es.TenantID, ctx); ok {
		if _, ok := parseGUID(s); ok {
			e.TenantID = strings.ToLower(s)
		} else {
			c.add(errorf(rng, ctx, "Invalid tenant_id", "%s Tokens name their tenant by its ID, not by a domain name or \"common\"; az account show --query tenantId prints it.",
				badGUID(s, "tenant_id", "11111111-2222-3333-4444-555555555555")))
		}
	}

	if es.Audiences == nil {
		c.add(errorf(es.DefRange.Ptr(), ctx, "Missing audiences",
			`The entra block needs audiences, the App ID URI or client ID of the proxy's own app registration, like audiences = ["api://azegress"].`))
	} else {
		elems, ok := c.listAttr(es.Audiences, ctx, `audiences = ["api://azegress"]`)
		if ok && len(elems) == 0 {
			c.add(errorf(es.Audiences.Expr.Range().Ptr(), ctx, "Empty audiences",
				`An empty audiences list accepts no token. List the App ID URI or client ID of the proxy's own app registration, like audiences = ["api://azegress"].`))
		}
		seen := make(map[string]hcl.Range, len(elems))
		for _, el := range elems {
			s, rng, ok := c.stringElem(el, ctx, "audiences")
			if !ok {
				continue
			}
			aud, ok := c.audience(s, rng, ctx)
			if !ok {
				continue
			}
			key := strings.TrimSuffix(aud, "/")
			if prev, dup := seen[key]; dup {
				c.add(errorf(c.rangePtr(rng), ctx, "Duplicate audience",
					"%q is listed twice (a trailing \"/\" does not count); previous definition at %s. Remove one.", s, text.Pos(prev)))
				continue
			}
			seen[key] = rng
			e.Audiences = append(e.Audiences, aud)
		}
	}

	if s, rng, ok := c.stringAttr(es.ClockSkew, ctx); ok {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			c.add(errorf(rng, ctx, "Invalid clock_skew",
				`%q is not a duration. Write it like "60s" or "2m", at most "5m".`, s))
		case d < 0:
			c.add(errorf(rng, ctx, "Invalid clock_skew",
				`%q is negative. clock_skew is how much later than exp (and earlier than nbf) a token is still accepted: write "0s" to "5m", or remove it for "60s".`, s))
		case d > maxClockSkew:
			c.add(errorf(rng, ctx, "Invalid clock_skew",
				`%q is more than "5m": a wide skew keeps expired tokens working for longer. Write at most "5m", or remove it for "60s".`, s))
		default:
			e.ClockSkew = d
		}
	}

	if s, rng, ok := c.stringAttr(es.Authority, ctx); ok {
		if a, detail := parseAuthority(s); detail != "" {
			c.add(errorf(rng, ctx, "Invalid authority", "%s", detail))
		} else {
			e.Authority = a
		}
	}
	return e
}

// audience validates one element of audiences and returns it normalized:
// a client ID in lower case, a URI as written.
func (c *compiler) audience(s string, rng hcl.Range, ctx *hcl.Range) (string, bool) {
	if fp, ok := catalog.MicrosoftAudience(s); ok {
		c.add(errorf(c.rangePtr(rng), ctx, "Microsoft resource as audience",
			"%q is an audience of %s. A token for it is a live credential there, good for everything the identity may do for about 24 hours, and every client would hand one to the proxy, which could replay it. "+
				"Give the proxy an audience of its own: register an app with the identifier URI api://azegress (az ad app create --display-name azegress --identifier-uris api://azegress) and list \"api://azegress\" or its client ID.",
			s, fp.Name))
		return "", false
	}
	if _, ok := parseGUID(s); ok {
		return strings.ToLower(s), true
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" && u.Opaque == "" || strings.ContainsAny(s, " \t") {
		c.add(errorf(c.rangePtr(rng), ctx, "Invalid audience",
			`%q is neither a client ID (a GUID in the 8-4-4-4-12 hex form) nor an App ID URI like "api://azegress". List the identifier URI or the client ID of the proxy's own app registration.`, s))
		return "", false
	}
	return s, true
}

// parseAuthority validates an authority attribute: an https:// URL, or an
// http:// one to a loopback address, with no path, query or fragment. It
// returns the scheme and host in lower case, or why it is not valid.
func parseAuthority(s string) (string, string) {
	const want = `Write the scheme and host of the Entra ID authority, like "https://login.microsoftonline.com", or remove authority for the policy's cloud's.`
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", fmt.Sprintf("%q is not a URL. %s", s, want)
	}
	if u.User != nil {
		return "", fmt.Sprintf("%q has a user name or password; an authority has neither. %s", u.Redacted(), want)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Sprintf("%q has a path, query or fragment; the tenant goes in tenant_id and the rest is derived. %s", s, want)
	}
	scheme, hostport := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	switch scheme {
	case "https":
	case "http":
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
			return "", fmt.Sprintf("%q is http:// to a host that is not a loopback address. The proxy fetches the tenant's signing keys from the authority, and they must not travel in clear text: use https://. "+
				"http:// is accepted only for a local identity provider in tests, like \"http://127.0.0.1:8400\".", s)
		}
	default:
		return "", fmt.Sprintf("%q is not an https:// URL. %s", s, want)
	}
	return scheme + "://" + hostport, ""
}

// badGUID is the detail of a diagnostic for s, which is not a GUID.
func badGUID(s, attr, example string) string {
	if trimmed := strings.Trim(s, "{}"); trimmed != s {
		if _, ok := parseGUID(trimmed); ok {
			return fmt.Sprintf("%q is in braces. Did you mean %q?", s, trimmed)
		}
	}
	return fmt.Sprintf("%q is not a GUID. Write %s in the 8-4-4-4-12 hex form, like %q.", s, attr, example)
}

// identity compiles the identity block of client block cs (the first;
// others are reported by the caller) under the policy's entra block e.
func (c *compiler) identity(is *identitySchema, cs *clientSchema, e *Entra) *Identity {
	block := is.rng
	ctx := &block
	id := &Identity{Entra: e, Range: is.DefRange}
	if e == nil {
		c.add(errorf(is.DefRange.Ptr(), ctx, "Identity block without entra block",
			`Client block %q has an identity block, but the policy has no entra block to say whose tokens to accept. Add a top-level entra block with tenant_id = "11111111-2222-3333-4444-555555555555" (your tenant's ID) and audiences = ["api://azegress"].`,
			cs.Name))
	}
	listed, invalid := 0, hasUnknownAttrs(is.Body, "object_ids", "client_ids")
	for _, f := range []struct {
		attr    *hcl.Attribute
		out     *[]string
		example string
		hint    string
	}{
		{is.ObjectIDs, &id.ObjectIDs, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "For a user-assigned managed identity, az identity show --query principalId prints it"},
		{is.ClientIDs, &id.ClientIDs, "ffffffff-1111-2222-3333-444444444444", "For a user-assigned managed identity, az identity show --query clientId prints it"},
	} {
		if f.attr == nil {
			continue
		}
		elems, ok := c.listAttr(f.attr, ctx, f.attr.Name+` = ["`+f.example+`"]`)
		invalid = invalid || !ok
		listed += len(elems)
		for _, el := range elems {
			s, rng, ok := c.stringElem(el, ctx, f.attr.Name)
			if !ok {
				continue
			}
			g, ok := parseGUID(s)
			if !ok {
				c.add(errorf(c.rangePtr(rng), ctx, "Invalid "+strings.TrimSuffix(f.attr.Name, "s"),
					"%s %s.", badGUID(s, f.attr.Name, f.example), f.hint))
				continue
			}
			if prev, dup := c.guids[g]; dup {
				if prev.client == cs.Name {
					c.add(errorf(c.rangePtr(rng), ctx, "Duplicate identity",
						"%s is listed twice in client block %q; previous definition at %s. Remove one.", strings.ToLower(s), cs.Name, text.Pos(prev.rng)))
				} else {
					c.add(errorf(c.rangePtr(rng), ctx, "Duplicate identity",
						"%s is already an identity of client block %q; previous definition at %s. A token must select exactly one client block: list each identity in one block.",
						strings.ToLower(s), prev.client, text.Pos(prev.rng)))
				}
				continue
			}
			c.guids[g] = guidDef{client: cs.Name, rng: rng}
			*f.out = append(*f.out, strings.ToLower(s))
		}
	}
	if listed == 0 && !invalid {
		c.add(errorf(is.DefRange.Ptr(), ctx, "Empty identity block",
			`Client block %q has an identity block that lists no identity, so no token selects it. List object_ids = ["..."] (a managed identity's principalId) or client_ids = ["..."].`,
			cs.Name))
	}
	return id
}

// identityIndex maps each GUID of the clients' identity blocks to its
// block, object IDs and client IDs apart.
func identityIndex(clients []*Client) (byObject, byClient map[guid]*Client) {
	for _, cl := range clients {
		if cl.Identity == nil {
			continue
		}
		if byObject == nil {
			byObject, byClient = map[guid]*Client{}, map[guid]*Client{}
		}
		for _, s := range cl.Identity.ObjectIDs {
			g, _ := parseGUID(s)
			byObject[g] = cl
		}
		for _, s := range cl.Identity.ClientIDs {
			g, _ := parseGUID(s)
			byClient[g] = cl
		}
	}
	return byObject, byClient
}
