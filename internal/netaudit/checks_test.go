package netaudit

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy"
)

const (
	rgNet = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network"
	vnID  = rgNet + "/virtualNetworks/vnet-spoke"
	rtID  = rgNet + "/routeTables/rt"
	sgID  = rgNet + "/networkSecurityGroups/nsg"
)

var proxies = []netip.Addr{netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.0.0.5")}

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func route(name, prefix, hop, ip string) Route {
	return Route{ID: rtID + "/routes/" + name, Name: name, Prefix: prefix, NextHopType: hop, NextHopIP: ip}
}

func rule(name string, prio int32, access, proto, src, dst string, ports ...string) Rule {
	return Rule{ID: sgID + "/securityRules/" + name, Name: name, Priority: prio, Direction: "Outbound", Access: access, Protocol: proto,
		Sources: []string{src}, Destinations: []string{dst}, DestPorts: ports}
}

// goodSubnet is a workload subnet as deploy/azure/azegress.json builds
// it: a default route to the proxy, gateway routes off, an NSG that lets
// the web ports out and denies other Internet traffic.
func goodSubnet() *Subnet {
	return &Subnet{
		ID:       vnID + "/subnets/web",
		Name:     "web",
		VNet:     &VNet{ID: vnID, AddressSpace: pfxs("10.1.0.0/16"), Gateways: []string{vnID + "/virtualNetworkPeerings/to-hub"}},
		Prefixes: pfxs("10.1.1.0/24"),
		RouteTable: &RouteTable{ID: rtID, Routes: []Route{
			route("default", "0.0.0.0/0", "VirtualAppliance", "10.0.0.4"),
		}},
		NSG: &NSG{ID: sgID, Rules: []Rule{
			rule("allow-web-out", 100, "Allow", "Tcp", "*", "Internet", "80", "443"),
			rule("deny-internet-out", 4000, "Deny", "*", "*", "Internet", "*"),
		}},
		NICs: []string{rgNet + "/networkInterfaces/vm-1-nic"},
	}
}

func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Check+" "+strings.TrimPrefix(strings.TrimPrefix(f.Resource, rgNet), "/"))
	}
	return out
}

func TestCheckRoutes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		edit func(*Subnet)
		want []string
	}{
		{"default route to the proxy", func(s *Subnet) {}, nil},
		{"default route to the second proxy address", func(s *Subnet) { s.RouteTable.Routes[0].NextHopIP = "10.0.0.5" }, nil},
		{"no route table", func(s *Subnet) { s.RouteTable = nil }, []string{"route-table virtualNetworks/vnet-spoke/subnets/web"}},
		{"no default route", func(s *Subnet) { s.RouteTable.Routes = nil }, []string{"default-route routeTables/rt"}},
		{"default route to Internet", func(s *Subnet) { s.RouteTable.Routes[0].NextHopType, s.RouteTable.Routes[0].NextHopIP = "Internet", "" },
			[]string{"default-route routeTables/rt/routes/default"}},
		{"default route to another appliance", func(s *Subnet) { s.RouteTable.Routes[0].NextHopIP = "10.0.100.4" }, []string{"default-route routeTables/rt/routes/default"}},
		{"default route to a gateway", func(s *Subnet) {
			s.RouteTable.Routes[0].NextHopType, s.RouteTable.Routes[0].NextHopIP = "VirtualNetworkGateway", ""
		},
			[]string{"default-route routeTables/rt/routes/default"}},
		{"default route to None", func(s *Subnet) { s.RouteTable.Routes[0].NextHopType, s.RouteTable.Routes[0].NextHopIP = "None", "" },
			[]string{"default-route routeTables/rt/routes/default"}},
		{"service tag to Internet", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("st", "AzureMonitor", "Internet", ""))
		},
			[]string{"bypass-route routeTables/rt/routes/st"}},
		{"service tag to the proxy", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("st", "Storage.WestEurope", "VirtualAppliance", "10.0.0.4"))
		}, nil},
		{"public prefix to a gateway", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("p", "52.96.0.0/14", "VirtualNetworkGateway", ""))
		},
			[]string{"bypass-route routeTables/rt/routes/p"}},
		{"public prefix to another appliance", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("p", "20.50.0.0/16", "VirtualAppliance", "10.0.100.4"))
		},
			[]string{"bypass-route routeTables/rt/routes/p"}},
		{"half the internet to Internet", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("lo", "0.0.0.0/1", "Internet", ""), route("hi", "128.0.0.0/1", "Internet", ""))
		}, []string{"bypass-route routeTables/rt/routes/lo", "bypass-route routeTables/rt/routes/hi"}},
		{"a prefix wider than a private range", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("w", "10.0.0.0/7", "Internet", ""))
		},
			[]string{"bypass-route routeTables/rt/routes/w"}},
		{"a host address to Internet", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("h", "203.0.113.7", "Internet", ""))
		},
			[]string{"bypass-route routeTables/rt/routes/h"}},
		{"public prefix dropped", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("p", "20.50.0.0/16", "None", ""))
		}, nil},
		{"public prefix to the proxy", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("p", "20.50.0.0/16", "VirtualAppliance", "10.0.0.5"))
		}, nil},
		{"on-premises prefix to a gateway", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("op", "10.20.0.0/16", "VirtualNetworkGateway", ""))
		}, nil},
		{"CGNAT prefix to an appliance", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("c", "100.64.0.0/16", "VirtualAppliance", "10.0.100.4"))
		}, nil},
		{"the VNet's public address space to an appliance", func(s *Subnet) {
			s.VNet.AddressSpace = append(s.VNet.AddressSpace, pfxs("198.51.100.0/24")...)
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("v", "198.51.100.0/25", "VirtualAppliance", "10.0.100.4"))
		}, nil},
		{"public prefix in the VNet", func(s *Subnet) {
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("l", "203.0.113.0/24", "VnetLocal", ""))
		}, nil},
		{"gateway routes on, gateway in reach", func(s *Subnet) { s.RouteTable.PropagateGatewayRoutes = true }, []string{"gateway-routes routeTables/rt"}},
		{"gateway routes on, no gateway", func(s *Subnet) { s.RouteTable.PropagateGatewayRoutes, s.VNet.Gateways = true, nil }, nil},
		{"dual stack without ::/0", func(s *Subnet) { s.Prefixes = append(s.Prefixes, pfxs("fd00:1:1::/64")...) }, []string{"default-route routeTables/rt"}},
		{"dual stack with ::/0 to the proxy", func(s *Subnet) {
			s.Prefixes = append(s.Prefixes, pfxs("fd00:1:1::/64")...)
			s.RouteTable.Routes = append(s.RouteTable.Routes, route("d6", "::/0", "VirtualAppliance", "fd00:1::4"))
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := goodSubnet()
			tt.edit(s)
			px := append(slices.Clone(proxies), netip.MustParseAddr("fd00:1::4"))
			if got := checks(checkRoutes(s, px)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCheckRoutesFix: the commands name the route table, the route and
// the proxy address of the route's family.
func TestCheckRoutesFix(t *testing.T) {
	t.Parallel()
	s := goodSubnet()
	s.RouteTable = nil
	s.Prefixes = append(s.Prefixes, pfxs("fd00:1:1::/64")...)
	fs := checkRoutes(s, proxies)
	want := "az network route-table create -g rg-net -n web-azegress --disable-bgp-route-propagation true\n" +
		"az network route-table route create -g rg-net --route-table-name web-azegress -n default-via-azegress --address-prefix 0.0.0.0/0 --next-hop-type VirtualAppliance --next-hop-ip-address 10.0.0.4\n" +
		"az network route-table route create -g rg-net --route-table-name web-azegress -n default6-via-azegress --address-prefix ::/0 --next-hop-type VirtualAppliance --next-hop-ip-address PROXY_IPV6\n" +
		"az network vnet subnet update -g rg-net --vnet-name vnet-spoke -n web --route-table web-azegress"
	if len(fs) != 1 || fs[0].Command != want {
		t.Errorf("got %+v\nwant command:\n%s", fs, want)
	}
	s = goodSubnet()
	s.RouteTable.Routes[0].NextHopType = "Internet"
	fs = checkRoutes(s, proxies)
	want = "az network route-table route update -g rg-net --route-table-name rt -n default --next-hop-type VirtualAppliance --next-hop-ip-address 10.0.0.4"
	if len(fs) != 1 || fs[0].Command != want {
		t.Errorf("got %+v\nwant command:\n%s", fs, want)
	}
}

func TestCheckNSG(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		edit func(*Subnet)
		want []string
	}{
		{"web out, Internet denied", func(s *Subnet) {}, nil},
		{"no NSG", func(s *Subnet) { s.NSG = nil }, []string{"nsg virtualNetworks/vnet-spoke/subnets/web"}},
		{"no deny", func(s *Subnet) { s.NSG.Rules = s.NSG.Rules[:1] }, []string{"nsg-internet networkSecurityGroups/nsg"}},
		{"deny of TCP only", func(s *Subnet) { s.NSG.Rules[1].Protocol = "Tcp" }, []string{"nsg-internet networkSecurityGroups/nsg"}},
		{"deny of some ports", func(s *Subnet) { s.NSG.Rules[1].DestPorts = []string{"1-1024"} }, []string{"nsg-internet networkSecurityGroups/nsg"}},
		{"deny of half the subnet", func(s *Subnet) { s.NSG.Rules[1].Sources = []string{"10.1.1.0/25"} }, []string{"nsg-internet networkSecurityGroups/nsg"}},
		{"deny from the VNet", func(s *Subnet) { s.NSG.Rules[1].Sources = []string{"VirtualNetwork"} }, nil},
		{"deny from the subnet's range", func(s *Subnet) { s.NSG.Rules[1].Sources = []string{"10.1.0.0/16"} }, nil},
		{"deny to everything", func(s *Subnet) { s.NSG.Rules[1].Destinations = []string{"*"} }, nil},
		{"deny inbound only", func(s *Subnet) { s.NSG.Rules[1].Direction = "Inbound" }, []string{"nsg-internet networkSecurityGroups/nsg"}},
		{"UDP out before the deny", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("ntp", 200, "Allow", "Udp", "*", "Internet", "123"))
		}, []string{"nsg-allow networkSecurityGroups/nsg/securityRules/ntp"}},
		{"a port range around the web ports", func(s *Subnet) { s.NSG.Rules[0].DestPorts = []string{"80-443"} },
			[]string{"nsg-allow networkSecurityGroups/nsg/securityRules/allow-web-out"}},
		{"web ports as ranges", func(s *Subnet) { s.NSG.Rules[0].DestPorts = []string{"80-80", "443"} }, nil},
		{"any port to a service tag", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("st", 200, "Allow", "*", "*", "Storage", "*"))
		}, []string{"nsg-allow networkSecurityGroups/nsg/securityRules/st"}},
		{"any port to a public prefix", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("p", 200, "Allow", "Tcp", "*", "20.50.0.0/16", "22"))
		}, []string{"nsg-allow networkSecurityGroups/nsg/securityRules/p"}},
		{"any port to a private prefix", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("p", 200, "Allow", "*", "*", "10.20.0.0/16", "*"))
		}, nil},
		{"any port to the VNet", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("v", 200, "Allow", "*", "*", "VirtualNetwork", "*"))
		}, nil},
		{"from another subnet", func(s *Subnet) {
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, rule("o", 200, "Allow", "*", "10.9.0.0/16", "Internet", "*"))
		}, nil},
		{"from an application security group", func(s *Subnet) {
			r := rule("asg", 200, "Allow", "*", "", "Internet", "*")
			r.Sources, r.SourceASGs = nil, true
			s.NSG.Rules = slices.Insert(s.NSG.Rules, 1, r)
		}, []string{"nsg-allow networkSecurityGroups/nsg/securityRules/asg"}},
		{"allow after the deny", func(s *Subnet) {
			s.NSG.Rules = append(s.NSG.Rules, rule("late", 4001, "Allow", "*", "*", "Internet", "*"))
		}, nil},
		{"allow without any deny", func(s *Subnet) {
			s.NSG.Rules = []Rule{rule("all", 100, "Allow", "*", "*", "*", "*")}
		}, []string{"nsg-internet networkSecurityGroups/nsg", "nsg-allow networkSecurityGroups/nsg/securityRules/all"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := goodSubnet()
			tt.edit(s)
			if got := checks(checkNSG(s)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckServiceEndpoints(t *testing.T) {
	t.Parallel()
	s := goodSubnet()
	if fs := checkServiceEndpoints(s); len(fs) != 0 {
		t.Errorf("none: %+v", fs)
	}
	s.ServiceEndpoints = []string{"Microsoft.Storage", "Microsoft.KeyVault"}
	fs := checkServiceEndpoints(s)
	if len(fs) != 1 || fs[0].Check != CheckServiceEndpoint || !strings.Contains(fs[0].Problem, "Microsoft.Storage, Microsoft.KeyVault") ||
		fs[0].Command != "az network vnet subnet update -g rg-net --vnet-name vnet-spoke -n web --remove serviceEndpoints" {
		t.Errorf("got %+v", fs)
	}
}

func TestCheckEffective(t *testing.T) {
	t.Parallel()
	nic := rgNet + "/networkInterfaces/vm-1-nic"
	er := func(source, state, hop string, prefixes ...string) EffectiveRoute {
		return EffectiveRoute{Source: source, State: state, NextHopType: hop, Prefixes: prefixes}
	}
	for _, tt := range []struct {
		name            string
		eff             *Effective
		defaultReported bool
		want            []string
	}{
		{"not read", nil, false, nil},
		{"failed", &Effective{NIC: nic, Err: "timed out"}, false, nil},
		{"gateway route to public addresses", &Effective{NIC: nic, Routes: []EffectiveRoute{er("VirtualNetworkGateway", "Active", "VirtualNetworkGateway", "52.96.0.0/14")}}, false,
			[]string{"effective-route networkInterfaces/vm-1-nic"}},
		{"gateway default route", &Effective{NIC: nic, Routes: []EffectiveRoute{er("VirtualNetworkGateway", "Active", "VirtualNetworkGateway", "0.0.0.0/0")}}, false,
			[]string{"effective-route networkInterfaces/vm-1-nic"}},
		{"gateway route, invalid", &Effective{NIC: nic, Routes: []EffectiveRoute{er("VirtualNetworkGateway", "Invalid", "VirtualNetworkGateway", "52.96.0.0/14")}}, false, nil},
		{"gateway route to on-premises", &Effective{NIC: nic, Routes: []EffectiveRoute{er("VirtualNetworkGateway", "Active", "VirtualNetworkGateway", "10.20.0.0/16")}}, false, nil},
		{"user route (the route table's)", &Effective{NIC: nic, Routes: []EffectiveRoute{er("User", "Active", "Internet", "0.0.0.0/0")}}, false, nil},
		{"service endpoint", &Effective{NIC: nic, Routes: []EffectiveRoute{er("Default", "Active", "VirtualNetworkServiceEndpoint", "20.60.0.0/16")}}, false, nil},
		{"platform default route, reported", &Effective{NIC: nic, Routes: []EffectiveRoute{er("Default", "Active", "Internet", "0.0.0.0/0")}}, true, nil},
		{"platform default route, unexplained", &Effective{NIC: nic, Routes: []EffectiveRoute{er("Default", "Active", "Internet", "0.0.0.0/0")}}, false,
			[]string{"effective-route networkInterfaces/vm-1-nic"}},
		{"platform routes inside", &Effective{NIC: nic, Routes: []EffectiveRoute{er("Default", "Active", "VnetLocal", "10.1.0.0/16"), er("Default", "Active", "None", "10.0.0.0/8")}}, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := goodSubnet()
			s.Effective = tt.eff
			if got := checks(checkEffective(s, proxies, tt.defaultReported)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func loadPolicy(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Load("policy.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

// TestAudit covers what Audit decides per subnet: which it checks, which
// it reports as uncovered or partly covered, the proxy's subnet, and a
// scope where nothing is covered.
func TestAudit(t *testing.T) {
	t.Parallel()
	pol := loadPolicy(t, `
client "web" {
  sources = ["10.1.1.0/25", "10.1.1.128/25"]
}
client "jobs" {
  sources = ["10.1.4.0/25"]
}
`)
	vnet := &VNet{ID: vnID, AddressSpace: pfxs("10.1.0.0/16", "10.0.0.0/16")}
	sub := func(name, prefix string, edit func(*Subnet)) *Subnet {
		s := &Subnet{ID: vnID + "/subnets/" + name, Name: name, VNet: vnet, Prefixes: pfxs(prefix)}
		if edit != nil {
			edit(s)
		}
		return s
	}
	good := goodSubnet()
	good.VNet = vnet
	shared := &RouteTable{ID: rgNet + "/routeTables/shared", Routes: []Route{{ID: rgNet + "/routeTables/shared/routes/d", Name: "d", Prefix: "0.0.0.0/0", NextHopType: "Internet"}}}
	n := &Network{VNets: []*VNet{vnet}, Subnets: []*Subnet{
		good, // covered by two /25 sources together
		sub("jobs", "10.1.4.0/24", func(s *Subnet) { s.RouteTable, s.NSG = shared, good.NSG }),
		sub("legacy", "10.1.5.0/24", func(s *Subnet) { s.NICs = []string{"nic"} }),
		sub("empty", "10.1.6.0/24", nil),
		sub("GatewaySubnet", "10.1.255.0/27", func(s *Subnet) { s.NICs = []string{"gw"} }),
		sub("proxy", "10.0.0.0/24", func(s *Subnet) { s.RouteTable = good.RouteTable }),
	}}
	rep := Audit(n, Config{Policy: pol, PolicyName: "policy.hcl", ProxyIPs: proxies[:1], Scope: Scope{Subscription: "s"}})
	var status []string
	for _, s := range rep.Subnets {
		status = append(status, strings.TrimPrefix(s.ID, vnID+"/subnets/")+" "+s.Status+" "+strings.Join(s.Clients, ","))
	}
	wantStatus := []string{"web checked web", "jobs checked jobs", "legacy uncovered ", "empty no-workloads ", "GatewaySubnet infrastructure ", "proxy proxy "}
	if !slices.Equal(status, wantStatus) {
		t.Errorf("statuses %q, want %q", status, wantStatus)
	}
	want := []string{
		"partly-covered virtualNetworks/vnet-spoke/subnets/jobs",
		"default-route routeTables/shared/routes/d",
		"uncovered-subnet virtualNetworks/vnet-spoke/subnets/legacy",
		"proxy-loop routeTables/rt/routes/default",
	}
	if got := checks(rep.Findings); !slices.Equal(got, want) {
		t.Errorf("findings %q, want %q", got, want)
	}
	if len(rep.Notes) != 0 {
		t.Errorf("notes %q", rep.Notes)
	}

	// A route table two covered subnets share is one finding naming both.
	second := sub("jobs2", "10.1.4.0/25", func(s *Subnet) { s.RouteTable, s.NSG = shared, good.NSG })
	n.Subnets = append(n.Subnets, second)
	rep = Audit(n, Config{Policy: pol, PolicyName: "policy.hcl", ProxyIPs: proxies[:1], Scope: Scope{Subscription: "s"}})
	i := slices.IndexFunc(rep.Findings, func(f Finding) bool { return f.Check == CheckDefaultRoute })
	if i < 0 || len(rep.Findings[i].Subnets) != 2 || len(rep.Findings[i].Clients) != 1 {
		t.Errorf("shared route table: %+v", rep.Findings)
	}

	// Nothing covered: one finding on the scope, and the proxy address
	// no subnet holds is noted.
	rep = Audit(&Network{Subnets: []*Subnet{sub("empty", "10.1.6.0/24", nil)}}, Config{Policy: pol, PolicyName: "policy.hcl",
		ProxyIPs: []netip.Addr{netip.MustParseAddr("10.9.9.9")}, Scope: Scope{Subscription: "s", ResourceGroup: "rg"}})
	if got := checks(rep.Findings); !slices.Equal(got, []string{"nothing-covered subscriptions/s/resourceGroups/rg"}) {
		t.Errorf("nothing covered: %q", got)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "no subnet read holds the proxy address 10.9.9.9") {
		t.Errorf("notes %q", rep.Notes)
	}
}

// TestAuditIdentityBlocks: an identity block's sources cover subnets like
// any block's; one without sources is tied to no subnet, and a note says
// so.
func TestAuditIdentityBlocks(t *testing.T) {
	t.Parallel()
	pol := loadPolicy(t, `
entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}
client "pinned" {
  sources = ["10.1.1.0/24"]
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
}
client "anywhere" {
  identity {
    object_ids = ["bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
}
`)
	s := goodSubnet()
	rep := Audit(&Network{Subnets: []*Subnet{s}}, Config{Policy: pol, ProxyIPs: proxies[:1], Scope: Scope{Subscription: "s"}})
	if len(rep.Subnets) != 1 || rep.Subnets[0].Status != StatusChecked || !slices.Equal(rep.Subnets[0].Clients, []string{"pinned"}) || len(rep.Findings) != 0 {
		t.Errorf("subnets %+v, findings %+v", rep.Subnets, rep.Findings)
	}
	if len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], `client block "anywhere" has no sources`) {
		t.Errorf("notes %q", rep.Notes)
	}
}

func TestCovered(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p    string
		set  []string
		want bool
	}{
		{"10.1.1.0/24", []string{"10.1.0.0/16"}, true},
		{"10.1.1.0/24", []string{"10.1.1.0/24"}, true},
		{"10.1.1.0/24", []string{"10.1.1.0/25", "10.1.1.128/25"}, true},
		{"10.1.1.0/24", []string{"10.1.1.0/25", "10.1.1.128/26", "10.1.1.192/26"}, true},
		{"10.1.1.0/24", []string{"10.1.1.0/25"}, false},
		{"10.1.1.0/24", []string{"10.1.1.0/25", "10.1.1.128/26"}, false},
		{"10.1.1.0/24", []string{"10.1.2.0/24"}, false},
		{"10.1.1.0/24", nil, false},
		{"fd00::/64", []string{"fd00::/65", "fd00::8000:0:0:0/65"}, true},
		{"fd00::/64", []string{"fd00::1/128"}, false},
	} {
		if got := covered(netip.MustParsePrefix(tt.p), pfxs(tt.set...)); got != tt.want {
			t.Errorf("covered(%s, %v) = %v, want %v", tt.p, tt.set, got, tt.want)
		}
	}
}
