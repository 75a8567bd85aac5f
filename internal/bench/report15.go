//go:build linux

package bench

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Issue 15's part of the report: CPU per operation against Squid and the
// endpoints' floor, the round trip in many rounds, syscalls and wake-ups
// per exchange, profiles, learning mode and sizing.

// spread is the distribution of a figure over rounds.
type spread struct {
	N                        int
	Median, Q1, Q3, Min, Max float64
}

// spreadOf returns the median, quartiles (linear interpolation) and range
// of the positive values of v (a failed round is 0 and left out).
func spreadOf(v []float64) spread {
	v = slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return x <= 0 || math.IsNaN(x) })
	if len(v) == 0 {
		return spread{}
	}
	slices.Sort(v)
	q := func(p float64) float64 {
		x := p * float64(len(v)-1)
		i := int(x)
		if i+1 >= len(v) {
			return v[i]
		}
		return v[i] + (x-float64(i))*(v[i+1]-v[i])
	}
	return spread{N: len(v), Median: q(0.5), Q1: q(0.25), Q3: q(0.75), Min: v[0], Max: v[len(v)-1]}
}

// straceCall is one line of `strace -c`'s summary ("total" for the last).
type straceCall struct {
	Name          string
	Calls, Errors int
}

// parseStraceC reads the table `strace -c` writes:
//
//	% time     seconds  usecs/call     calls    errors syscall
//	------ ----------- ----------- --------- --------- ----------------
//	 62.50    0.000250          25        10         2 read
//	------ ----------- ----------- --------- --------- ----------------
//	100.00    0.000400          20        20         2 total
//
// The errors column is empty for a syscall that never failed.
func parseStraceC(out string) ([]straceCall, error) {
	var calls []straceCall
	header, total := false, false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "---") {
			continue
		}
		if f[0] == "%" {
			header = true
			continue
		}
		if !header || (len(f) != 5 && len(f) != 6) {
			continue
		}
		c := straceCall{Name: f[len(f)-1]}
		var err error
		if c.Calls, err = strconv.Atoi(f[3]); err != nil {
			return nil, fmt.Errorf("strace -c line %q: calls: %w", sc.Text(), err)
		}
		if len(f) == 6 {
			if c.Errors, err = strconv.Atoi(f[4]); err != nil {
				return nil, fmt.Errorf("strace -c line %q: errors: %w", sc.Text(), err)
			}
		}
		total = total || c.Name == "total"
		calls = append(calls, c)
	}
	if !total {
		return nil, errors.New("no strace -c summary (no total line)")
	}
	return calls, nil
}

// pprofTop is `go tool pprof -top`'s answer for one profile.
type pprofTop struct {
	Samples string // "Duration: 5s, Total samples = 2.5s (50.00%)"
	Funcs   []pprofFunc
	ByCum   []pprofFunc // the same profile's top by cumulative time (-top -cum)
}

type pprofFunc struct {
	Name      string
	Flat, Cum float64 // percent of the samples
}

// parsePprofTop reads `go tool pprof -top` output.
func parsePprofTop(out string) (pprofTop, error) {
	var top pprofTop
	header := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "Duration:") {
			top.Samples = line
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
			header = true
			continue
		}
		if !header || len(f) < 6 {
			continue
		}
		flat, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			return top, fmt.Errorf("pprof -top line %q", line)
		}
		top.Funcs = append(top.Funcs, pprofFunc{Name: strings.Join(f[5:], " "), Flat: flat, Cum: cum})
	}
	if !header {
		return top, errors.New("no pprof -top table")
	}
	return top, nil
}

// row15 is one row of issue 15's table: a figure per target and the
// issue's limits on azegress's.
type row15 struct {
	what     string
	format   func(float64) string
	vals     map[string]float64 // by target
	sys      map[string]float64 // the system part, for CPU rows
	floor    float64            // the endpoints' floor (or direct), 0: none
	maxSquid float64            // limit on ÷ Squid, 0: none
	maxFloor float64            // limit on ÷ floor, 0: none
	limit    float64            // limit on the figure itself, 0: none
	rule     string
}

// verdict reports whether target's figure is within every limit of r;
// known is false when a figure a limit needs was not measured.
func (r row15) verdict(target string) (ok, known bool) {
	v := r.vals[target]
	if v <= 0 {
		return false, false
	}
	ok = true
	if r.maxSquid > 0 {
		sq := r.vals["squid"]
		if sq <= 0 {
			return false, false
		}
		ok = ok && v/sq <= r.maxSquid
	}
	if r.maxFloor > 0 {
		if r.floor <= 0 {
			return false, false
		}
		ok = ok && v/r.floor <= r.maxFloor
	}
	if r.limit > 0 {
		ok = ok && v <= r.limit
	}
	return ok, true
}

// ratio is a/b as "0.00×", or "—".
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func fmtUs(ns float64) string {
	if ns <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f µs", ns/1e3)
}

func fmtSecGB(nsPerMB float64) string {
	if nsPerMB <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s", nsPerMB*1000/1e9)
}

func fmtKiB(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f KiB", v)
}

// medCPU is the median over target's rounds of one part of a CPU figure.
func (rep *report) medCPU(target string, get func(roundResult) cpuUse, part func(cpuUse) time.Duration) float64 {
	var v []float64
	for _, r := range rep.Results.Rounds[target] {
		v = append(v, float64(part(get(r))))
	}
	return median(v)
}

func proxyTotal(u cpuUse) time.Duration     { return u.Proxy }
func proxySys(u cpuUse) time.Duration       { return u.ProxySys }
func endpointsTotal(u cpuUse) time.Duration { return u.Origin + u.Client }
func setupCPU(r roundResult) cpuUse         { return r.SetupCPU }
func httpCPU(r roundResult) cpuUse          { return r.HTTPCPU }
func bulkCPU(r roundResult) cpuUse          { return r.Bulk1CPU }

// rttMedian is the median of target's round p50s (or p99s).
func (rep *report) rttSpread(target string, p99 bool) spread {
	var v []float64
	for _, s := range rep.Results.RTT[target] {
		if p99 {
			v = append(v, float64(s.P99))
		} else {
			v = append(v, float64(s.P50))
		}
	}
	return spreadOf(v)
}

// idleWorst is the largest memory per idle tunnel over the levels.
func idleWorst(ir *idleResult) float64 {
	if ir == nil {
		return 0
	}
	w := 0.0
	for _, l := range ir.Levels {
		w = max(w, l.PerKiB)
	}
	return w
}

var issue15Cols = []string{"azegress", "azegress-before", "relay", "evloop", "engine", "squid"}

// rows15 builds issue 15's table from the run.
func (rep *report) rows15() []row15 {
	res := rep.Results
	cpuRow := func(what string, get func(roundResult) cpuUse, maxSquid, maxFloor float64, rule string) row15 {
		r := row15{what: what, format: fmtUs, vals: map[string]float64{}, sys: map[string]float64{}, maxSquid: maxSquid, maxFloor: maxFloor, rule: rule}
		for _, t := range issue15Cols {
			r.vals[t], r.sys[t] = rep.medCPU(t, get, proxyTotal), rep.medCPU(t, get, proxySys)
		}
		r.floor = rep.medCPU("direct", get, endpointsTotal)
		return r
	}
	rows := []row15{
		cpuRow("CPU per CONNECT tunnel (connect, CONNECT/200, 1-byte echo, close)", setupCPU, 0.6, 1.2, "≤ 0.6× Squid and ≤ 1.2× floor"),
		cpuRow("CPU per keep-alive plain-HTTP request", httpCPU, 0.6, 1.5, "≤ 0.6× Squid and ≤ 1.5× floor"),
	}
	rtt := row15{what: "round trip, 64 B over an open tunnel, p50 (median of round p50s)", format: fmtDur, vals: map[string]float64{}, maxFloor: 3, rule: "≤ 3× direct"}
	for _, t := range issue15Cols {
		rtt.vals[t] = rep.rttSpread(t, false).Median
	}
	rtt.floor = rep.rttSpread("direct", false).Median
	rows = append(rows, rtt)
	gb := cpuRow("CPU per GB over one tunnel", bulkCPU, 0.5, 0, "keep ≤ 0.5× Squid")
	gb.format = fmtSecGB
	rows = append(rows, gb)
	idle := row15{what: "RSS per idle tunnel (worst level)", format: fmtKiB, vals: map[string]float64{}, limit: 12, rule: "keep ≤ 12 KiB"}
	for _, t := range issue15Cols {
		idle.vals[t] = idleWorst(res.Idle[t])
	}
	return append(rows, idle)
}

// present reports whether target took part in the run.
func (rep *report) present(target string) bool {
	return slices.Contains(rep.Results.Targets, target)
}

func (rep *report) renderIssue15(b *strings.Builder) {
	b.WriteString("\n## Issue 15: CPU per operation against Squid and the endpoints' floor\n\n")
	b.WriteString("Proxy CPU (user + system of its process group) per operation, medians over the rounds, with its system\n" +
		"part in parentheses. The endpoints' floor is what the client and the origin spent on the same operation in\n" +
		"the direct run (for the round trip: direct's round trip). relay is a bare Go CONNECT relay (read the head,\n" +
		"dial, 200, two goroutines with io.Copy; no policy, no log): the floor of a Go relay. evloop is the same\n" +
		"relay with no goroutine per connection (an edge-triggered epoll loop per core over raw non-blocking\n" +
		"sockets, names resolved once and kept): the floor of a Go event loop. engine is the same bare relay on\n" +
		"azegress's event-loop engine (proxy/internal/evloop). Judge by the ratios:\n" +
		"absolute figures move by up to 30% between sittings on a shared machine.\n\n")
	cols := []string{}
	for _, t := range issue15Cols {
		if rep.present(t) {
			cols = append(cols, t)
		}
	}
	b.WriteString("| per operation | " + strings.Join(cols, " | ") + " | endpoints' floor | azegress ÷ Squid | azegress ÷ floor | floor for this issue | holds |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(cols)+6) + "\n")
	for _, r := range rep.rows15() {
		cells := []string{r.what}
		for _, t := range cols {
			c := r.format(r.vals[t])
			if r.sys != nil && r.vals[t] > 0 {
				c += fmt.Sprintf(" (sys %.0f%%)", 100*r.sys[t]/r.vals[t])
			}
			cells = append(cells, c)
		}
		cells = append(cells, r.format(r.floor), ratio(r.vals["azegress"], r.vals["squid"]), ratio(r.vals["azegress"], r.floor), r.rule)
		switch ok, known := r.verdict("azegress"); {
		case !known:
			cells = append(cells, "not measured")
		case ok:
			cells = append(cells, "yes")
		default:
			cells = append(cells, "**no**")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	if rep.present("azegress-before") {
		b.WriteString("\nazegress-before is the binary given to `-azegress-before`, measured in the same rounds, alternating with azegress.\n")
	}
	rep.renderSplit(b)
	rep.renderRTT(b)
	rep.renderSys(b)
	rep.renderProfiles(b)
	rep.renderLearn(b)
	rep.renderSizing(b)
}

// renderSplit writes user and system CPU per operation for every party.
func (rep *report) renderSplit(b *strings.Builder) {
	b.WriteString("\n### User and system CPU per operation\n\n")
	b.WriteString("µs per operation, user + system, medians over the rounds. On loopback the kernel's TCP work for a packet\n" +
		"is mostly charged to the process that sends it.\n\n")
	b.WriteString("| target | operation | proxy user + sys | origin user + sys | client user + sys |\n|---|---|---|---|---|\n")
	for _, t := range rep.Results.Targets {
		for _, op := range []struct {
			name string
			get  func(roundResult) cpuUse
		}{{"tunnel setup", setupCPU}, {"HTTP request", httpCPU}, {"MB over one tunnel", bulkCPU}} {
			cell := func(total, sys func(cpuUse) time.Duration) string {
				tot, s := rep.medCPU(t, op.get, total), rep.medCPU(t, op.get, sys)
				if tot <= 0 {
					return "—"
				}
				return fmt.Sprintf("%.0f + %.0f", (tot-s)/1e3, s/1e3)
			}
			p := cell(proxyTotal, proxySys)
			o := cell(func(u cpuUse) time.Duration { return u.Origin }, func(u cpuUse) time.Duration { return u.OriginSys })
			c := cell(func(u cpuUse) time.Duration { return u.Client }, func(u cpuUse) time.Duration { return u.ClientSys })
			if p == "—" && o == "—" && c == "—" {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t, op.name, p, o, c)
		}
	}
}

func (rep *report) renderRTT(b *strings.Builder) {
	res := rep.Results
	if len(res.RTT) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### Round trip over an open tunnel, in %d short rounds\n\n", rep.Config.RTTRounds)
	fmt.Fprintf(b, "64-byte ping-pong on a fresh tunnel to the echo origin, one client: %d warm-up exchanges, then a %v window,\n"+
		"each target in turn, the order rotated each round. The figures are the median, quartiles and range of the\n"+
		"rounds' p50s, and the median of their p99s.\n\n", 500, rep.Config.RTTWindow)
	b.WriteString("| target | p50: median | IQR | min–max | p99: median | ÷ direct | ÷ relay | rounds |\n|---|---|---|---|---|---|---|---|\n")
	d, rl := rep.rttSpread("direct", false).Median, rep.rttSpread("relay", false).Median
	for _, t := range res.Targets {
		s := rep.rttSpread(t, false)
		if s.N == 0 {
			if e := res.RTTErr[t]; e != "" {
				fmt.Fprintf(b, "| %s | failed: %s | | | | | | |\n", t, strings.ReplaceAll(e, "|", "/"))
			}
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s – %s | %s – %s | %s | %s | %s | %d |\n", t, fmtDur(s.Median), fmtDur(s.Q1), fmtDur(s.Q3),
			fmtDur(s.Min), fmtDur(s.Max), fmtDur(rep.rttSpread(t, true).Median), ratio(s.Median, d), ratio(s.Median, rl), s.N)
	}
}

func (rep *report) renderSys(b *strings.Builder) {
	res := rep.Results
	if len(res.Sys) == 0 && len(res.SysErr) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### Syscalls and context switches per exchange\n\n")
	fmt.Fprintf(b, "Over %s exchanges of each path (after a warm-up): context switches (voluntary + involuntary, summed over\n"+
		"every thread of the proxy's process group from /proc) in one run, syscalls (`strace -c -f` on every process\n"+
		"of the group) in another: strace slows the process, so no timed figure comes from a traced run. rtt: 64-byte\n"+
		"ping-pongs on one open tunnel (the active path); setup: tunnel setups by %d clients; http: plain-HTTP requests\n"+
		"on %d kept-alive connections. Failed calls are mostly EAGAIN: a read that found nothing and parked in the poller.\n"+
		"nanosleep, futex and sched_yield are the Go runtime's scheduler spinning and waking threads; strace's slowdown\n"+
		"inflates them, so compare them between targets of one run only.\n",
		fmtCount(float64(rep.Config.SysOps)), sysWorkers, sysWorkers)
	for _, path := range sysPaths {
		fmt.Fprintf(b, "\n%s:\n\n| target | syscalls | of which failed | context switches | the syscalls, per exchange |\n|---|---|---|---|---|\n", path)
		for _, t := range res.Targets {
			sr, ok := res.Sys[t][path]
			if !ok {
				if e := res.SysErr[t+"/"+path]; e != "" {
					fmt.Fprintf(b, "| %s | failed: %s | | | |\n", t, strings.ReplaceAll(e, "|", "/"))
				}
				continue
			}
			if sr.StraceErr != "" {
				fmt.Fprintf(b, "| %s | strace failed: %s | | %.2f | |\n", t, strings.ReplaceAll(sr.StraceErr, "|", "/"), sr.CtxPerOp)
				continue
			}
			fmt.Fprintf(b, "| %s | %.2f | %.2f | %.2f | %s |\n", t, sr.TotalOp, sr.ErrorsOp, sr.CtxPerOp, topSyscalls(sr.Syscalls, 8))
		}
	}
}

// topSyscalls lists the n most frequent syscalls, "read 2.00, write 2.00".
func topSyscalls(m map[string]float64, n int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range names {
		if len(parts) == n || m[k] < 0.005 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func (rep *report) renderProfiles(b *strings.Builder) {
	if len(rep.Profiles) == 0 && len(rep.Results.ProfileErr) == 0 && len(rep.Results.ProfileRaw) == 0 {
		return
	}
	b.WriteString("\n### CPU profiles under load\n\n")
	fmt.Fprintf(b, "`serve -pprof`'s `/debug/pprof/profile` for %d s while each load runs (setup and http: %d clients; rtt:\n"+
		"one client's ping-pong); `go tool pprof -top`, the top 12 by flat time and by cumulative time (`-cum`), in %% of\n"+
		"the samples. The profiles are in %s.\n",
		profileSecs(rep.Config), rep.Config.Workers, "`"+rep.ProfileDir+"/`")
	for _, key := range sortedKeys(rep.Results.ProfileErr) {
		fmt.Fprintf(b, "\n- %s: %s\n", key, rep.Results.ProfileErr[key])
	}
	for _, key := range sortedKeys(rep.Profiles) {
		top := rep.Profiles[key]
		fmt.Fprintf(b, "\n%s (%s):\n\n| by flat: flat | cum | function | by cum: flat | cum | function |\n|---|---|---|---|---|---|\n", key, strings.TrimSpace(top.Samples))
		for i := range max(len(top.Funcs), len(top.ByCum)) {
			cells := func(fs []pprofFunc) []string {
				if i >= len(fs) {
					return []string{"", "", ""}
				}
				return []string{fmt.Sprintf("%.1f%%", fs[i].Flat), fmt.Sprintf("%.1f%%", fs[i].Cum), "`" + fs[i].Name + "`"}
			}
			fmt.Fprintf(b, "| %s |\n", strings.Join(append(cells(top.Funcs), cells(top.ByCum)...), " | "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (rep *report) renderLearn(b *strings.Builder) {
	res := rep.Results
	if res.Learn == nil && res.LearnErr == "" {
		return
	}
	b.WriteString("\n### Learning mode with many distinct destinations\n\n")
	if res.Learn == nil {
		fmt.Fprintf(b, "Failed: %s\n", res.LearnErr)
		return
	}
	l := res.Learn
	fmt.Fprintf(b, "azegress with the benchmark rules in a client block with `mode = \"learn\"` and `-observations`, freshly\n"+
		"started, after 32 warm-up tunnels: one tunnel (CONNECT, 1-byte echo, close) to each of %s distinct names no\n"+
		"rule names (each let through as would_deny, logged with its fix, and recorded), %d clients; then as many\n"+
		"tunnels to an allowed name in the same process.\n\n", fmtCount(float64(l.Dests)), rep.Config.Workers)
	b.WriteString("| | figure |\n|---|---|\n")
	fmt.Fprintf(b, "| tunnels to distinct unknown names: opened; failed | %s; %d%s |\n", fmtCount(float64(l.Opened)), l.Failed, firstErr(l.FirstErr))
	fmt.Fprintf(b, "| proxy CPU per tunnel to a distinct unknown name (sys) | %s (%s) |\n", fmtUs(float64(l.CPU.Proxy)), fmtUs(float64(l.CPU.ProxySys)))
	fmt.Fprintf(b, "| proxy CPU per tunnel to an allowed name, same process (sys) | %s (%s) |\n", fmtUs(float64(l.AllowedCPU.Proxy)), fmtUs(float64(l.AllowedCPU.ProxySys)))
	fmt.Fprintf(b, "| unknown ÷ allowed | %s |\n", ratio(float64(l.CPU.Proxy), float64(l.AllowedCPU.Proxy)))
	fmt.Fprintf(b, "| tunnels per second to the distinct names | %s |\n", fmtCount(float64(l.Opened)/l.Wall.Seconds()))
	fmt.Fprintf(b, "| RSS before → after the distinct names | %.1f → %.1f MiB (%s bytes per destination) |\n",
		float64(l.BaseRSS)/(1<<20), float64(l.RSS)/(1<<20), fmtCount(float64(l.RSS-l.BaseRSS)/math.Max(1, float64(l.Dests))))
	fmt.Fprintf(b, "| the observations file afterwards | %.1f KiB |\n", float64(l.ObsBytes)/1024)
}

// sizing is what one core and one instance can carry at the measured
// costs.
type sizing struct {
	TunnelsPerCore, RequestsPerCore float64
	IdleFDs                         float64 // for idleTarget idle tunnels
	IdleMiB                         float64
}

const idleTarget = 100_000

// sizeFor computes sizing from CPU per tunnel and per request (ns) and an
// idle measurement: 1 s of one core ÷ CPU per operation, and the baseline
// plus idleTarget times the per-tunnel fds and memory of its last level.
func sizeFor(tunnelNs, requestNs float64, ir *idleResult) sizing {
	var s sizing
	if tunnelNs > 0 {
		s.TunnelsPerCore = 1e9 / tunnelNs
	}
	if requestNs > 0 {
		s.RequestsPerCore = 1e9 / requestNs
	}
	if ir != nil && len(ir.Levels) > 0 {
		l := ir.Levels[len(ir.Levels)-1]
		if l.Opened > 0 {
			perFD := float64(l.FDs-ir.BaseFDs) / float64(l.Opened)
			s.IdleFDs = float64(ir.BaseFDs) + idleTarget*perFD
			s.IdleMiB = float64(ir.BaseRSS)/(1<<20) + idleTarget*idleWorst(ir)/1024
		}
	}
	return s
}

func (rep *report) renderSizing(b *strings.Builder) {
	res := rep.Results
	b.WriteString("\n### Sizing\n\n")
	b.WriteString("Per core: one second of one core ÷ the proxy's median CPU per operation above (the load generator and the\n" +
		"origins are not counted; on a real host they are elsewhere). Idle tunnels: the baseline plus 100,000 × the\n" +
		"per-tunnel fds and memory measured at the last idle level, **extrapolated**: this machine's RLIMIT_NOFILE hard\n" +
		"limit is 20,000, so no run holds more than about 10,000 tunnels. Kernel socket memory is not in the RSS.\n\n")
	b.WriteString("| target | tunnels/s per core | HTTP requests/s per core | fds for 100,000 idle tunnels (extrapolated) | RSS for 100,000 idle tunnels (extrapolated) |\n|---|---|---|---|---|\n")
	for _, t := range issue15Cols {
		if !rep.present(t) {
			continue
		}
		s := sizeFor(rep.medCPU(t, setupCPU, proxyTotal), rep.medCPU(t, httpCPU, proxyTotal), res.Idle[t])
		mib := "—"
		if s.IdleMiB > 0 {
			mib = fmt.Sprintf("%s MiB", fmtCount(s.IdleMiB))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t, fmtCount(s.TunnelsPerCore), fmtCount(s.RequestsPerCore), fmtCount(s.IdleFDs), mib)
	}
	b.WriteString("\n100,000 idle tunnels need `LimitNOFILE` above the fds figure (azegress raises its soft limit to the hard\n" +
		"one; `-max-conns` defaults from it), and the kernel's socket buffers besides: scale past one instance stays the\n" +
		"documented model, stateless instances behind a load balancer.\n")
}

// profileSecs is how long each CPU profile samples.
func profileSecs(c config) int {
	if c.Issue15 || c.Quick {
		return 3
	}
	return 5
}
