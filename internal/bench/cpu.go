//go:build linux

package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU time per operation, per party. A rate on a shared 2-core machine
// depends on how the scheduler shares the cores; the CPU time each process
// spent per tunnel or request does much less, and says where a ratio comes
// from: the proxy's own work, or the kernel's TCP work it causes in the
// client and the origin.

// cpuUse is the CPU time (user + system) spent per operation, and the
// system part of each, so the kernel's share is visible.
type cpuUse struct {
	Proxy, Origin, Client          time.Duration
	ProxySys, OriginSys, ClientSys time.Duration
}

// cpuMeter samples the CPU time of a measurement's parties: the proxy's
// process group (Squid's log daemon counts as Squid), the origins, and this
// process, which is the load generator.
type cpuMeter struct {
	proxy, origin *proc // proxy is nil for direct
}

// cpuSample is the total and the system CPU time of the proxy, the origins
// and the client, in that order.
type cpuSample [3][2]time.Duration

func (m cpuMeter) sample() cpuSample {
	var s cpuSample
	if m.proxy != nil {
		s[0][0], s[0][1] = groupCPUSplit(m.proxy.pid())
	}
	if m.origin != nil {
		s[1][0], s[1][1] = groupCPUSplit(m.origin.pid())
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s[2][0] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s[2][1] = time.Duration(ru.Stime.Nano())
	}
	return s
}

// per returns the CPU time spent since before, divided by n operations.
func (m cpuMeter) per(before cpuSample, n float64) cpuUse {
	if n <= 0 {
		return cpuUse{}
	}
	after := m.sample()
	d := func(i, j int) time.Duration { return time.Duration(float64(after[i][j]-before[i][j]) / n) }
	return cpuUse{Proxy: d(0, 0), Origin: d(1, 0), Client: d(2, 0), ProxySys: d(0, 1), OriginSys: d(1, 1), ClientSys: d(2, 1)}
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// groupCPU returns the CPU time of every process in pgid's process group
// (the harness starts each proxy in a group of its own).
func groupCPU(pgid int) time.Duration {
	total, _ := groupCPUSplit(pgid)
	return total
}

// groupCPUSplit returns the CPU time (user + system) of pgid's process
// group, and the system part of it.
func groupCPUSplit(pgid int) (total, sys time.Duration) {
	var ut, st int64
	for _, pid := range groupPIDs(pgid) {
		if _, u, s, ok := procStat(pid); ok {
			ut, st = ut+u, st+s
		}
	}
	return time.Duration(ut+st) * clockTick, time.Duration(st) * clockTick
}

// groupPIDs returns the processes of process group pgid.
func groupPIDs(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if grp, _, _, ok := procStat(pid); ok && grp == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupCtxSwitches is the sum of voluntary and involuntary context switches
// over every thread of every process in pgid's group: how often its
// threads went to sleep or were put off a core, the wake-ups an exchange
// costs.
func groupCtxSwitches(pgid int) int64 {
	var n int64
	for _, pid := range groupPIDs(pgid) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
			if err == nil {
				n += ctxSwitches(string(b))
			}
		}
	}
	return n
}

// ctxSwitches reads voluntary_ctxt_switches + nonvoluntary_ctxt_switches
// from a /proc status file.
func ctxSwitches(status string) int64 {
	var n int64
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}

// procStat reads the process group, utime and stime of pid.
func procStat(pid int) (pgrp int, utime, stime int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, 0, 0, false
	}
	pgrp, err1 := strconv.Atoi(f[2])               // field 5
	utime, err2 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err3 := strconv.ParseInt(f[12], 10, 64) // field 15
	return pgrp, utime, stime, err1 == nil && err2 == nil && err3 == nil
}
