// Package netaudit answers "azegress audit-network": does the Azure
// network force the traffic of every subnet a policy's client blocks
// cover through the proxy, or can some of it leave another way?
//
// Reader reads the virtual networks, subnets, route tables and network
// security groups of a subscription or resource group from Azure Resource
// Manager with the Azure SDK for Go (armnetwork), and, on request, the
// effective routes of one network interface per subnet (a long-running
// operation, bounded by a timeout). FromARM turns what was read into a
// small Network model; Audit runs the checks over it, as pure functions,
// against the policy's client blocks and the proxy's addresses.
//
// For every subnet some client block's sources cover, Audit checks:
//
//   - a route table whose 0.0.0.0/0 route (::/0 for an IPv6 range) goes to
//     VirtualAppliance at a proxy address (-proxy-ip: an instance, or the
//     internal load balancer's frontend);
//   - no more specific route sends public addresses, or a service tag, to
//     Internet, a gateway or another appliance: by longest prefix match it
//     wins over the default route;
//   - no service endpoints: they add system routes for the service's
//     public addresses that bypass the default route;
//   - gateway route propagation off where a gateway could inject routes
//     (a GatewaySubnet or RouteServerSubnet in use, or a peering that uses
//     the remote gateway): a BGP route more specific than 0.0.0.0/0 wins;
//   - an NSG that denies outbound Internet on every protocol and port
//     before Azure's default AllowInternetOutBound, with no allow rule
//     ahead of that deny for anything but TCP 80 and 443 (what the next
//     hop's ruleset hands to azegress);
//   - with effective routes, no active route a gateway or the platform
//     added that sends public addresses elsewhere.
//
// It also reports subnets with workloads (network interfaces other than
// private endpoints, delegated services) that no client block covers,
// subnets only partly covered, and a scope where no subnet is covered at
// all. The proxy's own subnet must not route to the proxy (a loop). Each
// finding names the ARM resource to change, what to do, and where it can,
// the Azure CLI commands that do it.
//
// # JSON
//
// Report.JSON is stable: fields are added, never renamed or removed.
//
//	{
//	  "scope": {"subscription": "…", "resource_group": "rg-net"},  // resource_group omitted for a subscription
//	  "policy": "policy.hcl",
//	  "proxy_ips": ["10.0.0.4"],
//	  "subnets": [{
//	    "id": "/subscriptions/…/subnets/web",
//	    "prefixes": ["10.1.1.0/24"],
//	    "clients": ["web"],           // client blocks whose sources overlap it
//	    "status": "checked",          // checked | uncovered | no-workloads | proxy | infrastructure
//	    "findings": 0
//	  }],
//	  "findings": [{
//	    "check": "default-route",     // the Check* constants
//	    "resource": "/subscriptions/…/routeTables/rt-api/routes/default",
//	    "subnets": ["/subscriptions/…/subnets/api"],
//	    "clients": ["api"],
//	    "problem": "Route default sends 0.0.0.0/0 to Internet, …",
//	    "fix": "Point the route at the proxy.",
//	    "command": "az network route-table route update …"  // one a line; omitted when the fix is in the policy
//	  }],
//	  "notes": ["…"]                  // what was not checked, and why
//	}
package netaudit
