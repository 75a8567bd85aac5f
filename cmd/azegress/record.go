package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
	"github.com/azegress/azegress/proxy"
)

// recordBlock is the client block a recorded command's traffic falls in.
const recordBlock = "workload"

// localNoProxy is what a recorded command must never send to a proxy: IMDS,
// WireServer and loopback (Arc's HIMDS lives there).
const localNoProxy = "169.254.169.254,168.63.129.16,localhost,127.0.0.1,::1"

func record(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cloud := fs.String("cloud", "AzureCloud", "Azure cloud of the recorded workload")
	minimize := fs.Bool("minimize", false, "prove minimality: rerun the command with each destination denied in turn and keep only those it fails without")
	timeout := fs.Duration("timeout", 10*time.Minute, "limit for each run of the command")
	verbose := fs.Bool("v", false, "log the proxy's decisions to stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress record [-cloud NAME] [-minimize] -- COMMAND ARGS...\n\n"+
			"Runs COMMAND through a learning proxy on a loopback port (HTTPS_PROXY and HTTP_PROXY set,\n"+
			"NO_PROXY covering IMDS and loopback) and prints the policy for what it contacted.\n"+
			"The command's output goes to stderr; the exit status is the command's.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmdArgs := fs.Args()
	if len(cmdArgs) == 0 {
		fs.Usage()
		return 2
	}
	learning, diags := policy.Load("azegress-record", []byte(fmt.Sprintf(
		"cloud = %q\nclient %q {\n  sources = [\"127.0.0.0/8\", \"::1/128\"]\n  mode    = \"learn\"\n}\n", *cloud, recordBlock)))
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 2
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	}
	rec := learn.NewRecorder(nil)
	srv, err := proxy.New(proxy.Config{Policy: learning, Logger: logger, Observer: rec})
	if err != nil {
		fmt.Fprintf(stderr, "azegress record: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "azegress record: %v\n", err)
		return 2
	}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	proxyURL := "http://" + ln.Addr().String()
	runOnce := func() int { return runRecorded(cmdArgs, proxyURL, *timeout, stderr) }

	code := runOnce()
	fmt.Fprintf(stderr, "azegress record: %s exited with status %d\n", cmdArgs[0], code)
	obs := rec.Snapshot()
	report := learn.NewReport(obs, nil)
	if !*minimize {
		stdout.Write(report.HCL(*cloud))
		return code
	}
	if code != 0 {
		fmt.Fprintln(stderr, "azegress record: -minimize needs a command that succeeds; it failed while being recorded")
		stdout.Write(report.HCL(*cloud))
		return code
	}

	// Minimize: drop each destination in turn; keep it only if the command
	// fails without it. Then run once with just the kept set.
	kept := ruleWorthy(report)
	var dropped []learn.Observation
	for i := 0; i < len(kept); {
		trial := append(append([]learn.Observation{}, kept[:i]...), kept[i+1:]...)
		if !applyEnforcing(srv, *cloud, trial, stderr) {
			return 2
		}
		c := runOnce()
		what := hostPortOf(kept[i])
		if c == 0 {
			fmt.Fprintf(stderr, "azegress record: without %s the command still succeeds: dropped as unneeded\n", what)
			dropped = append(dropped, kept[i])
			kept = trial
			continue
		}
		fmt.Fprintf(stderr, "azegress record: without %s the command fails (status %d): needed\n", what, c)
		i++
	}
	if !applyEnforcing(srv, *cloud, kept, stderr) {
		return 2
	}
	final := runOnce()
	minimal := learn.NewReport(kept, nil).HCL(*cloud)
	var b strings.Builder
	b.Write(minimal)
	if len(dropped) > 0 {
		b.WriteString("\n# Observed but dropped as unneeded: the command succeeded with each of these denied.\n")
		for _, o := range dropped {
			label := ""
			if o.Label != "" {
				label = " (" + o.Label + ")"
			}
			fmt.Fprintf(&b, "#   %s%s\n", hostPortOf(o), label)
		}
	}
	if final != 0 {
		fmt.Fprintf(stderr, "azegress record: with only the kept destinations the command failed (status %d): it is not deterministic; the policy below is not proven sufficient\n", final)
		stdout.Write([]byte(b.String()))
		return final
	}
	fmt.Fprintf(stderr, "azegress record: verified: the command succeeds with only the %d kept destination(s)\n", len(kept))
	stdout.Write([]byte(b.String()))
	return 0
}

// ruleWorthy returns the observations a learned policy turns into rules.
func ruleWorthy(r *learn.Report) []learn.Observation {
	var out []learn.Observation
	for _, b := range r.Blocks {
		out = append(out, b.Destinations...)
	}
	return out
}

func hostPortOf(o learn.Observation) string {
	return net.JoinHostPort(o.Host, fmt.Sprint(o.Port))
}

// applyEnforcing swaps in an enforce-mode policy allowing exactly obs.
func applyEnforcing(srv *proxy.Server, cloud string, obs []learn.Observation, stderr io.Writer) bool {
	src := learn.NewReport(obs, nil).HCL(cloud)
	if len(obs) == 0 {
		src = append(src, fmt.Sprintf("\nclient %q {\n  sources = [\"127.0.0.0/8\", \"::1/128\"]\n}\n", recordBlock)...)
	}
	p, diags := policy.Load("azegress-record-trial", src)
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "azegress record: internal error: trial policy does not load:\n%s%s", policy.FormatDiagnostics(diags), src)
		return false
	}
	srv.SetPolicy(p)
	return true
}

// runRecorded runs the command with the proxy settings and returns its exit
// status (127 if it could not start, 124 on timeout).
func runRecorded(args []string, proxyURL string, timeout time.Duration, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = recordEnv(os.Environ(), proxyURL)
	cmd.Stdin = os.Stdin
	cmd.Stdout, cmd.Stderr = stderr, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		return 124
	case errors.As(err, &ee):
		if ee.ExitCode() < 0 {
			return 128 + 9
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(stderr, "azegress record: %v\n", err)
		return 127
	}
}

// recordEnv points the proxy variables (both spellings) at the recorder and
// adds IMDS and loopback to NO_PROXY, keeping entries already there.
func recordEnv(env []string, proxyURL string) []string {
	noProxy := ""
	out := make([]string, 0, len(env)+6)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY":
			continue
		case "NO_PROXY":
			if v != "" && noProxy == "" {
				noProxy = v
			}
			continue
		}
		out = append(out, kv)
	}
	if noProxy != "" {
		noProxy += ","
	}
	noProxy += localNoProxy
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		out = append(out, k+"="+proxyURL)
	}
	return append(out, "NO_PROXY="+noProxy, "no_proxy="+noProxy)
}
