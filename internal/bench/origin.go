//go:build linux

package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/azegress/azegress/proxy"
)

// The origins the proxies tunnel and forward to, all on 127.0.0.1 in the
// benchmark's network namespace. They run in a process of their own, so their
// sockets count against their own RLIMIT_NOFILE and not the load generator's.
// The ports are variables only so that the package's tests can use origins
// on ephemeral ports outside a namespace.
var (
	echoPort   = 7001 // TCP: writes back what it reads
	sourcePort = 7002 // TCP: writes as fast as it can until the peer goes away
	httpPort   = 7080 // HTTP/1.1 with keep-alive: a 3-byte body per request
)

// originHost and wildHost are the names clients ask the proxies for: one
// matched by an exact rule, one by a wildcard rule of the benchmark policy.
const (
	originHost = "origin.azbench.example"
	wildHost   = "a1.cdn.azbench.example"
)

// originMain serves the origins until SIGTERM (or its parent's death). It
// prints "ready" once every listener is open.
func originMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ip := fs.String("ip", "127.0.0.1", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	proxy.RaiseFileLimit()
	lns := make([]net.Listener, 3)
	for i, p := range []int{echoPort, sourcePort, httpPort} {
		ln, err := net.Listen("tcp", net.JoinHostPort(*ip, fmt.Sprint(p)))
		if err != nil {
			fmt.Fprintf(stderr, "origin: %v\n", err)
			return 1
		}
		lns[i] = ln
	}
	go serveTCP(lns[0], echoConn)
	go serveTCP(lns[1], sourceConn)
	hs := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }),
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       10 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = hs.Serve(lns[2]) }()
	fmt.Fprintln(stdout, "ready")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	return 0
}

func serveTCP(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off, as net/http does
			continue
		}
		go handle(c)
	}
}

// echoConn writes back what it reads, through a small buffer: it must hold
// thousands of idle connections cheaply and never splice (a blocked splice
// holds a pipe, two more fds per connection).
func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

var sourceBuf = make([]byte, 256<<10)

// sourceConn writes until the peer goes away.
func sourceConn(c net.Conn) {
	defer c.Close()
	for {
		if _, err := c.Write(sourceBuf); err != nil {
			return
		}
	}
}
