package evloop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

var forbidden403 = []byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")

// replyHandler refuses GET /deny with Reply, keeping the connection, and
// exchanges every other GET as xHandler does.
type replyHandler struct{ *xHandler }

func (h replyHandler) Head(c *Conn, head []byte, ev Event) Action {
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 && bytes.HasPrefix(head, []byte("GET /deny ")) {
		return Reply(forbidden403, i+4)
	}
	return h.xHandler.Head(c, head, ev)
}

// A refusal with Reply is written and the connection goes on to its next
// request, pipelined or not, with its kept origin still its own.
func TestExchangeReply(t *testing.T) {
	o := newXOrigin(t, keepAlive)
	h := replyHandler{newXHandler(o.ap)}
	addr, _ := serveWith(t, h, Config{})
	c := dialRaw(t, addr)
	br := bufio.NewReader(c)
	io.WriteString(c, get("/a"))
	if got := readResp(t, br); got != "200 OK at /a" {
		t.Fatalf("first: %q", got)
	}
	h.xend(t)
	io.WriteString(c, get("/deny")+get("/b")) // pipelined behind the refused one
	for i, want := range []string{"403 Forbidden no", "200 OK at /b"} {
		if got := readResp(t, br); got != want {
			t.Fatalf("response %d: %q, want %q", i, got, want)
		}
	}
	if x := h.xend(t); !x.Reused {
		t.Errorf("the exchange after the refusal: %+v, want the kept origin", x)
	}
	if n := o.accepts.Load(); n != 1 {
		t.Errorf("the origin accepted %d connections, want 1", n)
	}
	c.Close()
	if e := h.end(t); e.Reason != ReasonEOF || e.Phase != PhaseHead {
		t.Errorf("end %+v, want eof in the head phase", e)
	}
}

// The pool is the engine's: clients one after another, each accepted by
// whichever loop, all reuse the one origin connection the first made.
func TestExchangePoolAcrossLoops(t *testing.T) {
	o, h, addr, _ := serveX(t, Config{Loops: 4})
	for i := range 100 {
		c := dialRaw(t, addr)
		io.WriteString(c, get("/a"))
		if got := readResp(t, bufio.NewReader(c)); got != "200 OK at /a" {
			t.Fatalf("client %d: %q", i, got)
		}
		h.xend(t)
		c.Close()
		h.end(t) // its origin is in the pool
	}
	if n := o.accepts.Load(); n != 1 {
		t.Errorf("the origin accepted %d connections, want 1", n)
	}
}

// CloseIdle closes the pooled origins and those kept for a client between
// requests; the client's next request dials anew.
func TestExchangeCloseIdle(t *testing.T) {
	o, h, addr, e := serveX(t, Config{})
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	bra := bufio.NewReader(a)
	io.WriteString(a, get("/a"))
	readResp(t, bra)
	h.xend(t)
	io.WriteString(b, get("/b")) // a's origin is attached to a, so b dials its own
	readResp(t, bufio.NewReader(b))
	h.xend(t)
	b.Close()
	h.end(t) // b's origin is pooled
	e.CloseIdle()
	o.waitClosed(t)
	o.waitClosed(t)
	io.WriteString(a, get("/c"))
	if got := readResp(t, bra); got != "200 OK at /c" {
		t.Fatalf("after CloseIdle: %q", got)
	}
	if x := h.xend(t); x.Reused {
		t.Errorf("after CloseIdle: %+v, want a new origin connection", x)
	}
	if n := o.accepts.Load(); n != 3 {
		t.Errorf("the origin accepted %d connections, want 3", n)
	}
}

// A client that ends its sending before its answer began ends the
// exchange: the origin connection, mid-request, is closed, not kept.
func TestExchangeClientLeavesBeforeAnswer(t *testing.T) {
	got := make(chan struct{}, 1)
	o := newXOrigin(t, func(int, string) (string, bool) {
		got <- struct{}{}
		return "", false // no answer; it reads on until the engine closes
	})
	h := newXHandler(o.ap)
	addr, _ := serveWith(t, h, Config{})
	c := dialRaw(t, addr)
	io.WriteString(c, get("/silent"))
	recv(t, got, "the origin did not get the request")
	c.CloseWrite()
	if x := h.xend(t); x.Kept || !errors.Is(x.Err, errClientHup) {
		t.Errorf("exchange %+v, want it ended by the client's leaving", x)
	}
	o.waitClosed(t)
	c.Close()
}
