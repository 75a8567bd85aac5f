//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The measurements issue 15 adds: round trips in many short alternating
// rounds, syscalls and context switches per exchange, CPU profiles under
// load, and learning mode with many distinct destinations.

// rttSample is one short round-trip window on a fresh tunnel.
type rttSample struct {
	P50, P99 time.Duration
}

// measureRTTRounds measures the round trip of every target in rounds short
// windows, the order of the targets rotated each round, so that the
// machine's moods fall on all of them alike.
func measureRTTRounds(targets map[string]*target, names []string, rounds int, window time.Duration, stdout io.Writer) (map[string][]rttSample, map[string]string) {
	out, errs := map[string][]rttSample{}, map[string]string{}
	for r := range rounds {
		for _, name := range rotate(names, r) {
			p50, p99, err := measureRTT(targets[name], window)
			if err != nil {
				if errs[name] == "" {
					errs[name] = err.Error()
				}
				continue
			}
			out[name] = append(out[name], rttSample{p50, p99})
		}
	}
	for _, name := range names {
		var v []float64
		for _, s := range out[name] {
			v = append(v, float64(s.P50))
		}
		sp := spreadOf(v)
		fmt.Fprintf(stdout, "  %-16s round-trip p50 median %s, IQR %s–%s, min–max %s–%s (%d rounds)\n", name,
			fmtDur(sp.Median), fmtDur(sp.Q1), fmtDur(sp.Q3), fmtDur(sp.Min), fmtDur(sp.Max), sp.N)
	}
	return out, errs
}

// exerciser does a counted number of one kind of exchange through a
// target, so that a strace or a context-switch count covers exactly them.
type exerciser struct {
	run   func(n int) error
	close func()
}

const sysWorkers = 4 // concurrent clients of the setup and HTTP exercisers

// newExerciser prepares path ("rtt": 64-byte ping-pongs on one open
// tunnel; "setup": tunnel setups by sysWorkers clients; "http": plain-HTTP
// requests on sysWorkers kept-alive connections) through t.
func newExerciser(t *target, path string) (*exerciser, error) {
	switch path {
	case "rtt":
		c, br, err := t.open(originHost, echoPort, 5*time.Second)
		if err != nil {
			return nil, err
		}
		msg, got := bytes.Repeat([]byte("r"), 64), make([]byte, 64)
		return &exerciser{run: func(n int) error {
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			for range n {
				if _, err := c.Write(msg); err != nil {
					return err
				}
				if _, err := io.ReadFull(br, got); err != nil {
					return err
				}
			}
			return nil
		}, close: func() { c.Close() }}, nil
	case "setup":
		return &exerciser{run: func(n int) error {
			return parallel(n, func(_, i int) error {
				host := originHost
				if i%2 == 1 {
					host = wildHost
				}
				return setupOnce(t, host, []byte{'x'})
			})
		}, close: func() {}}, nil
	case "http":
		conns := make([]*httpConn, sysWorkers)
		for i := range conns {
			conns[i] = newHTTPConn(t)
		}
		return &exerciser{run: func(n int) error {
			return parallel(n, func(w, _ int) error {
				for { // a reopen is no exchange: retry it
					ok, _, err := conns[w].do()
					if err != nil || ok {
						return err
					}
				}
			})
		}, close: func() {
			for _, h := range conns {
				h.close()
			}
		}}, nil
	}
	return nil, fmt.Errorf("unknown path %q", path)
}

// parallel runs op(worker, i) for i in [0, n) over sysWorkers goroutines,
// and returns the first error (after which it stops).
func parallel(n int, op func(w, i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for w := range sysWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := op(w, i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// sysResult is what one path costs a proxy in syscalls and context
// switches per exchange.
type sysResult struct {
	Ops       int
	CtxPerOp  float64            // voluntary + involuntary, all threads, untraced run
	Syscalls  map[string]float64 // per exchange, by name, traced run
	TotalOp   float64            // every syscall per exchange
	ErrorsOp  float64            // failed syscalls (EAGAIN mostly) per exchange
	StraceErr string
}

// measureSys counts, for path through t, the context switches of t's
// process group over ops exchanges, then, in a separate run (strace slows
// the process), its syscalls over as many.
func measureSys(t *target, path string, ops int, dir string) (sysResult, error) {
	r := sysResult{Ops: ops}
	ex, err := newExerciser(t, path)
	if err != nil {
		return r, err
	}
	defer ex.close()
	if err := ex.run(max(ops/10, 50)); err != nil { // warm up
		return r, err
	}
	pgid := t.proc.pid()
	c0 := groupCtxSwitches(pgid)
	if err := ex.run(ops); err != nil {
		return r, err
	}
	r.CtxPerOp = float64(groupCtxSwitches(pgid)-c0) / float64(ops)

	calls, err := straceCount(groupPIDs(pgid), filepath.Join(dir, fmt.Sprintf("strace-%s-%s.txt", t.name, path)), func() error { return ex.run(ops) })
	if err != nil {
		r.StraceErr = err.Error()
		return r, nil
	}
	r.Syscalls = map[string]float64{}
	for _, c := range calls {
		if c.Name == "total" {
			r.TotalOp, r.ErrorsOp = float64(c.Calls)/float64(ops), float64(c.Errors)/float64(ops)
			continue
		}
		r.Syscalls[c.Name] = float64(c.Calls) / float64(ops)
	}
	return r, nil
}

// straceCount runs work while `strace -c -f` is attached to pids, and
// returns strace's summary.
func straceCount(pids []int, out string, work func() error) ([]straceCall, error) {
	if len(pids) == 0 {
		return nil, errors.New("no process to trace")
	}
	args := []string{"-c", "-f", "-o", out}
	for _, p := range pids {
		args = append(args, "-p", fmt.Sprint(p))
	}
	cmd := exec.Command("strace", args...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("strace: %w (apt-get install strace)", err)
	}
	// strace says "Process N attached" for each thread; give it a moment
	// after the first to reach the others.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "attached") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	werr := work()
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil && !strings.Contains(stderr.String(), "detached") {
		return nil, fmt.Errorf("strace: %v: %s", err, firstLine(stderr.String()))
	}
	if werr != nil {
		return nil, fmt.Errorf("under strace: %w", werr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	return parseStraceC(string(b))
}

// lockedBuffer is an io.Writer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// profileUnder takes a CPU profile of t (serve -pprof) for secs seconds
// while load runs, and writes it to path.
func profileUnder(t *target, secs int, path string, load func(d time.Duration)) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		load(time.Duration(secs)*time.Second + 1500*time.Millisecond)
	}()
	defer func() { <-done }()
	time.Sleep(500 * time.Millisecond)
	cl := http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.pprof, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/debug/pprof/profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileLoads are the loads a profile is taken under, by name.
func profileLoads(t *target, workers int) map[string]func(time.Duration) {
	return map[string]func(time.Duration){
		"setup": func(d time.Duration) { measureSetup(t, workers, d) },
		"http":  func(d time.Duration) { measureHTTP(t, workers, d) },
		"rtt":   func(d time.Duration) { _, _, _ = measureRTT(t, d) },
	}
}

// learnResult is azegress in learning mode with many destinations no rule
// names: each is let through (would_deny), logged and recorded.
type learnResult struct {
	Dests      int           // distinct destinations asked for
	Opened     int           // tunnels that echoed
	Failed     int           // tunnels that did not
	FirstErr   string        //
	CPU        cpuUse        // per tunnel to a distinct unknown destination
	AllowedCPU cpuUse        // per tunnel to an allowed name, same process, after
	BaseRSS    int64         // after the warm-up
	RSS        int64         // after the distinct destinations
	Wall       time.Duration // for the distinct destinations
	ObsBytes   int64         // the -observations file after the run
}

// learnHost is the i-th learning-mode destination; learnAddr, which every
// one resolves to, is on the namespace's loopback but in no guarded range,
// as a destination on the Internet is.
func learnHost(i int) string { return fmt.Sprintf("d%05d.learn.azbench.example", i) }

const learnAddr = "192.0.2.1"

// learnHosts is the hosts-file lines of n learning-mode destinations.
func learnHosts(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(learnAddr + " " + learnHost(i) + "\n")
	}
	return b.String()
}

// azegressLearnPolicy is the benchmark rules in a client block in learning
// mode.
func azegressLearnPolicy(rules []benchRule) string {
	return azegressPolicyWith("", "  sources = [\"127.0.0.0/8\"]\n  mode    = \"learn\"\n", rules)
}

// measureLearn starts azegress in learning mode and opens one tunnel to
// each of n distinct destinations no rule names (32 clients), then as many
// to an allowed name, measuring the proxy's CPU per tunnel and memory.
// The names resolve through /etc/hosts, which it extends for the time of
// the run only (glibc reads the whole file on every lookup: the other
// proxies must not pay for 10,000 more lines).
func measureLearn(dir, bin string, rules []benchRule, n, workers int, origin *proc) (*learnResult, error) {
	if out, err := exec.Command("ip", "addr", "add", learnAddr+"/32", "dev", "lo").CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
		return nil, fmt.Errorf("ip addr add %s: %v: %s", learnAddr, err, out)
	}
	if err := os.WriteFile("/etc/hosts", []byte(hostsFile()+learnHosts(n)), 0o644); err != nil {
		return nil, err
	}
	defer os.WriteFile("/etc/hosts", []byte(hostsFile()), 0o644)
	pol := filepath.Join(dir, "policy-learn.hcl")
	if err := os.WriteFile(pol, []byte(azegressLearnPolicy(rules)), 0o644); err != nil {
		return nil, err
	}
	obs := filepath.Join(dir, "observations.jsonl")
	t, err := startAzegress("azegress-learn", dir, bin, pol, learnPort, learnMetrics, "-observations", obs)
	if err != nil {
		return nil, err
	}
	defer t.proc.stop(10 * time.Second)
	for range 32 {
		if err := setupOnce(t, originHost, []byte{'w'}); err != nil {
			return nil, fmt.Errorf("warm-up tunnel: %w", err)
		}
	}
	r := &learnResult{Dests: n}
	if r.BaseRSS, _, err = settle(t.proc.pid()); err != nil {
		return nil, err
	}
	m := cpuMeter{proxy: t.proc, origin: origin}
	var failed atomic.Int64
	var first atomic.Value
	var next atomic.Int64
	c0, t0 := m.sample(), time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := setupOnce(t, learnHost(i), []byte{'l'}); err != nil {
					first.CompareAndSwap(nil, err.Error())
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r.Wall = time.Since(t0)
	r.CPU = m.per(c0, float64(n))
	r.Failed = int(failed.Load())
	r.Opened = n - r.Failed
	if s, ok := first.Load().(string); ok {
		r.FirstErr = s
	}
	if r.RSS, _, err = settle(t.proc.pid()); err != nil {
		return nil, err
	}
	c0 = m.sample()
	next.Store(0)
	for range workers {
		wg.Go(func() {
			for int(next.Add(1)) <= n {
				_ = setupOnce(t, originHost, []byte{'a'})
			}
		})
	}
	wg.Wait()
	r.AllowedCPU = m.per(c0, float64(n))
	// The recorder flushes once a second.
	time.Sleep(1500 * time.Millisecond)
	if fi, err := os.Stat(obs); err == nil {
		r.ObsBytes = fi.Size()
	}
	return r, nil
}

// sysPaths are the paths whose syscalls and wake-ups are counted.
var sysPaths = []string{"rtt", "setup", "http"}
