package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/azfw"
)

// importAzfw converts Azure Firewall application rules to an azegress
// policy: the policy on stdout, what could not be carried over on stderr.
func importAzfw(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-azfw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cloud := fs.String("cloud", "AzureCloud", "the `cloud` of the firewall: AzureCloud, AzureUSGovernment or AzureChinaCloud")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress import-azfw [-cloud NAME] FILE.json...\n\n"+
			"Converts Azure Firewall application rules (rule collection groups, ARM templates, REST or az CLI\n"+
			"output, classic azureFirewalls) to an azegress policy on stdout. What cannot be carried over is\n"+
			"listed on stderr with the rule's name. Exit 0 on success (with or without warnings), 1 if a file\n"+
			"cannot be read or holds no rule collections.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var inputs []azfw.Input
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "azegress import-azfw: %v\n", err)
			return 1
		}
		inputs = append(inputs, azfw.Input{Name: name, Data: data})
	}
	imp, err := azfw.Import(*cloud, inputs...)
	if err != nil {
		fmt.Fprintf(stderr, "azegress import-azfw: %v\n", err)
		return 1
	}
	for _, w := range imp.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	// The output must pass "azegress check"; anything else is a bug here.
	if _, diags := policy.Load("imported.hcl", imp.HCL); diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		fmt.Fprintln(stderr, "azegress import-azfw: internal error: the generated policy does not load; please report it with the input")
		return 1
	}
	if _, err := stdout.Write(imp.HCL); err != nil {
		fmt.Fprintf(stderr, "azegress import-azfw: %v\n", err)
		return 1
	}
	return 0
}

// exportAzfw writes a policy as an ARM template holding one Azure Firewall
// rule collection group.
func exportAzfw(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export-azfw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	group := fs.String("group", "azegress", "rule collection group `name`")
	priority := fs.Int("priority", 500, "rule collection group `priority` (100 to 65000)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress export-azfw [-group NAME] [-priority N] POLICY.hcl\n\n"+
			"Writes the policy as an ARM template with one firewall policy rule collection group on stdout:\n"+
			"per client block a Deny collection (its deny rules) before an Allow collection. Deploy it with\n"+
			"  az deployment group create -g RG --template-file FILE --parameters firewallPolicyName=NAME\n"+
			"What Azure Firewall cannot express is listed on stderr. Exit 0 on success, 1 on errors.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	p, diags := policy.LoadFile(fs.Arg(0))
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 1
	}
	out, warnings, err := azfw.Export(p, azfw.ExportOptions{GroupName: *group, Priority: *priority})
	if err != nil {
		fmt.Fprintf(stderr, "azegress export-azfw: %v\n", err)
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "azegress export-azfw: %v\n", err)
		return 1
	}
	return 0
}
