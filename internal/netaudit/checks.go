package netaudit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/azegress/azegress/policy"
)

// The checks, by the name a Finding carries.
const (
	CheckRouteTable      = "route-table"      // a covered subnet has no route table
	CheckDefaultRoute    = "default-route"    // 0.0.0.0/0 (::/0) is missing or does not go to the proxy
	CheckBypassRoute     = "bypass-route"     // a more specific route sends public addresses elsewhere
	CheckServiceEndpoint = "service-endpoint" // service endpoints route around the default route
	CheckGatewayRoutes   = "gateway-routes"   // gateway route propagation is on where a gateway can inject routes
	CheckNSG             = "nsg"              // a covered subnet has no NSG
	CheckNSGInternet     = "nsg-internet"     // the NSG does not deny outbound Internet
	CheckNSGAllow        = "nsg-allow"        // an outbound allow rule ahead of the deny opens more than TCP 80, 443
	CheckEffectiveRoute  = "effective-route"  // an active gateway or platform route sends public addresses elsewhere
	CheckUncovered       = "uncovered-subnet" // workloads in a subnet no client block covers
	CheckPartlyCovered   = "partly-covered"   // client blocks cover only part of the subnet
	CheckProxyLoop       = "proxy-loop"       // the proxy's subnet routes to the proxy
	CheckNothingCovered  = "nothing-covered"  // no subnet read is in a client block's sources
)

// Subnet statuses in a Report.
const (
	StatusChecked        = "checked"        // a client block covers it: every check ran
	StatusUncovered      = "uncovered"      // workloads, but no client block
	StatusNoWorkloads    = "no-workloads"   // no client block, nothing that sends
	StatusProxy          = "proxy"          // it holds a proxy address
	StatusInfrastructure = "infrastructure" // a gateway, firewall, Bastion or route server subnet
)

// webPorts are the ports the next hop's ruleset hands to azegress
// (deploy/nftables/azegress.nft): an NSG may let TCP to them out, since
// the default route takes it to the proxy.
var webPorts = []int{80, 443}

// infrastructure are subnet names Azure reserves for its own appliances;
// they are not workloads and never route through the proxy.
var infrastructure = []string{"GatewaySubnet", "AzureFirewallSubnet", "AzureFirewallManagementSubnet", "AzureBastionSubnet", "RouteServerSubnet"}

// Config is what the network is audited against.
type Config struct {
	// Policy supplies the client blocks' sources; PolicyName names it.
	Policy     *policy.Policy
	PolicyName string
	// ProxyIPs are the addresses a default route must point at: the
	// proxy's, or its internal load balancer's frontend.
	ProxyIPs []netip.Addr
	Scope    Scope
}

// Scope is what was read: a subscription, or one resource group in it.
type Scope struct {
	Subscription  string `json:"subscription"`
	ResourceGroup string `json:"resource_group,omitempty"`
}

// Audit checks every subnet of n against cfg. It does no I/O.
func Audit(n *Network, cfg Config) *Report {
	r := &Report{Scope: cfg.Scope, Policy: cfg.PolicyName, ProxyIPs: []string{}, Subnets: []SubnetResult{}, Findings: []Finding{}, Notes: []string{}}
	for _, a := range cfg.ProxyIPs {
		r.ProxyIPs = append(r.ProxyIPs, a.String())
	}
	blocks := clientSources(cfg.Policy)
	for _, b := range blocks {
		if len(b.sources) == 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("client block %q has no sources (its identities may connect from anywhere): no subnet is checked for it", b.name))
		}
	}
	proxyHeld := map[netip.Addr]bool{}
	for _, s := range n.Subnets {
		res := SubnetResult{ID: s.ID, Prefixes: prefixStrings(s.Prefixes)}
		var srcs []netip.Prefix
		res.Status, res.Clients, srcs = classify(s, blocks, cfg.ProxyIPs, proxyHeld)
		var fs []Finding
		switch res.Status {
		case StatusProxy:
			fs = checkProxyLoop(s, cfg.ProxyIPs)
		case StatusChecked:
			fs = checkSubnet(s, srcs, cfg)
		case StatusUncovered:
			fs = checkUncovered(s, cfg.PolicyName)
		}
		for i := range fs {
			fs[i].Subnets, fs[i].Clients = []string{s.ID}, slices.Clone(res.Clients)
		}
		res.Findings = len(fs)
		r.Subnets = append(r.Subnets, res)
		r.add(fs)
		if e := s.Effective; e != nil && e.Err != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("effective routes of %s (subnet %s) not read: %s", e.NIC, s.ID, e.Err))
		}
	}
	if !slices.ContainsFunc(r.Subnets, func(s SubnetResult) bool { return s.Status == StatusChecked }) {
		r.Findings = append(r.Findings, nothingCovered(cfg))
	}
	for _, a := range cfg.ProxyIPs {
		if !proxyHeld[a] {
			r.Notes = append(r.Notes, fmt.Sprintf("no subnet read holds the proxy address %s: check it is the proxy's or its internal load balancer's frontend", a))
		}
	}
	return r
}

// nothingCovered is the finding for a scope where no subnet is in a client
// block's sources: nothing there is shown to route through the proxy.
func nothingCovered(cfg Config) Finding {
	scope := "/subscriptions/" + cfg.Scope.Subscription
	if cfg.Scope.ResourceGroup != "" {
		scope += "/resourceGroups/" + cfg.Scope.ResourceGroup
	}
	var srcs []string
	for _, b := range clientSources(cfg.Policy) {
		srcs = append(srcs, prefixStrings(b.sources)...)
	}
	return Finding{
		Check:    CheckNothingCovered,
		Resource: scope,
		Subnets:  []string{},
		Problem:  fmt.Sprintf("No subnet read is in the client blocks' sources (%s), so nothing here was shown to route through the proxy.", strings.Join(srcs, ", ")),
		Fix:      fmt.Sprintf("Check -subscription and -resource-group, or the sources in %s.", cfg.PolicyName),
	}
}

// add appends fs, merging a finding about a resource already reported
// (a route table shared by several subnets) into the first one.
func (r *Report) add(fs []Finding) {
	for _, f := range fs {
		i := slices.IndexFunc(r.Findings, func(g Finding) bool { return g.Check == f.Check && strings.EqualFold(g.Resource, f.Resource) })
		if i < 0 {
			r.Findings = append(r.Findings, f)
			continue
		}
		g := &r.Findings[i]
		g.Subnets = append(g.Subnets, f.Subnets...)
		for _, c := range f.Clients {
			if !slices.Contains(g.Clients, c) {
				g.Clients = append(g.Clients, c)
			}
		}
	}
}

// Covered returns the subnets of n that Audit checks in full: those some
// client block covers (whose effective routes are worth reading).
func Covered(n *Network, cfg Config) []*Subnet {
	blocks := clientSources(cfg.Policy)
	var out []*Subnet
	for _, s := range n.Subnets {
		if st, _, _ := classify(s, blocks, cfg.ProxyIPs, map[netip.Addr]bool{}); st == StatusChecked {
			out = append(out, s)
		}
	}
	return out
}

// classify says what the audit makes of a subnet, which client blocks
// overlap it and their sources; it marks the proxy addresses it holds.
func classify(s *Subnet, blocks []clientBlock, proxies []netip.Addr, proxyHeld map[netip.Addr]bool) (status string, clients []string, srcs []netip.Prefix) {
	switch {
	case slices.ContainsFunc(infrastructure, func(name string) bool { return strings.EqualFold(name, s.Name) }):
		return StatusInfrastructure, nil, nil
	case holdsProxy(s, proxies, proxyHeld):
		return StatusProxy, nil, nil
	}
	for _, b := range blocks {
		if overlapsAny(b.sources, s.Prefixes) {
			clients = append(clients, b.name)
			srcs = append(srcs, b.sources...)
		}
	}
	switch {
	case len(clients) > 0:
		return StatusChecked, clients, srcs
	case s.HasWorkloads():
		return StatusUncovered, nil, nil
	}
	return StatusNoWorkloads, nil, nil
}

type clientBlock struct {
	name    string
	sources []netip.Prefix
}

func clientSources(p *policy.Policy) []clientBlock {
	if p == nil {
		return nil
	}
	var out []clientBlock
	for _, c := range p.Clients() {
		out = append(out, clientBlock{c.Name, c.Sources})
	}
	return out
}

func holdsProxy(s *Subnet, proxies []netip.Addr, held map[netip.Addr]bool) bool {
	found := false
	for _, a := range proxies {
		for _, p := range s.Prefixes {
			if p.Contains(a) {
				held[a], found = true, true
			}
		}
	}
	return found
}

func overlapsAny(a, b []netip.Prefix) bool {
	for _, p := range a {
		for _, q := range b {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}

// checkSubnet runs every check of a subnet some client block covers; srcs
// are the sources of the blocks that overlap it.
func checkSubnet(s *Subnet, srcs []netip.Prefix, cfg Config) []Finding {
	fs := checkPartlyCovered(s, srcs, cfg.PolicyName)
	routes := checkRoutes(s, cfg.ProxyIPs)
	fs = append(fs, routes...)
	fs = append(fs, checkServiceEndpoints(s)...)
	fs = append(fs, checkNSG(s)...)
	defaultReported := slices.ContainsFunc(routes, func(f Finding) bool {
		return f.Check == CheckRouteTable || f.Check == CheckDefaultRoute
	})
	fs = append(fs, checkEffective(s, cfg.ProxyIPs, defaultReported)...)
	return fs
}

// checkPartlyCovered finds subnet ranges the client blocks' sources cover
// only in part: the proxy refuses the rest as client_unknown.
func checkPartlyCovered(s *Subnet, srcs []netip.Prefix, policyName string) []Finding {
	var missing []string
	for _, p := range s.Prefixes {
		if !covered(p, srcs) {
			missing = append(missing, p.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []Finding{{
		Check:    CheckPartlyCovered,
		Resource: s.ID,
		Problem:  fmt.Sprintf("The client blocks' sources cover only part of %s: the proxy refuses connections from the rest as client_unknown.", strings.Join(missing, ", ")),
		Fix:      fmt.Sprintf("Add %s to the sources of a client block in %s, or shrink the subnet to what the sources cover.", strings.Join(missing, ", "), policyName),
	}}
}

// checkUncovered reports a subnet with workloads that no client block
// covers: their traffic is either refused by the proxy or never reaches it.
func checkUncovered(s *Subnet, policyName string) []Finding {
	var what []string
	if n := len(s.NICs); n > 0 {
		what = append(what, plural(n, "network interface"))
	}
	if n := len(s.Delegated); n > 0 {
		what = append(what, plural(n, "delegated service"))
	}
	pfx := strings.Join(prefixStrings(s.Prefixes), ", ")
	return []Finding{{
		Check:    CheckUncovered,
		Resource: s.ID,
		Problem:  fmt.Sprintf("The subnet has workloads (%s), but no client block's sources cover %s: what they send past the proxy is unfiltered, and what reaches it is refused as client_unknown.", strings.Join(what, ", "), pfx),
		Fix:      fmt.Sprintf("Add %s to a client block's sources in %s and route the subnet through the proxy, or move the workloads to a covered subnet.", pfx, policyName),
	}}
}

// checkRoutes checks the route table of a covered subnet: a default route
// per address family to the proxy, no route that sends public addresses
// elsewhere, and gateway route propagation off where a gateway could
// inject routes.
func checkRoutes(s *Subnet, proxies []netip.Addr) []Finding {
	rt := s.RouteTable
	id := parseID(s.ID)
	if rt == nil {
		name := s.Name + "-azegress"
		cmds := []string{fmt.Sprintf("az network route-table create -g %s -n %s --disable-bgp-route-propagation true", sh(id.rg), sh(name))}
		for _, d := range families(s) {
			cmds = append(cmds, fmt.Sprintf("az network route-table route create -g %s --route-table-name %s -n %s --address-prefix %s --next-hop-type VirtualAppliance --next-hop-ip-address %s",
				sh(id.rg), sh(name), defaultRouteName(d), d, proxyFor(d, proxies)))
		}
		cmds = append(cmds, fmt.Sprintf("az network vnet subnet update -g %s --vnet-name %s -n %s --route-table %s", sh(id.rg), sh(id.parent), sh(id.name), sh(name)))
		return []Finding{{
			Check:    CheckRouteTable,
			Resource: s.ID,
			Problem:  "The subnet has no route table: its traffic to the internet follows Azure's default route (0.0.0.0/0 to Internet), past the proxy.",
			Fix:      "Give it a route table whose default route goes to the proxy, with gateway route propagation off.",
			Command:  strings.Join(cmds, "\n"),
		}}
	}
	var fs []Finding
	rtID := parseID(rt.ID)
	for _, d := range families(s) {
		i := slices.IndexFunc(rt.Routes, func(r Route) bool { p, ok := routePrefix(r.Prefix); return ok && p == d })
		if i < 0 {
			fs = append(fs, Finding{
				Check:    CheckDefaultRoute,
				Resource: rt.ID,
				Problem:  fmt.Sprintf("The route table has no %s route: the subnet's traffic to the internet follows Azure's default route to Internet, past the proxy.", d),
				Fix:      "Add a default route to the proxy.",
				Command: fmt.Sprintf("az network route-table route create -g %s --route-table-name %s -n %s --address-prefix %s --next-hop-type VirtualAppliance --next-hop-ip-address %s",
					sh(rtID.rg), sh(rtID.name), defaultRouteName(d), d, proxyFor(d, proxies)),
			})
			continue
		}
		r := rt.Routes[i]
		if toProxy(r.NextHopType, []string{r.NextHopIP}, proxies) {
			continue
		}
		fs = append(fs, Finding{
			Check:    CheckDefaultRoute,
			Resource: r.ID,
			Problem:  fmt.Sprintf("Route %s sends %s to %s, not to the proxy (VirtualAppliance at %s).", r.Name, d, hopText(r.NextHopType, r.NextHopIP, proxies), addrList(proxies)),
			Fix:      "Point the route at the proxy.",
			Command: fmt.Sprintf("az network route-table route update -g %s --route-table-name %s -n %s --next-hop-type VirtualAppliance --next-hop-ip-address %s",
				sh(rtID.rg), sh(rtID.name), sh(r.Name), proxyFor(d, proxies)),
		})
	}
	for _, r := range rt.Routes {
		p, isCIDR := routePrefix(r.Prefix)
		if isCIDR && p.Bits() == 0 {
			continue // a default route, checked above
		}
		if !public(r.Prefix, s.VNet.AddressSpace) || !bypasses(r.NextHopType, []string{r.NextHopIP}, proxies) {
			continue
		}
		what := r.Prefix
		if !isCIDR {
			what += " (a service tag)"
			p = defaultRoute(netip.MustParsePrefix("0.0.0.0/32"))
		}
		fs = append(fs, Finding{
			Check:    CheckBypassRoute,
			Resource: r.ID,
			Problem: fmt.Sprintf("Route %s sends %s to %s. It is more specific than the default route, so that traffic skips the proxy.",
				r.Name, what, hopText(r.NextHopType, r.NextHopIP, proxies)),
			Fix: fmt.Sprintf("Delete the route, or point it at the proxy (route update --next-hop-type VirtualAppliance --next-hop-ip-address %s).", proxyFor(p, proxies)),
			Command: fmt.Sprintf("az network route-table route delete -g %s --route-table-name %s -n %s",
				sh(rtID.rg), sh(rtID.name), sh(r.Name)),
		})
	}
	if rt.PropagateGatewayRoutes && len(s.VNet.Gateways) > 0 {
		fs = append(fs, Finding{
			Check:    CheckGatewayRoutes,
			Resource: rt.ID,
			Problem: fmt.Sprintf("Gateway route propagation is on, and a gateway can inject routes into the VNet (through %s): a BGP route more specific than the default route takes that traffic past the proxy.",
				strings.Join(s.VNet.Gateways, ", ")),
			Fix:     "Turn gateway route propagation off. On-premises prefixes then need user-defined routes, for example to the hub's firewall.",
			Command: fmt.Sprintf("az network route-table update -g %s -n %s --disable-bgp-route-propagation true", sh(rtID.rg), sh(rtID.name)),
		})
	}
	return fs
}

// checkServiceEndpoints reports service endpoints: Azure adds routes for
// the service's public addresses to the subnet (next hop
// VirtualNetworkServiceEndpoint), more specific than the default route.
func checkServiceEndpoints(s *Subnet) []Finding {
	if len(s.ServiceEndpoints) == 0 {
		return nil
	}
	id := parseID(s.ID)
	return []Finding{{
		Check:    CheckServiceEndpoint,
		Resource: s.ID,
		Problem: fmt.Sprintf("Service endpoints for %s add system routes for those services' public addresses, more specific than the default route: that traffic goes straight to the service, past the proxy.",
			strings.Join(s.ServiceEndpoints, ", ")),
		Fix: "Remove the service endpoints, and reach the services through the proxy or through private endpoints.",
		Command: fmt.Sprintf("az network vnet subnet update -g %s --vnet-name %s -n %s --remove serviceEndpoints",
			sh(id.rg), sh(id.parent), sh(id.name)),
	}}
}

// checkNSG checks the outbound rules of a covered subnet's NSG: Internet
// denied on every protocol and port before Azure's AllowInternetOutBound
// (65001), and no allow rule ahead of that deny opening more than TCP to
// the web ports, so that whatever a route lets past the proxy still stops.
func checkNSG(s *Subnet) []Finding {
	id := parseID(s.ID)
	sg := s.NSG
	if sg == nil {
		name := s.Name + "-nsg"
		return []Finding{{
			Check:    CheckNSG,
			Resource: s.ID,
			Problem:  "The subnet has no network security group: traffic that a route lets past the proxy is not stopped.",
			Fix:      fmt.Sprintf("Give it an NSG that lets TCP %s out (the route takes it to the proxy) and denies other Internet traffic.", portList()),
			Command: strings.Join([]string{
				fmt.Sprintf("az network nsg create -g %s -n %s", sh(id.rg), sh(name)),
				allowWebCommand(id.rg, name),
				denyInternetCommand(id.rg, name),
				fmt.Sprintf("az network vnet subnet update -g %s --vnet-name %s -n %s --network-security-group %s", sh(id.rg), sh(id.parent), sh(id.name), sh(name)),
			}, "\n"),
		}}
	}
	var fs, allows []Finding
	denied := false
	sgID := parseID(sg.ID)
	for _, r := range sg.Rules {
		if !strings.EqualFold(r.Direction, "Outbound") {
			continue
		}
		srcAll, srcSome := false, r.SourceASGs
		for _, src := range r.Sources {
			a, some := nsgMatchesSubnet(src, s.Prefixes)
			srcAll, srcSome = srcAll || a, srcSome || some
		}
		dstAll, dstSome := false, r.DestASGs
		for _, d := range r.Destinations {
			a, some := nsgInternet(d, s.VNet.AddressSpace)
			dstAll, dstSome = dstAll || a, dstSome || some
		}
		if strings.EqualFold(r.Access, "Deny") {
			if srcAll && dstAll && r.Protocol == "*" && allPorts(r.DestPorts) {
				denied = true
				break
			}
			continue
		}
		if !srcSome || !dstSome || webOnly(r.Protocol, r.DestPorts) {
			continue
		}
		allows = append(allows, Finding{
			Check:    CheckNSGAllow,
			Resource: r.ID,
			Problem: fmt.Sprintf("Outbound rule %s (priority %d) allows %s to %s, ahead of any Internet deny. The proxy takes only TCP %s, so this opens a way out for traffic that gets past it.",
				r.Name, r.Priority, protoPorts(r.Protocol, r.DestPorts), strings.Join(r.Destinations, ", "), portList()),
			Fix:     fmt.Sprintf("Delete the rule, or narrow it to TCP %s.", portList()),
			Command: fmt.Sprintf("az network nsg rule delete -g %s --nsg-name %s -n %s", sh(sgID.rg), sh(sgID.name), sh(r.Name)),
		})
	}
	if !denied {
		fs = append(fs, Finding{
			Check:    CheckNSGInternet,
			Resource: sg.ID,
			Problem:  "No outbound rule denies Internet on every protocol and port before Azure's default AllowInternetOutBound (65001): traffic that a route lets past the proxy is not stopped.",
			Fix:      "Add an outbound rule that denies Internet, after the rules that must stay.",
			Command:  denyInternetCommand(sgID.rg, sgID.name),
		})
	}
	return append(fs, allows...)
}

// denyInternetCommand creates the Internet deny at the last priority, so
// every existing rule keeps precedence over it.
func denyInternetCommand(rg, nsg string) string {
	return fmt.Sprintf("az network nsg rule create -g %s --nsg-name %s -n deny-internet-out --priority 4096 --direction Outbound --access Deny --protocol '*' --source-address-prefixes '*' --source-port-ranges '*' --destination-address-prefixes Internet --destination-port-ranges '*'",
		sh(rg), sh(nsg))
}

// allowWebCommand lets TCP to the web ports out: the NSG sees the
// original destination, and the route takes the packets to the proxy.
func allowWebCommand(rg, nsg string) string {
	return fmt.Sprintf("az network nsg rule create -g %s --nsg-name %s -n allow-web-via-azegress --priority 100 --direction Outbound --access Allow --protocol Tcp --source-address-prefixes '*' --source-port-ranges '*' --destination-address-prefixes Internet --destination-port-ranges %s",
		sh(rg), sh(nsg), strings.ReplaceAll(portList(), ",", " "))
}

// checkEffective checks the active routes of the subnet's effective route
// table that the route table does not explain: routes a gateway injected,
// and platform routes other than service endpoints (checked on their
// own). The platform's 0.0.0.0/0 to Internet is left to the route table
// checks when they already reported the default route.
func checkEffective(s *Subnet, proxies []netip.Addr, defaultReported bool) []Finding {
	e := s.Effective
	if e == nil || e.Err != "" {
		return nil
	}
	var fs []Finding
	for _, r := range e.Routes {
		if !strings.EqualFold(r.State, "Active") || strings.EqualFold(r.Source, "User") || strings.EqualFold(r.NextHopType, "VirtualNetworkServiceEndpoint") {
			continue
		}
		var pub []string
		isDefault := false
		for _, p := range r.Prefixes {
			if public(p, s.VNet.AddressSpace) {
				pub = append(pub, p)
			}
			if d, ok := routePrefix(p); ok && d.Bits() == 0 {
				isDefault = true
			}
		}
		if len(pub) == 0 || !bypasses(r.NextHopType, r.NextHopIPs, proxies) || (isDefault && defaultReported) {
			continue
		}
		fix := "Find what adds the route, and remove it."
		if strings.EqualFold(r.Source, "VirtualNetworkGateway") {
			fix = "Stop the gateway advertising it, or turn gateway route propagation off on the subnet's route table (az network route-table update --disable-bgp-route-propagation true)."
		}
		fs = append(fs, Finding{
			Check:    CheckEffectiveRoute,
			Resource: e.NIC,
			Problem: fmt.Sprintf("The effective routes have an active route from %s that sends %s to %s: that traffic skips the proxy.",
				r.Source, abbreviate(pub, 4), hopText(r.NextHopType, strings.Join(r.NextHopIPs, ", "), proxies)),
			Fix: fix,
		})
	}
	return fs
}

// checkProxyLoop reports a default route to the proxy on the proxy's own
// subnet: the proxy's egress would come back to it.
func checkProxyLoop(s *Subnet, proxies []netip.Addr) []Finding {
	if s.RouteTable == nil {
		return nil
	}
	for _, r := range s.RouteTable.Routes {
		if p, ok := routePrefix(r.Prefix); ok && p.Bits() == 0 && toProxy(r.NextHopType, []string{r.NextHopIP}, proxies) {
			id := parseID(s.ID)
			return []Finding{{
				Check:    CheckProxyLoop,
				Resource: r.ID,
				Problem:  fmt.Sprintf("The proxy's own subnet sends %s to the proxy (%s): its egress would loop back to it.", p, r.NextHopIP),
				Fix:      "Take the route table off the proxies' subnet; give it a NAT gateway for the proxies' own egress.",
				Command: fmt.Sprintf("az network vnet subnet update -g %s --vnet-name %s -n %s --remove routeTable",
					sh(id.rg), sh(id.parent), sh(id.name)),
			}}
		}
	}
	return nil
}

// families returns the default route of each address family the subnet
// has, IPv4 first.
func families(s *Subnet) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s.Prefixes {
		if d := defaultRoute(p); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

func defaultRouteName(d netip.Prefix) string {
	if d.Addr().Is4() {
		return "default-via-azegress"
	}
	return "default6-via-azegress"
}

// toProxy reports whether a next hop is the proxy.
func toProxy(hopType string, hopIPs []string, proxies []netip.Addr) bool {
	if !strings.EqualFold(hopType, "VirtualAppliance") {
		return false
	}
	for _, s := range hopIPs {
		if a, err := netip.ParseAddr(s); err == nil && slices.Contains(proxies, a.Unmap()) {
			return true
		}
	}
	return false
}

// bypasses reports whether a next hop takes traffic out another way than
// the proxy: to the internet, a gateway, another appliance or a service
// endpoint. None drops it; VnetLocal and peering keep it inside Azure's
// private address space.
func bypasses(hopType string, hopIPs []string, proxies []netip.Addr) bool {
	switch strings.ToLower(hopType) {
	case "internet", "virtualnetworkgateway", "virtualnetworkserviceendpoint":
		return true
	case "virtualappliance":
		return !toProxy(hopType, hopIPs, proxies)
	}
	return false
}

func hopText(hopType, hopIP string, proxies []netip.Addr) string {
	if strings.EqualFold(hopType, "VirtualAppliance") {
		if hopIP == "" {
			return "a virtual appliance"
		}
		return fmt.Sprintf("the virtual appliance %s, which is not the proxy (-proxy-ip %s; name it there if it forwards to azegress)", hopIP, addrList(proxies))
	}
	return hopType
}

// proxyFor is the proxy address of d's family, or a placeholder.
func proxyFor(d netip.Prefix, proxies []netip.Addr) string {
	for _, a := range proxies {
		if a.Is4() == d.Addr().Is4() {
			return a.String()
		}
	}
	if d.Addr().Is4() {
		return "PROXY_IPV4"
	}
	return "PROXY_IPV6"
}

func addrList(as []netip.Addr) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}

// allPorts reports whether a rule's destination ports are all ports.
func allPorts(ports []string) bool {
	return slices.ContainsFunc(ports, func(p string) bool { return p == "*" || p == "0-65535" || p == "1-65535" })
}

// webOnly reports whether a rule allows no more than TCP to the web ports.
func webOnly(protocol string, ports []string) bool {
	if !strings.EqualFold(protocol, "Tcp") || len(ports) == 0 {
		return false
	}
	for _, p := range ports {
		lo, hi, ok := portRange(p)
		if !ok {
			return false
		}
		for n := lo; n <= hi; n++ {
			if !slices.Contains(webPorts, n) {
				return false
			}
		}
	}
	return true
}

// portRange parses "N" or "N-M"; "*" is not a range here.
func portRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return 0, 0, false
		}
	}
	return lo, hi, lo <= hi
}

func protoPorts(protocol string, ports []string) string {
	proto := protocol
	if proto == "*" {
		proto = "any protocol"
	}
	if allPorts(ports) {
		return proto + " on any port"
	}
	return proto + " port " + strings.Join(ports, ",")
}

func portList() string {
	ss := make([]string, len(webPorts))
	for i, p := range webPorts {
		ss[i] = strconv.Itoa(p)
	}
	return strings.Join(ss, ",")
}

func abbreviate(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ss[:n], ", "), len(ss)-n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// resourceID is what a fix command needs of an ARM resource ID.
type resourceID struct {
	rg, parent, name string
}

func parseID(id string) resourceID {
	r, err := arm.ParseResourceID(id)
	if err != nil {
		return resourceID{rg: "RESOURCE_GROUP", parent: "PARENT", name: "NAME"}
	}
	out := resourceID{rg: r.ResourceGroupName, name: r.Name}
	if r.Parent != nil {
		out.parent = r.Parent.Name
	}
	return out
}

// sh quotes s for a POSIX shell when it needs it.
func sh(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
