package proxy

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestCurl drives the proxy with the real curl, as an operator would.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	_, tlsPort := tlsOrigin(t, "tls-origin")
	_, httpPort := httpOrigin(t, "http-origin")
	tp := startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "origins" {
    hosts     = ["allowed.example.com"]
    ports     = [%d, %d]
    addresses = ["127.0.0.0/8"]
  }
}`, tlsPort, httpPort), loopbackNames("allowed.example.com", "denied.example.com"))

	run := func(args ...string) (string, string, int) {
		return runCurl(t, curl, append([]string{"-x", "http://" + tp.addr}, args...)...)
	}

	curlAllowDeny(t, run, tlsPort, httpPort)
	// curl drops a refused CONNECT's body; -v shows the reason it keeps.
	_, verbose, code := run("-v", "-k", fmt.Sprintf("https://denied.example.com:%d/", tlsPort))
	if want := `< Proxy-Status: azegress; error=http_request_denied; details="no_rule"`; code != 56 || !strings.Contains(verbose, want) {
		t.Errorf("curl -v on a refused CONNECT: exit %d, stderr lacks %q:\n%s", code, want, verbose)
	}
	// curl's HTTP/1.0 CONNECT, as the Azure CLI's urllib3 sends it.
	out, errs, code := run("--proxy1.0", "http://"+tp.addr, "-k", fmt.Sprintf("https://allowed.example.com:%d/h10", tlsPort))
	if code != 0 || out != "hello from tls-origin /h10" {
		t.Errorf("HTTP/1.0 CONNECT: exit %d out %q err %q", code, out, errs)
	}
}

// runCurl runs curl -sS with args, a 10s limit and no proxy variables from
// the test's environment, and returns its stdout, stderr and exit code.
func runCurl(t *testing.T, curl string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "10"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// curlAllowDeny sends the README's four requests with run (curl with the
// proxy's arguments): HTTPS and plain HTTP to allowed.example.com, allowed,
// and to denied.example.com, refused with the 403 and its fix.
func curlAllowDeny(t *testing.T, run func(args ...string) (string, string, int), tlsPort, httpPort uint16) {
	t.Helper()
	out, errs, code := run("-k", fmt.Sprintf("https://allowed.example.com:%d/tls", tlsPort))
	if code != 0 || out != "hello from tls-origin /tls" {
		t.Errorf("HTTPS allow: exit %d out %q err %q", code, out, errs)
	}
	_, errs, code = run("-k", fmt.Sprintf("https://denied.example.com:%d/", tlsPort))
	if code != 56 || !strings.Contains(errs, "403") {
		t.Errorf("HTTPS deny: exit %d err %q; want curl's 56 and the 403", code, errs)
	}
	out, errs, code = run(fmt.Sprintf("http://allowed.example.com:%d/plain", httpPort))
	if code != 0 || !strings.HasPrefix(out, "hello from http-origin") {
		t.Errorf("HTTP allow: exit %d out %q err %q", code, out, errs)
	}
	out, _, code = run("-i", fmt.Sprintf("http://denied.example.com:%d/", httpPort))
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden") || !strings.Contains(out, `hosts = ["denied.example.com"]`) {
		t.Errorf("HTTP deny: exit %d out %q", code, out)
	}
}
