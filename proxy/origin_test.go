package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

// scriptedOrigin is a plain-HTTP origin on 127.0.0.1 that runs a script on
// each connection it accepts, given the connection's index. It counts the
// connections it accepted and those whose script saw the proxy close them.
type scriptedOrigin struct {
	port     uint16
	accepted atomic.Int32
	eofs     atomic.Int32
}

func scriptOrigin(t *testing.T, script func(i int, c net.Conn, br *bufio.Reader)) *scriptedOrigin {
	t.Helper()
	ln := nettest.Listen(t)
	o := &scriptedOrigin{port: portOf(t, ln.Addr())}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			i := int(o.accepted.Add(1)) - 1
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				script(i, c, br)
				// Whatever the script left: wait for the proxy to close.
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				if _, err := io.Copy(io.Discard, br); err == nil {
					o.eofs.Add(1)
				}
			})
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return o
}

// answer reads one request and writes resp, or, for HEAD, resp's head.
// It reports false once the proxy closed the connection.
func answer(c net.Conn, br *bufio.Reader, resp string) bool {
	r, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	if r.Method == http.MethodHead {
		resp = resp[:strings.Index(resp, "\r\n\r\n")+4]
	}
	_, err = io.WriteString(c, resp)
	return err == nil
}

func answerAll(resp string) func(int, net.Conn, *bufio.Reader) {
	return func(_ int, c net.Conn, br *bufio.Reader) {
		for answer(c, br, resp) {
		}
	}
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func originPolicy(port uint16) string {
	return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "origin" {
    hosts     = ["origin.example.com"]
    ports     = [%d]
    addresses = ["127.0.0.0/8"]
  }
}`, port)
}

// get sends one request for origin.example.com through the proxy, on a
// connection of its own, and returns the status and body.
func (tp *testProxy) get(method string, port uint16) (int, string) {
	tp.t.Helper()
	req := fmt.Sprintf("%s http://origin.example.com:%d/ HTTP/1.1\r\nHost: origin.example.com:%d\r\n", method, port, port)
	if method == http.MethodPost {
		req += "Content-Length: 0\r\n"
	}
	resp, c, _ := tp.raw("", req+"\r\n")
	defer func() {
		c.Close()
		if tp.engine != nil {
			// The engine keeps an origin with its client until it reads
			// the client's close, where net/http's transport pools it once
			// the body is read: the next get's request could come first,
			// on another loop, and dial anew.
			waitFor(tp.t, func() bool { return tp.engine.Conns() == 0 }, "the client's close")
		}
	}()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tp.t.Errorf("%s: reading the body: %v", method, err)
	}
	if resp.StatusCode != http.StatusOK && resp.Header.Get("X-Azegress-Reason") != ReasonDialFailed {
		tp.t.Errorf("%s: %d with reason %q", method, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"))
	}
	return resp.StatusCode, string(b)
}

// Bodiless plain-HTTP requests go through the origin pool: each case is an
// origin's behaviour, the requests sent one after another, what the client
// gets, and how many connections the origin saw.
func TestOriginPool(t *testing.T) {
	t.Parallel()
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHead) + "\r\nContent-Length: 2\r\n\r\nok"
	for _, tt := range []struct {
		name    string
		script  func(i int, c net.Conn, br *bufio.Reader)
		methods []string
		want    []string // status and body
		conns   int32    // connections the origin accepted
		closed  int32    // of them, closed by the proxy before the test ends (-1: either way)
	}{
		{"kept alive and reused", answerAll(okResponse),
			[]string{"GET", "GET", "POST"}, []string{"200 ok", "200 ok", "200 ok"}, 1, 0},
		{"HEAD leaves no body on the connection", answerAll("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
			[]string{"HEAD", "GET"}, []string{"200 ", "200 0123456789"}, 1, 0},
		{"chunked with a trailer", answerAll("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"),
			[]string{"GET", "GET"}, []string{"200 ok", "200 ok"}, 1, 0},
		{"closed after each answer", func(_ int, c net.Conn, br *bufio.Reader) {
			answer(c, br, okResponse)
			c.Close()
		}, []string{"GET", "GET", "GET"}, []string{"200 ok", "200 ok", "200 ok"}, 3, 0},
		{"Connection: close is honoured", answerAll("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
			[]string{"GET", "GET"}, []string{"200 ok", "200 ok"}, 2, 2},
		{"read to close", func(_ int, c net.Conn, br *bufio.Reader) {
			answer(c, br, "HTTP/1.1 200 OK\r\n\r\nuntil close")
			c.Close()
		}, []string{"GET", "GET"}, []string{"200 until close", "200 until close"}, 2, 0},
		{"a dropped GET on a reused connection is sent again", func(i int, c net.Conn, br *bufio.Reader) {
			if i == 0 {
				answer(c, br, okResponse)
				_, _ = http.ReadRequest(br) // read, then hang up without an answer
				c.Close()
				return
			}
			answerAll(okResponse)(i, c, br)
		}, []string{"GET", "GET", "GET"}, []string{"200 ok", "200 ok", "200 ok"}, 2, 0},
		{"a dropped POST is not sent again", func(i int, c net.Conn, br *bufio.Reader) {
			answer(c, br, okResponse)
			_, _ = http.ReadRequest(br)
			c.Close()
		}, []string{"GET", "POST"}, []string{"200 ok", "502 "}, 1, 0},
		{"1xx before the answer", answerAll("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + okResponse),
			[]string{"GET", "GET"}, []string{"200 ok", "200 ok"}, 1, 0},
		{"five 1xx are allowed", answerAll(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 5) + okResponse),
			[]string{"GET"}, []string{"200 ok"}, 1, 0},
		{"six 1xx are not", answerAll(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + okResponse),
			[]string{"GET", "GET"}, []string{"502 ", "502 "}, 2, 2},
		{"a 101 nobody asked for", answerAll("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"),
			[]string{"GET"}, []string{"502 "}, 1, 1},
		{"a response head over the limit", answerAll(big),
			[]string{"GET"}, []string{"502 "}, 1, -1},
		{"a malformed status line", answerAll("HTTP/1.1 2OO OK\r\n\r\n"),
			[]string{"GET", "GET"}, []string{"502 ", "502 "}, 2, 2},
		{"bytes after the answer are not read as the next one", func(i int, c net.Conn, br *bufio.Reader) {
			if i == 0 {
				answer(c, br, okResponse+"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
			}
			answerAll(okResponse)(i, c, br)
		}, []string{"GET", "GET"}, []string{"200 ok", "200 ok"}, 2, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := scriptOrigin(t, tt.script)
			tp := startProxy(t, originPolicy(o.port), loopbackNames("origin.example.com"), quietLogs, plainDials)
			for i, m := range tt.methods {
				code, body := tp.get(m, o.port)
				if got := fmt.Sprintf("%d %s", code, body); got != tt.want[i] && !(strings.HasSuffix(tt.want[i], " ") && strings.HasPrefix(got, tt.want[i])) {
					t.Errorf("request %d (%s): %q, want %q", i, m, got, tt.want[i])
				}
			}
			if got := o.accepted.Load(); got != tt.conns {
				t.Errorf("origin accepted %d connections, want %d", got, tt.conns)
			}
			if tt.closed < 0 {
				return // the origin may see a reset instead of EOF
			}
			waitFor(t, func() bool { return o.eofs.Load() >= tt.closed }, fmt.Sprintf("the proxy to close %d origin connections", tt.closed))
			if got := o.eofs.Load(); got != tt.closed {
				t.Errorf("the proxy closed %d origin connections, want %d", got, tt.closed)
			}
		})
	}
}

// A client that leaves while the origin has not answered, or before it read
// the whole body, takes the origin connection with it: nothing is left to be
// read as the next request's answer, and nothing waits on the origin.
func TestOriginPoolClientLeaves(t *testing.T) {
	t.Parallel()
	const bodySize = 32 << 20 // more than loopback socket buffers hold
	o := scriptOrigin(t, func(i int, c net.Conn, br *bufio.Reader) {
		switch i {
		case 0: // silent: reads the request, never answers
			_, _ = http.ReadRequest(br)
		case 1: // a body larger than the client will read
			answer(c, br, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bodySize, strings.Repeat("x", bodySize)))
		default:
			answerAll(okResponse)(i, c, br)
		}
	})
	tp := startProxy(t, originPolicy(o.port), loopbackNames("origin.example.com"), quietLogs, plainDials)
	req := fmt.Sprintf("GET http://origin.example.com:%d/ HTTP/1.1\r\nHost: origin.example.com:%d\r\n\r\n", o.port, o.port)

	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, req)
	waitFor(t, func() bool { return o.accepted.Load() == 1 }, "the origin to get the request")
	c.Close()
	waitFor(t, func() bool { return o.eofs.Load() == 1 }, "the proxy to close the silent origin's connection")

	resp, c, br := tp.raw("", req)
	if resp.StatusCode != 200 {
		t.Fatalf("large body: %d", resp.StatusCode)
	}
	if _, err := br.Peek(1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, func() bool { return o.eofs.Load() == 2 }, "the proxy to close the origin connection whose body nobody read")

	if code, body := tp.get("GET", o.port); code != 200 || body != "ok" {
		t.Errorf("next request: %d %q", code, body)
	}
	if got := o.accepted.Load(); got != 3 {
		t.Errorf("origin accepted %d connections, want 3", got)
	}
}

// A reload retires the old policy's idle origin connections; Shutdown closes
// the rest.
func TestOriginPoolClosedByReloadAndShutdown(t *testing.T) {
	t.Parallel()
	o := scriptOrigin(t, answerAll(okResponse))
	t.Cleanup(func() { // runs after the proxy's Shutdown, registered below
		waitFor(t, func() bool { return o.eofs.Load() == 2 }, "Shutdown to close the idle origin connection")
	})
	tp := startProxy(t, originPolicy(o.port), loopbackNames("origin.example.com"), quietLogs, plainDials)
	tp.get("GET", o.port)
	tp.SetPolicy(loadPolicy(t, originPolicy(o.port)))
	waitFor(t, func() bool { return o.eofs.Load() == 1 }, "the reload to close the idle origin connection")
	tp.get("GET", o.port)
	tp.get("GET", o.port)
	if got := o.accepted.Load(); got != 2 {
		t.Errorf("origin accepted %d connections, want 2: one per policy", got)
	}
}

// Idle connections are closed after the pool's idle timeout, even if no
// request comes to take them.
func TestOriginPoolIdleTimeout(t *testing.T) {
	t.Parallel()
	o := scriptOrigin(t, answerAll(okResponse))
	var d net.Dialer
	p := &originPool{idleTimeout: 100 * time.Millisecond, dial: func(ctx context.Context, _ *flow, _ bool) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", o.port))
	}}
	fl := &flow{port: o.port}
	for range 2 {
		r, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", o.port), nil)
		resp, err := p.roundTrip(r, fl)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		keys := len(p.idle)
		p.mu.Unlock()
		if keys != 0 {
			t.Errorf("%d destinations listed while their only connection is in use", keys)
		}
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
			t.Fatalf("body %q, %v", b, err)
		}
	}
	waitFor(t, func() bool { return o.eofs.Load() == 1 }, "the idle connection to be closed")
	p.mu.Lock()
	idle, keys, sweeping := p.nidle, len(p.idle), p.sweep != nil
	p.mu.Unlock()
	if idle != 0 || keys != 0 || sweeping || o.accepted.Load() != 1 {
		t.Errorf("after the sweep: %d idle in %d lists, sweep armed %v, %d connections accepted", idle, keys, sweeping, o.accepted.Load())
	}
}

// TestHardeningOriginPoolNoLeak sends plain-HTTP requests to origins that
// answer, hang up, answer garbage or never answer while the client leaves,
// then reloads: goroutines and fds return to their baseline.
func TestHardeningOriginPoolNoLeak(t *testing.T) {
	const rounds = 50
	good := scriptOrigin(t, answerAll(okResponse))
	hangup := scriptOrigin(t, func(_ int, c net.Conn, br *bufio.Reader) {
		answer(c, br, okResponse)
		c.Close()
	})
	garbage := scriptOrigin(t, answerAll("HTTP/1.1 2OO OK\r\n\r\n"))
	silent := scriptOrigin(t, func(_ int, _ net.Conn, br *bufio.Reader) { _, _ = http.ReadRequest(br) })
	src := fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "origin" {
    hosts     = ["origin.example.com"]
    ports     = [%d, %d, %d, %d]
    addresses = ["127.0.0.0/8"]
  }
}`, good.port, hangup.port, garbage.port, silent.port)
	tp := startProxy(t, src, loopbackNames("origin.example.com"), quietLogs, plainDials)
	tp.get("GET", good.port) // lazily made state goes into the baseline
	tp.SetPolicy(loadPolicy(t, src))
	base := measureResources(t)

	var wg sync.WaitGroup
	for range rounds {
		wg.Go(func() { tp.get("GET", good.port) })
		wg.Go(func() { tp.get("GET", hangup.port) })
		wg.Go(func() { tp.get("GET", garbage.port) })
		wg.Go(func() {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(c, "GET http://origin.example.com:%d/ HTTP/1.1\r\nHost: origin.example.com\r\n\r\n", silent.port)
			time.Sleep(10 * time.Millisecond)
			c.Close()
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return silent.eofs.Load() == silent.accepted.Load() }, "every silent origin connection to be closed")
	tp.SetPolicy(loadPolicy(t, src)) // retires the idle connections
	backToBaseline(t, base, 6, "after plain-HTTP origin faults")
}
