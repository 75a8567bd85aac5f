package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
)

func report(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	basePath := fs.String("policy", "", "baseline policy `file` to compare the observations with")
	format := fs.String("format", "hcl", "output: hcl (the minimal policy), markdown (a review document) or json")
	cloud := fs.String("cloud", "", "cloud for the generated policy (default: the baseline's, else the observations', else AzureCloud)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress report [-policy BASELINE.hcl] [-format hcl|markdown|json] OBSERVATIONS...\n\n"+
			"Merges observation files (from serve -observations, one or many instances) and prints\n"+
			"the minimal policy for what was seen, or a review document, or JSON.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	obs, err := learn.ReadObservations(fs.Args()...)
	if err != nil {
		fmt.Fprintf(stderr, "azegress report: %v\n", err)
		return 1
	}
	var base *policy.Policy
	if *basePath != "" {
		var diags hcl.Diagnostics
		base, diags = policy.LoadFile(*basePath)
		if diags.HasErrors() {
			fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
			return 1
		}
	}
	if *cloud == "" {
		if base != nil {
			*cloud = base.Cloud()
		} else {
			for _, o := range obs {
				if o.Cloud != "" {
					*cloud = o.Cloud
					break
				}
			}
		}
	}
	r := learn.NewReport(obs, base)
	switch *format {
	case "hcl":
		_, err = stdout.Write(r.HCL(*cloud))
	case "markdown", "md":
		_, err = stdout.Write(r.Markdown())
	case "json":
		var b []byte
		if b, err = r.JSON(); err == nil {
			_, err = stdout.Write(b)
		}
	default:
		fmt.Fprintf(stderr, "azegress report: -format %q: use hcl, markdown or json\n", *format)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "azegress report: %v\n", err)
		return 1
	}
	return 0
}
