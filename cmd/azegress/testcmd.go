package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy"
)

// testPolicy runs a cases file against a policy, offline: the same decision
// code the proxy runs, without DNS (the destination guard needs real
// answers, which a pipeline does not have).
func testPolicy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "print passing cases too")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress test [-v] POLICY.hcl CASES.hcl\n\n"+
			"Checks each case (client, target, expected decision and rule or reason) against the policy.\n"+
			"Exit 0 if all pass, 1 if any fails, 2 if a file has errors.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	pol, diags := policy.LoadFile(fs.Arg(0))
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 2
	}
	cases, diags := policy.LoadCasesFile(fs.Arg(1))
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 2
	}
	passed, failed := 0, 0
	for _, c := range cases {
		where := fmt.Sprintf("%s:%d:%d", c.Range.Filename, c.Range.Start.Line, c.Range.Start.Column)
		e, err := proxy.Explain(context.Background(), pol, c.Client, c.Target, nil)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %s (%s): invalid target %q: %v\n", c.Name, where, c.Target, err)
			continue
		}
		got := string(e.Decision)
		if e.Rule != nil {
			got += fmt.Sprintf(" by rule %q (%s:%d:%d)", e.Rule.Name, e.Rule.Range.Filename, e.Rule.Range.Start.Line, e.Rule.Range.Start.Column)
		} else {
			got += ": " + e.Reason
		}
		var problem string
		switch {
		case e.Decision != c.Expect:
			problem = fmt.Sprintf("expected %s, got %s", c.Expect, got)
		case c.Rule != "" && (e.Rule == nil || e.Rule.Name != c.Rule):
			problem = fmt.Sprintf("expected allow by rule %q, got %s", c.Rule, got)
		case c.Reason != "" && e.Reason != c.Reason:
			problem = fmt.Sprintf("expected reason %s, got %s", c.Reason, got)
		}
		block := "no client block"
		if e.Block != nil {
			block = fmt.Sprintf("client block %q", e.Block.Name)
		}
		if problem != "" {
			failed++
			fmt.Fprintf(stdout, "FAIL %s (%s): %s from %s (%s): %s\n", c.Name, where, c.Target, c.Client, block, problem)
			continue
		}
		passed++
		if *verbose {
			fmt.Fprintf(stdout, "ok   %s: %s from %s: %s\n", c.Name, c.Target, c.Client, got)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
