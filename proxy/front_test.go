package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/proxy/internal/httphead"
	"github.com/azegress/azegress/proxy/internal/nettest"
)

// TestFrontDoorMatchesNetHTTP sends each CONNECT twice: as the first request
// of a connection, which the front door reads and answers, and after a
// kept-alive POST with a body on the same connection (which neither front
// door serves: the connection is net/http's from then on), which net/http
// reads and serveConnectHTTP answers. Both must give the same status, reason, body and
// connection handling.
func TestFrontDoorMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	_, port := httpOrigin(t, "origin")
	tp := startProxy(t, httpPolicy(port), loopbackNames("allowed.example.com", "other.example.com"))
	p := port
	for _, tt := range []struct {
		name, head string
		status     int  // 0: either way, as long as both paths agree
		front      bool // the front door answers it on a new connection
	}{
		{"allowed", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", p, p), 200, true},
		{"allowed HTTP/1.0 without Host", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.0\r\n\r\n", p), 200, true},
		{"allowed, Host without port", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com\r\n\r\n", p), 200, true},
		{"allowed, upper case", fmt.Sprintf("CONNECT ALLOWED.Example.COM:%d HTTP/1.1\r\n\r\n", p), 200, true},
		{"no rule", fmt.Sprintf("CONNECT denied.example.com:%d HTTP/1.1\r\n\r\n", p), 403, true},
		{"port not allowed", "CONNECT allowed.example.com:1 HTTP/1.1\r\n\r\n", 403, true},
		{"IP literal", fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", p), 0, true},
		{"IMDS", "CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", 403, true},
		{"Host disagrees", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: other.example.com:%d\r\n\r\n", p, p), 400, true},
		{"no port", "CONNECT allowed.example.com HTTP/1.1\r\n\r\n", 400, true},
		{"two ports", fmt.Sprintf("CONNECT allowed.example.com:%d:%d HTTP/1.1\r\n\r\n", p, p), 400, true},
		{"port zero", "CONNECT allowed.example.com:0 HTTP/1.1\r\n\r\n", 400, true},
		{"underscore", fmt.Sprintf("CONNECT a_b.example.com:%d HTTP/1.1\r\n\r\n", p), 0, true},
		{"userinfo", fmt.Sprintf("CONNECT u@allowed.example.com:%d HTTP/1.1\r\n\r\n", p), 400, false},
		{"percent escape", fmt.Sprintf("CONNECT allowed%%2eexample.com:%d HTTP/1.1\r\n\r\n", p), 400, false},
		{"control byte in a header value", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nX-A: b\x01c\r\n\r\n", p), 400, false},
		{"two Host headers", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", p), 400, false},
		{"Content-Length", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nContent-Length: 0\r\n\r\n", p), 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tp.frontConnects.Load()
			first := frontExchange(t, tp, "", tt.head)
			fast := tp.frontConnects.Load() > before
			before = tp.frontConnects.Load()
			second := frontExchange(t, tp, fmt.Sprintf("POST http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\nContent-Length: 1\r\n\r\nx", p, p), tt.head)
			if tp.frontConnects.Load() != before {
				t.Fatalf("the front door answered a request after the first on a connection")
			}
			// Where net/http refuses a head itself (a bare 400 without a
			// reason), the front door must refuse it with the same status;
			// otherwise the answers must be the same.
			same := first == second
			if !strings.Contains(second, "reason: "+ReasonBadRequest) && strings.Contains(second, " 400 Bad Request") {
				same = strings.HasPrefix(first, strings.SplitN(second, "\n", 2)[0]) && strings.HasSuffix(first, "closed after: true") && strings.HasSuffix(second, "closed after: true")
			}
			if !same {
				t.Errorf("the two paths differ:\nfirst request:\n%s\nafter a GET:\n%s", first, second)
			}
			if tt.status != 0 && !strings.HasPrefix(first, fmt.Sprintf("HTTP/1.1 %d ", tt.status)) && !strings.HasPrefix(first, fmt.Sprintf("HTTP/1.0 %d ", tt.status)) {
				t.Errorf("got\n%s\nwant status %d", first, tt.status)
			}
			// Where the front door answers, the comparison above compares two
			// paths; the others check it leaves alone what it must.
			if fast != tt.front {
				t.Errorf("answered by the front door: %v, want %v", fast, tt.front)
			}
		})
	}
}

// frontExchange sends pre (whose response it reads and checks is 200 and
// kept alive) and then head on one connection, and describes the response
// to head: status line, reason, Connection, body (up to a 200: what
// follows is the origin's), and whether the proxy then closed the
// connection.
func frontExchange(t *testing.T, tp *testProxy, pre, head string) string {
	t.Helper()
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if pre != "" {
		if _, err := io.WriteString(c, pre); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("the request before the CONNECT: %d, close %v", resp.StatusCode, resp.Close)
		}
	}
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the response to %q: %v", head, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\nreason: %s\nconnection: %s\n", resp.Proto, resp.Status, resp.Header.Get("X-Azegress-Reason"), resp.Header.Get("Connection"))
	if resp.StatusCode == 200 {
		return b.String()
	}
	body, _ := io.ReadAll(resp.Body)
	b.Write(body)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	fmt.Fprintf(&b, "\nclosed after: %v", err != nil)
	return b.String()
}

// TestFrontDoorEarlyData: bytes a client sends right behind its CONNECT
// head, before the 200, reach the destination.
func TestFrontDoorEarlyData(t *testing.T) {
	t.Parallel()
	origin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	go func() {
		for {
			c, err := origin.Accept()
			if err != nil {
				return
			}
			go nettest.Echo(c)
		}
	}()
	port := portOf(t, origin.Addr())
	_, webPort := httpOrigin(t, "web")
	web := fmt.Sprintf("  allow \"web\" {\n    hosts     = [\"allowed.example.com\"]\n    ports     = [%d]\n    addresses = [\"127.0.0.0/8\"]\n  }", webPort)
	tp := startProxy(t, basePolicy(port, web), loopbackNames("allowed.example.com"))
	for _, early := range []string{"ping", strings.Repeat("x", 3000), strings.Repeat("y", 9000)} {
		// First on its connection, the front door answers the CONNECT;
		// after a kept-alive GET, net/http reads it.
		for _, pre := range []string{"", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", webPort, webPort)} {
			c, err := net.Dial("tcp", tp.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if pre != "" {
				_, _ = io.WriteString(c, pre)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 || resp.Close {
					t.Fatalf("GET before the CONNECT: %v %v", resp, err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			if _, err := fmt.Fprintf(c, "CONNECT allowed.example.com:%d HTTP/1.1\r\n\r\n%s", port, early); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			got := make([]byte, len(early))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != early {
				t.Errorf("%d early bytes (after a GET: %v): echoed %d (%v)", len(early), pre != "", len(strings.TrimRight(string(got), "\x00")), err)
			}
			c.Close()
		}
	}
}

// TestFrontDoorShutdownClosesWaitingConns: a connection that has not sent a
// head does not hold up Shutdown, and is closed by it.
func TestFrontDoorShutdownClosesWaitingConns(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, basePolicy(1, ""), nil)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "CONNECT allowed.exa"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		if tp.engine != nil { // the engine holds it from its accept
			return tp.conns.Load() == 1
		}
		tp.mu.Lock()
		defer tp.mu.Unlock()
		return len(tp.front) == 1
	}, "the connection to wait for its head")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- tp.Shutdown(ctx)
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the proxy answered a partial head during Shutdown")
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// FuzzFrontDoor checks that the front door answers no first request that
// net/http refuses: a head it takes as a plain CONNECT, which net/http's
// reader cannot read, must be refused by checkTarget as well. (The head
// parser's own properties, and its alignment with net/http, are
// httphead's FuzzHeadParser.)
func FuzzFrontDoor(f *testing.F) {
	for _, s := range []string{
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01",
		"CONNECT a.example:443 HTTP/1.0\r\n\r\n",
		"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
		"CONNECT a.example HTTP/1.1\r\n\r\n",
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"CONNECT a_b.example:0443 HTTP/1.1\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hc := httphead.NewConn(&readerConn{r: bytes.NewReader(data)})
		if _, err := io.Copy(io.Discard, hc); err != nil {
			t.Fatal(err)
		}
		head, ok := hc.NextHead()
		if !ok || !plainConnect(&head) {
			return
		}
		_, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err == nil {
			return
		}
		if d := checkTarget(&flow{}, head.Method, head.Target, nil, head.Host); d == nil {
			t.Fatalf("the front door accepts the target of %+v, which net/http refuses: %v", head, err)
		}
	})
}

// readerConn is a net.Conn whose reads come from r.
type readerConn struct {
	net.Conn // nil: only Read is used
	r        io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }
