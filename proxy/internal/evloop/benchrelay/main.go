//go:build linux

// Command benchrelay is a bare CONNECT relay on the event-loop engine, for
// the benchmark (internal/bench's "engine" target): what the engine costs
// per tunnel as a process of its own, beside the hand-written evloop
// control and the goroutine relay. No policy, no log; a name is resolved
// once and kept, as a DNS cache hit. It serves on -listen until SIGTERM.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/azegress/azegress/internal/bench"
	"github.com/azegress/azegress/proxy/internal/evloop"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:3135", "`address` to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchrelay: %v\n", err)
		os.Exit(1)
	}
	e, err := evloop.New(evloop.Config{Handler: &handler{names: bench.NewNameCache()}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchrelay: %v\n", err)
		os.Exit(1)
	}
	go func() {
		if err := e.Serve(ln.(*net.TCPListener)); err != nil && err != evloop.ErrClosed {
			fmt.Fprintf(os.Stderr, "benchrelay: %v\n", err)
			os.Exit(1)
		}
	}()
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	_ = e.Shutdown(context.Background())
}

var (
	established = []byte("HTTP/1.1 200 Connection established\r\n\r\n")
	badRequest  = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	badGateway  = []byte("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	crlf2       = []byte("\r\n\r\n")
)

type handler struct{ names *bench.NameCache }

func (h *handler) Head(c *evloop.Conn, head []byte, ev evloop.Event) evloop.Action {
	i := bytes.Index(head, crlf2)
	if i < 0 {
		if ev.Terminal() {
			return evloop.Refuse(badRequest)
		}
		return evloop.NeedMore()
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) != 3 || string(f[0]) != "CONNECT" {
		return evloop.Refuse(badRequest)
	}
	ap, ok := h.names.Lookup(string(f[1]))
	if !ok {
		return evloop.Refuse(badGateway)
	}
	return evloop.Dial([]netip.AddrPort{ap}, established, i+4)
}

func (h *handler) HandOff(_ *evloop.Conn, nc net.Conn, _ []byte) { nc.Close() }

func (h *handler) DialFailed(*evloop.Conn, error) []byte { return badGateway }

func (h *handler) Opening(*evloop.Conn, evloop.Opening) evloop.Action { return evloop.Relay() }

func (h *handler) Closed(*evloop.Conn, evloop.End) {}
