package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestRecordEnv(t *testing.T) {
	t.Parallel()
	env := recordEnv([]string{"PATH=/bin", "no_proxy=.internal.example", "HTTPS_PROXY=http://old:1", "http_proxy=http://old:2"}, "http://127.0.0.1:5555")
	for _, want := range []string{
		"PATH=/bin",
		"HTTPS_PROXY=http://127.0.0.1:5555", "https_proxy=http://127.0.0.1:5555",
		"HTTP_PROXY=http://127.0.0.1:5555", "http_proxy=http://127.0.0.1:5555",
		"NO_PROXY=.internal.example," + localNoProxy, "no_proxy=.internal.example," + localNoProxy,
	} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %q: %v", want, env)
		}
	}
	for _, kv := range env {
		if strings.Contains(kv, "old:") {
			t.Errorf("old proxy setting kept: %s", kv)
		}
	}
}

// TestRecordRealCurl records a real curl run. Learning mode never opens
// guarded ranges, so a loopback destination is reported as refused, not
// turned into a rule; the command's exit status is passed on.
func TestRecordRealCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hi") }))
	defer origin.Close()
	// NO_PROXY covers loopback, so curl must be told to use the proxy for it:
	// --noproxy "" overrides the environment's NO_PROXY.
	out, errs, code := runCLI("record", "--", curl, "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}", origin.URL+"/x")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "403") || !strings.Contains(errs, "exited with status 0") {
		t.Errorf("stderr lacks curl's 403 or the exit status:\n%s", errs)
	}
	hostPort := strings.TrimPrefix(origin.URL, "http://")
	if !strings.Contains(out, "#   "+hostPort+" from workload: blocked_address") {
		t.Errorf("policy does not report the refused loopback destination:\n%s", out)
	}

	_, errs, code = runCLI("record", "--", "sh", "-c", "exit 3")
	if code != 3 || !strings.Contains(errs, "sh exited with status 3") {
		t.Errorf("exit status not passed on: %d\n%s", code, errs)
	}
	if _, _, code = runCLI("record"); code != 2 {
		t.Errorf("record without a command: exit %d, want 2", code)
	}
}

func TestReportCommand(t *testing.T) {
	t.Parallel()
	files := []string{"../../policy/learn/testdata/report/instance-a.jsonl", "../../policy/learn/testdata/report/instance-b.jsonl"}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{append([]string{"report"}, files...), 0, `allow "management-azure-com" {`},
		{append([]string{"report", "-format", "markdown", "-policy", "../../policy/learn/testdata/report/baseline.hcl"}, files...), 0, "### Risky patterns"},
		{append([]string{"report", "-format", "json"}, files...), 0, `"client_blocks": [`},
		{append([]string{"report", "-format", "xml"}, files...), 2, ""},
		{[]string{"report", "no-such-file.jsonl"}, 1, ""},
	} {
		out, errs, code := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d (want %d)\n%s%s", tt.args, code, tt.code, out, errs)
		}
	}
}
