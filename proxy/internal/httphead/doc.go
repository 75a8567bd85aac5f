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
// For plain HTTP forwarded on the proxy's event loops, which cannot use
// net/http, it also holds that protocol's pieces, pure and allocation-light:
// ForwardRequest rewrites a plain client head for the origin, ParseResponse
// and AppendResponseHead read the origin's response head and write the
// client's, and Chunked follows a chunked body passed through, with the
// machine the request parser follows request bodies with. They are strict
// where net/http is lenient: what they refuse goes to net/http (a request)
// or is answered 502 (a response). FuzzForwardRequest, FuzzParseResponse and
// FuzzChunked check them against net/http's readers.
//
// It imports nothing of the module, the proxy and the policy included:
// it knows HTTP/1.x framing, not what is allowed. TestDeps enforces that.
package httphead
