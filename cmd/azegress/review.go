package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	var out []byte
	switch *format {
	case "text":
		out = d.Text()
	case "markdown", "md":
		out = d.Markdown()
	case "json":
		if out, err = d.JSON(); err != nil {
			fmt.Fprintf(stderr, "azegress diff: %v\n", err)
			return 2
		}
	default:
		fmt.Fprintf(stderr, "azegress diff: -format %q: use text, markdown or json\n", *format)
		return 2
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "azegress diff: %v\n", err)
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
	when, err := at.time()
	if err != nil {
		fmt.Fprintf(stderr, "azegress replay: %v\n", err)
		return 2
	}
	pol := loadPolicyArg(*policyPath, "replay", stderr)
	if pol == nil {
		return 2
	}
	render := map[string]func(*review.ReplayReport) ([]byte, error){
		"text":     func(r *review.ReplayReport) ([]byte, error) { return r.Text(), nil },
		"markdown": func(r *review.ReplayReport) ([]byte, error) { return r.Markdown(), nil },
		"json":     (*review.ReplayReport).JSON,
	}
	render["md"] = render["markdown"]
	out := render[*format]
	if out == nil {
		fmt.Fprintf(stderr, "azegress replay: -format %q: use text, markdown or json\n", *format)
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
	b, err := out(rep)
	if err == nil {
		_, err = stdout.Write(b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "azegress replay: %v\n", err)
		return 2
	}
	if rep.Breaks > 0 {
		return 1
	}
	return 0
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
