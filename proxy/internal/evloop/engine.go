package evloop

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Reasons a connection ended, as End.Reason gives them. The first four are
// relay.Start's, so the proxy logs and counts tunnels alike on both paths.
const (
	ReasonEOF         = "eof"          // both sides ended, or one closed after the other had
	ReasonIdleTimeout = "idle_timeout" // no bytes moved for the idle duration, or a head, dial or opening deadline passed
	ReasonCanceled    = "canceled"     // Shutdown's context was done, or Shutdown closed a connection in its head phase
	ReasonError       = "error"        // reading a side failed, or writing to a side that had not ended
	ReasonRefused     = "refused"      // the handler refused, or every dial failed
)

// Sizes of the engine's buffers.
const (
	// HeadBufSize bounds the head phase: a head that does not fit is shown
	// to the handler with EventFull (the proxy hands it to net/http).
	HeadBufSize = 4 << 10
	// OpeningBufSize bounds the client bytes withheld in the opening phase:
	// room for the largest ClientHello the proxy reads (tlshello.MaxBytes,
	// 20 KiB).
	OpeningBufSize = 24 << 10
	// ResponseBufSize bounds a response head in the exchange phase: a head
	// that does not fit is shown to Exchanger.Response with EventFull. It
	// is the opening buffer's size, so the two share a pool.
	ResponseBufSize = 24 << 10
	// relayBufSize is the most one read moves in the relay. A read that
	// fills it starts a bulk transfer, which splices.
	relayBufSize = 16 << 10
)

// ErrUnsupported is New's error where there is no epoll.
var ErrUnsupported = errors.New("evloop: event-loop engine not supported on this OS; serve connections with goroutines instead")

// ErrClosed is what Serve returns once Shutdown has begun.
var ErrClosed = errors.New("evloop: engine shut down")

// Config configures an Engine. It is plain data, read by New.
type Config struct {
	// Handler drives every connection; required.
	Handler Handler
	// Loops is the number of event loops, each a goroutine; 0 means
	// GOMAXPROCS.
	Loops int
	// HeadTimeout bounds the head phase (from accept) and, again, the
	// opening phase (from the dial's success); 0 means 10s.
	HeadTimeout time.Duration
	// DialTimeout bounds all of a Dial's attempts together; 0 means 10s.
	DialTimeout time.Duration
	// KeepAliveIdle turns TCP keep-alive on for origin sockets, probing
	// after this much silence (the kernel's interval and count); 0 means
	// off. Accepted sockets inherit the listener's.
	KeepAliveIdle time.Duration
	// KeepAliveAfter is how long after its dial a tunnel's origin socket
	// gets keep-alive, at the relay's next deadline; 0 means 5s. Most
	// tunnels are short and never pay the two setsockopt calls; a long one
	// probes at most this much later. An exchange's origin, which the pool
	// may keep, gets it at connect.
	KeepAliveAfter time.Duration
	// IdleTimeout ends a relaying tunnel in which no bytes moved for that
	// long; 0 means none. It also bounds an exchange (Exchange): no byte
	// moved for that long; there 0 means HeadTimeout.
	IdleTimeout time.Duration
	// ClientIdleTimeout bounds how long a client kept alive after an
	// exchange may wait before the first byte of its next head; from that
	// byte on HeadTimeout bounds the rest. 0 means HeadTimeout.
	ClientIdleTimeout time.Duration
	// OriginIdleTimeout is how long an origin connection kept for another
	// exchange may wait in the engine's pool before it is closed; 0 means 90s.
	OriginIdleTimeout time.Duration

	noSplice bool // tests: every move through the buffer
}

// Event says why the handler is called besides new bytes.
type Event uint8

const (
	EventNone      Event = iota // new bytes arrived
	EventEOF                    // the client ended its sending
	EventOriginEOF              // the origin ended its sending (opening and exchange phases)
	EventTimeout                // the phase's deadline passed
	EventFull                   // the phase's buffer is full
	EventError                  // reading the client failed, or in the exchange phase the origin (Conn.Err has why)
)

// Terminal reports whether no more bytes can come from the client: the
// handler must decide now, and NeedMore closes the connection.
func (e Event) Terminal() bool { return e != EventNone && e != EventOriginEOF }

// Phase is where a connection is in its life.
type Phase uint8

const (
	PhaseHead     Phase = iota // reading the request head
	PhasePending               // the handler will Resume
	PhaseDial                  // connecting to the origin
	PhaseOpening               // the reply was sent; client bytes withheld
	PhaseRelay                 // moving bytes both ways
	PhaseExchange              // a request sent to an origin, its response coming back (Exchange)
	PhaseClosing               // a refusal is being written, or the client closed after a response
)

var phaseNames = [...]string{"head", "pending", "dial", "opening", "relay", "exchange", "closing"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "unknown"
}

// End is how a connection ended, given to Handler.Closed.
type End struct {
	Phase  Phase  // where it ended
	Reason string // one of the Reason constants
	Err    error  // nil for eof, idle_timeout and refused by the handler; the dial's error for a failed dial
	Up     int64  // client bytes written to the origin (a tunnel's; an exchange's are in ExchangeEnd)
	Down   int64  // origin bytes written to the client (the reply not counted)
}

// Opening is what the handler sees in the opening phase.
type Opening struct {
	// Client are the client bytes read and not yet forwarded, starting
	// with the bytes it sent behind its head. Valid only during the call.
	Client []byte
	// Origin are bytes the origin just sent, already forwarded (or queued)
	// to the client; nil when the call is for client bytes or an event.
	// Valid only during the call.
	Origin []byte
	Event  Event
}

// Handler drives connections. Every method runs on the connection's loop and
// must not block: a slow decision returns Pending and calls Conn.Resume from
// another goroutine. Byte slices it is given are valid only during the call.
type Handler interface {
	// Head is called after each read of the head phase with all bytes read
	// so far, and at an event (EOF, timeout, full buffer, error).
	Head(c *Conn, head []byte, ev Event) Action
	// HandOff gets the connection as a net.Conn after Head returned
	// HandOff, with the bytes read so far; the engine has forgotten it, and
	// Closed is not called for it.
	HandOff(c *Conn, nc net.Conn, prefix []byte)
	// DialFailed is called when every address of a Dial failed, or the
	// dial timeout passed; it returns what to write to the client before
	// the connection is closed (a 502), or nil.
	DialFailed(c *Conn, err error) []byte
	// Opening is called in the opening phase when bytes arrive from either
	// side, at the start if the client sent bytes behind its head, and at
	// an event. It returns NeedMore, Forward, Relay or Refuse.
	Opening(c *Conn, o Opening) Action
	// Closed is called once for every connection not handed off, when it
	// is closed.
	Closed(c *Conn, end End)
}

// Acceptor is an optional Handler method: Accepted is called for each new
// connection before anything is read from it. A nil reply keeps it; a
// reply is written and the connection closed (load shed over a cap), with
// Closed called as for any other refusal.
type Acceptor interface {
	Accepted(c *Conn) (reply []byte)
}

// Dialer is an optional Handler method: Dialed is called once the dial
// succeeded, before the Dial's reply is written and the opening begins (the
// proxy counts an allowed tunnel only once its destination answered).
type Dialer interface {
	Dialed(c *Conn)
}

type actionKind uint8

const (
	actNeedMore actionKind = iota
	actRefuse
	actHandOff
	actDial
	actPending
	actForward
	actRelay
	actEnd
	actExchange
	actRespond
	actSkip
	actReply
)

// Action is a handler's answer. Slices in it belong to the engine until the
// connection is closed: the handler must not change them (static replies).
type Action struct {
	kind   actionKind
	n      int
	reply  []byte
	addrs  []netip.AddrPort
	reason string // actEnd
	err    error  // actEnd
	key    any    // actExchange
	// actExchange: retry; actRespond: keepClient, keepOrigin.
	retry, keepClient, keepOrigin bool
}

// NeedMore waits for more bytes (or, after a terminal event, closes).
func NeedMore() Action { return Action{} }

// Refuse writes reply to the client and closes the connection (both
// sides in the opening phase).
func Refuse(reply []byte) Action { return Action{kind: actRefuse, reply: reply} }

// HandOff gives the connection to Handler.HandOff as a net.Conn (head phase).
func HandOff() Action { return Action{kind: actHandOff} }

// Dial connects to addrs in turn within the dial timeout (head phase). On
// success reply is written to the client and the opening phase begins with
// the client bytes behind the first headLen bytes of the head.
func Dial(addrs []netip.AddrPort, reply []byte, headLen int) Action {
	return Action{kind: actDial, addrs: addrs, reply: reply, n: headLen}
}

// Pending says the handler will call Conn.Resume with the answer (head phase).
func Pending() Action { return Action{kind: actPending} }

// Forward writes the first n withheld client bytes to the origin and keeps
// the opening phase (the proxy's check follows a HelloRetryRequest).
func Forward(n int) Action { return Action{kind: actForward, n: n} }

// Relay forwards the withheld client bytes and relays from then on.
func Relay() Action { return Action{kind: actRelay} }

// EndTunnel closes both sides in the opening phase, and Closed gets reason (one of
// the Reason constants) and err: a tunnel that ended before it was checked
// (the origin closed first) ends as a tunnel, not as a refusal.
func EndTunnel(reason string, err error) Action {
	return Action{kind: actEnd, reason: reason, err: err}
}

// Exchange (head phase) sends req, a rewritten request head (the request has
// no body), to an origin and lets the handler, an Exchanger, frame the
// response. key (comparable: == on it must not panic, e.g. a struct of
// strings and numbers) names the origins a kept connection may serve: the
// engine takes one kept under key (the connection's own, see Respond, or the
// engine's pool), or dials addrs in turn as Dial does (same dial timeout,
// keep-alive, Dialer.Dialed NOT called). retry: a kept connection that ends
// (EOF, reset, write error) before any response byte arrived is closed and
// the request sent once more on a new connection dialed from addrs (the
// handler says the request is idempotent). The client's bytes behind
// headLen wait for its next head.
func Exchange(key any, addrs []netip.AddrPort, req []byte, headLen int, retry bool) Action {
	return Action{kind: actExchange, key: key, addrs: addrs, reply: req, n: headLen, retry: retry}
}

// Respond (exchange phase) writes head to the client, then the response body
// as Exchanger.Body frames it, starting with the origin bytes behind the
// first n bytes of the response shown to Response. keepClient: after the
// response the client goes back to its head phase for its next request;
// else it is closed after the response (with a FIN, then linger as a
// refusal does). keepOrigin: the origin connection may be kept for another
// request if the body ended exactly where the origin's bytes did.
func Respond(head []byte, n int, keepClient, keepOrigin bool) Action {
	return Action{kind: actRespond, reply: head, n: n, keepClient: keepClient, keepOrigin: keepOrigin}
}

// Reply (head phase) writes reply to the client and goes on to its next
// head, behind the first headLen bytes: a refusal that keeps the
// connection, as net/http keeps one after a 403. Its origin, if one is
// kept for it, stays. A reply the client does not take at once is written
// as a refusal's is, and the connection closed after it.
func Reply(reply []byte, headLen int) Action {
	return Action{kind: actReply, reply: reply, n: headLen}
}

// Skip (exchange phase) drops the first n response bytes (an interim 1xx
// response) and goes on reading the response head; Response is called
// again with the bytes behind them.
func Skip(n int) Action { return Action{kind: actSkip, n: n} }

// Exchanger is the optional Handler interface for Exchange.
type Exchanger interface {
	// Response is called in the exchange phase after each origin read with
	// every response byte read so far (from after the last Skip), until it
	// returns Respond, Skip or Refuse, and at an event: EventOriginEOF (the
	// origin ended before the head was whole), EventTimeout (IdleTimeout
	// passed with no byte moved), EventFull (the head exceeds
	// ResponseBufSize), EventError (reading or writing the origin failed,
	// or every dial failed; Conn.Err has why). Refuse writes its reply (the
	// handler's 502/504) to the client and closes it, and the origin.
	// NeedMore at an event closes the client.
	Response(c *Conn, resp []byte, ev Event) Action
	// Body is called with each run of origin bytes of the response body
	// (b), and returns how many of them belong to the response (n <=
	// len(b)) and whether it ended there. At the origin's EOF it is called
	// with b == nil and eof: done says the response ended there (a
	// close-delimited body); false that it was cut short (the client is
	// then closed without more).
	Body(c *Conn, b []byte, eof bool) (n int, done bool)
	// Exchanged is called once per Exchange when it is over: the response
	// written in full (x.Err nil) or not. The handler logs and counts the
	// request here; for keepClient the next head follows.
	Exchanged(c *Conn, x ExchangeEnd)
}

// ExchangeEnd is how one exchange went.
type ExchangeEnd struct {
	Reason string // ReasonEOF when the response was written in full, else as End.Reason
	Err    error
	Up     int64 // request bytes written to the origin
	Down   int64 // response bytes written to the client (head included)
	Reused bool  // the origin connection was a kept one
	Kept   bool  // the origin connection was kept afterwards
	// Dial is how long connecting to a new origin took, from the dial's
	// start to its connect's success, over every address tried; 0 when
	// the origin was a kept one or no connect succeeded.
	Dial time.Duration
}
