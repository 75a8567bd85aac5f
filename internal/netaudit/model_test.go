package netaudit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
)

func decode[T any](t *testing.T, s string) *T {
	t.Helper()
	v := new(T)
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFromARM builds the model from resources as ARM returns them.
func TestFromARM(t *testing.T) {
	t.Parallel()
	const n = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network"
	vnet := decode[armnetwork.VirtualNetwork](t, `{
  "id": "`+n+`/virtualNetworks/v", "name": "v",
  "properties": {
    "addressSpace": {"addressPrefixes": ["10.1.0.0/16", "fd00:1::/48"]},
    "subnets": [
      {"id": "`+n+`/virtualNetworks/v/subnets/a", "name": "a", "properties": {
        "addressPrefixes": ["10.1.1.0/24", "fd00:1:1::/64"],
        "routeTable": {"id": "`+strings.ToUpper(n)+`/ROUTETABLES/RT"},
        "networkSecurityGroup": {"id": "`+n+`/networkSecurityGroups/nsg"},
        "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope"]}],
        "ipConfigurations": [
          {"id": "`+n+`/networkInterfaces/vm1-nic/ipConfigurations/ipconfig1"},
          {"id": "`+n+`/networkInterfaces/vm1-nic/ipConfigurations/ipconfig2"},
          {"id": "`+n+`/networkInterfaces/pe.nic.1/ipConfigurations/PRIVATEENDPOINTIPCONFIG.0f1e"},
          {"id": "`+n+`/loadBalancers/ilb/frontendIPConfigurations/frontend"},
          {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0/networkInterfaces/nic/ipConfigurations/ipconfig"}
        ]}},
      {"id": "`+n+`/virtualNetworks/v/subnets/GatewaySubnet", "name": "GatewaySubnet", "properties": {"addressPrefix": "10.1.255.0/27"}},
      {"id": "`+n+`/virtualNetworks/v/subnets/app", "name": "app", "properties": {"addressPrefix": "10.1.2.0/24",
        "serviceAssociationLinks": [{"id": "`+n+`/virtualNetworks/v/subnets/app/serviceAssociationLinks/AppServiceLink"}]}}
    ],
    "virtualNetworkPeerings": [
      {"id": "`+n+`/virtualNetworks/v/virtualNetworkPeerings/p1", "properties": {"useRemoteGateways": false}},
      {"id": "`+n+`/virtualNetworks/v/virtualNetworkPeerings/p2", "properties": {"useRemoteGateways": true}}
    ]
  }
}`)
	rt := decode[armnetwork.RouteTable](t, `{"id": "`+n+`/routeTables/rt", "properties": {"disableBgpRoutePropagation": true, "routes": [
  {"id": "`+n+`/routeTables/rt/routes/d", "name": "d", "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.0.4"}}]}}`)
	sg := decode[armnetwork.SecurityGroup](t, `{"id": "`+n+`/networkSecurityGroups/nsg", "properties": {"securityRules": [
  {"id": "`+n+`/networkSecurityGroups/nsg/securityRules/late", "name": "late", "properties": {"priority": 4000, "direction": "Outbound", "access": "Deny", "protocol": "*",
    "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet", "destinationPortRange": "*"}},
  {"id": "`+n+`/networkSecurityGroups/nsg/securityRules/early", "name": "early", "properties": {"priority": 100, "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
    "sourceAddressPrefixes": ["10.1.1.0/24"], "destinationAddressPrefix": "Internet", "destinationPortRanges": ["80", "443"],
    "sourceApplicationSecurityGroups": [{"id": "`+n+`/applicationSecurityGroups/web"}]}}
]}}`)
	net, err := FromARM([]*armnetwork.VirtualNetwork{vnet}, []*armnetwork.RouteTable{rt}, []*armnetwork.SecurityGroup{sg})
	if err != nil {
		t.Fatal(err)
	}
	if len(net.Subnets) != 3 {
		t.Fatalf("%d subnets", len(net.Subnets))
	}
	a, app, gw := net.Subnets[0], net.Subnets[1], net.Subnets[2] // sorted by ID, case-insensitively
	if a.Name != "a" || gw.Name != "GatewaySubnet" || app.Name != "app" {
		t.Fatalf("order: %s %s %s", gw.Name, a.Name, app.Name)
	}
	if got := prefixStrings(a.Prefixes); !slices.Equal(got, []string{"10.1.1.0/24", "fd00:1:1::/64"}) {
		t.Errorf("prefixes %q", got)
	}
	if a.RouteTable == nil || a.RouteTable.PropagateGatewayRoutes || len(a.RouteTable.Routes) != 1 || a.RouteTable.Routes[0].NextHopIP != "10.0.0.4" {
		t.Errorf("route table %+v", a.RouteTable)
	}
	if a.NSG == nil || a.NSG.Rules[0].Name != "early" || !a.NSG.Rules[0].SourceASGs || !slices.Equal(a.NSG.Rules[0].DestPorts, []string{"80", "443"}) ||
		!slices.Equal(a.NSG.Rules[1].Sources, []string{"*"}) {
		t.Errorf("NSG rules %+v", a.NSG)
	}
	wantNICs := []string{n + "/networkInterfaces/vm1-nic", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0/networkInterfaces/nic"}
	if !slices.Equal(a.NICs, wantNICs) {
		t.Errorf("NICs %q, want %q (no private endpoint, no load balancer)", a.NICs, wantNICs)
	}
	if !slices.Equal(a.ServiceEndpoints, []string{"Microsoft.Storage"}) {
		t.Errorf("service endpoints %q", a.ServiceEndpoints)
	}
	if !app.HasWorkloads() || gw.HasWorkloads() {
		t.Errorf("workloads: app %v, GatewaySubnet %v", app.HasWorkloads(), gw.HasWorkloads())
	}
	// An empty GatewaySubnet has no gateway; the peering to a remote
	// gateway counts.
	if !slices.Equal(a.VNet.Gateways, []string{n + "/virtualNetworks/v/virtualNetworkPeerings/p2"}) {
		t.Errorf("gateways %q", a.VNet.Gateways)
	}

	// A route table a subnet uses but that was not read is an error.
	if _, err := FromARM([]*armnetwork.VirtualNetwork{vnet}, nil, []*armnetwork.SecurityGroup{sg}); err == nil || !strings.Contains(err.Error(), "route table") {
		t.Errorf("missing route table: %v", err)
	}
	if _, err := FromARM([]*armnetwork.VirtualNetwork{vnet}, []*armnetwork.RouteTable{rt}, nil); err == nil || !strings.Contains(err.Error(), "network security group") {
		t.Errorf("missing NSG: %v", err)
	}
}
