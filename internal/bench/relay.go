//go:build linux

package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"context"

	"github.com/azegress/azegress/proxy"
)

// The bare relay is the control of the round-trip and setup figures: the
// least a Go CONNECT proxy does (read the head, dial, 200, two goroutines
// with io.Copy), with no policy, no log, no parking and no limits. What
// azegress spends above it is azegress's; what it spends itself is Go's
// and the kernel's.

const relayPort = 3132

// relayMain is "relay": serve CONNECT on -listen until SIGTERM.
func relayMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", fmt.Sprintf("127.0.0.1:%d", relayPort), "`address` to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	proxy.RaiseFileLimit()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 1
	}
	go serveTCP(ln, relayConn)
	fmt.Fprintln(stdout, "ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	ln.Close()
	return 0
}

// relayConn serves one CONNECT: anything but a well-formed CONNECT whose
// destination answers is closed without a word.
func relayConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "CONNECT" {
		return
	}
	for {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(strings.TrimSpace(string(l))) == 0 {
			break
		}
	}
	up, err := net.DialTimeout("tcp", f[1], 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either side gone: the deferred closes end the other copy
}

// startRelay runs the bare relay in a process of its own.
func startRelay(dir, self string) (*target, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", relayPort)
	p, err := startProc("relay", filepath.Join(dir, "relay.log"), self, "relay", "-listen", addr)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: "relay", addr: addr, proc: p, connectOnly: true}, nil
}
