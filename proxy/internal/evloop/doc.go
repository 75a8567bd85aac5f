// Package evloop serves TCP connections from a few event loops instead of
// goroutines: the engine of the explicit listener's CONNECT path (issue 15),
// where a goroutine, a netpoller wake-up and a scheduler hop per connection
// and per message cost more CPU than the proxying itself.
//
// Each of Config.Loops loops is a goroutine with an edge-triggered epoll set
// of raw non-blocking sockets, with the listeners shared by all loops
// (EPOLLEXCLUSIVE). A loop takes its events without blocking and, when
// there are none, parks in Go's own poller on the set's fd, so that no
// thread sits in a system call the runtime would have to retake. A connection belongs to
// one loop for its life, and moves through phases a Handler drives: the
// request head (read into a bounded buffer and shown to the handler after
// every read), the dial (non-blocking connects to a list of addresses), the
// opening (the client's first bytes withheld from the origin until the
// handler has inspected them, the origin's forwarded), and the relay (the
// semantics of proxy/internal/relay.Start: backpressure, half-close, the
// idle timeout, bulk by splice(2), one end reason). A plain-HTTP request
// with no body takes the exchange phase instead of the dial (Exchange): the
// handler's rewritten head goes to an origin, the handler frames the
// response (Exchanger), and the client goes back to its head phase for the
// next request; an origin connection whose response ended cleanly is kept,
// on the connection for its next request or in the engine's pool for any (shared by the loops).
// The engine stays protocol-agnostic: it moves bytes, dials, keeps origin
// connections and owns the deadlines. Deadlines are a heap per loop; slow
// work (a DNS miss) leaves the loop with Pending and comes back with
// Conn.Resume or Conn.ResumeFunc. An idle tunnel costs its two sockets and
// its Conn, no goroutine and no buffer.
//
// Callbacks run on the loop and must not block. Metrics and logs are the
// handler's business. Off Linux, New reports ErrUnsupported.
//
// It imports nothing of the module: TestDeps enforces that.
package evloop
