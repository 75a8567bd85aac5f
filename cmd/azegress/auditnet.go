package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/azegress/azegress/internal/netaudit"
)

// auditNetwork is "azegress audit-network": does the Azure network force
// the covered subnets' traffic through the proxy (package netaudit)?
func auditNetwork(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit-network", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "the `policy` whose client blocks' sources name the subnets to check (a file, or REV:PATH from git); required")
	sub := fs.String("subscription", "", "the subscription `ID` to read; required")
	rg := fs.String("resource-group", "", "read only this resource `group`'s networks (and the route tables and NSGs their subnets use elsewhere)")
	proxyIPs := fs.String("proxy-ip", "", "the proxy's `addresses`, comma-separated: where default routes must point (its internal load balancer's frontend, or an instance); required")
	format := fs.String("format", "text", "output: text, markdown or json")
	cloudName := fs.String("cloud", "", "the cloud: AzureCloud, AzureUSGovernment or AzureChinaCloud (default: the policy's)")
	cloudFile := fs.String("cloud-config", "", "a JSON `file` describing another cloud (sovereign, private, Azure Stack Hub): its Entra ID authority and Resource Manager endpoint and audience")
	caFile := fs.String("ca-file", "", "also trust the CA certificates in this PEM `file` for Resource Manager and Entra ID")
	effective := fs.Bool("effective-routes", false, "also read the effective routes of one network interface per checked subnet, to see routes gateways inject (slow; needs the VM running)")
	effTimeout := fs.Duration("effective-routes-timeout", 2*time.Minute, "how long to wait for one interface's effective routes")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress audit-network -policy FILE -subscription ID [-resource-group RG] -proxy-ip IP[,IP] [-format text|markdown|json] [flags]\n\n"+
			"Reads the virtual networks, subnets, route tables and NSGs of a subscription or resource group from\n"+
			"Azure Resource Manager and checks that every subnet a client block covers sends its internet traffic\n"+
			"through the proxy: a 0.0.0.0/0 route to it, no route around it, gateway routes off, an NSG that denies\n"+
			"Internet; and lists subnets with workloads no client block covers. Signs in with the Azure SDK's default\n"+
			"credential chain (AZURE_* environment, workload or managed identity, az login).\n"+
			"Exit 0 if nothing is found, 1 on findings, 2 on an error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *policyPath == "" || *sub == "" || *proxyIPs == "" {
		fs.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "azegress audit-network: %v\n", err)
		return 2
	}
	if err := checkFormat(*format, "text", "markdown", "json"); err != nil {
		return fail(err)
	}
	proxies, err := parseProxyIPs(*proxyIPs)
	if err != nil {
		return fail(err)
	}
	if strings.ContainsAny(*sub+*rg, "/?#") {
		return fail(fmt.Errorf("-subscription %q, -resource-group %q: give the ID and the name, not resource paths", *sub, *rg))
	}
	if *cloudName != "" && *cloudFile != "" {
		return fail(fmt.Errorf("-cloud and -cloud-config exclude each other"))
	}
	pol := loadPolicyArg(*policyPath, "audit-network", stderr)
	if pol == nil {
		return 2
	}
	var c netaudit.Cloud
	if *cloudFile != "" {
		c, err = netaudit.LoadCloud(*cloudFile)
	} else {
		c, err = netaudit.CloudByName(cmp.Or(*cloudName, pol.Cloud()))
	}
	if err != nil {
		return fail(err)
	}
	opts, err := netaudit.ClientOptions(c, *caFile)
	if err != nil {
		return fail(fmt.Errorf("-ca-file: %w", err))
	}
	cred, err := netaudit.Credential(c, opts)
	if err != nil {
		return fail(err)
	}
	reader, err := netaudit.NewReader(*sub, cred, opts)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	n, err := reader.Network(ctx, *rg)
	if err != nil {
		return fail(err)
	}
	cfg := netaudit.Config{
		Policy:     pol,
		PolicyName: *policyPath,
		ProxyIPs:   proxies,
		Scope:      netaudit.Scope{Subscription: *sub, ResourceGroup: *rg},
	}
	if *effective {
		reader.ReadEffective(ctx, netaudit.Covered(n, cfg), *effTimeout)
	}
	rep := netaudit.Audit(n, cfg)
	if !writeFormat(stdout, stderr, "audit-network", *format, map[string]func() ([]byte, error){
		"text":     func() ([]byte, error) { return rep.Text(), nil },
		"markdown": func() ([]byte, error) { return rep.Markdown(), nil },
		"json":     rep.JSON,
	}) {
		return 2
	}
	if len(rep.Findings) > 0 {
		return 1
	}
	return 0
}

// parseProxyIPs parses -proxy-ip's comma-separated addresses.
func parseProxyIPs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("-proxy-ip %q: %q is not an IP address", s, f)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
