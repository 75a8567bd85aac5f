package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/policies"
	"github.com/azegress/azegress/policy"
)

var binary string // the azegress binary under test, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azegress-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "azegress")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building azegress: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running `azegress serve`.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string // proxy listener
	maddr  string // metrics listener
	lines  chan map[string]any
	seen   []map[string]any
	exited chan error
}

// serveBinary starts `azegress serve` on ephemeral ports and waits for its
// startup record, which names the listener.
func serveBinary(t *testing.T, args ...string) *daemon {
	t.Helper()
	ml, err := net.Listen("tcp", "127.0.0.1:0") // reserve a free port for metrics
	if err != nil {
		t.Fatal(err)
	}
	maddr := ml.Addr().String()
	ml.Close()
	cmd := exec.Command(binary, append([]string{"serve", "-listen", "127.0.0.1:0", "-metrics", maddr, "-watch-interval", "50ms"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1"} // must be ignored
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, maddr: maddr, lines: make(chan map[string]any, 1000), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"msg": "NOT JSON: " + sc.Text()}
			}
			d.lines <- m
		}
		close(d.lines)
		d.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	start := d.waitLog("azegress listening")
	d.addr = start["listen"].(string)
	return d
}

// waitLog returns the next record with message msg, failing on exit or after 10s.
func (d *daemon) waitLog(msg string) map[string]any {
	d.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("azegress exited before logging %q; saw %v", msg, d.seen)
			}
			d.seen = append(d.seen, m)
			if strings.HasPrefix(fmt.Sprint(m["msg"]), "NOT JSON") {
				d.t.Errorf("stderr line is not JSON: %v", m["msg"])
			}
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			d.t.Fatalf("no %q record within 10s; saw %v", msg, d.seen)
		}
	}
}

// startOrigin serves "origin" over HTTP on 127.0.0.1 until the test ends,
// and returns its port.
func startOrigin(t *testing.T) int {
	t.Helper()
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go origin.Serve(ln)
	t.Cleanup(func() { origin.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func (d *daemon) client() *http.Client {
	u := &url.URL{Scheme: "http", Host: d.addr}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
}

// The README's first command: the embedded default policy refuses
// example.com with an explanation, and logs one JSON deny record.
func TestServeDefaultPolicy(t *testing.T) {
	t.Parallel()
	d := serveBinary(t)
	def, diags := policy.Load(policies.DefaultName, policies.Default)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	if start := d.seen[len(d.seen)-1]; start["policy"] != "embedded:policies/default.hcl" || start["rules"] != float64(2) ||
		start["policy_sha256"] != def.SHA256() || start["version"] != "devel" {
		t.Errorf("startup record: %v", start)
	}
	resp, err := d.client().Get("http://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"azegress denied GET example.com:80", `client block "local"`, `hosts = ["example.com"]`, "ports = [80]"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	rec := d.waitLog("deny")
	if rec["reason"] != "no_rule" || rec["host"] != "example.com" || rec["level"] != "WARN" || rec["policy"] != "embedded:policies/default.hcl" ||
		rec["policy_sha256"] != def.SHA256() {
		t.Errorf("deny record %v", rec)
	}

	// The same for HTTPS through CONNECT, with curl, as in the README.
	if curl, err := exec.LookPath("curl"); err == nil {
		out, _ := exec.Command(curl, "-sSv", "-x", "http://"+d.addr, "https://example.com/").CombinedOutput()
		if !strings.Contains(string(out), "CONNECT tunnel failed, response 403") ||
			!strings.Contains(string(out), `< Proxy-Status: azegress; error=http_request_denied; details="no_rule"`) {
			t.Errorf("curl: %s", out)
		}
		if rec := d.waitLog("deny"); rec["kind"] != "connect" || rec["port"] != float64(443) {
			t.Errorf("deny record %v", rec)
		}
	}

	// Metrics, health and readiness on their own listener.
	for path, want := range map[string]string{
		"/metrics":        `azegress_decisions_total{client_block="local",decision="deny",kind="http",mode="enforce",reason="no_rule"} 1`,
		"/metrics#policy": `azegress_policy_info{sha256="` + def.SHA256() + `"} 1`,
		"/metrics#build":  `azegress_build_info{goversion="` + runtime.Version() + `",revision="`,
		"/healthz":        "ok", "/readyz": "ready",
	} {
		path, _, _ := strings.Cut(path, "#")
		resp, err := http.Get("http://" + d.maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
}

// A policy file that changes is reloaded; a broken one is rejected and the
// old policy keeps serving; SIGHUP reloads too; SIGTERM drains and exits 0.
func TestServeReloadAndSignals(t *testing.T) {
	t.Parallel()
	port := startOrigin(t)

	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	write := func(hosts string) {
		t.Helper()
		src := fmt.Sprintf(`client "local" {
  sources = ["127.0.0.0/8"]
  allow "origin" {
    hosts     = [%s]
    addresses = ["127.0.0.0/8"]
    ports     = [%d]
  }
}
`, hosts, port)
		// Write then rename, as editors and ConfigMaps do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(`"localhost"`)
	d := serveBinary(t, "-policy", path)
	get := func(host string) int {
		resp, err := d.client().Get(fmt.Sprintf("http://%s:%d/", host, port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("localhost"); got != 200 {
		t.Fatalf("allowed host: %d", got)
	}

	// A broken edit: rejected, logged with file:line:col, old policy serves.
	if err := os.WriteFile(path, []byte("client \"local\" {\n  sources = [\"127.0.0.0/8\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := d.waitLog("policy reload rejected; the previous policy keeps serving")
	if !strings.Contains(fmt.Sprint(rec["error"]), path+":") {
		t.Errorf("rejection does not name file:line:col: %v", rec)
	}
	if got := get("localhost"); got != 200 {
		t.Fatalf("after a bad reload: %d", got)
	}

	write(`"nothing.example.com"`)
	d.waitLog("policy reloaded")
	if got := get("localhost"); got != 403 {
		t.Fatalf("after reload: %d, want 403", got)
	}

	// SIGHUP reloads the file as it is now.
	write(`"localhost"`)
	d.waitLog("policy reloaded") // the watcher may win the race; either way it reloads
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog("policy reloaded")
	if got := get("localhost"); got != 200 {
		t.Fatalf("after SIGHUP: %d", got)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.waitLog("stopped")
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("azegress did not exit after SIGTERM")
	}
}

// SIGHUP while the policy file is half written (cut after a complete block,
// so the half parses) loads the whole file once the writer is done, not the
// half: SIGHUP waits for the file to hold still for -watch-interval, as the
// watch does.
func TestServeSIGHUPWaitsForWholeFile(t *testing.T) {
	t.Parallel()
	const (
		first  = "client \"local\" {\n  sources = [\"127.0.0.0/8\"]\n  allow \"arm\" {\n    hosts = [\"management.azure.com\"]\n  }\n}\n"
		second = "client \"batch\" {\n  sources = [\"10.1.0.0/16\"]\n  allow \"storage\" {\n    hosts = [\"*.blob.core.windows.net\"]\n  }\n}\n"
	)
	path := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(path, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	half, diags := policy.LoadFile(path)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	if err := os.WriteFile(path, []byte("client \"local\" {\n  sources = [\"127.0.0.0/8\"]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The window is long beside the pause below, so that neither the watch
	// nor SIGHUP can see the half file hold still.
	d := serveBinary(t, "-policy", path, "-watch-interval", "500ms")

	// A writer that writes in two parts, in place; SIGHUP between them.
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(first); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the old SIGHUP loaded the half file in this pause
	if _, err := w.WriteString(second); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	whole, diags := policy.LoadFile(path)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	rec := d.waitLog("policy reloaded")
	if rec["policy_sha256"] != whole.SHA256() || rec["client_blocks"] != float64(2) {
		halfNote := ""
		if rec["policy_sha256"] == half.SHA256() {
			halfNote = " (the half-written file)"
		}
		t.Errorf("the first reload after SIGHUP loaded sha256 %v%s with %v client blocks; want the whole file's %s with 2",
			rec["policy_sha256"], halfNote, rec["client_blocks"], whole.SHA256())
	}
}

// serve -observations records what it decides; after SIGTERM the file holds
// every destination and `report` turns it into a policy.
func TestServeObservations(t *testing.T) {
	t.Parallel()
	obsFile := filepath.Join(t.TempDir(), "obs.jsonl")
	d := serveBinary(t, "-observations", obsFile)
	for i := 0; i < 3; i++ {
		resp, err := d.client().Get("http://example.com/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-d.exited; err != nil {
		t.Fatalf("exit: %v", err)
	}
	b, err := os.ReadFile(obsFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last["host"] != "example.com" || last["port"] != float64(80) || last["count"] != float64(3) ||
		last["decision"] != "deny" || last["reason"] != "no_rule" || last["client_block"] != "local" {
		t.Fatalf("last observation %v (file:\n%s)", last, b)
	}
	out, err := exec.Command(binary, "report", obsFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `hosts = ["example.com"]`) {
		t.Errorf("report:\n%s", out)
	}
}
