//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/e2e/azemu"
	"github.com/azegress/azegress/policy"
)

// The Azure CLI end-to-end topology: four network namespaces joined by veth
// pairs, with documentation-range addresses only. Nothing routes out of them.
//
//	workload (az)        proxy (azegress serve)        azure (emulator)
//	192.0.2.1 ---------- 192.0.2.2   192.0.2.5 ---------- 192.0.2.6
//	lo: 169.254.169.254                                  lo: 203.0.113.10 ARM
//	    (IMDS)                                               203.0.113.20 Key Vault
//	                                                         203.0.113.30 side traffic
//	                                                         203.0.113.40 Entra ID
//	recorder (az under azegress record)
//	192.0.2.9 ------------------------------------------- 192.0.2.10
//	lo: 169.254.169.254
//
// The workload reaches only the proxy's address and its own IMDS: it has no
// route to the emulator, and the proxy namespace does not forward. IMDS sits
// on the workload's loopback because it is link-local to the VM. The proxy
// and recorder namespaces resolve the Azure names to the emulator through
// /etc/netns/NAME/hosts; every namespace's resolv.conf points at its own
// loopback, so DNS never leaves it. The recorder namespace is a workload
// whose learning proxy (azegress record) runs next to it, so it has a route
// to the emulator.
const (
	azWorkloadIP   = "192.0.2.1"
	azProxyIP      = "192.0.2.2"
	azRecorderIP   = "192.0.2.9"
	azARMIP        = "203.0.113.10"
	azVaultIP      = "203.0.113.20"
	azSideIP       = "203.0.113.30"
	azEntraIP      = "203.0.113.40"
	azNetnsPrefix  = "azcli-"
	azResolvConf   = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
	azCommandLimit = 3 * time.Minute // failure bound for one az command
)

// azTopo is a running topology with the emulator serving in it.
type azTopo struct {
	Workload, Proxy, Azure, Recorder string // namespace names
	Emu                              *azemu.Emulator
	CAFile                           string // the emulator's CA, PEM
	Dir                              string // scratch files
}

var azTopoSeq atomic.Int64

// azNeedRoot skips the test unless it runs as root (fails it in CI).
func azNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		azMissing(t, "needs root to create network namespaces")
	}
}

// azNeedTool skips the test when a tool is missing (fails it in CI, where
// make test has installed it).
func azNeedTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		azMissing(t, "needs %s on PATH (make test installs it)", tool)
	}
}

func azMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// azNewTopo builds the topology, starts the emulator's listeners in it and
// removes everything when the test ends, whatever the outcome.
func azNewTopo(t *testing.T, cfg azemu.Config) *azTopo {
	t.Helper()
	azSweepStale(t)
	id := fmt.Sprintf("%s%d-%d", azNetnsPrefix, os.Getpid(), azTopoSeq.Add(1))
	tp := &azTopo{Workload: id + "-w", Proxy: id + "-p", Azure: id + "-a", Recorder: id + "-r", Dir: t.TempDir()}
	all := []string{tp.Workload, tp.Proxy, tp.Azure, tp.Recorder}
	t.Cleanup(func() {
		for _, ns := range all {
			azRemoveNetns(ns)
		}
	})

	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range all {
		ip("netns", "add", ns)
		ip("-n", ns, "link", "set", "lo", "up")
	}
	// Links; each namespace names its own ends.
	ip("-n", tp.Workload, "link", "add", "to-proxy", "type", "veth", "peer", "name", "to-workload", "netns", tp.Proxy)
	ip("-n", tp.Proxy, "link", "add", "to-azure", "type", "veth", "peer", "name", "to-proxy", "netns", tp.Azure)
	ip("-n", tp.Recorder, "link", "add", "to-azure", "type", "veth", "peer", "name", "to-recorder", "netns", tp.Azure)
	for _, a := range []struct{ ns, dev, addr string }{
		{tp.Workload, "to-proxy", azWorkloadIP + "/30"},
		{tp.Proxy, "to-workload", azProxyIP + "/30"},
		{tp.Proxy, "to-azure", "192.0.2.5/30"},
		{tp.Azure, "to-proxy", "192.0.2.6/30"},
		{tp.Recorder, "to-azure", azRecorderIP + "/30"},
		{tp.Azure, "to-recorder", "192.0.2.10/30"},
	} {
		ip("-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		ip("-n", a.ns, "link", "set", a.dev, "up")
	}
	for _, a := range []struct{ ns, addr string }{
		{tp.Workload, azemu.IMDSAddr}, {tp.Recorder, azemu.IMDSAddr},
		{tp.Azure, azARMIP}, {tp.Azure, azVaultIP}, {tp.Azure, azSideIP}, {tp.Azure, azEntraIP},
	} {
		ip("-n", a.ns, "addr", "add", a.addr+"/32", "dev", "lo")
	}
	ip("-n", tp.Proxy, "route", "add", "203.0.113.0/24", "via", "192.0.2.6")
	ip("-n", tp.Recorder, "route", "add", "203.0.113.0/24", "via", "192.0.2.10")

	emu, err := azemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tp.Emu = emu
	tp.CAFile = filepath.Join(tp.Dir, "azemu-ca.pem")
	if err := os.WriteFile(tp.CAFile, emu.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Name resolution: the Azure names resolve to the emulator where a proxy
	// runs; nowhere else do they resolve at all.
	azureHosts := "127.0.0.1 localhost\n" +
		azARMIP + " " + azemu.ARMHost + "\n" +
		azVaultIP + " " + emu.VaultHost() + "\n" +
		azSideIP + " " + azemu.ProbeHost + " " + azemu.VersionHost + " " + azemu.TelemetryHost + "\n" +
		azEntraIP + " " + azemu.EntraHost + "\n"
	for ns, hosts := range map[string]string{
		tp.Workload: "127.0.0.1 localhost\n",
		tp.Proxy:    azureHosts,
		tp.Recorder: azureHosts,
	} {
		dir := filepath.Join("/etc/netns", ns)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"hosts": hosts, "resolv.conf": azResolvConf} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The emulator runs in this process; its listeners are opened inside
	// the namespaces.
	var serving sync.WaitGroup
	t.Cleanup(func() {
		emu.Close()
		serving.Wait()
	})
	for _, l := range []struct {
		ns, addr, name string
		imds           bool
	}{
		{tp.Workload, azemu.IMDSAddr + ":80", "imds-workload", true},
		{tp.Recorder, azemu.IMDSAddr + ":80", "imds-recorder", true},
		{tp.Azure, ":443", "azure", false},
	} {
		ln, err := azListenIn(l.ns, "tcp4", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			if l.imds {
				emu.ServeIMDS(ln, l.name)
			} else {
				emu.ServeTLS(ln, l.name)
			}
		}()
	}
	return tp
}

// azRemoveNetns deletes a namespace of this test and its /etc/netns files.
func azRemoveNetns(ns string) {
	_ = exec.Command("ip", "netns", "del", ns).Run()
	_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
}

// azSweepStale removes namespaces left by an earlier run of this test that
// was killed before its cleanup ran (its process no longer exists).
func azSweepStale(t *testing.T) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), azNetnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			t.Logf("removing namespace %s left by an earlier run", e.Name())
			azRemoveNetns(e.Name())
		}
	}
}

// azInNetns runs fn on an OS thread that has joined the network namespace
// ns. Sockets fn creates belong to ns for their whole life, whichever thread
// uses them later.
func azInNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the runtime discards a locked thread when its
		// goroutine ends, so no other goroutine runs in ns.
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// startPinned starts cmd from an OS thread that stays locked, so alive and
// out of every other goroutine's reach, until cmd has exited; the returned
// channel gets Wait's error. Pdeathsig kills a child when the thread that
// forked it ends, and the runtime ends every thread an azInNetns goroutine
// locked: started from whatever thread the caller ran on, a proxy was
// SIGKILLed the moment a later dial into a namespace happened to lock and
// discard that thread (its client saw a reset, its log just stopped).
func startPinned(cmd *exec.Cmd) (<-chan error, error) {
	started, waited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // never joined a namespace: reusable
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}

// azListenIn listens on addr inside the network namespace ns.
func azListenIn(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := azInNetns(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// azDialIn connects to addr (an IP literal) from inside the namespace ns.
func azDialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := azInNetns(ns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// azHTTPClientIn returns an HTTP client whose connections start inside ns
// and go through proxyURL.
func azHTTPClientIn(ns, proxyURL string) *http.Client {
	u, err := url.Parse(proxyURL)
	if err != nil {
		panic("azHTTPClientIn: " + err.Error())
	}
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyURL(u),
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return azDialIn(ctx, ns, addr)
		},
		DisableKeepAlives: true,
	}, Timeout: 30 * time.Second}
}

// azLog collects a process's JSON log lines.
type azLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	notify  chan struct{}
}

func newAzLog() *azLog { return &azLog{notify: make(chan struct{}, 1)} }

func (l *azLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Lines returns the complete lines so far.
func (l *azLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Records returns the lines that are JSON objects.
func (l *azLog) Records() []map[string]any {
	var out []map[string]any
	for _, line := range l.Lines() {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// azProxy is an `azegress serve` running in the proxy namespace.
type azProxy struct {
	cmd     *exec.Cmd
	log     *azLog
	addr    string // listener, in the proxy namespace
	tlsAddr string // the TLS listener (-listen-tls in extra), if any
	exited  chan struct{}
}

// URL is the proxy URL for the workload's HTTPS_PROXY.
func (p *azProxy) URL() string { return "http://" + p.addr }

// Denials returns the proxy's deny records.
func (p *azProxy) Denials() []map[string]any {
	var out []map[string]any
	for _, r := range p.log.Records() {
		if r["msg"] == "deny" {
			out = append(out, r)
		}
	}
	return out
}

// azStartProxy runs `azegress serve` with the policy src in the proxy
// namespace on an ephemeral port, with extra flags, waits for its startup
// record and stops it when the test ends.
func (tp *azTopo) azStartProxy(t *testing.T, name, src string, extra ...string) *azProxy {
	t.Helper()
	return tp.azStartProxyEnv(t, name, src, nil, extra...)
}

// azStartProxyEnv is azStartProxy with env added to the proxy's environment
// (SSL_CERT_FILE, for an entra block whose authority is the emulator).
func (tp *azTopo) azStartProxyEnv(t *testing.T, name, src string, env []string, extra ...string) *azProxy {
	t.Helper()
	file := filepath.Join(tp.Dir, name+".hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &azProxy{log: newAzLog(), exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", tp.Proxy, azegressBin, "serve",
		"-policy", file, "-listen", azProxyIP + ":0", "-metrics", "", "-watch-interval", "0", "-drain", "1s"}, extra...)...)
	p.cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	waited, err := startPinned(p.cmd)
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-waited; close(p.exited) }()
	t.Cleanup(func() {
		// ip netns exec replaces itself with azegress: the PID is the proxy's.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("proxy %s log:\n%s", name, strings.Join(p.log.Lines(), "\n"))
		}
	})
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		for _, r := range p.log.Records() {
			if r["msg"] == "azegress listening" {
				p.addr, _ = r["listen"].(string)
				p.tlsAddr, _ = r["listen_tls"].(string)
				return p
			}
		}
		select {
		case <-p.log.notify:
		case <-p.exited:
			t.Fatalf("azegress serve exited before listening:\n%s", strings.Join(p.log.Lines(), "\n"))
		case <-deadline.C:
			t.Fatalf("azegress serve did not log that it listens within 30s:\n%s", strings.Join(p.log.Lines(), "\n"))
		}
	}
}

// azEnv is the environment of an az run: a config dir of its own, trust in
// the emulator's CA (REQUESTS_CA_BUNDLE for requests, SSL_CERT_FILE for
// the telemetry uploader) and telemetry off: its uploader is a detached
// process that outlives the command, so what it sends would be a race. The
// first-use version check stays on; a fresh config dir makes it run. Proxy
// variables are set only when proxyURL is not empty; noProxy is NO_PROXY.
func (tp *azTopo) azEnv(configDir, proxyURL, noProxy string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + configDir,
		"LANG=C.UTF-8",
		"AZURE_CONFIG_DIR=" + configDir,
		"AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_OUTPUT=json",
		"REQUESTS_CA_BUNDLE=" + tp.CAFile,
		"SSL_CERT_FILE=" + tp.CAFile,
		"PYTHONDONTWRITEBYTECODE=1",
	}
	if proxyURL != "" {
		env = append(env, "HTTPS_PROXY="+proxyURL, "https_proxy="+proxyURL, "HTTP_PROXY="+proxyURL, "http_proxy="+proxyURL)
	}
	if noProxy != "" {
		env = append(env, "NO_PROXY="+noProxy, "no_proxy="+noProxy)
	}
	return env
}

// azResult is how a command ended.
type azResult struct {
	Stdout, Stderr string
	Code           int // exit status; -1 if killed
	Elapsed        time.Duration
	TimedOut       bool
}

// azRun runs args inside the namespace ns with env, within limit, killing
// its whole process group if it runs over.
func azRun(t *testing.T, ns string, env []string, limit time.Duration, args ...string) azResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	waited, err := startPinned(cmd)
	if err == nil {
		err = <-waited
	}
	r := azResult{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start), TimedOut: ctx.Err() != nil}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	t.Logf("%s: exit %d in %.1fs", strings.Join(args, " "), r.Code, r.Elapsed.Seconds())
	return r
}

// azRequestsSince returns the emulator's requests after the first n.
func (tp *azTopo) azRequestsSince(n int) []azemu.Request {
	reqs := tp.Emu.Requests()
	if n > len(reqs) {
		return nil
	}
	return reqs[n:]
}

// azServices renders requests as "listener:service:status" in order.
func azServices(reqs []azemu.Request) string {
	var s []string
	for _, r := range reqs {
		s = append(s, fmt.Sprintf("%s:%s:%d", r.Listener, r.Service, r.Status))
	}
	return strings.Join(s, " ")
}

// azPolicyDestinations loads an HCL policy and returns its allowed
// destinations as sorted "host:port" strings.
func azPolicyDestinations(t *testing.T, name string, src []byte) []string {
	t.Helper()
	p, diags := policy.Load(name, src)
	if diags.HasErrors() {
		t.Fatalf("%s does not load:\n%s\n%s", name, policy.FormatDiagnostics(diags), src)
	}
	var out []string
	for _, c := range p.Clients() {
		for _, r := range c.Rules {
			for _, h := range r.Hosts {
				for _, port := range r.Ports {
					out = append(out, net.JoinHostPort(h, strconv.Itoa(int(port))))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

var azSourcesLine = regexp.MustCompile(`(?m)^(\s*sources\s*=\s*)\[[^\]\n]*\]`)

// azForWorkload rewrites a recorded policy's client sources to the
// workload's address: the one review step the recorded policy asks for,
// since record's proxy saw the command on loopback.
func azForWorkload(src []byte) []byte {
	return azSourcesLine.ReplaceAll(src, []byte(`${1}["`+azWorkloadIP+`/32"]`))
}
