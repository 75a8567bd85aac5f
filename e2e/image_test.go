package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/netns"
)

// The container image of deploy/container/Dockerfile, built with podman and
// run (issue 16, part 2). `make image-test` sets imgGateEnv; without it these
// tests skip, and TestKubernetesManifests checks the Dockerfile instead of
// the image.
//
// The Dockerfile names two public images this machine cannot pull (only the
// package registries are reachable). The build stands in for both with
// podman's --build-context, leaving the file as users build it:
//   - its go build stage: the stage's own `go build` command, read from the
//     Dockerfile and run on the host, into a directory given as that stage;
//   - its distroless base: a local image imported from a tar that holds only
//     /etc/passwd and /etc/group (nonroot is 65532, as in distroless) and the
//     host's CA bundle.
//
// podman here (Debian bookworm's 4.3, as root, PID 1 not systemd, cgroup v1
// with a cgroup2 hierarchy beside it): crun 1.8 refuses that hybrid layout, so
// the runtime is runc, with the cgroupfs manager podman picks without
// systemd; podman's default ulimits (nofile 1048576, nproc 4194304) are above
// this machine's hard limits, so the run passes the test's own nofile limit
// and a small nproc; storage is overlay; the network is a namespace the test
// makes (--network ns:PATH). A run leaves imgTag and imgBaseTag in podman's
// store, for a look after a failure; the next run replaces them.
const (
	imgGateEnv   = "AZEGRESS_IMAGE_TEST"
	imgTag       = "localhost/azegress:e2e"
	imgBaseTag   = "localhost/azegress-e2e-distroless:stand-in"
	imgNSPrefix  = "azegress-img-"
	imgOrigin    = "origin.test"
	imgOther     = "other.test" // the origin's name that a reload allows
	imgOriginIP  = "203.0.113.10"
	imgBuildTime = 10 * time.Minute // failure bound for the binary and the image build
)

// imgPodman runs podman with the runtime this machine needs and returns its
// combined output; an error carries the output.
func imgPodman(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "podman", append([]string{"--runtime", "runc"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// imgGate skips unless make image-test runs the test, and makes sure of
// what the image tests need.
func imgGate(t *testing.T) {
	t.Helper()
	if os.Getenv(imgGateEnv) == "" {
		t.Skipf("builds deploy/container/Dockerfile with podman and runs the image; `make image-test` runs it (sets %s=1)", imgGateEnv)
	}
	if os.Geteuid() != 0 {
		depMissing(t, "needs root: podman runs the image in a network namespace the test makes")
	}
	depTool(t, "podman")
	depTool(t, "runc")
}

// imgBuilt is the one image build of a test process.
var imgBuilt struct {
	sync.Once
	err error
}

// imgImage builds the image once per test process and returns its tag.
func imgImage(t *testing.T) string {
	t.Helper()
	imgGate(t)
	imgBuilt.Do(func() {
		dir, err := os.MkdirTemp("", "azegress-e2e-image")
		if err != nil {
			imgBuilt.err = err
			return
		}
		defer os.RemoveAll(dir)
		imgBuilt.err = imgBuild(dir)
	})
	if imgBuilt.err != nil {
		t.Fatalf("building the image: %v", imgBuilt.err)
	}
	return imgTag
}

// imgBuild builds imgTag from deploy/container/Dockerfile with podman build,
// the build stage and the base image stood in for (see the top of the file).
func imgBuild(dir string) error {
	src, err := os.ReadFile(depDockerfile)
	if err != nil {
		return err
	}
	var stage, cur, run, from, copied, base string
	var args, runEnv []string // the current stage's ARGs, and those the go build sees, as NAME=value
	for _, in := range depParseDockerfile(string(src)) {
		switch in.op {
		case "FROM":
			f := strings.Fields(in.args)
			base, cur, args = f[0], "", nil
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur = f[2]
			}
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			if v, ok := imgBuildArgs[name]; ok {
				def = v
			}
			args = append(args, name+"="+def)
		case "RUN":
			if strings.Contains(in.args, "go build") {
				run, stage, runEnv = in.args, cur, slices.Clone(args)
			}
		case "COPY":
			f := strings.Fields(in.args)
			if name, ok := strings.CutPrefix(f[0], "--from="); ok && len(f) == 3 {
				from, copied = name, f[1]
			}
		}
	}
	if run == "" || stage == "" || from != stage || !strings.Contains(run, " "+copied) {
		return fmt.Errorf("%s: want a named stage whose RUN go build writes the file the final stage copies from it (stage %q, run %q, COPY --from=%s %s)",
			depDockerfile, stage, run, from, copied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), imgBuildTime)
	defer cancel()

	// The build stage: its go build, run here with its output under dir.
	stageDir := filepath.Join(dir, "stage")
	if err := os.MkdirAll(filepath.Dir(filepath.Join(stageDir, copied)), 0o755); err != nil {
		return err
	}
	gobuild := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(run, " "+copied, " "+filepath.Join(stageDir, copied)))
	gobuild.Dir = ".."
	gobuild.Env = append(os.Environ(), runEnv...) // as RUN sees the stage's ARGs
	if out, err := gobuild.CombinedOutput(); err != nil {
		return fmt.Errorf("the build stage's %s: %v\n%s", run, err, out)
	}

	// The previous run's images go first, so that a run leaves one of each.
	if _, err := imgPodman(ctx, "rmi", "--ignore", imgTag, imgBaseTag); err != nil {
		return err
	}
	// The base: a tar with the files of distroless/static the binary uses.
	baseTar := filepath.Join(dir, "base.tar")
	if err := imgBaseTar(baseTar); err != nil {
		return err
	}
	if _, err := imgPodman(ctx, "import", baseTar, imgBaseTag); err != nil {
		return err
	}
	build := []string{"build", "--pull=never", "--network=none",
		"--build-context", stage + "=" + stageDir,
		"--build-context", base + "=container-image://" + imgBaseTag}
	for name, v := range imgBuildArgs {
		build = append(build, "--build-arg", name+"="+v)
	}
	_, err = imgPodman(ctx, append(build, "-f", filepath.Join("deploy", "container", "Dockerfile"), "-t", imgTag, "..")...)
	return err
}

// imgVersion is the release the test builds the image as (its VERSION build
// arg), which the image must report.
const imgVersion = "v0.0.0-e2e"

// imgBuildArgs are the --build-arg values of the image build; the host's run
// of the build stage gets them in place of the ARGs' defaults.
var imgBuildArgs = map[string]string{"VERSION": imgVersion}

// imgBaseTar writes the stand-in for distroless/static-debian12:nonroot.
func imgBaseTar(file string) error {
	cas, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return fmt.Errorf("the stand-in base image takes the host's CA bundle (Debian ca-certificates): %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body string
	}{
		{"etc/", ""},
		{"etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		{"etc/group", "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
		{"etc/ssl/", ""},
		{"etc/ssl/certs/", ""},
		{"etc/ssl/certs/ca-certificates.crt", string(cas)},
	} {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(f.name, "/") {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

// imgConfig is the part of an image's configuration the manifests rely on.
type imgConfig struct {
	User         string
	Entrypoint   []string
	Cmd          []string
	ExposedPorts map[string]struct{}
}

// imgInspect reads the configuration of the image tag.
func imgInspect(t *testing.T, tag string) imgConfig {
	t.Helper()
	out, err := imgPodman(context.Background(), "image", "inspect", "--format", "{{json .Config}}", tag)
	if err != nil {
		t.Fatal(err)
	}
	var c imgConfig
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("podman image inspect %s: %v\n%s", tag, err, out)
	}
	return c
}

// imgRunArgs are podman run's options for this machine's limits (see the top
// of the file).
func imgRunArgs(t *testing.T) []string {
	t.Helper()
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	return []string{"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Max, nofile.Max), "--ulimit", "nproc=4096:4096"}
}

// imgServeFlags returns the flags the image's own `serve -h` lists.
func imgServeFlags(t *testing.T, tag string) map[string]bool {
	t.Helper()
	args := append(append([]string{"run", "--rm", "--network=none", "--read-only"}, imgRunArgs(t)...), tag, "serve", "-h")
	out, _ := imgPodman(context.Background(), args...) // -h exits 2; the listing is what counts
	return depHelpFlags(t, "the image's serve -h", []byte(out))
}

// imgPolicy admits the test's client, on the namespace's loopback, to the
// origin only, and to what extra allows.
func imgPolicy(extra string) string {
	return `# e2e/image_test.go
client "test" {
  sources = ["127.0.0.1/32"]

  allow "origin" {
    hosts = ["` + imgOrigin + `"]
    ports = [80, 443]
  }
` + extra + `}
`
}

// imgAllowOther is the rule the reload test adds: the origin under another
// name.
const imgAllowOther = `
  allow "other" {
    hosts = ["` + imgOther + `"]
    ports = [80]
  }
`

// TestImageRun runs the image with the Deployment's arguments in a network
// namespace of its own, on a read-only root file system, and checks what an
// operator relies on: probes, metrics, a denial with its fix, an allowed
// request, the user, and the drain on SIGTERM.
func TestImageRun(t *testing.T) {
	image := imgImage(t)
	dep := depYAML(t, depRead(t, filepath.Join(depKube, "deployment.yaml")))[0]
	var args []string
	for _, a := range depList(dep, "spec", "template", "spec", "containers", 0, "args") {
		args = append(args, fmt.Sprint(a))
	}
	if len(args) == 0 {
		t.Fatalf("deployment.yaml: no args")
	}
	vals := depCheckServeArgs(t, "Deployment args", args[1:])
	proxyAddr := "127.0.0.1:" + depPort(t, "Deployment", vals["listen"])
	metricsAddr := "127.0.0.1:" + depPort(t, "Deployment", vals["metrics"])

	for _, name := range netns.SweepStale(imgNSPrefix) {
		t.Logf("removed namespace %s left by an earlier run", name)
	}
	ns, err := netns.New(fmt.Sprintf("%s%d", imgNSPrefix, os.Getpid()))
	if err != nil {
		depMissing(t, "cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := ns.IP("addr", "add", imgOriginIP+"/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	pool := imgStartOrigin(t, ns)

	// The policy directory, mounted read-only where -policy points, as the
	// Deployment mounts its ConfigMap.
	policyDir := filepath.Join(t.TempDir(), "policy")
	if err := os.Mkdir(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, path.Base(vals["policy"])), []byte(imgPolicy("")), 0o644); err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("azegress-e2e-%d", os.Getpid())
	ctx := context.Background()
	if _, err := imgPodman(ctx, "rm", "--force", "--ignore", name); err != nil {
		t.Fatal(err)
	}
	run := append([]string{"run", "--detach", "--name", name,
		"--network", "ns:" + filepath.Join("/run/netns", ns.Name),
		"--read-only", "--read-only-tmpfs=false",
		"--add-host", imgOrigin + ":" + imgOriginIP, "--add-host", imgOther + ":" + imgOriginIP,
		"--volume", policyDir + ":" + path.Dir(vals["policy"]) + ":ro"}, imgRunArgs(t)...)
	run = append(append(run, image), args...)
	if _, err := imgPodman(ctx, run...); err != nil {
		t.Fatal(err)
	}
	logs := func() string { out, _ := imgPodman(ctx, "logs", name); return out }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container log:\n%s", logs())
		}
		if _, err := imgPodman(ctx, "rm", "--force", "--ignore", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	inspect := func(format string) string {
		t.Helper()
		out, err := imgPodman(ctx, "inspect", "--format", format, name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	admin := &http.Client{Transport: &http.Transport{DialContext: ns.Dial, DisableKeepAlives: true}, Timeout: nhLimit}
	probe := func(p string) (int, string) {
		t.Helper()
		resp, err := admin.Get("http://" + metricsAddr + p)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// waitFor polls the /readyz answer until it is want, or fails.
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(nhLimit)
		for {
			code, body := probe("/readyz")
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %q, want %d (container %s)", code, body, want, inspect("{{.State.Status}}"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(http.StatusOK)

	// Nothing in the run asks for a user: the image's USER alone must make
	// the proxy the Deployment's runAsUser and runAsGroup.
	t.Run("non-root", func(t *testing.T) {
		status := depRead(t, filepath.Join("/proc", inspect("{{.State.Pid}}"), "status"))
		for key, field := range map[string]string{"Uid": "runAsUser", "Gid": "runAsGroup"} {
			want := fmt.Sprint(depDig(dep, "spec", "template", "spec", "securityContext", field))
			m := regexp.MustCompile(`(?m)^` + key + `:\s+(.*)$`).FindStringSubmatch(status)
			if want == "0" || m == nil || strings.Join(strings.Fields(m[1]), " ") != strings.Repeat(want+" ", 3)+want {
				t.Errorf("the proxy's %s (real, effective, saved, file system): %v, want the Deployment's %s %s (non-zero)", key, m, field, want)
			}
		}
	})

	t.Run("read-only root file system", func(t *testing.T) {
		// /proc/PID/mountinfo: mount ID, parent, major:minor, root, mount point, options, ...
		info := depRead(t, filepath.Join("/proc", inspect("{{.State.Pid}}"), "mountinfo"))
		rootSeen := false
		for _, line := range strings.Split(strings.TrimSpace(info), "\n") {
			f := strings.Fields(line)
			point, opts := f[4], strings.Split(f[5], ",")
			if point == "/" {
				rootSeen = true
				if opts[0] != "ro" {
					t.Errorf("the root file system is mounted %s, want ro", f[5])
				}
				continue
			}
			kernel := false
			for _, dir := range []string{"/proc", "/dev", "/sys"} {
				kernel = kernel || point == dir || strings.HasPrefix(point, dir+"/")
			}
			if opts[0] == "rw" && !kernel {
				t.Errorf("writable mount %s (%s): the proxy must need none", point, f[5])
			}
		}
		if !rootSeen {
			t.Errorf("no / in the proxy's mountinfo:\n%s", info)
		}
	})

	proxyURL := &url.URL{Scheme: "http", Host: proxyAddr}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: ns.Dial, DisableKeepAlives: true}, Timeout: nhLimit}

	t.Run("denied with its fix", func(t *testing.T) {
		resp, err := client.Get("http://denied.test/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Azegress-Reason") != "no_rule" ||
			!strings.Contains(string(body), `hosts = ["denied.test"]`) {
			t.Errorf("GET http://denied.test/: %s, X-Azegress-Reason %q, body:\n%s\nwant 403, no_rule and the rule that allows it",
				resp.Status, resp.Header.Get("X-Azegress-Reason"), body)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		resp, err := client.Get("http://" + imgOrigin + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "served-by "+imgOrigin+"\n" {
			t.Errorf("GET http://%s/: %s %q, want 200 from the origin", imgOrigin, resp.Status, body)
		}
	})

	t.Run("version", func(t *testing.T) {
		args := append(append([]string{"run", "--rm", "--network=none", "--read-only"}, imgRunArgs(t)...), image, "version")
		out, err := imgPodman(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(out, "\n"); first != "azegress "+imgVersion {
			t.Errorf("the image's azegress version says %q, want %q (the VERSION build arg):\n%s", first, "azegress "+imgVersion, out)
		}
	})

	t.Run("probes and metrics", func(t *testing.T) {
		if code, body := probe("/healthz"); code != http.StatusOK {
			t.Errorf("/healthz: %d %q", code, body)
		}
		code, body := probe("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		for _, want := range []string{
			`azegress_decisions_total{client_block="test",decision="deny",kind="http",mode="enforce",reason="no_rule"} 1`,
			`azegress_rule_hits_total{client_block="test",rule="origin"} 1`,
			`azegress_policy_last_reload_successful 1`,
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("/metrics has no line %s", want)
			}
		}
		if !regexp.MustCompile(`(?m)^azegress_build_info\{.*\bversion="` + regexp.QuoteMeta(imgVersion) + `"\} 1$`).MatchString(body) {
			t.Errorf("/metrics has no azegress_build_info with version=%q (the VERSION build arg)", imgVersion)
		}
	})

	// Reload as a container gets it: the policy directory's file replaced
	// by a rename (what editors and a ConfigMap's symlink swap do), seen by
	// the file watch the Deployment's args leave on; and SIGHUP through
	// podman kill.
	t.Run("reload", func(t *testing.T) {
		status := func(host string) int {
			t.Helper()
			resp, err := client.Get("http://" + host + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		replace := func(text string) {
			t.Helper()
			tmp := filepath.Join(policyDir, ".policy.tmp")
			if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(policyDir, path.Base(vals["policy"]))); err != nil {
				t.Fatal(err)
			}
		}
		// until polls the log until it has n records with msg.
		until := func(msg string, n int) {
			t.Helper()
			deadline := time.Now().Add(nhLimit)
			for strings.Count(logs(), `"msg":"`+msg+`"`) < n {
				if time.Now().After(deadline) {
					t.Fatalf("no %d %q records in the log within %v", n, msg, nhLimit)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if got := status(imgOther); got != http.StatusForbidden {
			t.Fatalf("GET http://%s/ before the reload: %d, want 403", imgOther, got)
		}
		replace(imgPolicy(imgAllowOther))
		until("policy reloaded", 1)
		if got := status(imgOther); got != http.StatusOK {
			t.Errorf("GET http://%s/ after the reload: %d, want 200", imgOther, got)
		}
		replace("client {")
		until("policy reload rejected; the previous policy keeps serving", 1)
		if got := status(imgOther); got != http.StatusOK {
			t.Errorf("GET http://%s/ after a rejected reload: %d, want 200 (the previous policy)", imgOther, got)
		}
		replace(imgPolicy(imgAllowOther))
		until("policy reloaded", 2)
		if _, err := imgPodman(ctx, "kill", "--signal", "HUP", name); err != nil {
			t.Fatal(err)
		}
		until("policy reloaded", 3)
	})

	t.Run("SIGTERM drains", func(t *testing.T) {
		tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), DialContext: ns.Dial, TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		tunnel := &http.Client{Transport: tr, Timeout: nhLimit}
		get := func() (reused bool) {
			t.Helper()
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", "https://"+imgOrigin+"/", nil)
			resp, err := tunnel.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "served-by "+imgOrigin+"\n" {
				t.Fatalf("GET https://%s/ through a tunnel: %s %q", imgOrigin, resp.Status, body)
			}
			return reused
		}
		get() // the tunnel stays open: the transport keeps the connection
		if _, err := imgPodman(ctx, "kill", "--signal", "TERM", name); err != nil {
			t.Fatal(err)
		}
		waitFor(http.StatusServiceUnavailable)
		if !get() {
			t.Errorf("the second request did not reuse the open tunnel")
		}
		if s := inspect("{{.State.Status}}"); s != "running" {
			t.Fatalf("container %s while a tunnel is open, want running until the drain ends", s)
		}
		tr.CloseIdleConnections() // the last tunnel ends: serve may exit
		wctx, cancel := context.WithTimeout(ctx, nhLimit)
		defer cancel()
		code, err := imgPodman(wctx, "wait", name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(code) != "0" {
			t.Errorf("exit code %s after SIGTERM, want 0", strings.TrimSpace(code))
		}
		if !strings.Contains(logs(), `"msg":"stopped"`) {
			t.Errorf("no \"stopped\" record in the log")
		}
	})
}

// imgStartOrigin starts an HTTP server on imgOriginIP:80 and an HTTPS one on
// :443 in ns, each answering "served-by origin.test", and returns the pool
// that trusts the HTTPS server's certificate.
func imgStartOrigin(t *testing.T, ns *netns.NS) *x509.CertPool {
	t.Helper()
	ca, caKey := nhCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert := nhLeaf(t, ca, caKey, imgOrigin)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for _, port := range []string{"80", "443"} {
		ln, err := ns.Listen("tcp4", net.JoinHostPort(imgOriginIP, port))
		if err != nil {
			t.Fatal(err)
		}
		if port == "443" {
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
		}
		srv := &http.Server{ReadHeaderTimeout: nhLimit, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "served-by %s\n", imgOrigin)
		})}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Serve(ln)
		}()
		t.Cleanup(func() { srv.Close() })
	}
	return pool
}
