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

// cpuUse is the CPU time (user + system) spent per operation.
type cpuUse struct {
	Proxy, Origin, Client time.Duration
}

// cpuMeter samples the CPU time of a measurement's parties: the proxy's
// process group (Squid's log daemon counts as Squid), the origins, and this
// process, which is the load generator.
type cpuMeter struct {
	proxy, origin *proc // proxy is nil for direct
}

type cpuSample [3]time.Duration

func (m cpuMeter) sample() cpuSample {
	var s cpuSample
	if m.proxy != nil {
		s[0] = groupCPU(m.proxy.pid())
	}
	if m.origin != nil {
		s[1] = groupCPU(m.origin.pid())
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s[2] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// per returns the CPU time spent since before, divided by n operations.
func (m cpuMeter) per(before cpuSample, n float64) cpuUse {
	if n <= 0 {
		return cpuUse{}
	}
	after := m.sample()
	d := func(i int) time.Duration { return time.Duration(float64(after[i]-before[i]) / n) }
	return cpuUse{Proxy: d(0), Origin: d(1), Client: d(2)}
}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// groupCPU returns the CPU time of every process in pgid's process group
// (the harness starts each proxy in a group of its own).
func groupCPU(pgid int) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		grp, ut, st, ok := procStat(pid)
		if ok && grp == pgid {
			ticks += ut + st
		}
	}
	return time.Duration(ticks) * clockTick
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
