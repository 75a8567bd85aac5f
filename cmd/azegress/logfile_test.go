package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/internal/asim/asimtest"
	"github.com/azegress/azegress/proxy"
)

// fileLog reads the records serve appends to a -log-file.
type fileLog struct {
	t    *testing.T
	path string
}

// records returns every record in the file.
func (l fileLog) records() []map[string]any {
	l.t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil && !os.IsNotExist(err) {
		l.t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			l.t.Fatalf("%s: a line is not JSON: %q", l.path, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// wait returns the first record for which match is true, polling the file
// until it appears (for up to 10s).
func (l fileLog) wait(what string, match func(map[string]any) bool) map[string]any {
	l.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		for _, r := range l.records() {
			if match(r) {
				return r
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			l.t.Fatalf("%s: no %s within 10s; have %v", l.path, what, l.records())
		}
	}
}

// serve -log-format asim -log-file writes Sentinel's records to the file,
// nothing to stderr, and opens the file again on SIGHUP after logrotate
// moved it.
func TestServeASIMLogFile(t *testing.T) {
	t.Parallel()
	port := startOrigin(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.hcl")
	src := fmt.Sprintf("client \"local\" {\n  sources = [\"127.0.0.0/8\"]\n  allow \"origin\" {\n    hosts     = [\"localhost\"]\n    addresses = [\"127.0.0.0/8\"]\n    ports     = [%d]\n  }\n}\n", port)
	if err := os.WriteFile(pol, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "asim.json")
	cmd := exec.Command(binary, "serve", "-listen", "127.0.0.1:0", "-metrics", "", "-policy", pol, "-log-format", "asim", "-log-file", logPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lf := fileLog{t: t, path: logPath}

	// Records that are not decisions keep the JSON form, without EventSchema.
	start := lf.wait("startup record", func(r map[string]any) bool { return r["msg"] == "azegress listening" })
	if start["EventSchema"] != nil {
		t.Errorf("startup record has EventSchema: %v", start)
	}
	proxyURL := &url.URL{Scheme: "http", Host: start["listen"].(string)}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true}}
	get := func(u string, want int) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d", u, resp.StatusCode, want)
		}
	}
	get(fmt.Sprintf("http://localhost:%d/", port), 200)
	get("http://denied.example/", 403)

	fields := asimtest.GoldenFields(t)
	web := func(r map[string]any) bool { return r["EventSchema"] == "WebSession" }
	for _, tt := range []struct {
		name string
		want map[string]any
	}{
		{"allowed request", map[string]any{"EventResult": "Success", "EventResultDetails": "200", "DvcAction": "Allow",
			"DstHostname": "localhost", "DstPortNumber": float64(port), "RuleName": "origin", "SrcIpAddr": "127.0.0.1",
			"Url": fmt.Sprintf("localhost:%d", port), "EventSchemaVersion": "0.2.6", "EventType": "HTTPsession"}},
		{"deny", map[string]any{"EventResult": "Failure", "EventResultDetails": "403", "DvcAction": "Deny",
			"EventOriginalResultDetails": "no_rule", "DstFQDN": "denied.example", "Url": "denied.example:80"}},
	} {
		r := lf.wait(tt.name, func(r map[string]any) bool { return web(r) && r["DvcAction"] == tt.want["DvcAction"] })
		for k, v := range tt.want {
			if r[k] != v {
				t.Errorf("%s: %s = %v, want %v; record %v", tt.name, k, r[k], v, r)
			}
		}
		if add, _ := r["AdditionalFields"].(map[string]any); add["policy_sha256"] == nil || add["client_block"] != "local" {
			t.Errorf("%s: AdditionalFields %v", tt.name, add)
		}
		for k := range r {
			if !fields[k] {
				t.Errorf("%s: field %s is in no golden record (internal/asim/testdata/records.golden)", tt.name, k)
			}
		}
	}

	// logrotate: move the file away, SIGHUP; new records go to a new file.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	lf.wait("reload record in the new file", func(r map[string]any) bool { return r["msg"] == "policy reloaded" })
	get("http://again.example/", 403)
	lf.wait("deny in the new file", func(r map[string]any) bool { return web(r) && r["DstFQDN"] == "again.example" })
	for _, r := range (fileLog{t: t, path: logPath + ".1"}).records() {
		if r["DstFQDN"] == "again.example" {
			t.Errorf("a record after SIGHUP went to the moved file: %v", r)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	lf.wait("stopped record", func(r map[string]any) bool { return r["msg"] == "stopped" })
	if stderr.Len() > 0 {
		t.Errorf("stderr with -log-file: %s", stderr.String())
	}
}

// An unknown -log-format is refused with the values it takes.
func TestServeLogFormatUnknown(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "serve", "-log-format", "cef").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 ||
		!strings.Contains(string(out), `-log-format "cef": want json (the default) or asim`) {
		t.Errorf("serve -log-format cef: %v\n%s", err, out)
	}
}

// serve's JSON handler is its LogWriter's JSONHandler, the one whose
// per-flow records the proxy writes itself, without slog (proxy's
// TestFlowRecordsBypassSlog): the same handler built any other way, say
// lw.Handler(slog.NewJSONHandler(lw, ...)), would log the same bytes at
// three times the CPU.
func TestLogHandlerJSONIsLogWriters(t *testing.T) {
	t.Parallel()
	lw := proxy.NewLogWriter(io.Discard, 0)
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if got, want := logHandler(logFormatJSON, lw, level), lw.JSONHandler(level); !reflect.DeepEqual(got, want) {
			t.Errorf("-log-level %v: serve's JSON handler is %#v, want the LogWriter's JSONHandler %#v", level, got, want)
		}
	}
	if got := logHandler(logFormatASIM, lw, slog.LevelInfo); reflect.DeepEqual(got, lw.JSONHandler(slog.LevelInfo)) {
		t.Errorf("-log-format asim: the JSON handler")
	}
}
