package review

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/text"
)

// Flag is a reason for a reviewer to look twice at a destination a
// change grants.
type Flag struct {
	// Check names the kind: FlagMultiTenant, FlagExfiltration,
	// FlagRawAddress, or a check of policy.Lint (policy.LintFinding) that
	// the new policy warns about and the old one did not.
	Check string `json:"check"`
	// Detail says what is wrong and what to do.
	Detail string `json:"detail"`
	// Pos is where a Lint finding points (file:line:col).
	Pos string `json:"pos,omitempty"`
}

// The flags the review kit raises itself, besides Lint's.
const (
	// FlagMultiTenant is a wildcard over a data plane every Azure tenant
	// shares (catalog.MultiTenantWildcard), the check Lint names
	// policy.LintMultiTenantWildcard; here it covers catalog groups too.
	FlagMultiTenant = policy.LintMultiTenantWildcard
	// FlagExfiltration is a name on a shared data plane (a vault, a
	// storage account, an ingestion endpoint): whoever owns the resource
	// receives what is sent there.
	FlagExfiltration = "exfiltration_capable"
	// FlagRawAddress is an IP-literal destination: no name says what is
	// there.
	FlagRawAddress = "raw_address"
)

// destFlags returns the flags of a granted destination: a host pattern,
// or (pattern "") an address prefix.
func destFlags(cloud, pattern string, prefix netip.Prefix) []Flag {
	if pattern == "" {
		why := "no name tells a reviewer or the logs what is there"
		if !namesGuarded(prefix) {
			why += ", and a public cloud address can pass to another tenant's resource"
		}
		return []Flag{{Check: FlagRawAddress, Detail: fmt.Sprintf(
			"%s is reached by address: %s. Prefer the service's host name.", text.Prefix(prefix), why)}}
	}
	if why, ok := catalog.MultiTenantWildcard(cloud, pattern); ok {
		return []Flag{{Check: FlagMultiTenant, Detail: why}}
	}
	if _, e, ok := catalog.Find(cloud, pattern); ok && e.MultiTenant {
		what := e.Label
		if !strings.HasPrefix(pattern, "*.") {
			what = cmp.Or(catalog.Label(cloud, host.Host{Name: pattern}), what)
		}
		return []Flag{{Check: FlagExfiltration, Detail: fmt.Sprintf(
			"%s (%s) is on a data plane every Azure tenant shares: whoever owns the resource receives what is sent there. Check that it belongs to your tenant.",
			pattern, what)}}
	}
	return nil
}
