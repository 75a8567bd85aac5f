package evloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var timeout504 = []byte("HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n")

// xHandler answers GET heads with Exchange, the head sent as is, frames
// responses by Content-Length alone (or the origin's close), and records
// each exchange's end and the events Response saw. Other heads are handed
// off.
type xHandler struct {
	*testHandler
	addrs  []netip.AddrPort
	retry  bool
	xends  chan ExchangeEnd
	events chan Event
}

// xState is the handler's state of one exchange.
type xState struct {
	close bool // the request asked for Connection: close
	left  int  // body bytes still due; -1: until the origin's EOF
}

func newXHandler(addrs ...netip.AddrPort) *xHandler {
	return &xHandler{testHandler: newTestHandler(), addrs: addrs,
		xends: make(chan ExchangeEnd, 64), events: make(chan Event, 64)}
}

func (h *xHandler) Head(c *Conn, head []byte, ev Event) Action {
	i := bytes.Index(head, []byte("\r\n\r\n"))
	if i < 0 {
		return NeedMore()
	}
	if !bytes.HasPrefix(head, []byte("GET ")) {
		return HandOff()
	}
	c.SetData(&xState{close: bytes.Contains(head[:i], []byte("\r\nConnection: close"))})
	return Exchange("origin", h.addrs, head[:i+4], i+4, h.retry)
}

func (h *xHandler) Response(c *Conn, resp []byte, ev Event) Action {
	if ev != EventNone {
		h.events <- ev
	}
	i := bytes.Index(resp, []byte("\r\n\r\n"))
	switch {
	case i < 0 && ev == EventNone:
		return NeedMore()
	case i < 0 && ev == EventTimeout:
		return Refuse(timeout504)
	case i < 0:
		return Refuse(badGate502)
	case bytes.HasPrefix(resp, []byte("HTTP/1.1 1")):
		return Skip(i + 4)
	}
	st := c.Data().(*xState)
	st.left = -1
	for _, line := range strings.Split(string(resp[:i]), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			st.left, _ = strconv.Atoi(v)
		}
	}
	return Respond(resp[:i+4], i+4, !st.close && st.left >= 0, st.left >= 0)
}

func (h *xHandler) Body(c *Conn, b []byte, eof bool) (int, bool) {
	st := c.Data().(*xState)
	if eof {
		return 0, st.left < 0
	}
	if st.left < 0 {
		return len(b), false
	}
	n := min(len(b), st.left)
	st.left -= n
	return n, st.left == 0
}

func (h *xHandler) Exchanged(c *Conn, x ExchangeEnd) { h.xends <- x }

// xend waits for the next exchange's end.
func (h *xHandler) xend(t *testing.T) ExchangeEnd {
	t.Helper()
	return recv(t, h.xends, "no exchange ended")
}

// event returns the event Response saw, or EventNone.
func (h *xHandler) event() Event {
	select {
	case ev := <-h.events:
		return ev
	default:
		return EventNone
	}
}

// xOrigin is an HTTP/1.1 origin on loopback.
type xOrigin struct {
	ap      netip.AddrPort
	accepts atomic.Int32
	conns   chan net.Conn // each connection it accepted, for the test to close
	closed  chan struct{} // a value each time a connection's serving ended
}

// newXOrigin serves the requests of each connection with answer (i counts
// the connection's requests from 0): its response, written as is, and
// whether to close the connection then (before writing anything for an
// empty response).
func newXOrigin(t *testing.T, answer func(i int, path string) (resp string, close bool)) *xOrigin {
	o := &xOrigin{conns: make(chan net.Conn, 64), closed: make(chan struct{}, 64)}
	addr := origin(t, func(c net.Conn) {
		o.accepts.Add(1)
		o.conns <- c
		defer func() { c.Close(); o.closed <- struct{}{} }()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			resp, close := answer(i, r.URL.Path)
			if _, err := io.WriteString(c, resp); err != nil || close {
				return
			}
		}
	})
	o.ap = netip.MustParseAddrPort(addr)
	return o
}

// waitClosed waits until the serving of one of o's connections ended: the
// engine closed it.
func (o *xOrigin) waitClosed(t *testing.T) {
	t.Helper()
	recv(t, o.closed, "the engine did not close the origin connection")
}

// okResp is a 200 response with body.
func okResp(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// serveX serves an engine with an xHandler in front of a keep-alive origin.
func serveX(t *testing.T, cfg Config) (o *xOrigin, h *xHandler, addr string, e *Engine) {
	t.Helper()
	o = newXOrigin(t, keepAlive)
	h = newXHandler(o.ap)
	addr, e = serveWith(t, h, cfg)
	return o, h, addr, e
}

// keepAlive answers every request with the path in the body.
func keepAlive(i int, path string) (string, bool) { return okResp("at " + path), false }

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: o\r\n\r\n" }

func getClose(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n"
}

// readResp reads one response, returning it as the client saw it.
func readResp(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	return resp.Status + " " + string(body)
}

// Several requests on one client connection, one after the other or in
// one write, go to one origin connection, kept between them; the
// exchanges' bytes are theirs, not the connection's.
func TestExchangeKeepAlive(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(map[bool]string{false: "one by one", true: "pipelined"}[pipelined], func(t *testing.T) {
			o, h, addr, _ := serveX(t, Config{})
			c := dialRaw(t, addr)
			br := bufio.NewReader(c)
			paths := []string{"/1", "/2", "/3"}
			if pipelined {
				io.WriteString(c, get(paths[0])+get(paths[1])+get(paths[2]))
			}
			for i, p := range paths {
				if !pipelined {
					io.WriteString(c, get(p))
				}
				if got, want := readResp(t, br), "200 OK at "+p; got != want {
					t.Fatalf("response %d: %q, want %q", i, got, want)
				}
				x := h.xend(t)
				if (x.Dial > 0) != (i == 0) {
					t.Errorf("exchange %d: Dial %v; want > 0 for the first only, which dialed", i, x.Dial)
				}
				x.Dial = 0
				want := ExchangeEnd{Reason: ReasonEOF, Up: int64(len(get(p))), Down: int64(len(okResp("at " + p))), Reused: i > 0, Kept: true}
				if x != want {
					t.Errorf("exchange %d: %+v, want %+v", i, x, want)
				}
			}
			if n := o.accepts.Load(); n != 1 {
				t.Errorf("the origin accepted %d connections, want 1", n)
			}
			c.Close()
			if e := h.end(t); e.Reason != ReasonEOF || e.Phase != PhaseHead || e.Up != 0 || e.Down != 0 {
				t.Errorf("end %+v, want eof in the head phase with no tunnel bytes", e)
			}
		})
	}
}

// A second client connection takes the origin connection the first left
// in the loop's pool: when the first closed in its head phase, or was
// closed after its response (Connection: close).
func TestExchangePool(t *testing.T) {
	for _, tt := range []struct {
		name  string
		first string
	}{
		{"client closes", get("/a")},
		{"Connection: close", getClose("/a")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, h, addr, _ := serveX(t, Config{Loops: 1}) // the pool is a loop's
			a := dialRaw(t, addr)
			io.WriteString(a, tt.first)
			br := bufio.NewReader(a)
			if got := readResp(t, br); got != "200 OK at /a" {
				t.Fatalf("first client read %q", got)
			}
			if x := h.xend(t); !x.Kept {
				t.Errorf("first exchange %+v, want its origin kept", x)
			}
			if tt.first == getClose("/a") {
				if rest, err := io.ReadAll(br); len(rest) != 0 || err != nil {
					t.Errorf("after the response the client read %q, %v; want EOF", rest, err)
				}
			}
			a.Close()
			h.end(t)
			b := dialRaw(t, addr)
			io.WriteString(b, get("/b"))
			if got := readResp(t, bufio.NewReader(b)); got != "200 OK at /b" {
				t.Fatalf("second client read %q", got)
			}
			if x := h.xend(t); !x.Reused || !x.Kept {
				t.Errorf("second exchange %+v, want a pooled origin, kept again", x)
			}
			if n := o.accepts.Load(); n != 1 {
				t.Errorf("the origin accepted %d connections, want 1", n)
			}
		})
	}
}

// A kept origin connection the origin closed is not used: closed while
// idle it is replaced at once; closed on the request (before any response
// byte) it is replaced if the request may be retried, and Response gets
// the EOF if not.
func TestExchangeStaleOrigin(t *testing.T) {
	for _, tt := range []struct {
		name   string
		pooled bool // the second request from another client connection
		onReq  bool // the origin closes on its second request, not after its first response
		retry  bool
		want   string // the second response
		ev     Event
	}{
		{"attached, closed while idle", false, false, false, "200 OK at /2", EventNone},
		{"pooled, closed while idle", true, false, false, "200 OK at /2", EventNone},
		{"attached, closed on the request, retry", false, true, true, "200 OK at /2", EventNone},
		{"pooled, closed on the request, retry", true, true, true, "200 OK at /2", EventNone},
		{"attached, closed on the request, no retry", false, true, false, "502 Bad Gateway ", EventOriginEOF},
		{"pooled, closed on the request, no retry", true, true, false, "502 Bad Gateway ", EventOriginEOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newXOrigin(t, func(i int, path string) (string, bool) {
				if tt.onReq && i == 1 {
					return "", true
				}
				return okResp("at " + path), false
			})
			h := newXHandler(o.ap)
			h.retry = tt.retry
			addr, _ := serveWith(t, h, Config{Loops: 1})
			c := dialRaw(t, addr)
			br := bufio.NewReader(c)
			io.WriteString(c, get("/1"))
			if got := readResp(t, br); got != "200 OK at /1" {
				t.Fatalf("first response %q", got)
			}
			if x := h.xend(t); !x.Kept {
				t.Fatalf("first exchange %+v, want its origin kept", x)
			}
			if tt.pooled { // the first client leaves its origin to the pool
				c.Close()
				h.end(t)
			}
			if !tt.onReq { // the origin closes it, idle
				(<-o.conns).Close()
				o.waitClosed(t)
			}
			if tt.pooled {
				c = dialRaw(t, addr)
				br = bufio.NewReader(c)
			}
			io.WriteString(c, get("/2"))
			if got := readResp(t, br); got != tt.want {
				t.Errorf("second response %q, want %q", got, tt.want)
			}
			if ev := h.event(); ev != tt.ev {
				t.Errorf("Response saw event %d, want %d", ev, tt.ev)
			}
			x := h.xend(t)
			if tt.ev == EventNone && (x.Reason != ReasonEOF || x.Reused || o.accepts.Load() != 2) {
				t.Errorf("second exchange %+v after %d origin connections, want eof on a second one", x, o.accepts.Load())
			}
			if tt.ev != EventNone && (x.Reason != ReasonRefused || !x.Reused) {
				t.Errorf("second exchange %+v, want refused on the kept origin", x)
			}
		})
	}
}

// An idle kept origin connection on which the origin sends bytes no
// request asked for is closed at once, attached or pooled.
func TestExchangeIdleOriginSpeaks(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "attached", true: "pooled"}[pooled], func(t *testing.T) {
			o, h, addr, _ := serveX(t, Config{})
			c := dialRaw(t, addr)
			io.WriteString(c, get("/1"))
			readResp(t, bufio.NewReader(c))
			if x := h.xend(t); !x.Kept {
				t.Fatalf("exchange %+v, want its origin kept", x)
			}
			if pooled {
				c.Close()
				h.end(t)
			}
			io.WriteString(<-o.conns, "HTTP/1.1 408 Request Timeout\r\n\r\n")
			o.waitClosed(t)
		})
	}
}

// What Response and Body see of an origin that misbehaves or answers in
// less common ways, and what the client gets.
func TestExchangeResponses(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", ResponseBufSize)
	for _, tt := range []struct {
		name   string
		resp   string // the origin's bytes, then it closes unless keep; "hold": it waits
		keep   bool   // the origin keeps the connection: the exchange may too
		dead   bool   // dial a closed port instead
		want   string // what the client reads until EOF
		ev     Event
		reason string // the exchange's
	}{
		{name: "origin EOF before the head", resp: "HTTP/1.1 200 OK\r\nContent-", want: string(badGate502), ev: EventOriginEOF, reason: ReasonRefused},
		{name: "origin slow", resp: "hold", want: string(timeout504), ev: EventTimeout, reason: ReasonRefused},
		{name: "head over ResponseBufSize", resp: big, want: string(badGate502), ev: EventFull, reason: ReasonRefused},
		{name: "every dial failed", dead: true, want: string(badGate502), ev: EventError, reason: ReasonRefused},
		{
			name:   "interim responses skipped",
			resp:   "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + okResp("ok"),
			keep:   true,
			want:   okResp("ok"),
			reason: ReasonEOF,
		},
		{name: "close-delimited body", resp: "HTTP/1.1 200 OK\r\n\r\nuntil the end", want: "HTTP/1.1 200 OK\r\n\r\nuntil the end", reason: ReasonEOF},
		{
			name:   "body cut short",
			resp:   "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
			want:   "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
			reason: ReasonError,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ap netip.AddrPort
			if tt.dead {
				ap = netip.MustParseAddrPort(closedPort(t))
			} else {
				ap = newXOrigin(t, func(int, string) (string, bool) {
					if tt.resp == "hold" {
						return "", false // and waits for the next request, or the engine's close
					}
					return tt.resp, !tt.keep
				}).ap
			}
			h := newXHandler(ap)
			addr, _ := serveWith(t, h, Config{IdleTimeout: 100 * time.Millisecond, HeadTimeout: time.Hour})
			c := dialRaw(t, addr)
			io.WriteString(c, getClose("/"))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("client read %q, want %q", got, tt.want)
			}
			if ev := h.event(); ev != tt.ev {
				t.Errorf("Response saw event %d, want %d", ev, tt.ev)
			}
			x := h.xend(t)
			if x.Reason != tt.reason || x.Kept != tt.keep {
				t.Errorf("exchange %+v, want %s, the origin kept: %v", x, tt.reason, tt.keep)
			}
			if tt.reason == ReasonEOF && x.Down != int64(len(tt.want)) {
				t.Errorf("exchange's Down %d, want %d", x.Down, len(tt.want))
			}
		})
	}
}

// A large body to a client that reads slowly arrives whole, and the engine
// reads the origin no faster than the client takes the bytes: no origin read
// while bytes wait for the client (what is in the sockets is the kernel's).
func TestExchangeSlowClient(t *testing.T) {
	const size = 32 << 20
	head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	body := func(w io.Writer) { // a pattern the client checks
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = byte(i * 7)
		}
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	want := sha256.New()
	body(want)
	ap := netip.MustParseAddrPort(origin(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, head)
		body(c)
		io.Copy(io.Discard, c) // kept until the engine closes it
	}))
	h := &queueHandler{xHandler: newXHandler(ap)}
	addr, _ := serveWith(t, h, Config{})
	c := dialRaw(t, addr)
	c.SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(c, get("/big"))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.CopyBuffer(got, resp.Body, make([]byte, 512)) // slow: many small reads
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("client read %d bytes, %v, the bytes sent: %v; want %d", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)), size)
	}
	if x := h.xend(t); x.Reason != ReasonEOF || x.Down != int64(len(head))+size || !x.Kept {
		t.Errorf("exchange %+v, want eof with the head and body down, the origin kept", x)
	}
	if h.runs < 2 || h.queued != 0 {
		t.Errorf("Body saw %d runs, one with %d bytes still queued for the client; want many, none", h.runs, h.queued)
	}
}

// queueHandler notes, at each Body call (on the loop, just after an origin
// read), the most bytes the engine held for the client.
type queueHandler struct {
	*xHandler
	runs, queued int // read by the test after Exchanged
}

func (h *queueHandler) Body(c *Conn, b []byte, eof bool) (int, bool) {
	h.runs++
	h.queued = max(h.queued, len(c.dirs[1].out))
	return h.xHandler.Body(c, b, eof)
}

// A client that resets while its response is being written ends the
// exchange with an error, and the origin is not kept.
func TestExchangeClientGone(t *testing.T) {
	ap := netip.MustParseAddrPort(origin(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
		io.Copy(c, zeros{}) // until the engine closes
	}))
	h := newXHandler(ap)
	addr, _ := serveWith(t, h, Config{})
	c := dialRaw(t, addr)
	io.WriteString(c, get("/big"))
	readN(t, c, 1<<20)
	c.SetLinger(0)
	c.Close()
	if x := h.xend(t); x.Reason != ReasonError || x.Err == nil || x.Kept {
		t.Errorf("exchange %+v, want an error, the origin not kept", x)
	}
	if e := h.end(t); e.Reason != ReasonError || e.Phase != PhaseExchange {
		t.Errorf("end %+v, want an error in the exchange phase", e)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// A kept client that sends nothing more is closed after
// ClientIdleTimeout; its origin goes to the pool, which closes it after
// OriginIdleTimeout.
func TestExchangeIdleTimeouts(t *testing.T) {
	o, h, addr, _ := serveX(t, Config{HeadTimeout: time.Hour, ClientIdleTimeout: 50 * time.Millisecond, OriginIdleTimeout: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	io.WriteString(c, get("/1"))
	readResp(t, bufio.NewReader(c))
	h.xend(t)
	if e := h.end(t); e.Reason != ReasonIdleTimeout || e.Phase != PhaseHead {
		t.Errorf("end %+v, want idle_timeout in the head phase", e)
	}
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Errorf("client read %q, %v; want EOF", b, err)
	}
	o.waitClosed(t)
}

// A later head on a kept client may still be handed off, with its bytes;
// the origin the connection kept goes to the pool.
func TestExchangeHandOffLater(t *testing.T) {
	o := newXOrigin(t, keepAlive)
	h := newXHandler(o.ap)
	prefixes := make(chan string, 1)
	h.handOff = func(c *Conn, nc net.Conn, prefix []byte) {
		prefixes <- string(prefix)
		nc.Close()
	}
	addr, _ := serveWith(t, h, Config{Loops: 1})
	c := dialRaw(t, addr)
	post := "POST /form HTTP/1.1\r\nHost: o\r\n\r\n"
	io.WriteString(c, get("/1")+post)
	readResp(t, bufio.NewReader(c))
	if p := <-prefixes; p != post {
		t.Errorf("handed off with %q, want %q", p, post)
	}
	h.xend(t)
	b := dialRaw(t, addr)
	io.WriteString(b, get("/2"))
	readResp(t, bufio.NewReader(b))
	if x := h.xend(t); !x.Reused || o.accepts.Load() != 1 {
		t.Errorf("exchange %+v after %d origin connections, want the pooled one", x, o.accepts.Load())
	}
}

// Shutdown closes a kept client waiting for its next head with the origin
// it kept, and the pooled origins.
func TestExchangeShutdown(t *testing.T) {
	o, h, addr, e := serveX(t, Config{})
	kept, gone := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []net.Conn{kept, gone} { // two origin connections
		io.WriteString(c, get("/1"))
	}
	for _, c := range []net.Conn{kept, gone} {
		readResp(t, bufio.NewReader(c))
		h.xend(t)
	}
	gone.Close() // its origin to the pool
	h.end(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if end := h.end(t); end.Reason != ReasonCanceled || end.Phase != PhaseHead {
		t.Errorf("end %+v, want canceled in the head phase", end)
	}
	if n := o.accepts.Load(); n != 2 {
		t.Fatalf("the origin accepted %d connections, want 2", n)
	}
	o.waitClosed(t)
	o.waitClosed(t)
}

// An exchange's request never reaches an origin the handler's Exchange
// does not name: the key keeps origins apart.
func TestExchangeKeys(t *testing.T) {
	o1, o2 := newXOrigin(t, keepAlive), newXOrigin(t, keepAlive)
	h := newXHandler()
	h.addrs = nil
	addr, _ := serveWith(t, &keyedHandler{xHandler: h, by: map[string]netip.AddrPort{"/one": o1.ap, "/two": o2.ap}}, Config{Loops: 1})
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	for _, p := range []string{"/one", "/two", "/one", "/two"} {
		io.WriteString(c, get(p))
		if got := readResp(t, br); got != "200 OK at "+p {
			t.Fatalf("response %q for %s", got, p)
		}
		h.xend(t)
	}
	if o1.accepts.Load() != 1 || o2.accepts.Load() != 1 {
		t.Errorf("origins accepted %d and %d connections, want one each", o1.accepts.Load(), o2.accepts.Load())
	}
}

// keyedHandler sends each path under a key of its own, to its own origin
// if by has one.
type keyedHandler struct {
	*xHandler
	by map[string]netip.AddrPort
}

func (h *keyedHandler) Head(c *Conn, head []byte, ev Event) Action {
	a := h.xHandler.Head(c, head, ev)
	if a.kind == actExchange {
		path := strings.Fields(string(head))[1]
		a.key = path
		if ap, ok := h.by[path]; ok {
			a.addrs = []netip.AddrPort{ap}
		}
	}
	return a
}

// The pool keeps 32 origin connections per key and 256 per loop, closing
// the oldest beyond, and gives out the newest first.
func TestExchangePoolLimits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		n     int  // clients, each leaving an origin connection to the pool
		keyed bool // each under a key of its own
	}{
		{"per key", poolPerKey + 1, false},
		{"per loop", poolMax + 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var next atomic.Int32
			closed := make(chan int32, tt.n)
			ap := netip.MustParseAddrPort(origin(t, func(c net.Conn) { // names its connections
				id := next.Add(1) - 1
				defer func() { closed <- id }()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, okResp(strconv.Itoa(int(id))))
				}
			}))
			h := newXHandler(ap)
			var hd Handler = h
			if tt.keyed {
				hd = &keyedHandler{xHandler: h}
			}
			addr, _ := serveWith(t, hd, Config{Loops: 1})
			path := func(i int) string {
				if tt.keyed {
					return "/" + strconv.Itoa(i)
				}
				return "/"
			}
			clients := make([]net.Conn, tt.n)
			for i := range clients { // each on an origin connection of its own, i
				clients[i] = dialRaw(t, addr)
				io.WriteString(clients[i], get(path(i)))
				if got, want := readResp(t, bufio.NewReader(clients[i])), "200 OK "+strconv.Itoa(i); got != want {
					t.Fatalf("client %d read %q, want %q", i, got, want)
				}
				h.xend(t)
			}
			for _, c := range clients { // to the pool, oldest first
				c.Close()
				h.end(t)
			}
			if id := recv(t, closed, "no pooled origin connection was closed"); id != 0 {
				t.Errorf("the pool closed origin connection %d, want the oldest, 0", id)
			}
			if tt.keyed {
				return
			}
			c := dialRaw(t, addr)
			io.WriteString(c, get("/"))
			if got, want := readResp(t, bufio.NewReader(c)), "200 OK "+strconv.Itoa(tt.n-1); got != want {
				t.Errorf("a new client read %q, want %q: the newest pooled", got, want)
			}
		})
	}
}
