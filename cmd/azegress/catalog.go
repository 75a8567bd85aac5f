package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/azegress/azegress/policy/catalog"
)

// catalogCommand prints the Azure endpoint catalog of one cloud.
func catalogCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cloud := fs.String("cloud", "AzureCloud", "Azure cloud: "+strings.Join(catalog.Clouds(), ", "))
	format := fs.String("format", "table", "output format: table or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress catalog [-cloud NAME] [-format table|json]\n\nPrints the Azure endpoint catalog: the groups rules name in endpoints = [...], their hosts, ports and labels.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azegress catalog: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	groups := catalog.Groups(*cloud)
	if groups == nil {
		fmt.Fprintf(stderr, "azegress catalog: -cloud: %q is not a known Azure cloud; use one of %s\n", *cloud, strings.Join(catalog.Clouds(), ", "))
		return 2
	}
	switch *format {
	case "table":
		writeCatalogTable(stdout, *cloud, groups)
	case "json":
		b, err := json.MarshalIndent(struct {
			Cloud  string          `json:"cloud"`
			Groups []catalog.Group `json:"groups"`
		}{*cloud, groups}, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "azegress catalog: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
	default:
		fmt.Fprintf(stderr, "azegress catalog: -format: %q is not a format; use table or json\n", *format)
		return 2
	}
	return 0
}

// writeCatalogTable prints one row per endpoint, and one per included group.
func writeCatalogTable(w io.Writer, cloud string, groups []catalog.Group) {
	fmt.Fprintf(w, "Azure endpoint catalog, %s. Allow rules name groups: endpoints = [\"azure.arm\"].\n\n", cloud)
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tHOST\tPORTS\tLABEL\tFLAGS")
	for _, g := range groups {
		for _, inc := range g.Includes {
			fmt.Fprintf(tw, "%s\t(includes %s)\t\t\t\n", g.Name, inc)
		}
		for _, e := range g.Endpoints {
			ports := e.Ports
			if ports == nil {
				ports = g.Ports
			}
			var flags []string
			if e.MultiTenant {
				flags = append(flags, "multi-tenant")
			}
			if g.Local {
				flags = append(flags, "local")
			}
			if g.Optional {
				flags = append(flags, "optional")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, e.Host, portsText(ports), e.Label, strings.Join(flags, ","))
		}
	}
	tw.Flush()
	for line := range strings.Lines(b.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprint(w, `
multi-tenant: the pattern covers every Azure tenant's resources; allow your own by name
              (keyvaults, storage_accounts, registries or hosts), never the whole group.
local:        on the machine itself and never through a proxy: add it to NO_PROXY.
optional:     the workload works without it.
`)
}

func portsText(ports []uint16) string {
	if len(ports) == 0 {
		return "any"
	}
	s := make([]string, len(ports))
	for i, p := range slices.Sorted(slices.Values(ports)) {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
