package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const diffCases = "../../policy/review/testdata/diff/"

// cliCase is one run of a command: its arguments, exit code, and what
// stdout and stderr must contain.
type cliCase struct {
	name      string
	args      []string
	code      int
	out, errs string
}

// runCases runs each case of command cmd as a subtest.
func runCases(t *testing.T, cmd string, cases []cliCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runCLI(append([]string{cmd}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errs) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
		})
	}
}

func TestDiffCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"x\" {\n    hosts = [\"a.*.com\"]\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, "diff", []cliCase{
		{"no change", []string{"-at", "2026-06-01", diffCases + "reformat/old.hcl", diffCases + "reformat/new.hcl"}, 0,
			"decided at 2026-06-01T00:00:00Z: no change in access.", ""},
		{"widening", []string{"-at", "2026-06-01", diffCases + "narrowing/old.hcl", diffCases + "narrowing/new.hcl"}, 1,
			"widening  client \"app\": *.blob.core.windows.net:443", ""},
		{"markdown", []string{"-format", "markdown", "-at", "2026-06-01", diffCases + "narrowing/old.hcl", diffCases + "narrowing/new.hcl"}, 1,
			"### Widenings: review these", ""},
		{"invalid policy", []string{diffCases + "reformat/old.hcl", bad}, 2, "", bad + ":4:14: Invalid host pattern"},
		{"missing file", []string{diffCases + "reformat/old.hcl", filepath.Join(dir, "nope.hcl")}, 2, "", "nope.hcl: no such file"},
		{"bad format", []string{"-format", "yaml", diffCases + "reformat/old.hcl", diffCases + "reformat/new.hcl"}, 2, "", `-format "yaml"`},
		{"bad time", []string{"-at", "tomorrow", diffCases + "reformat/old.hcl", diffCases + "reformat/new.hcl"}, 2, "", `-at "tomorrow"`},
		{"one file", []string{diffCases + "reformat/old.hcl"}, 2, "", "usage: azegress diff"},
	})
	out, errs, code := runCLI("diff", "-format", "json", diffCases+"narrowing/old.hcl", diffCases+"narrowing/new.hcl")
	var d struct {
		Changed bool `json:"changed"`
		Clients []struct {
			Destinations []struct {
				Change string `json:"change"`
			} `json:"destinations"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 1 || !d.Changed || len(d.Clients) != 1 || len(d.Clients[0].Destinations) == 0 {
		t.Errorf("json: exit %d, %v, %+v\n%s%s", code, err, d, out, errs)
	}
}

// TestDiffGitRevision reads OLD from git as REV:PATH.
func TestDiffGitRevision(t *testing.T) {
	t.Parallel()
	if err := exec.Command("git", "rev-parse", "--verify", "HEAD:./testdata/policy.hcl").Run(); err != nil {
		t.Skipf("no git checkout with testdata/policy.hcl at HEAD: %v", err)
	}
	out, errs, code := runCLI("diff", "HEAD:./testdata/policy.hcl", "testdata/policy.hcl")
	if code != 0 || !strings.Contains(out, "azegress diff HEAD:./testdata/policy.hcl → testdata/policy.hcl") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	_, errs, code = runCLI("diff", "no-such-revision:./testdata/policy.hcl", "testdata/policy.hcl")
	if code != 2 || !strings.Contains(errs, "git show no-such-revision:./testdata/policy.hcl") {
		t.Errorf("bad revision: exit %d\n%s", code, errs)
	}
}

const replayData = "../../policy/review/testdata/replay/"

func TestReplayCommand(t *testing.T) {
	t.Parallel()
	runCases(t, "replay", []cliCase{
		{"breaks", []string{"-policy", diffCases + "narrowing/new.hcl", "-at", "2026-06-01", replayData + "proxy.log", replayData + "observations.jsonl"}, 1,
			"The policy would break 2 recorded destinations (13 connections that passed)", "proxy.log:11: skipped: not a JSON object"},
		{"nothing breaks", []string{"-policy", diffCases + "narrowing/old.hcl", "-at", "2026-06-01", replayData + "proxy.log"}, 0,
			"The policy breaks no recorded traffic.", ""},
		{"json", []string{"-format", "json", "-policy", diffCases + "narrowing/new.hcl", replayData + "proxy.log"}, 1, `"breaks": 1,`, ""},
		{"missing log", []string{"-policy", diffCases + "narrowing/new.hcl", replayData + "nope.log"}, 2, "", "nope.log: no such file"},
		{"invalid policy", []string{"-policy", replayData + "proxy.log", replayData + "proxy.log"}, 2, "", "proxy.log:1:1: Argument or block definition required"},
		{"no policy", []string{replayData + "proxy.log"}, 2, "", "usage: azegress replay"},
	})
}

func TestAccessCommand(t *testing.T) {
	t.Parallel()
	const pol = "../../policy/review/testdata/access/policy.hcl"
	runCases(t, "access", []cliCase{
		{"by name", []string{"-policy", pol, "-client", "app", "-at", "2026-06-01"}, 0,
			`azegress access: client block "app"`, ""},
		{"by source", []string{"-policy", pol, "-source", "10.0.1.9", "-format", "csv"}, 0,
			"app,allow,management.azure.com,443,,arm,", ""},
		{"by identity", []string{"-policy", pol, "-identity", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "-format", "json"}, 0,
			`"client_block": "kv-reader"`, ""},
		{"by identity and source", []string{"-policy", pol, "-identity", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "-source", "10.0.1.9"}, 2,
			"", "does not accept it from 10.0.1.9"},
		{"markdown", []string{"-policy", pol, "-client", "app", "-format", "md"}, 0, "| kind | destination |", ""},
		{"embedded default", []string{"-source", "127.0.0.1"}, 0, "embedded:policies/default.hcl", ""},
		{"unknown block", []string{"-policy", pol, "-client", "nope"}, 2, "", `no client block "nope"`},
		{"bad source", []string{"-policy", pol, "-source", "10.0.1"}, 2, "", `-source "10.0.1" is not an IP address`},
		{"two selectors", []string{"-policy", pol, "-client", "app", "-source", "10.0.1.9"}, 2, "", "usage: azegress access"},
		{"no selector", []string{"-policy", pol}, 2, "", "usage: azegress access"},
		{"bad format", []string{"-policy", pol, "-client", "app", "-format", "xml"}, 2, "", `-format "xml": use text, markdown, csv, json`},
		{"invalid policy", []string{"-policy", replayData + "proxy.log", "-client", "app"}, 2, "", "proxy.log:1:1:"},
	})
}
