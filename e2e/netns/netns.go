//go:build linux

// Package netns makes named Linux network namespaces for end-to-end tests
// and runs code, processes and sockets inside them.
//
// A namespace is made with `ip netns add`, so `ip netns exec` (and anyone
// debugging a hung test with `ip netns list`) sees it, and files written with
// WriteEtc replace /etc files for processes started with Command, as
// `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc. Sockets made by Do,
// Listen, ListenPacket and Dial belong to the namespace for their whole life,
// whichever goroutine uses them later.
//
// Everything needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace made by New.
type NS struct {
	Name string
}

// New makes the namespace name with its loopback interface up. A leftover
// namespace of the same name is removed first.
func New(name string) (*NS, error) {
	n := &NS{Name: name}
	_ = n.Delete()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		_ = n.Delete()
		return nil, err
	}
	return n, nil
}

// Delete removes the namespace (with the interfaces in it) and its
// /etc/netns directory. Processes still running in it keep it alive until
// they exit; kill them first.
func (n *NS) Delete() error {
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", n.Name)); err == nil {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, strings.TrimSpace(string(out))))
		}
	}
	if err := os.RemoveAll(n.etcDir()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// IP runs `ip -n NAME args...`.
func (n *NS) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec`, which execs it: the process's PID is the command's.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// WriteEtc writes /etc/netns/NAME/file, which processes started with Command
// see as /etc/file (hosts, resolv.conf). Delete removes it.
func (n *NS) WriteEtc(file string, data []byte) error {
	if err := os.MkdirAll(n.etcDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.etcDir(), file), data, 0o644)
}

func (n *NS) etcDir() string { return filepath.Join("/etc/netns", n.Name) }

// Do runs f on an OS thread inside the namespace. The thread is never
// returned to the scheduler: the runtime discards a locked thread when its
// goroutine ends, so no other goroutine ever runs in the namespace by
// accident.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", n.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", n.Name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Sysctl sets a sysctl of the namespace, such as net.ipv4.ip_forward:
// /proc/sys/net belongs to the network namespace of the thread that opens it.
func (n *NS) Sysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
}

// Listen listens on addr inside the namespace.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket on addr inside the namespace.
func (n *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial connects to addr, an IP literal and port, from inside the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// SweepStale deletes namespaces (and /etc/netns directories) named
// prefix+PID+rest whose PID is not a running process: leftovers of a test run
// that was killed before its cleanup ran. It returns the names it deleted.
func SweepStale(prefix string) []string {
	run, _ := os.ReadDir("/run/netns")
	etc, _ := os.ReadDir("/etc/netns")
	var gone []string
	seen := map[string]bool{}
	for _, e := range append(run, etc...) {
		if seen[e.Name()] {
			continue
		}
		seen[e.Name()] = true
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		digits := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if digits == -1 {
			digits = len(rest)
		}
		pid, err := strconv.Atoi(rest[:digits])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			if (&NS{Name: e.Name()}).Delete() == nil {
				gone = append(gone, e.Name())
			}
		}
	}
	return gone
}
