package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/internal/testcert"
)

// The TLS listener's flags come together, and a pair that does not load
// stops serve before it starts, naming the files and why.
func TestServeTLSFlags(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	dir := t.TempDir()
	good := ca.Issue(t, dir, "good", time.Now().Add(time.Hour), "127.0.0.1")
	other := ca.Issue(t, dir, "other", time.Now().Add(time.Hour), "127.0.0.1")
	base := []string{"serve", "-listen", "127.0.0.1:0", "-metrics", ""}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no pair", []string{"-listen-tls", "127.0.0.1:0"}, 2, []string{"-listen-tls needs -tls-cert and -tls-key"}},
		{"no key", []string{"-listen-tls", "127.0.0.1:0", "-tls-cert", good.CertFile}, 2, []string{"-listen-tls needs -tls-cert and -tls-key"}},
		{"pair without listener", []string{"-tls-cert", good.CertFile, "-tls-key", good.KeyFile}, 2, []string{"-tls-cert and -tls-key are for -listen-tls"}},
		{"mismatched pair", []string{"-listen-tls", "127.0.0.1:0", "-tls-cert", good.CertFile, "-tls-key", other.KeyFile}, 1,
			[]string{good.CertFile, other.KeyFile, "private key does not match public key"}},
		{"missing key", []string{"-listen-tls", "127.0.0.1:0", "-tls-cert", good.CertFile, "-tls-key", filepath.Join(dir, "nope.key")}, 1,
			[]string{"TLS key " + filepath.Join(dir, "nope.key") + ": no such file or directory"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The binary, with a deadline: a serve that took these flags
			// would run until killed.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append(base, tt.args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			_ = cmd.Run()
			errs, code := stderr.String(), cmd.ProcessState.ExitCode()
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", code, tt.code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
}

// SIGHUP rotates the TLS listener's certificate: new connections get the new
// one, a tunnel opened before keeps working, and a bad pair keeps the one
// being served.
func TestServeTLSRotation(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := echo.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`client "local" {
  sources = ["127.0.0.0/8"]
  allow "echo" {
    hosts     = ["localhost"]
    addresses = ["127.0.0.0/8"]
    ports     = [%d]
  }
}
`, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testcert.NewCA(t)
	first := ca.Issue(t, dir, "proxy", time.Now().Add(24*time.Hour), "127.0.0.1")
	d := serveBinary(t, "-policy", path, "-listen-tls", "127.0.0.1:0", "-tls-cert", first.CertFile, "-tls-key", first.KeyFile)
	tlsAddr, _ := d.seen[len(d.seen)-1]["listen_tls"].(string)
	if tlsAddr == "" {
		t.Fatalf("startup record without listen_tls: %v", d.seen[len(d.seen)-1])
	}
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	served := func() string {
		t.Helper()
		c := dial()
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}

	tunnel := dial()
	defer tunnel.Close()
	_ = tunnel.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(tunnel, "CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n", port, port)
	br := bufio.NewReader(tunnel)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT over TLS: %v %v", resp, err)
	}
	roundTrip := func(msg string) {
		t.Helper()
		fmt.Fprintf(tunnel, "%s\n", msg)
		if line, err := br.ReadString('\n'); err != nil || line != msg+"\n" {
			t.Fatalf("the tunnel opened before, %s: %q %v", msg, line, err)
		}
	}
	roundTrip("before")
	if got := served(); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("served %s, want the first pair's %s", got, first.Leaf.SerialNumber)
	}

	second := ca.Issue(t, dir, "proxy", time.Now().Add(48*time.Hour), "127.0.0.1")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if rec := d.waitLog("TLS certificate reloaded"); rec["tls_cert"] != first.CertFile {
		t.Errorf("reload record %v", rec)
	}
	if got := served(); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("after SIGHUP served %s, want the new pair's %s", got, second.Leaf.SerialNumber)
	}
	roundTrip("after the rotation")

	// The key of another certificate: rejected, the second pair serves on.
	other := ca.Issue(t, t.TempDir(), "other", time.Now().Add(time.Hour), "127.0.0.1")
	key, err := os.ReadFile(other.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	testcert.WriteFile(t, first.KeyFile, key)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rec := d.waitLog("TLS certificate reload rejected; the previous certificate keeps serving")
	if errs := fmt.Sprint(rec["error"]); rec["level"] != "ERROR" || !strings.Contains(errs, first.CertFile) || !strings.Contains(errs, "private key does not match public key") {
		t.Errorf("rejection record %v", rec)
	}
	if got := served(); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("after a bad pair served %s, want the second pair's %s", got, second.Leaf.SerialNumber)
	}
	roundTrip("after the bad pair")

	resp, err := http.Get("http://" + d.maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`azegress_tls_cert_reloads_total{result="failure"} 1`,
		`azegress_tls_cert_reloads_total{result="success"} 1`,
		"azegress_tls_cert_expiry_timestamp_seconds " + strconv.FormatFloat(float64(second.Leaf.NotAfter.Unix()), 'g', -1, 64),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
