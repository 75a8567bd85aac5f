package netaudit

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
)

// Network is what the audit needs of a subscription's network: the
// subnets with their route tables and NSGs resolved, sorted by ID.
type Network struct {
	VNets   []*VNet
	Subnets []*Subnet
}

// VNet is a virtual network.
type VNet struct {
	ID           string
	AddressSpace []netip.Prefix
	// Gateways are the resources through which a gateway can inject
	// routes into the VNet's subnets by BGP: a GatewaySubnet or
	// RouteServerSubnet in use, and peerings that use the remote gateway.
	Gateways []string
}

// Subnet is a subnet of a VNet.
type Subnet struct {
	ID       string
	Name     string
	VNet     *VNet
	Prefixes []netip.Prefix
	// RouteTable and NSG are nil when the subnet has none.
	RouteTable *RouteTable
	NSG        *NSG
	// ServiceEndpoints are the services with a service endpoint on the
	// subnet, such as Microsoft.Storage.
	ServiceEndpoints []string
	// NICs are the network interfaces of workloads in the subnet, by ID
	// (private endpoints' interfaces are not workloads: they send nothing
	// out). Scale set instances' interfaces are listed too.
	NICs []string
	// Delegated are the links of delegated services that run in the
	// subnet (service association links, container network profiles).
	Delegated []string
	// Effective is the effective route table of one of NICs, or nil if
	// it was not read.
	Effective *Effective
}

// HasWorkloads reports whether anything in the subnet can send traffic.
func (s *Subnet) HasWorkloads() bool { return len(s.NICs) > 0 || len(s.Delegated) > 0 }

// RouteTable is a route table and its routes.
type RouteTable struct {
	ID string
	// PropagateGatewayRoutes is the inverse of ARM's
	// disableBgpRoutePropagation.
	PropagateGatewayRoutes bool
	Routes                 []Route
}

// Route is a user-defined route. Prefix is a CIDR or a service tag.
type Route struct {
	ID, Name    string
	Prefix      string
	NextHopType string
	NextHopIP   string
}

// NSG is a network security group's custom rules (its default rules are
// the same everywhere and end in AllowInternetOutBound).
type NSG struct {
	ID    string
	Rules []Rule
}

// Rule is an NSG security rule. Address lists hold CIDRs, service tags or
// "*"; ports hold "*", "N" or "N-M".
type Rule struct {
	ID, Name     string
	Priority     int32
	Direction    string // Inbound, Outbound
	Access       string // Allow, Deny
	Protocol     string // Tcp, Udp, Icmp, Esp, Ah, *
	Sources      []string
	SourceASGs   bool // the rule's sources include application security groups
	Destinations []string
	DestASGs     bool
	DestPorts    []string
}

// Effective is the effective route table of a network interface, or why
// it could not be read.
type Effective struct {
	NIC    string
	Routes []EffectiveRoute
	Err    string
}

// EffectiveRoute is one route of an effective route table.
type EffectiveRoute struct {
	Source      string // Default, User, VirtualNetworkGateway
	State       string // Active, Invalid
	Prefixes    []string
	NextHopType string
	NextHopIPs  []string
}

// FromARM builds the Network from what ARM returned: the virtual networks
// (with their subnets and peerings) and every route table and NSG a subnet
// refers to. A reference to one not given is an error: the audit would
// miss it.
func FromARM(vnets []*armnetwork.VirtualNetwork, tables []*armnetwork.RouteTable, nsgs []*armnetwork.SecurityGroup) (*Network, error) {
	rts := map[string]*RouteTable{}
	for _, t := range tables {
		rt := routeTable(t)
		rts[key(rt.ID)] = rt
	}
	sgs := map[string]*NSG{}
	for _, g := range nsgs {
		sg := nsg(g)
		sgs[key(sg.ID)] = sg
	}
	n := &Network{}
	for _, v := range vnets {
		vn, subnets, err := vnet(v, rts, sgs)
		if err != nil {
			return nil, err
		}
		n.VNets = append(n.VNets, vn)
		n.Subnets = append(n.Subnets, subnets...)
	}
	slices.SortFunc(n.VNets, func(a, b *VNet) int { return cmp.Compare(key(a.ID), key(b.ID)) })
	slices.SortFunc(n.Subnets, func(a, b *Subnet) int { return cmp.Compare(key(a.ID), key(b.ID)) })
	return n, nil
}

// key is how resource IDs compare: ARM treats them case-insensitively.
func key(id string) string { return strings.ToLower(id) }

func vnet(v *armnetwork.VirtualNetwork, rts map[string]*RouteTable, sgs map[string]*NSG) (*VNet, []*Subnet, error) {
	vn := &VNet{ID: str(v.ID)}
	p := v.Properties
	if p == nil {
		return vn, nil, nil
	}
	if p.AddressSpace != nil {
		vn.AddressSpace = prefixes(p.AddressSpace.AddressPrefixes)
	}
	for _, peer := range p.VirtualNetworkPeerings {
		if peer.Properties != nil && deref(peer.Properties.UseRemoteGateways) {
			vn.Gateways = append(vn.Gateways, str(peer.ID))
		}
	}
	var out []*Subnet
	for _, sn := range p.Subnets {
		s := &Subnet{ID: str(sn.ID), Name: str(sn.Name), VNet: vn}
		out = append(out, s)
		sp := sn.Properties
		if sp == nil {
			continue
		}
		s.Prefixes = prefixes(append([]*string{sp.AddressPrefix}, sp.AddressPrefixes...))
		if sp.RouteTable != nil {
			if s.RouteTable = rts[key(str(sp.RouteTable.ID))]; s.RouteTable == nil {
				return nil, nil, fmt.Errorf("subnet %s: route table %s was not read", s.ID, str(sp.RouteTable.ID))
			}
		}
		if sp.NetworkSecurityGroup != nil {
			if s.NSG = sgs[key(str(sp.NetworkSecurityGroup.ID))]; s.NSG == nil {
				return nil, nil, fmt.Errorf("subnet %s: network security group %s was not read", s.ID, str(sp.NetworkSecurityGroup.ID))
			}
		}
		for _, se := range sp.ServiceEndpoints {
			if se != nil && str(se.Service) != "" {
				s.ServiceEndpoints = append(s.ServiceEndpoints, str(se.Service))
			}
		}
		for _, ipc := range sp.IPConfigurations {
			if nic, ok := workloadNIC(str(ipc.ID)); ok && !slices.Contains(s.NICs, nic) {
				s.NICs = append(s.NICs, nic)
			}
		}
		for _, l := range sp.ServiceAssociationLinks {
			s.Delegated = append(s.Delegated, str(l.ID))
		}
		for _, l := range sp.IPConfigurationProfiles {
			s.Delegated = append(s.Delegated, str(l.ID))
		}
		// A gateway or route server deployed in its subnet can inject
		// routes into every subnet of the VNet.
		if (strings.EqualFold(s.Name, "GatewaySubnet") || strings.EqualFold(s.Name, "RouteServerSubnet")) && len(sp.IPConfigurations) > 0 {
			vn.Gateways = append(vn.Gateways, s.ID)
		}
	}
	return vn, out, nil
}

// workloadNIC returns the network interface of an IP configuration ID, if
// it is one of a workload: not a load balancer's or gateway's, and not a
// private endpoint's, whose configurations Azure names
// privateEndpointIpConfig.GUID.
func workloadNIC(ipconfig string) (string, bool) {
	nic, name, ok := cutLast(ipconfig, "/ipConfigurations/")
	if !ok || !strings.Contains(strings.ToLower(nic), "/networkinterfaces/") {
		return "", false
	}
	if strings.HasPrefix(strings.ToLower(name), "privateendpointipconfig.") {
		return "", false
	}
	return nic, true
}

// cutLast is strings.Cut at the last occurrence of sep, case-insensitively.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(strings.ToLower(s), strings.ToLower(sep))
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func routeTable(t *armnetwork.RouteTable) *RouteTable {
	rt := &RouteTable{ID: str(t.ID), PropagateGatewayRoutes: true}
	if t.Properties == nil {
		return rt
	}
	rt.PropagateGatewayRoutes = !deref(t.Properties.DisableBgpRoutePropagation)
	for _, r := range t.Properties.Routes {
		route := Route{ID: str(r.ID), Name: str(r.Name)}
		if p := r.Properties; p != nil {
			route.Prefix = str(p.AddressPrefix)
			route.NextHopIP = str(p.NextHopIPAddress)
			if p.NextHopType != nil {
				route.NextHopType = string(*p.NextHopType)
			}
		}
		rt.Routes = append(rt.Routes, route)
	}
	return rt
}

func nsg(g *armnetwork.SecurityGroup) *NSG {
	sg := &NSG{ID: str(g.ID)}
	if g.Properties == nil {
		return sg
	}
	for _, r := range g.Properties.SecurityRules {
		rule := Rule{ID: str(r.ID), Name: str(r.Name)}
		if p := r.Properties; p != nil {
			rule.Priority = deref(p.Priority)
			rule.Direction = string(deref(p.Direction))
			rule.Access = string(deref(p.Access))
			rule.Protocol = string(deref(p.Protocol))
			rule.Sources = strs(append([]*string{p.SourceAddressPrefix}, p.SourceAddressPrefixes...))
			rule.SourceASGs = len(p.SourceApplicationSecurityGroups) > 0
			rule.Destinations = strs(append([]*string{p.DestinationAddressPrefix}, p.DestinationAddressPrefixes...))
			rule.DestASGs = len(p.DestinationApplicationSecurityGroups) > 0
			rule.DestPorts = strs(append([]*string{p.DestinationPortRange}, p.DestinationPortRanges...))
		}
		sg.Rules = append(sg.Rules, rule)
	}
	slices.SortStableFunc(sg.Rules, func(a, b Rule) int { return cmp.Compare(a.Priority, b.Priority) })
	return sg
}

// EffectiveFromARM converts an effective route table read from ARM.
func EffectiveFromARM(nic string, routes []*armnetwork.EffectiveRoute) *Effective {
	e := &Effective{NIC: nic}
	for _, r := range routes {
		if r == nil {
			continue
		}
		e.Routes = append(e.Routes, EffectiveRoute{
			Source:      string(deref(r.Source)),
			State:       string(deref(r.State)),
			Prefixes:    strs(r.AddressPrefix),
			NextHopType: string(deref(r.NextHopType)),
			NextHopIPs:  strs(r.NextHopIPAddress),
		})
	}
	return e
}

// prefixes parses CIDRs, skipping empty and invalid ones (ARM validates
// them; a subnet carved from an IPAM pool may have none yet).
func prefixes(ss []*string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range strs(ss) {
		if p, err := netip.ParsePrefix(s); err == nil && !slices.Contains(out, p.Masked()) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// strs returns the non-empty strings of ss.
func strs(ss []*string) []string {
	var out []string
	for _, s := range ss {
		if s != nil && *s != "" {
			out = append(out, *s)
		}
	}
	return out
}

func str(s *string) string { return deref(s) }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
