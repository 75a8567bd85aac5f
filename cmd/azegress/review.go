package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/review"
)

// The review commands: diff, replay and access (package review).

func diffCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "output: text, markdown (a pull-request comment) or json")
	at := atFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress diff [-format text|markdown|json] [-at TIME] OLD NEW\n\n"+
			"Compares what two policies let through, decision by decision: per client block, the\n"+
			"destinations granted and revoked (widenings and narrowings), sources, identities, mode.\n"+
			"OLD or NEW may be REV:PATH, read with git show (REV:./file for a path in this directory).\n"+
			"Exit 0 if access does not change, 1 if it does, 2 on an error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	if err := checkFormat(*format, "text", "markdown", "json"); err != nil {
		fmt.Fprintf(stderr, "azegress diff: %v\n", err)
		return 2
	}
	when, err := at.time()
	if err != nil {
		fmt.Fprintf(stderr, "azegress diff: %v\n", err)
		return 2
	}
	var pols [2]*policy.Policy
	for i := range pols {
		if pols[i] = loadPolicyArg(fs.Arg(i), "diff", stderr); pols[i] == nil {
			return 2
		}
	}
	d := review.Diff(pols[0], pols[1], when)
	if !writeFormat(stdout, stderr, "diff", *format, map[string]func() ([]byte, error){
		"text":     func() ([]byte, error) { return d.Text(), nil },
		"markdown": func() ([]byte, error) { return d.Markdown(), nil },
		"json":     d.JSON,
	}) {
		return 2
	}
	if d.Changed {
		return 1
	}
	return 0
}

func replayCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "the `policy` to replay against (a file, or REV:PATH from git); required")
	format := fs.String("format", "text", "output: text, markdown or json")
	at := atFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress replay -policy NEW [-format text|markdown|json] [-at TIME] FILE...\n\n"+
			"Decides every (client block, host, port) recorded in observation files (serve -observations)\n"+
			"and JSON logs (serve's stderr; - reads standard input) under NEW: what it would break\n"+
			"(recorded traffic that passed, now denied) and what it allows that was never used.\n"+
			"Corrupt lines are counted and skipped. Exit 0 if nothing breaks, 1 if something would, 2 on an error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *policyPath == "" || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if err := checkFormat(*format, "text", "markdown", "json"); err != nil {
		fmt.Fprintf(stderr, "azegress replay: %v\n", err)
		return 2
	}
	when, err := at.time()
	if err != nil {
		fmt.Fprintf(stderr, "azegress replay: %v\n", err)
		return 2
	}
	pol := loadPolicyArg(*policyPath, "replay", stderr)
	if pol == nil {
		return 2
	}
	rp := review.NewReplay(pol, when)
	for _, name := range fs.Args() {
		if err := replayFile(rp, name); err != nil {
			fmt.Fprintf(stderr, "azegress replay: %v\n", err)
			return 2
		}
	}
	rep := rp.Report()
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "azegress replay: %s\n", w)
	}
	if !writeFormat(stdout, stderr, "replay", *format, map[string]func() ([]byte, error){
		"text":     func() ([]byte, error) { return rep.Text(), nil },
		"markdown": func() ([]byte, error) { return rep.Markdown(), nil },
		"json":     rep.JSON,
	}) {
		return 2
	}
	if rep.Breaks > 0 {
		return 1
	}
	return 0
}

func accessCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("access", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy `file` (or REV:PATH from git; default: the embedded policies/default.hcl)")
	name := fs.String("client", "", "the client block `NAME`")
	id := fs.String("identity", "", "a managed identity's object ID or client ID (`GUID`): the block its token selects")
	source := fs.String("source", "", "a client address (`IP`): the block it is in; with -identity, where the token comes from")
	format := fs.String("format", "text", "output: text, markdown, csv or json")
	at := atFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress access [-policy FILE] (-client NAME | -identity GUID | -source IP) [-format text|markdown|csv|json] [-at TIME]\n\n"+
			"Lists every destination a client block can reach, for an access review: the rule and where it is,\n"+
			"the catalog group, label and documentation source, the expiry, and what the policy does now.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	byName, byID, bySource := *name != "", *id != "", *source != ""
	if fs.NArg() != 0 || byName == (byID || bySource) {
		fs.Usage()
		return 2
	}
	if err := checkFormat(*format, "text", "markdown", "csv", "json"); err != nil {
		fmt.Fprintf(stderr, "azegress access: %v\n", err)
		return 2
	}
	when, err := at.time()
	if err != nil {
		fmt.Fprintf(stderr, "azegress access: %v\n", err)
		return 2
	}
	var pol *policy.Policy
	if *policyPath == "" {
		var diags hcl.Diagnostics
		if pol, diags = loader("")(); diags.HasErrors() {
			fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
			return 2
		}
	} else if pol = loadPolicyArg(*policyPath, "access", stderr); pol == nil {
		return 2
	}
	var src netip.Addr
	if *source != "" {
		if src, err = netip.ParseAddr(*source); err != nil {
			fmt.Fprintf(stderr, "azegress access: -source %q is not an IP address\n", *source)
			return 2
		}
	}
	var c *policy.Client
	var by string
	switch {
	case *name != "":
		c, err = review.ClientByName(pol, *name)
		by = "client " + strconv.Quote(*name)
	case *id != "":
		c, err = review.ClientByIdentity(pol, *id, src)
		by = "identity " + *id
		if src.IsValid() {
			by += " from " + src.String()
		}
	default:
		c, err = review.ClientBySource(pol, src)
		by = "source " + src.String()
	}
	if err != nil {
		fmt.Fprintf(stderr, "azegress access: %v\n", err)
		return 2
	}
	a := review.Access(pol, c, by, when)
	if !writeFormat(stdout, stderr, "access", *format, map[string]func() ([]byte, error){
		"text":     func() ([]byte, error) { return a.Text(), nil },
		"markdown": func() ([]byte, error) { return a.Markdown(), nil },
		"csv":      a.CSV,
		"json":     a.JSON,
	}) {
		return 2
	}
	return 0
}

// checkFormat checks a -format value against the names a command
// renders ("md" is "markdown"), before any work is done.
func checkFormat(format string, names ...string) error {
	if format == "md" || slices.Contains(names, format) {
		return nil
	}
	return fmt.Errorf("-format %q: use %s", format, strings.Join(names, ", "))
}

// writeFormat writes the rendering of format, which checkFormat has
// checked, to stdout; on failure it says so on stderr and returns false.
func writeFormat(stdout, stderr io.Writer, cmd, format string, renderers map[string]func() ([]byte, error)) bool {
	if format == "md" {
		format = "markdown"
	}
	out, err := renderers[format]()
	if err == nil {
		_, err = stdout.Write(out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "azegress %s: %v\n", cmd, err)
		return false
	}
	return true
}

// replayFile feeds one file (- for standard input) to rp.
func replayFile(rp *review.Replay, name string) error {
	if name == "-" {
		return rp.Read("stdin", os.Stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return rp.Read(name, f)
}

// loadPolicyArg loads a policy named on the command line: a file, or
// REV:PATH read with git show. It prints the diagnostics and returns nil
// if the policy does not load.
func loadPolicyArg(arg, cmd string, stderr io.Writer) *policy.Policy {
	var p *policy.Policy
	var diags hcl.Diagnostics
	if _, err := os.Stat(arg); err != nil && isRevPath(arg) {
		src, err := gitShow(arg)
		if err != nil {
			fmt.Fprintf(stderr, "azegress %s: %v\n", cmd, err)
			return nil
		}
		p, diags = policy.Load(arg, src)
	} else {
		p, diags = policy.LoadFile(arg)
	}
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return nil
	}
	return p
}

// isRevPath reports whether arg looks like git's REV:PATH.
func isRevPath(arg string) bool {
	rev, path, ok := strings.Cut(arg, ":")
	return ok && rev != "" && path != ""
}

// gitShow returns the content of REV:PATH from git.
func gitShow(revPath string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("git", "show", revPath)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			msg = "git is not installed: " + ee.Err.Error()
		}
		return nil, fmt.Errorf("git show %s: %s", revPath, msg)
	}
	return out.Bytes(), nil
}

// timeFlag is the -at flag of the review commands.
type timeFlag struct{ s *string }

func atFlag(fs *flag.FlagSet) timeFlag {
	return timeFlag{fs.String("at", "", "decide at this `time`, an RFC 3339 time or a date (its start, UTC); default now")}
}

func (f timeFlag) time() (time.Time, error) {
	if *f.s == "" {
		return time.Now(), nil
	}
	if t, err := time.Parse(time.DateOnly, *f.s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, *f.s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-at %q: write an RFC 3339 time like 2026-12-31T18:00:00Z or a date like 2026-12-31", *f.s)
	}
	return t, nil
}
