//go:build linux

// Package bench is azegress-bench: a load generator that measures azegress
// side by side with a direct connection, Squid and tinyproxy, on one machine
// in one run, and writes BENCHMARKS.md. A second azegress, azegress-identity,
// selects its client block by a managed identity's token, for the cost of
// identity-keyed selection.
//
// Everything runs in a network namespace of its own (so the proxies resolve
// the benchmark's names through a hosts file of its own, and nothing else on
// the machine shares its loopback ports). Three kinds of process take part,
// each with its own RLIMIT_NOFILE: the load generator (this process, which
// also serves azegress-identity's stand-in tenant), the origins (this
// binary's "origin" command) and the proxy under test.
package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/azegress/azegress/proxy"
)

const usage = `azegress-bench: measures azegress against a direct connection, Squid and tinyproxy.

Usage:
  azegress-bench run [-azegress BIN] [-azegress-before BIN] [-out BENCHMARKS.md] [-rounds N]
                     [-quick | -issue15] [-targets LIST] [-profiles DIR] [-learn N]
  azegress-bench origin     (the origins; run by "run")
  azegress-bench relay      (a bare Go CONNECT relay, the control; run by "run")
  azegress-bench evloop     (the same with an epoll loop per core, no goroutine per connection; run by "run")
  azegress-bench load [-proxy ADDR] [-what setup|bulk|rtt|http] [-dur D]
                            (one measurement against a running proxy, to profile it)

"run" needs root: it creates a network namespace. BENCH_ROUNDS and
BENCH_QUICK=1 in the environment set -rounds and -quick.
`

// Main is the whole program; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runMain(args[1:], stdout, stderr)
	case "inside":
		return insideMain(args[1:], stdout, stderr)
	case "origin":
		return originMain(args[1:], stdout, stderr)
	case "relay":
		return relayMain(args[1:], stdout, stderr)
	case "evloop":
		return evloopMain(args[1:], stdout, stderr)
	case "load":
		return loadMain(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "azegress-bench: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// config is what one run measures, and for how long.
type config struct {
	Azegress string
	// AzegressBefore is a second azegress binary, the target
	// azegress-before, measured alternately with Azegress in the same
	// sitting (for an A/B of a change); "" for none.
	AzegressBefore string
	// Engine is proxy/internal/evloop/benchrelay's binary, the target
	// engine (a bare relay on azegress's event-loop engine); "" for none.
	Engine string
	// Issue15 is a short run of issue 15's rows only (bench-quick).
	Issue15    bool
	ProfileDir string // where the CPU profiles go; "" for none
	RTTRounds  int    // short alternating rounds of the round trip
	RTTWindow  time.Duration
	SysOps     int // exchanges under strace and for the context switches
	Learn      int // distinct destinations of the learning-mode row (0: none)
	Rounds     int
	Quick      bool
	Targets    []string
	Workers    int // concurrent clients for setup and plain HTTP
	Warm       time.Duration
	SetupDur   time.Duration
	BulkDur    time.Duration
	HTTPDur    time.Duration
	ReloadDur  time.Duration
	IdleLevels []int
	Rules      int
	Keep       bool // keep the proxies' logs and configurations
}

var allTargets = []string{"direct", "relay", "evloop", "engine", "azegress", "azegress-before", "azegress-identity", "squid", "tinyproxy"}

// issue15Targets are the targets of an -issue15 run (azegress-before only
// with -azegress-before).
var issue15Targets = []string{"direct", "relay", "evloop", "engine", "azegress", "azegress-before", "squid"}

// goBenchPkgs are the packages whose Go benchmarks a run includes.
var goBenchPkgs = []string{"./policy/...", "./proxy", "./identity"}

func (c *config) flags(fs *flag.FlagSet) {
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	quick := os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0"
	fs.StringVar(&c.Azegress, "azegress", "bin/azegress", "azegress `binary` to measure")
	fs.StringVar(&c.AzegressBefore, "azegress-before", "", "a second azegress `binary`, measured as target azegress-before alternately with -azegress in the same sitting (an A/B of a change)")
	fs.StringVar(&c.Engine, "engine", "", "the event-loop engine's bare relay `binary` (go build ./proxy/internal/evloop/benchrelay), measured as target engine")
	fs.BoolVar(&c.Issue15, "issue15", false, "only issue 15's rows, short (make bench-quick): direct, relay, azegress(-before), squid; no Go benchmarks, no reload, 2,000 idle tunnels")
	fs.StringVar(&c.ProfileDir, "profiles", "bench-out", "`directory` for azegress's CPU profiles under load (empty: no profiles)")
	fs.IntVar(&c.Learn, "learn", 10000, "distinct destinations of the learning-mode row (0: skip it)")
	fs.IntVar(&c.Rounds, "rounds", rounds, "rounds of the throughput and latency measurements (medians are reported; 0: only idle tunnels); default BENCH_ROUNDS or 5")
	fs.BoolVar(&c.Quick, "quick", quick, "a short run (1 round unless -rounds, short windows, 1,000/2,000 idle tunnels); default BENCH_QUICK")
	fs.Func("idle", "comma-separated idle-tunnel levels (default 5000,10000; quick 1000,2000)", func(s string) error {
		c.IdleLevels = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return fmt.Errorf("idle level %q is not a positive number", f)
			}
			c.IdleLevels = append(c.IdleLevels, n)
		}
		return nil
	})
	fs.BoolVar(&c.Keep, "keep", false, "keep the proxies' configurations and logs (a directory under $TMPDIR)")
	fs.Func("targets", "comma-separated subset of "+strings.Join(allTargets, ","), func(s string) error {
		c.Targets = nil
		for _, t := range strings.Split(s, ",") {
			if !slices.Contains(allTargets, t) {
				return fmt.Errorf("unknown target %q; choose from %s", t, strings.Join(allTargets, ","))
			}
			c.Targets = append(c.Targets, t)
		}
		return nil
	})
}

// finish fills in the durations once flags are parsed.
func (c *config) finish(roundsSet bool) {
	if c.Targets == nil {
		c.Targets = allTargets
		if c.Issue15 {
			c.Targets = issue15Targets
		}
	}
	if c.AzegressBefore == "" {
		c.Targets = slices.DeleteFunc(slices.Clone(c.Targets), func(s string) bool { return s == "azegress-before" })
	}
	if c.Engine == "" {
		c.Targets = slices.DeleteFunc(slices.Clone(c.Targets), func(s string) bool { return s == "engine" })
	}
	c.Workers, c.Rules = 32, 1000
	c.Warm, c.SetupDur, c.BulkDur, c.HTTPDur, c.ReloadDur = 300*time.Millisecond, 3*time.Second, 2*time.Second, 3*time.Second, 3*time.Second
	c.RTTRounds, c.RTTWindow, c.SysOps = 21, 300*time.Millisecond, 2000
	idle := c.IdleLevels
	c.IdleLevels = []int{5000, 10000}
	if c.Issue15 {
		if !roundsSet && os.Getenv("BENCH_ROUNDS") == "" {
			c.Rounds = 3
		}
		c.Warm, c.SetupDur, c.BulkDur, c.HTTPDur = 200*time.Millisecond, 2*time.Second, time.Second, 2*time.Second
		c.RTTRounds, c.RTTWindow, c.SysOps = 15, 200*time.Millisecond, 1000
		c.IdleLevels = []int{2000}
	}
	if c.Quick {
		if !roundsSet && os.Getenv("BENCH_ROUNDS") == "" {
			c.Rounds = 1
		}
		c.Warm, c.SetupDur, c.BulkDur, c.HTTPDur, c.ReloadDur = 100*time.Millisecond, time.Second, time.Second, time.Second, time.Second
		c.IdleLevels = []int{1000, 2000}
		c.RTTRounds, c.RTTWindow, c.SysOps = 9, 200*time.Millisecond, 500
	}
	if idle != nil {
		c.IdleLevels = idle
	}
}

// runMain is "run": Go benchmarks, then the network measurements inside a
// namespace, then BENCHMARKS.md.
func runMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.flags(fs)
	out := fs.String("out", "BENCHMARKS.md", "report `file` to write (text below its hand-written marker is kept)")
	goBin := fs.String("go", "go", "go `command`, to run the Go benchmarks of "+strings.Join(goBenchPkgs, " ")+" (empty: skip them)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	roundsSet := false
	fs.Visit(func(f *flag.Flag) { roundsSet = roundsSet || f.Name == "rounds" })
	cfg.finish(roundsSet)
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "azegress-bench: run needs root, to create a network namespace with its own hosts file and loopback ports; run `make bench` as root")
		return 1
	}
	if _, err := exec.LookPath("ip"); err != nil {
		fmt.Fprintln(stderr, "azegress-bench: the ip command (Debian iproute2) is missing; apt-get install iproute2")
		return 1
	}
	for _, tool := range []string{"squid", "tinyproxy"} {
		if slices.Contains(cfg.Targets, tool) {
			if _, err := exec.LookPath(tool); err != nil {
				fmt.Fprintf(stderr, "azegress-bench: %s is not installed (make bench-deps installs it); measuring without it\n", tool)
				cfg.Targets = slices.DeleteFunc(cfg.Targets, func(s string) bool { return s == tool })
			}
		}
	}
	azBin, err := filepath.Abs(cfg.Azegress)
	if err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v\n", err)
		return 1
	}
	cfg.Azegress = azBin
	if _, err := os.Stat(azBin); err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v (build it first: make build)\n", err)
		return 1
	}
	if cfg.Engine != "" {
		if cfg.Engine, err = filepath.Abs(cfg.Engine); err == nil {
			_, err = os.Stat(cfg.Engine)
		}
		if err != nil {
			fmt.Fprintf(stderr, "azegress-bench: -engine: %v (go build -o bin/azegress-engine-relay ./proxy/internal/evloop/benchrelay)\n", err)
			return 1
		}
	}
	if cfg.AzegressBefore != "" {
		if cfg.AzegressBefore, err = filepath.Abs(cfg.AzegressBefore); err == nil {
			_, err = os.Stat(cfg.AzegressBefore)
		}
		if err != nil {
			fmt.Fprintf(stderr, "azegress-bench: -azegress-before: %v (build the other version into its own file first, e.g. git worktree + go build -o /tmp/azegress-before ./cmd/azegress)\n", err)
			return 1
		}
	}
	profShown := cfg.ProfileDir
	if cfg.ProfileDir != "" {
		if cfg.ProfileDir, err = filepath.Abs(cfg.ProfileDir); err == nil {
			err = os.MkdirAll(cfg.ProfileDir, 0o755)
		}
		if err != nil {
			fmt.Fprintf(stderr, "azegress-bench: -profiles: %v\n", err)
			return 1
		}
	}

	rep := &report{Config: cfg, Machine: machine(), Started: time.Now(), ProfileDir: profShown}
	if *goBin != "" && !cfg.Issue15 {
		fmt.Fprintln(stdout, "== Go benchmarks: "+strings.Join(goBenchPkgs, " "))
		rep.GoBench, rep.GoBenchErr = runGoBench(*goBin, cfg.Quick, stdout)
	}

	res, err := runInNetns(cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v\n", err)
		return 1
	}
	rep.Results = res
	rep.Profiles = pprofTops(*goBin, res, stderr)
	rep.Finished = time.Now()
	rep.Machine.LoadEnd = loadavg()
	text := rep.render()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, text)
	if err := writeReport(*out, text); err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", *out)
	return 0
}

// pprofTops runs `go tool pprof -top` on each profile the run took.
func pprofTops(goBin string, res *results, stderr io.Writer) map[string]pprofTop {
	tops := map[string]pprofTop{}
	if goBin == "" {
		goBin = "go"
	}
	top := func(path string, extra ...string) (pprofTop, error) {
		args := append([]string{"tool", "pprof", "-top", "-nodecount=12"}, extra...)
		out, err := exec.Command(goBin, append(args, path)...).Output()
		if err != nil {
			return pprofTop{}, err
		}
		return parsePprofTop(string(out))
	}
	for key, path := range res.ProfileRaw {
		flat, err := top(path)
		if err == nil {
			var cum pprofTop
			cum, err = top(path, "-cum")
			flat.ByCum = cum.Funcs
			tops[key] = flat
		}
		if err != nil {
			fmt.Fprintf(stderr, "azegress-bench: go tool pprof -top %s: %v\n", path, err)
			res.ProfileErr[key] = fmt.Sprintf("go tool pprof -top %s: %v", path, err)
		}
	}
	return tops
}

// runGoBench runs the Go benchmarks and returns their output.
func runGoBench(goBin string, quick bool, stdout io.Writer) (string, string) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1"}
	if quick {
		args = append(args, "-benchtime", "100ms")
	}
	args = append(args, goBenchPkgs...)
	cmd := exec.Command(goBin, args...)
	var buf strings.Builder
	cmd.Stdout = io.MultiWriter(&buf, stdout)
	cmd.Stderr = io.MultiWriter(&buf, stdout)
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Sprintf("go %s: %v", strings.Join(args, " "), err)
	}
	return buf.String(), ""
}

// runInNetns creates a network namespace whose /etc/hosts names the origins,
// runs "inside" in it, and removes the namespace, whatever happens.
func runInNetns(cfg config, stdout, stderr io.Writer) (*results, error) {
	name := fmt.Sprintf("azbench-%d", os.Getpid())
	etc := filepath.Join("/etc/netns", name)
	cleanup := func() {
		_ = exec.Command("ip", "netns", "del", name).Run()
		_ = os.RemoveAll(etc)
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	defer cleanup()
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hostsFile()), 0o644); err != nil {
		return nil, err
	}
	// Keep DNS inside the namespace: nothing here should need it.
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	resFile, err := os.CreateTemp("", "azbench-results-*.json")
	if err != nil {
		return nil, err
	}
	resFile.Close()
	defer os.Remove(resFile.Name())

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", name, self, "inside", "-config", string(cfgJSON), "-results", resFile.Name())
	cmd.Stdout, cmd.Stderr = stdout, stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err = <-waitErr:
	case s := <-sigs:
		_ = cmd.Process.Signal(s)
		err = <-waitErr
		if err == nil {
			err = fmt.Errorf("interrupted by %v", s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("measurements failed: %w", err)
	}
	b, err := os.ReadFile(resFile.Name())
	if err != nil {
		return nil, err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	return &res, nil
}

// results is everything measured inside the namespace.
type results struct {
	Targets []string
	Rounds  map[string][]roundResult // by target, one per round
	Idle    map[string]*idleResult
	IdleErr map[string]string
	Reload  *reloadResult
	Notes   []string
	LogInfo string // what azegress logged, as a check that logging was on

	// Issue 15.
	RTT        map[string][]rttSample          // by target, one per short round
	RTTErr     map[string]string               //
	Sys        map[string]map[string]sysResult // by target and path
	SysErr     map[string]string               // by "target/path"
	ProfileRaw map[string]string               // profile file by "target under load"
	ProfileErr map[string]string               //
	Learn      *learnResult                    //
	LearnErr   string                          //
}

type roundResult struct {
	Order    int // position of the target in this round
	Setup    setupResult
	Bulk1    float64
	Bulk8    float64
	HTTP     httpResult
	Problems []string

	// CPU time per tunnel setup, per MB of 1-tunnel bulk, per HTTP request.
	SetupCPU, Bulk1CPU, HTTPCPU cpuUse
}

// insideMain runs in the namespace.
func insideMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgJSON := fs.String("config", "", "")
	resPath := fs.String("results", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg config
	if err := json.Unmarshal([]byte(*cfgJSON), &cfg); err != nil {
		fmt.Fprintf(stderr, "azegress-bench inside: %v\n", err)
		return 2
	}
	res, err := measureAll(cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v\n", err)
		return 1
	}
	b, err := json.Marshal(res)
	if err == nil {
		err = os.WriteFile(*resPath, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "azegress-bench: %v\n", err)
		return 1
	}
	return 0
}

func measureAll(cfg config, stdout io.Writer) (*results, error) {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	// This namespace's own sysctl: a wide ephemeral range for the setup
	// loops' short connections (TIME_WAIT reuse is on for loopback).
	_ = os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("10000 65000"), 0o644)
	nofile := proxy.RaiseFileLimit()

	dir, err := os.MkdirTemp("", "azbench-")
	if err != nil {
		return nil, err
	}
	// The proxies drop privileges (Squid to proxy, tinyproxy to tinyproxy)
	// and write their logs here.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	keep := cfg.Keep
	defer func() {
		if keep {
			fmt.Fprintf(stdout, "logs and configurations kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hostsFile()), 0o644); err != nil {
		return nil, err
	}
	rules := benchRules(cfg.Rules)
	policyPath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(policyPath, []byte(azegressPolicy(rules)), 0o644); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	origin, err := startOrigin(dir, self)
	if err != nil {
		keep = true
		return nil, err
	}
	defer origin.stop(5 * time.Second)

	res := &results{Targets: cfg.Targets, Rounds: map[string][]roundResult{}, Idle: map[string]*idleResult{}, IdleErr: map[string]string{}}
	res.Notes = append(res.Notes, fmt.Sprintf("RLIMIT_NOFILE of the load generator, the origins and each proxy: %d (soft raised to hard)", nofile))

	var idp *benchIdP
	if slices.Contains(cfg.Targets, "azegress-identity") {
		if idp, err = startIdP(); err != nil {
			return nil, err
		}
		defer idp.close()
	}

	start := func(name string) (*target, error) {
		switch name {
		case "direct":
			return &target{name: "direct"}, nil
		case "azegress":
			return startAzegress(name, dir, cfg.Azegress, policyPath, azegressPort, metricsPort)
		case "azegress-before":
			return startAzegress(name, dir, cfg.AzegressBefore, policyPath, beforePort, beforeMetrics)
		case "relay":
			return startRelay(dir, self)
		case "evloop":
			return startEvloop(dir, self)
		case "engine":
			return startEngine(dir, cfg.Engine)
		case "azegress-identity":
			return startAzegressIdentity(dir, cfg.Azegress, rules, idp)
		case "squid":
			return startSquid(dir, rules)
		case "tinyproxy":
			return startTinyproxy(dir, rules)
		}
		return nil, fmt.Errorf("unknown target %q", name)
	}

	// Throughput and latency: every target runs, rounds rotate the order.
	targets := map[string]*target{}
	for _, name := range cfg.Targets {
		t, err := start(name)
		if err != nil {
			keep = true
			stopAll(targets)
			return nil, err
		}
		targets[name] = t
	}
	for r := range cfg.Rounds {
		order := rotate(cfg.Targets, r)
		fmt.Fprintf(stdout, "== round %d/%d: %s\n", r+1, cfg.Rounds, strings.Join(order, ", "))
		for i, name := range order {
			rr := measureRound(targets[name], cfg, origin)
			rr.Order = i
			res.Rounds[name] = append(res.Rounds[name], rr)
			fmt.Fprintf(stdout, "  %-16s setup %7.0f/s p50 %v p99 %v | bulk %6.0f / %6.0f MB/s | http %7.0f/s%s\n",
				name, rr.Setup.Rate, rr.Setup.P50.Round(time.Microsecond), rr.Setup.P99.Round(time.Microsecond),
				rr.Bulk1, rr.Bulk8, rr.HTTP.Rate, problems(rr.Problems))
		}
	}
	if cfg.Rounds > 0 {
		measure15(cfg, targets, res, stdout)
	}
	if t := targets["azegress"]; t != nil && cfg.Rounds > 0 && !cfg.Issue15 {
		fmt.Fprintln(stdout, "== azegress: policy reloads under load")
		rl, err := measureReload(t, cfg, policyPath)
		if err != nil {
			res.Notes = append(res.Notes, "reload under load: "+err.Error())
		}
		res.Reload = rl
		res.LogInfo = logInfo(t.proc.log)
	}
	stopAll(targets)

	// Idle tunnels: each proxy fresh, alone. An idle tunnel with identity
	// is the same tunnel.
	for _, name := range cfg.Targets {
		if name == "direct" || name == "azegress-identity" || name == "relay" || name == "evloop" || name == "engine" {
			continue
		}
		fmt.Fprintf(stdout, "== %s: idle tunnels %s\n", name, joinInts(cfg.IdleLevels, ", "))
		t, err := start(name)
		if err != nil {
			res.IdleErr[name] = err.Error()
			continue
		}
		ir, err := measureIdle(t, cfg.IdleLevels)
		t.proc.stop(10 * time.Second)
		if err != nil {
			res.IdleErr[name] = err.Error()
			fmt.Fprintf(stdout, "  %s: %v\n", name, err)
			continue
		}
		res.Idle[name] = &ir
		for _, l := range ir.Levels {
			fmt.Fprintf(stdout, "  %d: opened %d, RSS %.1f MiB (+%.1f KiB per tunnel), %d fds\n",
				l.Want, l.Opened, float64(l.RSS)/(1<<20), l.PerKiB, l.FDs)
		}
		fmt.Fprintf(stdout, "  held %d at the end, %d CONNECTs failed%s; fds back to baseline: %v\n", ir.Held, ir.Failed, firstErr(ir.FirstErr), ir.Released)
	}
	if cfg.Learn > 0 && slices.Contains(cfg.Targets, "azegress") {
		fmt.Fprintf(stdout, "== azegress: learning mode, %d distinct destinations\n", cfg.Learn)
		if res.Learn, err = measureLearn(dir, cfg.Azegress, rules, cfg.Learn, cfg.Workers, origin); err != nil {
			res.LearnErr = err.Error()
			fmt.Fprintf(stdout, "  %v\n", err)
		} else {
			fmt.Fprintf(stdout, "  %d opened, %d failed; proxy CPU per tunnel %v (allowed name: %v); RSS %.1f -> %.1f MiB\n", res.Learn.Opened, res.Learn.Failed,
				res.Learn.CPU.Proxy, res.Learn.AllowedCPU.Proxy, float64(res.Learn.BaseRSS)/(1<<20), float64(res.Learn.RSS)/(1<<20))
		}
	}
	return res, nil
}

// measure15 runs issue 15's measurements on the running targets: round
// trips in short alternating rounds, then (untimed) syscalls and context
// switches per exchange, then CPU profiles of azegress under load.
func measure15(cfg config, targets map[string]*target, res *results, stdout io.Writer) {
	var rttNames []string
	for _, name := range cfg.Targets {
		if name != "azegress-identity" { // identity plays no part in an open tunnel
			rttNames = append(rttNames, name)
		}
	}
	fmt.Fprintf(stdout, "== round trips: %d rounds of %v, alternating\n", cfg.RTTRounds, cfg.RTTWindow)
	res.RTT, res.RTTErr = measureRTTRounds(targets, rttNames, cfg.RTTRounds, cfg.RTTWindow, stdout)

	res.Sys, res.SysErr = map[string]map[string]sysResult{}, map[string]string{}
	sysDir, err := os.MkdirTemp("", "azbench-strace-")
	if err != nil {
		res.Notes = append(res.Notes, "strace: "+err.Error())
		return
	}
	defer os.RemoveAll(sysDir)
	for _, name := range cfg.Targets {
		t := targets[name]
		if t.proc == nil || name == "tinyproxy" {
			continue
		}
		fmt.Fprintf(stdout, "== %s: syscalls and context switches per exchange (%d each)\n", name, cfg.SysOps)
		for _, path := range sysPaths {
			if path == "http" && t.connectOnly || path == "rtt" && name == "azegress-identity" {
				continue
			}
			sr, err := measureSys(t, path, cfg.SysOps, sysDir)
			if err != nil {
				res.SysErr[name+"/"+path] = err.Error()
				fmt.Fprintf(stdout, "  %s: %v\n", path, err)
				continue
			}
			if res.Sys[name] == nil {
				res.Sys[name] = map[string]sysResult{}
			}
			res.Sys[name][path] = sr
			fmt.Fprintf(stdout, "  %-5s %.2f syscalls, %.2f context switches per exchange%s\n", path, sr.TotalOp, sr.CtxPerOp, problems(nonEmpty(sr.StraceErr)))
		}
	}

	if cfg.ProfileDir == "" {
		return
	}
	res.ProfileRaw, res.ProfileErr = map[string]string{}, map[string]string{}
	for _, name := range cfg.Targets {
		t := targets[name]
		if t.pprof == "" {
			continue
		}
		loads := profileLoads(t, cfg.Workers)
		for _, load := range sysPaths {
			if load == "rtt" && name == "azegress-identity" { // identity plays no part in an open tunnel
				continue
			}
			key := name + " under " + load
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%s.pprof", name, load))
			fmt.Fprintf(stdout, "== CPU profile: %s -> %s\n", key, path)
			if err := profileUnder(t, profileSecs(cfg), path, loads[load]); err != nil {
				res.ProfileErr[key] = err.Error()
				continue
			}
			res.ProfileRaw[key] = path
		}
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func problems(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return " | " + strings.Join(p, "; ")
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

func stopAll(ts map[string]*target) {
	for _, t := range ts {
		if t.proc != nil {
			t.proc.stop(10 * time.Second)
		}
	}
}

func rotate(s []string, r int) []string {
	n := len(s)
	out := make([]string, n)
	for i := range s {
		out[i] = s[(i+r)%n]
	}
	return out
}

func measureRound(t *target, cfg config, origin *proc) roundResult {
	var rr roundResult
	m := cpuMeter{proxy: t.proc, origin: origin}
	c0 := m.sample()
	rr.Setup = measureSetup(t, cfg.Workers, cfg.SetupDur)
	rr.SetupCPU = m.per(c0, float64(rr.Setup.N+rr.Setup.Errors))
	if rr.Setup.Errors > 0 {
		rr.Problems = append(rr.Problems, fmt.Sprintf("%d setups failed (%s)", rr.Setup.Errors, rr.Setup.FirstErr))
	}
	// Credentials are checked per CONNECT and per request: bulk and round
	// trips in an open tunnel are the same with identity, and not measured.
	if t.auth == "" {
		var err error
		if rr.Bulk1, rr.Bulk1CPU, err = measureBulk(t, 1, cfg.Warm, cfg.BulkDur, m); err != nil {
			rr.Problems = append(rr.Problems, "bulk 1: "+err.Error())
		}
		if rr.Bulk8, _, err = measureBulk(t, 8, cfg.Warm, cfg.BulkDur, m); err != nil {
			rr.Problems = append(rr.Problems, "bulk 8: "+err.Error())
		}
	}
	if t.connectOnly {
		return rr
	}
	c0 = m.sample()
	rr.HTTP = measureHTTP(t, cfg.Workers, cfg.HTTPDur)
	rr.HTTPCPU = m.per(c0, float64(rr.HTTP.N+rr.HTTP.Errors))
	if rr.HTTP.Errors > 0 {
		rr.Problems = append(rr.Problems, fmt.Sprintf("%d HTTP requests failed (%s)", rr.HTTP.Errors, rr.HTTP.FirstErr))
	}
	return rr
}

// reloadResult is azegress setting up tunnels while its policy is reloaded.
type reloadResult struct {
	Setup        setupResult // the 1,000-rule policy reloaded every 100 ms
	Reloads      int         // "policy reloaded" records logged meanwhile
	Rejected     int
	Big          setupResult     // while a 100,000-rule policy is reloaded
	BigReloads   []time.Duration // SIGHUP to its "policy reloaded" record
	BigRuleCount int
}

// measureReload runs the setup load on azegress twice: while SIGHUP reloads
// the benchmark policy every 100 ms, and while a 100,000-rule policy is
// reloaded back to back; it counts failed tunnels and times each big reload.
func measureReload(t *target, cfg config, policyPath string) (*reloadResult, error) {
	var rl reloadResult
	pid := t.proc.pid()
	const reloaded, rejected = `"msg":"policy reloaded"`, `"msg":"policy reload rejected`
	lt := newLogTail(t.proc.log, reloaded, rejected)
	before, rejBefore := lt.count(reloaded), lt.count(rejected)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				_ = syscall.Kill(pid, syscall.SIGHUP)
			}
		}
	}()
	rl.Setup = measureSetup(t, cfg.Workers, cfg.ReloadDur)
	close(stop)
	<-done
	// The last reloads may still be running.
	lt.wait(reloaded, before+1, 5*time.Second)
	rl.Reloads = lt.count(reloaded) - before
	rl.Rejected = lt.count(rejected) - rejBefore
	fmt.Fprintf(os.Stdout, "  1,000 rules every 100 ms: %d tunnels, %d failed, %d reloads\n", rl.Setup.N, rl.Setup.Errors, rl.Reloads)

	// A 100,000-rule policy: the same two origin rules and 99,998 others.
	big := benchRules(100_000)
	rl.BigRuleCount = len(big)
	orig, err := os.ReadFile(policyPath)
	if err != nil {
		return &rl, err
	}
	defer os.WriteFile(policyPath, orig, 0o644)
	tmp := policyPath + ".new"
	if err := os.WriteFile(tmp, []byte(azegressPolicy(big)), 0o644); err != nil {
		return &rl, err
	}
	if err := os.Rename(tmp, policyPath); err != nil {
		return &rl, err
	}
	stop, done = make(chan struct{}), make(chan struct{})
	var bigErr error
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := lt.count(reloaded)
			t0 := time.Now()
			_ = syscall.Kill(pid, syscall.SIGHUP)
			if !lt.wait(reloaded, n+1, 30*time.Second) {
				bigErr = errors.New("a 100,000-rule reload did not finish within 30 s")
				return
			}
			rl.BigReloads = append(rl.BigReloads, time.Since(t0))
		}
	}()
	rl.Big = measureSetup(t, cfg.Workers, 2*cfg.ReloadDur)
	close(stop)
	<-done
	fmt.Fprintf(os.Stdout, "  100,000 rules back to back: %d tunnels, %d failed, %d reloads\n", rl.Big.N, rl.Big.Errors, len(rl.BigReloads))
	return &rl, bigErr
}

// logTail counts records in a growing log file, reading each byte once.
type logTail struct {
	path string
	off  int64
	msgs map[string]int // by needle
}

func newLogTail(path string, needles ...string) *logTail {
	lt := &logTail{path: path, msgs: map[string]int{}}
	for _, n := range needles {
		lt.msgs[n] = 0
	}
	lt.update()
	return lt
}

// update reads the complete lines written since the last call.
func (lt *logTail) update() {
	f, err := os.Open(lt.path)
	if err != nil {
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, lt.off, 1<<62))
	if err != nil {
		return
	}
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return
	}
	lt.off += int64(len(b))
	for n := range lt.msgs {
		lt.msgs[n] += strings.Count(string(b), n)
	}
}

func (lt *logTail) count(needle string) int {
	lt.update()
	return lt.msgs[needle]
}

// wait polls until the log holds n records with needle; it reports whether
// they arrived in time.
func (lt *logTail) wait(needle string, n int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if lt.count(needle) >= n {
			return true
		}
	}
	return false
}

// logInfo summarises azegress's log, as a check that it logged every tunnel.
func logInfo(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines, tunnels, requests, size int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		lines++
		size += len(l) + 1
		switch {
		case strings.Contains(l, `"msg":"tunnel closed"`):
			tunnels++
		case strings.Contains(l, `"msg":"request"`):
			requests++
		}
	}
	return fmt.Sprintf("%d log records (%.1f MB), %d of them \"tunnel closed\" and %d \"request\"",
		lines, float64(size)/1e6, tunnels, requests)
}
