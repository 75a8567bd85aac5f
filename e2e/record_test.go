package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recNeed skips (or, in CI, fails) a test that needs root and a command.
func recNeed(t *testing.T, tools ...string) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") != "" {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("needs root for network namespaces")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fail("needs %s (make test installs it)", tool)
		}
	}
}

// recNamespace makes a network namespace with the given addresses on its
// loopback interface and an /etc/netns hosts file; everything is removed
// when the test ends.
func recNamespace(t *testing.T, hosts map[string]string) string {
	t.Helper()
	ns := fmt.Sprintf("azrec-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover from a killed run
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
	})
	run("ip", "-n", ns, "link", "set", "lo", "up")
	var hostsFile strings.Builder
	hostsFile.WriteString("127.0.0.1 localhost\n")
	for name, addr := range hosts {
		run("ip", "-n", ns, "addr", "add", addr+"/32", "dev", "lo")
		fmt.Fprintf(&hostsFile, "%s %s\n", addr, name)
	}
	if err := os.MkdirAll(filepath.Join("/etc/netns", ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("/etc/netns", ns, "hosts"), []byte(hostsFile.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return ns
}

// recOrigin serves HTTP on addr:80 inside ns until the test ends.
func recOrigin(t *testing.T, ns, addr string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("origin "+addr+"\n"), 0o644)
	cmd := exec.Command("ip", "netns", "exec", ns, "python3", "-m", "http.server", "80", "--bind", addr, "--directory", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("ip", "netns", "exec", ns, "curl", "-fsS", "-o", "/dev/null", "--noproxy", "*", "http://"+addr+"/").Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("origin %s did not come up", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecordMinimize proves `record -minimize` on a command that needs one
// destination and merely tries another: the learned policy has both, the
// minimized one only the needed one, and the kept set is verified.
func TestRecordMinimize(t *testing.T) {
	recNeed(t, "ip", "curl", "python3")
	ns := recNamespace(t, map[string]string{"needed.example": "203.0.113.10", "optional.example": "203.0.113.11"})
	recOrigin(t, ns, "203.0.113.10")
	recOrigin(t, ns, "203.0.113.11")
	script := "curl -fsS http://needed.example/ && { curl -fsS --max-time 5 http://optional.example/ || true; }"

	record := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, azegressBin, "record"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}

	out, errs, err := record("--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("record: %v\n%s", err, errs)
	}
	for _, want := range []string{`hosts = ["needed.example"]`, `hosts = ["optional.example"]`, "ports = [80]"} {
		if !strings.Contains(out, want) {
			t.Errorf("learned policy lacks %q:\n%s", want, out)
		}
	}

	out, errs, err = record("-minimize", "--", "sh", "-c", script)
	t.Logf("minimize stdout:\n%s\nstderr:\n%s", out, errs)
	if err != nil {
		t.Fatalf("record -minimize: %v\n%s", err, errs)
	}
	if !strings.Contains(out, `hosts = ["needed.example"]`) || strings.Contains(out, `hosts = ["optional.example"]`) {
		t.Errorf("minimized policy:\n%s", out)
	}
	if !strings.Contains(out, "#   optional.example:80") || !strings.Contains(errs, "verified: the command succeeds with only the 1 kept destination(s)") {
		t.Errorf("minimize did not report the dropped destination or the verification:\nstdout:\n%s\nstderr:\n%s", out, errs)
	}
	// What record prints is a policy `check` accepts.
	f := filepath.Join(t.TempDir(), "min.hcl")
	os.WriteFile(f, []byte(out), 0o644)
	if out, err := exec.Command(azegressBin, "check", f).CombinedOutput(); err != nil {
		t.Errorf("check on the minimized policy: %v\n%s", err, out)
	}
}
