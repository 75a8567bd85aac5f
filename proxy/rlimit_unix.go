//go:build unix

package proxy

import "syscall"

// RaiseFileLimit lifts the process's soft RLIMIT_NOFILE to its hard limit,
// since every tunnel holds two sockets, and returns the limit in force (0 if
// it cannot be read).
func RaiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}
