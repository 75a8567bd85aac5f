//go:build linux

package bench

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A target is what the load generator talks to: the origins directly, or a
// proxy in front of them.
type target struct {
	name string
	addr string // the proxy's host:port; "" for direct
	proc *proc  // nil for direct
	// auth is a Proxy-Authorization field line, CRLF included, that goes
	// with every CONNECT and plain-HTTP request; "" for none.
	auth string
	// connectOnly: the target serves CONNECT and nothing else (the relay).
	connectOnly bool
	// pprof is the address of the target's /debug/pprof/; "" for none.
	pprof string
}

func (t *target) direct() bool { return t.addr == "" }

// proc is a process the harness started, in a process group of its own.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
	log  string
}

// startProc starts argv with stdout and stderr appended to logPath.
func startProc(name, logPath string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitListening polls until addr accepts connections, the process exits, or
// the deadline passes.
func (p *proc) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v); see %s:\n%s", p.name, addr, p.err, p.log, tail(p.log, 20))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not listening on %s after %v; see %s:\n%s", p.name, addr, timeout, p.log, tail(p.log, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM to the process group, then SIGKILL if it is still
// there after grace.
func (p *proc) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Helpers (Squid's log daemon) share the group; make sure none is left.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Ports of the proxies inside the benchmark's network namespace, which has
// nothing else listening.
const (
	azegressPort    = 3128
	squidPort       = 3129
	identityPort    = 3130 // azegress-identity
	tinyproxyPort   = 8888
	metricsPort     = 9464
	beforePort      = 3131 // azegress-before
	beforeMetrics   = 9465
	learnPort       = 3133 // azegress in learning mode
	learnMetrics    = 9466
	identityMetrics = 9467 // azegress-identity's /debug/pprof/
)

// benchRules is the benchmark policy's rule set: about 1,000 rules, exact
// names and wildcards mixed, of which two allow the origins (one exact, one
// wildcard). Every proxy gets the same list in its own syntax.
type benchRule struct {
	name     string
	pattern  string // exact name or "*.domain"
	ports    []int
	loopback bool // the rule may reach 127.0.0.0/8 (the origins)
}

func benchRules(n int) []benchRule {
	var rs []benchRule
	for i := 0; len(rs) < n-2; i++ {
		switch i % 4 {
		case 0:
			rs = append(rs, benchRule{fmt.Sprintf("kv-%d", i), fmt.Sprintf("kv-app%04d.vault.azure.net", i), []int{443}, false})
		case 1:
			rs = append(rs, benchRule{fmt.Sprintf("blob-%d", i), fmt.Sprintf("*.tenant%04d.blob.core.windows.net", i), []int{443}, false})
		case 2:
			rs = append(rs, benchRule{fmt.Sprintf("api-%d", i), fmt.Sprintf("api%04d.region%d.example.com", i, i%40), []int{443, 8443}, false})
		case 3:
			rs = append(rs, benchRule{fmt.Sprintf("cdn-%d", i), fmt.Sprintf("*.edge%04d.example.net", i), []int{443}, false})
		}
	}
	ports := []int{echoPort, sourcePort, httpPort}
	// The rules that matter sit in the middle of the file, not first.
	mid := len(rs) / 2
	mine := []benchRule{
		{"bench-origin", originHost, ports, true},
		{"bench-cdn", "*.cdn.azbench.example", ports, true},
	}
	return append(rs[:mid], append(mine, rs[mid:]...)...)
}

func azegressPolicy(rules []benchRule) string {
	return azegressPolicyWith("", "  sources = [\"127.0.0.0/8\"]\n", rules)
}

// azegressIdentityPolicy is azegressPolicy's rules for the managed identity
// of the tenant at authority instead of for an address range.
func azegressIdentityPolicy(rules []benchRule, authority string) string {
	entra := fmt.Sprintf("entra {\n  tenant_id = %q\n  audiences = [%q]\n  authority = %q\n}\n\n", benchTenant, benchAudience, authority)
	return azegressPolicyWith(entra, fmt.Sprintf("  identity {\n    object_ids = [%q]\n  }\n", benchOID), rules)
}

// azegressPolicyWith writes the client block "bench" with rules after
// head, selected by selector (sources or an identity block).
func azegressPolicyWith(head, selector string, rules []benchRule) string {
	var b strings.Builder
	b.WriteString("# azegress benchmark policy, written by azegress-bench.\n")
	b.WriteString(head + "client \"bench\" {\n" + selector)
	for _, r := range rules {
		fmt.Fprintf(&b, "  allow %q {\n    hosts = [%q]\n    ports = [%s]\n", r.name, r.pattern, joinInts(r.ports, ", "))
		if r.loopback {
			b.WriteString("    addresses = [\"127.0.0.0/8\"]\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, sep)
}

// hostsFile maps the benchmark's names to the origins' address. It becomes
// /etc/hosts inside the namespace (ip netns exec bind-mounts it), so every
// proxy resolves the names the way it normally does.
func hostsFile() string {
	return fmt.Sprintf("127.0.0.1 localhost\n127.0.0.1 %s\n127.0.0.1 %s\n", originHost, wildHost)
}

// startAzegress runs bin as target name on port, with its metrics and
// /debug/pprof/ on metrics. extra are more serve flags.
func startAzegress(name, dir, bin, policyPath string, port, metrics int, extra ...string) (*target, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	maddr := fmt.Sprintf("127.0.0.1:%d", metrics)
	argv := append([]string{bin, "serve", "-policy", policyPath, "-listen", addr, "-metrics", maddr, "-pprof"}, extra...)
	p, err := startProc(name, filepath.Join(dir, name+".log"), argv...)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: name, addr: addr, proc: p, pprof: maddr}, nil
}

// startAzegressIdentity runs azegress with azegressIdentityPolicy for
// idp's tenant; every CONNECT and request carries the identity's token as
// curl, Go and Python send it (Basic, the token as password). It returns
// once a tunnel has gone through: the keys have loaded and the proxy has
// verified the token, which it then finds in its cache.
func startAzegressIdentity(dir, bin string, rules []benchRule, idp *benchIdP) (*target, error) {
	token, err := idp.token()
	if err != nil {
		return nil, err
	}
	policyPath := filepath.Join(dir, "policy-identity.hcl")
	if err := os.WriteFile(policyPath, []byte(azegressIdentityPolicy(rules, idp.base)), 0o644); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", identityPort)
	maddr := fmt.Sprintf("127.0.0.1:%d", identityMetrics)
	p, err := startProc("azegress-identity", filepath.Join(dir, "azegress-identity.log"), bin, "serve",
		"-policy", policyPath, "-listen", addr, "-metrics", maddr, "-pprof")
	if err != nil {
		return nil, err
	}
	t := &target{name: "azegress-identity", addr: addr, proc: p, pprof: maddr,
		auth: "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("azegress:"+token)) + "\r\n"}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	// Until the keys have loaded the proxy answers 503.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, _, err := t.open(originHost, echoPort, 5*time.Second)
		if err == nil {
			c.Close()
			return t, nil
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			return nil, fmt.Errorf("azegress-identity: no tunnel with the token after 20s: %w; see %s:\n%s", err, p.log, tail(p.log, 20))
		}
	}
}

// squidConf allows CONNECT and plain HTTP from loopback to the benchmark
// names on the origins' ports, with the same rule list as azegress as one
// dstdomain ACL, the access log on, and no cache.
func squidConf(dir string, rules []benchRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Squid benchmark configuration, written by azegress-bench.
http_port 127.0.0.1:%d
workers 1
pid_filename %[2]s/squid.pid
cache_log %[2]s/squid-cache.log
access_log daemon:%[2]s/squid-access.log squid
cache_store_log none
coredump_dir %[2]s
hosts_file %[2]s/hosts
dns_nameservers 127.0.0.1
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
visible_hostname azbench
max_filedescriptors 20000
client_persistent_connections on
server_persistent_connections on
forwarded_for delete
via off
acl CONNECT method CONNECT
acl bench_clients src 127.0.0.0/8
acl bench_ports port %s
`, squidPort, dir, joinInts([]int{echoPort, sourcePort, httpPort}, " "))
	for _, r := range rules {
		name := r.pattern
		if strings.HasPrefix(name, "*.") {
			name = name[1:] // Squid's ".example.com" (it also matches the apex)
		}
		fmt.Fprintf(&b, "acl bench_dst dstdomain %s\n", name)
	}
	b.WriteString(`http_access deny !bench_ports
http_access allow bench_clients bench_dst
http_access deny all
`)
	return b.String()
}

func startSquid(dir string, rules []benchRule) (*target, error) {
	conf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(conf, []byte(squidConf(dir, rules)), 0o644); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", squidPort)
	p, err := startProc("squid", filepath.Join(dir, "squid.stderr"), "squid", "-N", "-f", conf)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 30*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: "squid", addr: addr, proc: p}, nil
}

// tinyproxyConf is Debian's stock configuration (LogLevel Info: one line
// per connection) with the same rule list as a default-deny fnmatch filter.
func tinyproxyConf(dir string) string {
	return fmt.Sprintf(`# tinyproxy benchmark configuration, written by azegress-bench.
User tinyproxy
Group tinyproxy
Port %d
Listen 127.0.0.1
Timeout 600
LogFile "%[2]s/tinyproxy.log"
LogLevel Info
PidFile "%[2]s/tinyproxy.pid"
MaxClients 12000
Allow 127.0.0.0/8
DisableViaHeader Yes
ConnectPort %d
ConnectPort %d
Filter "%[2]s/tinyproxy.filter"
FilterType fnmatch
FilterDefaultDeny Yes
`, tinyproxyPort, dir, echoPort, sourcePort)
}

func startTinyproxy(dir string, rules []benchRule) (*target, error) {
	var filter strings.Builder
	for _, r := range rules {
		filter.WriteString(r.pattern + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "tinyproxy.filter"), []byte(filter.String()), 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(conf, []byte(tinyproxyConf(dir)), 0o644); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", tinyproxyPort)
	p, err := startProc("tinyproxy", filepath.Join(dir, "tinyproxy.stderr"), "tinyproxy", "-d", "-c", conf)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: "tinyproxy", addr: addr, proc: p}, nil
}

// startOrigin runs the origins in a process of their own, on every address
// of the namespace: 127.0.0.1 and the learning-mode row's learnAddr.
func startOrigin(dir, self string) (*proc, error) {
	p, err := startProc("origin", filepath.Join(dir, "origin.log"), self, "origin", "-ip", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	for _, port := range []int{echoPort, sourcePort, httpPort} {
		if err := p.waitListening(fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			p.stop(5 * time.Second)
			return nil, err
		}
	}
	return p, nil
}

// procStatus reads VmRSS (bytes) and the number of open fds of pid.
func procStatus(pid int) (rss int64, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			rss = kb << 10
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, len(ents), nil
}
