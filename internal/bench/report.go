//go:build linux

package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/azegress/azegress/identity"
)

// handMarker separates BENCHMARKS.md's generated part from the part written
// by hand (what bounds a figure, fuzzing), which a run keeps.
const handMarker = "<!-- Everything below this line is written by hand; `make bench` keeps it. -->"

type report struct {
	Config     config
	Machine    machineInfo
	Started    time.Time
	Finished   time.Time
	GoBench    string
	GoBenchErr string
	Results    *results
	Profiles   map[string]pprofTop // by "target under load"
	ProfileDir string              // -profiles as given
}

type machineInfo struct {
	CPU       string
	Cores     int
	Kernel    string
	Go        string
	Squid     string
	Tinyproxy string
	LoadStart string
	LoadEnd   string
}

func machine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	if out, err := exec.Command("squid", "-v").Output(); err == nil {
		m.Squid = strings.TrimPrefix(firstLine(string(out)), "Squid Cache: ")
	}
	if out, err := exec.Command("tinyproxy", "-v").CombinedOutput(); err == nil {
		m.Tinyproxy = firstLine(string(out))
	}
	return m
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeReport writes text to path, keeping what follows handMarker in the
// file already there.
func writeReport(path, text string) error {
	hand := defaultHand
	if old, err := os.ReadFile(path); err == nil {
		if _, after, ok := strings.Cut(string(old), handMarker); ok {
			hand = after
		}
	}
	return os.WriteFile(path, []byte(text+"\n"+handMarker+hand), 0o644)
}

const defaultHand = `

## What bounds the figures

(Written by hand after a run: for each floor not reached, what a profile shows and what was tried.)

## Fuzzing

(Written by hand: each fuzz target's duration and executions.)
`

// metric is one row of the comparison table.
type metric struct {
	name   string
	get    func(roundResult) float64
	format func(float64) string
	lower  bool // lower is better (latency)
	// rtt: the figure is the median of the short round-trip rounds' p50
	// (or, with p99, p99), not of the main rounds.
	rtt, p99 bool
}

var metrics = []metric{
	{"CONNECT tunnels set up per second (32 clients)", func(r roundResult) float64 { return r.Setup.Rate }, fmtCount, false, false, false},
	{"tunnel setup latency, p50", func(r roundResult) float64 { return float64(r.Setup.P50) }, fmtDur, true, false, false},
	{"tunnel setup latency, p99", func(r roundResult) float64 { return float64(r.Setup.P99) }, fmtDur, true, false, false},
	{"bulk throughput, 1 tunnel (MB/s)", func(r roundResult) float64 { return r.Bulk1 }, fmtCount, false, false, false},
	{"bulk throughput, 8 tunnels (MB/s)", func(r roundResult) float64 { return r.Bulk8 }, fmtCount, false, false, false},
	{name: "round trip over an open tunnel (64 B), p50 (median of the short rounds')", format: fmtDur, lower: true, rtt: true},
	{name: "round trip over an open tunnel (64 B), p99 (median of the short rounds')", format: fmtDur, lower: true, rtt: true, p99: true},
	{"plain-HTTP requests per second, keep-alive (32 clients)", func(r roundResult) float64 { return r.HTTP.Rate }, fmtCount, false, false, false},
}

// median of the positive values (a failed measurement is 0 and left out).
func median(v []float64) float64 {
	v = slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return x <= 0 || math.IsNaN(x) })
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (rep *report) med(target string, m metric) float64 {
	if m.rtt {
		return rep.rttSpread(target, m.p99).Median
	}
	var v []float64
	for _, r := range rep.Results.Rounds[target] {
		v = append(v, m.get(r))
	}
	return median(v)
}

func fmtCount(v float64) string {
	if v == 0 {
		return "—"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtDur(v float64) string {
	if v == 0 {
		return "—"
	}
	d := time.Duration(v)
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
}

func (rep *report) render() string {
	res := rep.Results
	var b strings.Builder
	m := rep.Machine
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `make bench` (`azegress-bench run`); rerun it to replace everything above the hand-written part.\n")
	if rep.Config.Quick {
		b.WriteString("\n**This was a quick run (`BENCH_QUICK=1`): short windows and fewer idle tunnels; do not compare it with a full run.**\n")
	}
	fmt.Fprintf(&b, "\n- date: %s (%s)\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"), rep.Finished.Sub(rep.Started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s, %d cores, %s, %s\n", m.CPU, m.Cores, m.Kernel, m.Go)
	fmt.Fprintf(&b, "- peers: Squid %s, %s (Debian packages)\n", orQ(m.Squid), orQ(m.Tinyproxy))
	fmt.Fprintf(&b, "- load average at start and end: %s / %s\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "- medians of %d rounds, the order of the targets rotated each round; %d concurrent clients for setup and plain HTTP; windows: setup %v, bulk %v, HTTP %v; round trip: %d rounds of %v\n",
		rep.Config.Rounds, rep.Config.Workers, rep.Config.SetupDur, rep.Config.BulkDur, rep.Config.HTTPDur, rep.Config.RTTRounds, rep.Config.RTTWindow)
	if rep.Config.Issue15 {
		b.WriteString("\n**A short run of issue 15's rows only (`make bench-quick`, `-issue15`): " + strings.Join(res.Targets, ", ") + ".**\n")
		rep.renderIssue15(&b)
		rep.renderNotes(&b)
		return b.String()
	}

	b.WriteString("\n## Side by side\n\n")
	b.WriteString("Each cell is the median, and in parentheses its ratio to direct (for latency a ratio above 1 is slower).\n\n")
	var cols []string
	for _, t := range res.Targets {
		cols = append(cols, t)
	}
	b.WriteString("| | " + strings.Join(cols, " | ") + " |\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, mt := range metrics {
		row := []string{mt.name}
		d := rep.med("direct", mt)
		for _, t := range cols {
			v := rep.med(t, mt)
			cell := mt.format(v)
			if t != "direct" && d > 0 && v > 0 {
				cell += fmt.Sprintf(" (%.2f×)", v/d)
			}
			row = append(row, cell)
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	// Idle tunnels.
	for li, lvl := range rep.Config.IdleLevels {
		row := []string{fmt.Sprintf("memory per idle tunnel at %s (KiB of RSS)", fmtCount(float64(lvl)))}
		fdRow := []string{fmt.Sprintf("tunnels held of %s; proxy fds", fmtCount(float64(lvl)))}
		for _, t := range cols {
			ir := res.Idle[t]
			if t == "direct" || ir == nil || li >= len(ir.Levels) {
				row, fdRow = append(row, "—"), append(fdRow, "—")
				continue
			}
			l := ir.Levels[li]
			row = append(row, fmt.Sprintf("%.1f", l.PerKiB))
			fdRow = append(fdRow, fmt.Sprintf("%s; %s", fmtCount(float64(l.Opened)), fmtCount(float64(l.FDs))))
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		b.WriteString("| " + strings.Join(fdRow, " | ") + " |\n")
	}
	b.WriteString(`
- A tunnel setup is a TCP connect, ` + "`CONNECT`" + ` and its ` + "`200`" + ` (not for direct), and a one-byte echo from the
  origin through the tunnel; then the client closes. Clients alternate a name matched by an exact rule and one
  matched by a wildcard rule.
- Bulk throughput is downstream (origin to client) over loopback, measured after a warm-up.
- Plain HTTP: ` + "`GET http://origin…/`" + ` on kept-alive client connections, reopened when the proxy closes one
  (tinyproxy closes every one).
- Memory per idle tunnel is (VmRSS with the tunnels open − VmRSS before) ÷ tunnels open, of a freshly started
  proxy, after a warm-up of 32 tunnels. Kernel socket buffers are not in it. Every proxy, the origins and the
  load generator are separate processes, each with its own RLIMIT_NOFILE (soft raised to hard).
- The policy: ` + fmt.Sprintf("%d", rep.Config.Rules) + ` rules, exact names and ` + "`*.`" + ` wildcards mixed; azegress logs at the default level
  (one record per allowed tunnel and request) to a file, Squid writes its access log, tinyproxy logs at
  its stock ` + "`LogLevel Info`" + `. Squid and tinyproxy get the same names as a ` + "`dstdomain`" + ` ACL and a
  default-deny ` + "`fnmatch`" + ` filter.
`)
	if len(res.Idle) > 0 {
		b.WriteString("\nIdle tunnels in detail:\n\n")
		for _, t := range cols {
			ir := res.Idle[t]
			if ir == nil {
				if e := res.IdleErr[t]; e != "" {
					fmt.Fprintf(&b, "- %s: %s\n", t, e)
				}
				continue
			}
			fmt.Fprintf(&b, "- %s: baseline %.1f MiB, %d fds;", t, float64(ir.BaseRSS)/(1<<20), ir.BaseFDs)
			for _, l := range ir.Levels {
				fmt.Fprintf(&b, " at %s: %s open, %.1f MiB, %s fds (%.2f per tunnel);", fmtCount(float64(l.Want)), fmtCount(float64(l.Opened)),
					float64(l.RSS)/(1<<20), fmtCount(float64(l.FDs)), float64(l.FDs-ir.BaseFDs)/math.Max(1, float64(l.Opened)))
			}
			fmt.Fprintf(&b, " %s still echoed at the end; %d CONNECTs failed%s; fds back to baseline after closing: %v\n",
				fmtCount(float64(ir.Held)), ir.Failed, firstErr(ir.FirstErr), ir.Released)
		}
	}

	rep.renderIssue15(&b)
	rep.renderCPU(&b)
	rep.renderFloors(&b)
	rep.renderIdentity(&b)
	rep.renderGoBench(&b)

	b.WriteString("\n## Every round\n\n")
	b.WriteString("| round | target | setups/s | setup p50 | setup p99 | bulk 1 | bulk 8 | HTTP req/s | problems |\n|---|---|---|---|---|---|---|---|---|\n")
	for r := range rep.Config.Rounds {
		for _, t := range rotate(res.Targets, r) {
			rs := res.Rounds[t]
			if r >= len(rs) {
				continue
			}
			x := rs[r]
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r+1, t, fmtCount(x.Setup.Rate),
				fmtDur(float64(x.Setup.P50)), fmtDur(float64(x.Setup.P99)), fmtCount(x.Bulk1), fmtCount(x.Bulk8),
				fmtCount(x.HTTP.Rate), strings.ReplaceAll(strings.Join(x.Problems, "; "), "|", "/"))
		}
	}
	rep.renderNotes(&b)
	return b.String()
}

func (rep *report) renderNotes(b *strings.Builder) {
	res := rep.Results
	if len(res.Notes) > 0 || res.LogInfo != "" {
		b.WriteString("\nNotes:\n\n")
		for _, n := range res.Notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
		if res.LogInfo != "" {
			fmt.Fprintf(b, "- azegress wrote %s\n", res.LogInfo)
		}
	}
}

// renderCPU writes the CPU time each party spent per operation (medians
// over the rounds): what a rate ratio on a shared machine comes from.
func (rep *report) renderCPU(b *strings.Builder) {
	b.WriteString("\n## Where the CPU time goes\n\n")
	b.WriteString("CPU time (user + system, from /proc and getrusage) per operation, medians over the rounds: the proxy,\n" +
		"the origins, and the load generator (the client). On loopback the kernel's TCP work for a packet is mostly\n" +
		"charged to the process that sends it.\n\n")
	b.WriteString("| | per tunnel setup: proxy / origin / client = total | per MB of 1-tunnel bulk: proxy / origin / client | per HTTP request: proxy / origin / client |\n|---|---|---|---|\n")
	for _, t := range rep.Results.Targets {
		rs := rep.Results.Rounds[t]
		if len(rs) == 0 {
			continue
		}
		cell := func(get func(roundResult) cpuUse, total bool) string {
			var p, o, c, sum []float64
			for _, r := range rs {
				u := get(r)
				p, o, c = append(p, float64(u.Proxy)), append(o, float64(u.Origin)), append(c, float64(u.Client))
				sum = append(sum, float64(u.Proxy+u.Origin+u.Client))
			}
			us := func(v []float64) string {
				m := median(v)
				if m == 0 {
					return "—"
				}
				return fmt.Sprintf("%.0f", m/1e3)
			}
			out := us(p) + " / " + us(o) + " / " + us(c)
			if total {
				out += " = " + us(sum)
			}
			return out + " µs"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", t,
			cell(func(r roundResult) cpuUse { return r.SetupCPU }, true),
			cell(func(r roundResult) cpuUse { return r.Bulk1CPU }, false),
			cell(func(r roundResult) cpuUse { return r.HTTPCPU }, false))
	}
}

func orQ(s string) string {
	if s == "" {
		return "(not installed)"
	}
	return s
}

// floor is one of the issue's targets, checked against this run.
type floor struct {
	what, got string
	ok        bool
	known     bool // false: not measured in this run
}

func (rep *report) renderFloors(b *strings.Builder) {
	res := rep.Results
	var fl []floor
	ratio := func(target, other string, mt metric) (float64, bool) {
		v, o := rep.med(target, mt), rep.med(other, mt)
		if v == 0 || o == 0 {
			return 0, false
		}
		return v / o, true
	}
	if r, ok := ratio("azegress", "direct", metrics[3]); ok {
		fl = append(fl, floor{"bulk throughput over one tunnel ≥ 0.9 of direct", fmt.Sprintf("%.2f", r), r >= 0.9, true})
	} else {
		fl = append(fl, floor{what: "bulk throughput over one tunnel ≥ 0.9 of direct"})
	}
	if r, ok := ratio("azegress", "squid", metrics[0]); ok {
		fl = append(fl, floor{"tunnel setup rate ≥ 2× Squid's", fmt.Sprintf("%.2f×", r), r >= 2, true})
	} else {
		fl = append(fl, floor{what: "tunnel setup rate ≥ 2× Squid's"})
	}
	if r, ok := ratio("azegress", "direct", metrics[0]); ok {
		fl = append(fl, floor{"tunnel setup rate ≥ 0.5 of direct", fmt.Sprintf("%.2f", r), r >= 0.5, true})
	} else {
		fl = append(fl, floor{what: "tunnel setup rate ≥ 0.5 of direct"})
	}
	if r, ok := ratio("azegress", "squid", metrics[7]); ok {
		fl = append(fl, floor{"plain-HTTP forwarding rate ≥ 1.5× Squid's", fmt.Sprintf("%.2f×", r), r >= 1.5, true})
	} else {
		fl = append(fl, floor{what: "plain-HTTP forwarding rate ≥ 1.5× Squid's"})
	}
	if ir := res.Idle["azegress"]; ir != nil && len(ir.Levels) > 0 {
		worst := 0.0
		for _, l := range ir.Levels {
			worst = max(worst, l.PerKiB)
		}
		fl = append(fl, floor{"memory per idle tunnel ≤ 12 KiB", fmt.Sprintf("%.1f KiB", worst), worst <= 12, true})
		last := ir.Levels[len(ir.Levels)-1]
		want := 8000
		if rep.Config.Quick {
			want = last.Want
		}
		fl = append(fl, floor{fmt.Sprintf("%s idle tunnels held within a 20,000-fd limit", fmtCount(float64(want))),
			fmt.Sprintf("%s held (asked for %s), %s fds", fmtCount(float64(ir.Held)), fmtCount(float64(last.Want)), fmtCount(float64(last.FDs))), ir.Held >= want, true})
	} else {
		fl = append(fl, floor{what: "memory per idle tunnel ≤ 12 KiB"})
	}
	gb := parseGoBench(rep.GoBench)
	var worstNs, worstAllocs float64
	n := 0
	for _, l := range gb {
		if strings.HasPrefix(l.Name, "BenchmarkDecide/rules=100000/") {
			worstNs, worstAllocs = max(worstNs, l.NsOp), max(worstAllocs, l.Allocs)
			n++
		}
	}
	if n > 0 {
		fl = append(fl, floor{"policy decision < 200 ns with 0 allocations at 100,000 rules (worst of exact, wildcard, miss)",
			fmt.Sprintf("%.0f ns, %.0f allocs", worstNs, worstAllocs), worstNs < 200 && worstAllocs == 0, true})
	} else {
		fl = append(fl, floor{what: "policy decision < 200 ns with 0 allocations at 100,000 rules"})
	}
	if l, ok := findBench(gb, "BenchmarkLoad100kRules"); ok {
		fl = append(fl, floor{"100,000-rule policy load (parse, validate, compile) < 300 ms", fmtDur(l.NsOp), l.NsOp < 300e6, true})
	}
	if rl := res.Reload; rl != nil {
		fl = append(fl, floor{"tunnels failed while the policy reloads every 100 ms",
			fmt.Sprintf("%d of %s (%d reloads)", rl.Setup.Errors, fmtCount(float64(rl.Setup.N+rl.Setup.Errors)), rl.Reloads), rl.Setup.Errors == 0 && rl.Reloads > 0, true})
		if len(rl.BigReloads) > 0 {
			var v []float64
			for _, d := range rl.BigReloads {
				v = append(v, float64(d))
			}
			md := median(v)
			fl = append(fl, floor{"100,000-rule reload in the running proxy (SIGHUP to its log record, median, under load) < 300 ms",
				fmt.Sprintf("%s (%d reloads); %d of %s tunnels failed meanwhile", fmtDur(md), len(rl.BigReloads), rl.Big.Errors, fmtCount(float64(rl.Big.N+rl.Big.Errors))),
				md < 300e6 && rl.Big.Errors == 0, true})
		}
	}
	writeFloors(b, "Floors (issue 5)", fl)
}

// writeFloors writes a section with a table of floors.
func writeFloors(b *strings.Builder, title string, fl []floor) {
	b.WriteString("\n## " + title + "\n\n| floor | this run | holds |\n|---|---|---|\n")
	for _, f := range fl {
		switch {
		case !f.known:
			fmt.Fprintf(b, "| %s | not measured | — |\n", f.what)
		case f.ok:
			fmt.Fprintf(b, "| %s | %s | yes |\n", f.what, f.got)
		default:
			fmt.Fprintf(b, "| %s | %s | **no** |\n", f.what, f.got)
		}
	}
}

// renderIdentity writes the floors of issue 13: what identity-keyed
// selection costs. Tunnel CPU comes from the azegress-identity target, the
// rest from the Go benchmarks of ./identity and ./policy.
func (rep *report) renderIdentity(b *strings.Builder) {
	var fl []floor
	proxyCPU := metric{get: func(r roundResult) float64 { return float64(r.SetupCPU.Proxy) }}
	const tunnel = "CONNECT with a cached valid token: proxy CPU per tunnel ≤ 1.05× the same tunnel's without identity (azegress-identity ÷ azegress)"
	if id, plain := rep.med("azegress-identity", proxyCPU), rep.med("azegress", proxyCPU); id > 0 && plain > 0 {
		fl = append(fl, floor{tunnel, fmt.Sprintf("%.3f (%.1f / %.1f µs)", id/plain, id/1e3, plain/1e3), id/plain <= 1.05, true})
	} else {
		fl = append(fl, floor{what: tunnel})
	}
	gb := parseGoBench(rep.GoBench)
	const cold = "cold verification (cache miss, RS256): CPU per token ≤ 150 µs"
	if g, ok := findBench(gb, "BenchmarkValidateCold"); ok {
		if cpu, ok := g.metric("cpu-ns/op"); ok {
			fl = append(fl, floor{cold, fmt.Sprintf("%s CPU (%s wall)", fmtNs(cpu), fmtNs(g.NsOp)), cpu <= 150e3, true})
		} else {
			fl = append(fl, floor{cold, fmt.Sprintf("%s wall (no CPU measure)", fmtNs(g.NsOp)), g.NsOp <= 150e3, true})
		}
	} else {
		fl = append(fl, floor{what: cold})
	}
	size := float64(identity.DefaultCacheSize)
	bounded := fmt.Sprintf("100,000 distinct valid tokens in a row: memory bounded by the verified-token cache (%s entries): the heap after 100,000 ≤ 1.5× the heap once the cache is full", fmtCount(size))
	g, ok := findBench(gb, "BenchmarkValidate100kDistinct")
	entries, ok1 := g.metric("cache-entries")
	full, ok2 := g.metric("MiB-at-10k")
	after, ok3 := g.metric("MiB-at-100k")
	per, _ := g.metric("B/entry")
	if ok && ok1 && ok2 && ok3 {
		fl = append(fl, floor{bounded, fmt.Sprintf("%.1f MiB full, %.1f MiB after 100,000; %s entries, %.0f B each", full, after, fmtCount(entries), per),
			entries <= size && after <= 1.5*full, true})
	} else {
		fl = append(fl, floor{what: bounded})
	}
	const allocs = "the decision stays allocation-free with identity: a cached token's check, then its identity's block and rule"
	cached, ok1 := findBench(gb, "BenchmarkValidateCached")
	decide, ok2 := findBench(gb, "BenchmarkDecideIdentity")
	if ok1 && ok2 {
		fl = append(fl, floor{allocs, fmt.Sprintf("cached token %s, %.0f allocs; block and rule (1,000 identities, 1,000 rules) %s, %.0f allocs",
			fmtNs(cached.NsOp), cached.Allocs, fmtNs(decide.NsOp), decide.Allocs), cached.Allocs == 0 && decide.Allocs == 0, true})
	} else {
		fl = append(fl, floor{what: allocs})
	}
	writeFloors(b, "Floors (issue 13: identity)", fl)
	b.WriteString("\n")
	if len(rep.Results.Rounds["azegress-identity"]) > 0 {
		b.WriteString(`- azegress-identity is azegress with the same rules in a client block selected by a managed identity (an
  ` + "`entra`" + ` block whose authority is a stand-in tenant the load generator serves on loopback). Every ` + "`CONNECT`" + `
  and request carries the identity's token (Basic, the token as password, 1.3 KB), which the proxy verified
  once before the rounds and then finds in its cache. Only setup and plain HTTP are measured for it: in an
  open tunnel identity plays no part.
`)
	}
	plain, ok1 := findBench(gb, "BenchmarkConnectSetup")
	withID, ok2 := findBench(gb, "BenchmarkConnectSetupIdentity")
	if ok1 && ok2 && plain.NsOp > 0 {
		fmt.Fprintf(b, "- In one process (Go benchmarks, wall time of the client and the proxy together): BenchmarkConnectSetupIdentity ÷\n"+
			"  BenchmarkConnectSetup = %.2f (%s / %s). The floor is on the proxy's CPU alone, which the targets above measure.\n",
			withID.NsOp/plain.NsOp, fmtNs(withID.NsOp), fmtNs(plain.NsOp))
	}
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	Pkg          string
	Name         string
	NsOp, MBs    float64
	BOp, Allocs  float64
	HasMem, HasM bool
	Other        []string // metrics a benchmark reports itself, "1376 B/tunnel"
}

func parseGoBench(out string) []goBench {
	var r []goBench
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "pkg:" {
			pkg = f[1]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		g := goBench{Pkg: pkg, Name: f[0]}
		if i := strings.LastIndexByte(g.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(g.Name[i+1:]); err == nil {
				g.Name = g.Name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				g.NsOp = v
			case "MB/s":
				g.MBs, g.HasM = v, true
			case "B/op":
				g.BOp, g.HasMem = v, true
			case "allocs/op":
				g.Allocs = v
			default:
				g.Other = append(g.Other, f[i]+" "+f[i+1])
			}
		}
		r = append(r, g)
	}
	return r
}

// metric returns what a benchmark reported itself in unit ("cpu-ns/op").
func (g goBench) metric(unit string) (float64, bool) {
	for _, o := range g.Other {
		if v, u, ok := strings.Cut(o, " "); ok && u == unit {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func findBench(gb []goBench, name string) (goBench, bool) {
	for _, g := range gb {
		if g.Name == name {
			return g, true
		}
	}
	return goBench{}, false
}

func (rep *report) renderGoBench(b *strings.Builder) {
	b.WriteString("\n## Go benchmarks (`go test -bench . -benchmem " + strings.Join(goBenchPkgs, " ") + "`)\n\n")
	if rep.GoBenchErr != "" {
		fmt.Fprintf(b, "They did not all run: %s\n\n", rep.GoBenchErr)
	}
	gb := parseGoBench(rep.GoBench)
	if len(gb) == 0 {
		b.WriteString("No benchmark results.\n")
		return
	}
	b.WriteString("| package | benchmark | time/op | B/op | allocs/op | MB/s | its own metrics |\n|---|---|---|---|---|---|---|\n")
	for _, g := range gb {
		mem, allocs, mbs := "", "", ""
		if g.HasMem {
			mem, allocs = fmtCount(g.BOp), strconv.FormatFloat(g.Allocs, 'f', -1, 64)
			if g.BOp == 0 {
				mem = "0"
			}
		}
		if g.HasM {
			mbs = fmtCount(g.MBs)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(g.Pkg, "github.com/azegress/azegress/"),
			strings.TrimPrefix(g.Name, "Benchmark"), fmtNs(g.NsOp), mem, allocs, mbs, strings.Join(g.Other, ", "))
	}
}

func fmtNs(ns float64) string {
	if ns < 1000 {
		return fmt.Sprintf("%.1f ns", ns)
	}
	return fmtDur(ns)
}
