// Package relay moves the bytes of a decided tunnel between a client and an
// origin, and reports how the tunnel ended.
//
// Start copies both ways between TCP sockets on Linux, messages with one read
// and one write through a pooled buffer and bulk transfers with splice(2), and
// through pooled buffers otherwise; an idle direction parks in one epoll
// instance shared by all tunnels and holds no goroutine. Each side gets a
// FIN after every byte read for it; a side whose stream was cut gets a
// reset. The tunnel's end is one reason (ReasonEOF, ReasonIdleTimeout,
// ReasonCanceled, ReasonError), with live byte counts in Stats, which the
// proxy logs and counts. Await is the proxy's wait for an origin that may
// speak before the tunnel starts, with a readiness check that consumes nothing.
//
// It imports nothing of the module, the proxy and the policy included: what
// may pass is decided before a tunnel starts. TestDeps enforces that.
package relay
