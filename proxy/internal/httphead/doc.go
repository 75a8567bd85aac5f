// Package httphead reads the heads of the HTTP/1.x requests on a client
// connection, independently of net/http, so that the proxy can refuse what
// two parsers could read differently (request smuggling).
//
// net/http hides some facts the policy must see: it drops the Host header of
// an absolute-form request and resolves Content-Length plus
// Transfer-Encoding on its own. Conn therefore follows the byte stream of a
// client connection and queues the head of every request it reads; the
// handler pops one head per request (NextHead) and compares.
//
// The queue stays aligned with net/http because both frame the same bytes
// the same way: RFC 9112 §6.3, as net/http does it. Where the two could
// disagree (for instance Transfer-Encoding in an HTTP/1.0 request, which
// net/http ignores), the parser records a head with Err and stops, so that
// the handler refuses instead of trusting a head that may belong to another
// request. FuzzHeadParser checks the alignment against net/http's reader.
//
// It imports nothing of the module, the proxy and the policy included:
// it knows HTTP/1.x framing, not what is allowed. TestDeps enforces that.
package httphead
