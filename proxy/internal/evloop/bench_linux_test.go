package evloop

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy/internal/nettest"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// benchHandler dials every CONNECT and relays at once.
type benchHandler struct{}

func (benchHandler) Head(c *Conn, head []byte, ev Event) Action  { return connectHead(head) }
func (benchHandler) HandOff(c *Conn, nc net.Conn, prefix []byte) { nc.Close() }
func (benchHandler) DialFailed(c *Conn, err error) []byte        { return badGate502 }
func (benchHandler) Opening(c *Conn, o Opening) Action           { return Relay() }
func (benchHandler) Closed(c *Conn, end End)                     {}

// BenchmarkTunnelSetup is one tunnel's life through the engine: CONNECT,
// 200, a byte echoed, close. Allocations include the client's.
func BenchmarkTunnelSetup(b *testing.B) {
	echo := benchOrigin(b)
	benchTunnels(b, benchEngine(b, Config{Handler: benchHandler{}}), echo)
}

// benchEngine serves an engine with cfg on a loopback listener until the
// benchmark ends.
func benchEngine(b *testing.B, cfg Config) string {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	go e.Serve(ln)
	b.Cleanup(func() {
		e.Shutdown(context.Background())
		ln.Close()
	})
	return ln.Addr().String()
}

// measureCPU starts a benchmark's loop; the function it returns, deferred,
// reports the whole process's CPU per op: client, origin and engine alike.
func measureCPU(b *testing.B) func() {
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkTunnelSetupRelay is the same through a goroutine per connection
// and relay.Start, the proxy's path today without its policy.
func BenchmarkTunnelSetupRelay(b *testing.B) {
	echo := benchOrigin(b)
	ln := nettest.Listen(b)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReaderSize(c, 4<<10)
				var target string
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						c.Close()
						return
					}
					if target == "" {
						target = line[len("CONNECT ") : len(line)-len(" HTTP/1.1\r\n")]
					}
					if line == "\r\n" {
						break
					}
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				c.Write(ok200)
				relay.Start(context.Background(), c, up, 0, nil, func(string, error) {})
			}()
		}
	}()
	benchTunnels(b, ln.Addr().String(), echo)
}

// benchExchanger sends every GET to its origin, which answers each with
// benchResp, and keeps both ends alive.
type benchExchanger struct {
	benchHandler
	origin []netip.AddrPort
}

var benchResp = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

func (h benchExchanger) Head(c *Conn, head []byte, ev Event) Action {
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		return Exchange("origin", h.origin, head[:i+4], i+4, true)
	}
	return NeedMore()
}

func (h benchExchanger) Response(c *Conn, resp []byte, ev Event) Action {
	n := len(benchResp) - 2
	if len(resp) < n || ev != EventNone {
		return Refuse(badGate502)
	}
	return Respond(resp[:n], n, true, true)
}

func (h benchExchanger) Body(c *Conn, b []byte, eof bool) (int, bool) { return len(b), len(b) == 2 }
func (h benchExchanger) Exchanged(c *Conn, x ExchangeEnd)             {}

// BenchmarkExchangeKeepAlive is one plain-HTTP request through the
// engine's exchange phase on a kept client and a kept origin connection.
func BenchmarkExchangeKeepAlive(b *testing.B) {
	orig := benchServer(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) == 2 {
					break
				}
			}
			c.Write(benchResp)
		}
	})
	h := benchExchanger{origin: []netip.AddrPort{netip.MustParseAddrPort(orig)}}
	c, err := net.Dial("tcp", benchEngine(b, Config{Handler: h, Loops: 1}))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET http://o/x HTTP/1.1\r\nHost: o\r\n\r\n")
	buf := make([]byte, len(benchResp))
	defer measureCPU(b)()
	for range b.N {
		c.Write(req)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchOrigin(b *testing.B) string {
	return netip.MustParseAddrPort(benchServer(b, nettest.Echo)).String()
}

// benchServer serves each connection to a loopback listener with fn on a
// goroutine of its own, and closes it after.
func benchServer(b *testing.B, fn func(net.Conn)) string {
	ln := nettest.Listen(b)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { fn(c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func benchTunnels(b *testing.B, addr, target string) {
	req := []byte("CONNECT " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, len(ok200))
	defer measureCPU(b)()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(req)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Write(buf[:1])
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
