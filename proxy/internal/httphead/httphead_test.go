package httphead

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// chunkConn is a net.Conn whose reads return chunks in order, then io.EOF.
// A read never spans two chunks.
type chunkConn struct {
	net.Conn // nil: only Read is used
	chunks   [][]byte
}

func (c *chunkConn) Read(b []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// loopConn is a net.Conn that returns prefix once, then loop over and over.
// Every read fills b.
type loopConn struct {
	net.Conn // nil: only Read is used
	prefix   []byte
	loop     []byte
	off      int
}

func (c *loopConn) Read(b []byte) (int, error) {
	n := 0
	if len(c.prefix) > 0 {
		n = copy(b, c.prefix)
		c.prefix = c.prefix[n:]
	}
	for n < len(b) {
		m := copy(b[n:], c.loop[c.off:])
		n += m
		c.off = (c.off + m) % len(c.loop)
	}
	return n, nil
}

// parseChunks reads the concatenation of chunks through a Conn, checks
// that the bytes come out unchanged and returns every head queued.
func parseChunks(t testing.TB, chunks ...[]byte) []Head {
	t.Helper()
	var want []byte
	cc := &chunkConn{}
	for _, ch := range chunks {
		want = append(want, ch...)
		cc.chunks = append(cc.chunks, slices.Clone(ch))
	}
	hc := NewConn(cc)
	got, err := io.ReadAll(hc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Conn changed the bytes read: got %q, want %q", got, want)
	}
	return drainHeads(hc)
}

func drainHeads(hc *Conn) []Head {
	var hs []Head
	for {
		h, ok := hc.NextHead()
		if !ok {
			return hs
		}
		hs = append(hs, h)
	}
}

// diffHeads describes how got differs from want, or returns "".
func diffHeads(got, want []Head) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d heads, want %d:\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Method != w.Method || g.Target != w.Target || g.Proto != w.Proto ||
			!slices.Equal(g.Host, w.Host) || !slices.Equal(g.ContentLength, w.ContentLength) ||
			!slices.Equal(g.TransferEncoding, w.TransferEncoding) || !errors.Is(g.Err, w.Err) || (w.Err == nil) != (g.Err == nil) {
			return fmt.Sprintf("head %d:\ngot  %+v\nwant %+v", i, g, w)
		}
	}
	return ""
}

// get is the head of a GET of target with Host h.
func get(target string, host ...string) Head {
	return Head{Method: "GET", Target: target, Proto: "HTTP/1.1", Host: host}
}

const (
	reqGetA  = "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\n\r\n"
	reqGetB  = "GET http://b.example/x?y HTTP/1.1\r\nHost: b.example\r\n\r\n"
	reqPost  = "POST http://a.example/up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 11\r\n\r\nhello world"
	reqChunk = "POST http://a.example/c HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;name=value\r\nhello\r\n" +
		"6;a=\"b;c\"\r\n world\r\n" +
		"A\r\n0123456789\r\n" +
		"0;last\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
	reqEvil = "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"
)

var (
	headGetA  = get("http://a.example/", "a.example")
	headGetB  = get("http://b.example/x?y", "b.example")
	headPost  = Head{Method: "POST", Target: "http://a.example/up", Proto: "HTTP/1.1", Host: []string{"a.example"}, ContentLength: []string{"11"}}
	headChunk = Head{Method: "POST", Target: "http://a.example/c", Proto: "HTTP/1.1", Host: []string{"a.example"}, TransferEncoding: []string{"chunked"}}
)

// headCases are byte streams from a client and the heads they must yield.
// They also seed FuzzHeadParser.
var headCases = []struct {
	name string
	in   string
	want []Head
}{
	{"empty", "", nil},
	{"single", reqGetA, []Head{headGetA}},
	{"incomplete head", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n", nil},
	{"host absent", "GET http://a.example/ HTTP/1.0\r\n\r\n",
		[]Head{{Method: "GET", Target: "http://a.example/", Proto: "HTTP/1.0"}}},
	{"host differs from target", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
		[]Head{get("http://a.example/", "b.example")}},
	{"host duplicated", "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nX: 1\r\nhost: b.example:80\r\n\r\n",
		[]Head{get("http://a.example/", "a.example", "b.example:80")}},
	{"host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", []Head{get("/", "")}},
	{"values trimmed of OWS", "GET / HTTP/1.1\r\nHost: \t a.example \t\r\nContent-Length:  0 \r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Host: []string{"a.example"}, ContentLength: []string{"0"}}}},
	{"names case-insensitive", "GET / HTTP/1.1\r\nHOST: a\r\ncOnTeNt-LeNgTh: 2\r\n\r\nxy" + reqGetB,
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Host: []string{"a"}, ContentLength: []string{"2"}}, headGetB}},
	{"proxy credentials", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nproxy-authorization:  Basic eDp5 \r\nProxy-Authorization: Bearer t\r\n\r\n",
		[]Head{{Method: "CONNECT", Target: "a:443", Proto: "HTTP/1.1", Host: []string{"a:443"}, ProxyAuthorization: []string{"Basic eDp5", "Bearer t"}}}},
	{"keep-alive", reqPost + reqChunk + reqGetB, []Head{headPost, headChunk, headGetB}},
	{"pipelined", reqGetA + reqGetB + reqGetA + reqGetB, []Head{headGetA, headGetB, headGetA, headGetB}},
	{"body looks like a request", fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(reqEvil), reqEvil) + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", Host: []string{"a"}, ContentLength: []string{fmt.Sprint(len(reqEvil))}}, headGetB}},
	{"chunk data looks like a request", fmt.Sprintf("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(reqEvil), reqEvil) + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, headGetB}},
	{"bare LF", "GET / HTTP/1.1\nHost: a\n\nPOST / HTTP/1.1\nTransfer-Encoding: chunked\n\n2\r\nhi\r\n0\r\nX: 1\n\n" + reqGetB,
		[]Head{get("/", "a"), {Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, headGetB}},
	{"chunk line bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"last chunk line bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0;e\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"leading empty lines", "\r\n\n\r\n" + reqGetA + "\r\n" + reqGetB, []Head{headGetA, headGetB}},
	{"content-length zero", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"0"}}, headGetB}},
	{"content-length repeated equal", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nxy" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"2", "2"}}, headGetB}},
	{"content-length differing", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nxyz" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"2", "3"}, Err: errContentLengths}}},
	{"content-length leading zero differs", "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\nxy",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"2", "02"}, Err: errContentLengths}}},
	{"content-length list", "POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nxy",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"2, 2"}, Err: errContentLength}}},
	{"content-length negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"-1"}, Err: errContentLength}}},
	{"content-length plus sign", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"+1"}, Err: errContentLength}}},
	{"content-length empty", "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{""}, Err: errContentLength}}},
	{"content-length too large", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"9223372036854775808"}, Err: errContentLength}}},
	{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{"4"}, TransferEncoding: []string{"chunked"}}, headGetB}},
	{"transfer-encoding gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"gzip, chunked"}}, headGetB}},
	{"transfer-encoding split over lines", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"gzip", "CHUNKED"}}, headGetB}},
	{"transfer-encoding not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"gzip"}, Err: errTransferEncoding}}},
	{"transfer-encoding chunked not final", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked, gzip"}, Err: errTransferEncoding}}},
	{"transfer-encoding chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked", "chunked"}, Err: errTransferEncoding}}},
	{"transfer-encoding empty", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{""}, Err: errTransferEncoding}}},
	{"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.0", TransferEncoding: []string{"chunked"}, ContentLength: []string{"5"}, Err: errTransferEncoding0}}},
	{"transfer-encoding in HTTP/1.0 hides a request", fmt.Sprintf("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n0\r\n\r\n%s", 5+len(reqEvil), reqEvil) + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.0", TransferEncoding: []string{"chunked"}, ContentLength: []string{fmt.Sprint(5 + len(reqEvil))}, Err: errTransferEncoding0}}},
	{"transfer-encoding overrides content-length", fmt.Sprintf("POST / HTTP/1.1\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s", 5+len(reqEvil), reqEvil) + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", ContentLength: []string{fmt.Sprint(5 + len(reqEvil))}, TransferEncoding: []string{"chunked"}},
			{Method: "GET", Target: "http://evil.example/", Proto: "HTTP/1.1", Host: []string{"evil.example"}}, headGetB}},
	{"chunk size invalid", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size empty", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size signed", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size 0x", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size 17 digits", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size 16 digits", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000001\r\nx\r\n0\r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, headGetB}},
	{"chunk size OWS", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \t\r\nx\r\n1\t;a\r\ny\r\n0 \r\n\r\n" + reqGetB,
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, headGetB}},
	{"chunk line too long", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", maxChunkLineBytes) + "\r\nx\r\n0\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk size space inside", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 1\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk line bare CR", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n0\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkLine}}},
	{"chunk data too long", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkData}}},
	{"chunk data bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
		[]Head{{Method: "POST", Target: "/", Proto: "HTTP/1.1", TransferEncoding: []string{"chunked"}}, {Err: errChunkData}}},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Host: []string{"a"}, Err: errObsFold}}},
	{"obs-fold first line", "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Err: errObsFold}}},
	{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Err: errHeaderLine}}},
	{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Err: errHeaderLine}}},
	{"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Err: errHeaderLine}}},
	{"CR line in head", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n",
		[]Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1", Host: []string{"a"}, Err: errHeaderLine}}},
	{"request line two fields", "GET /\r\n\r\n" + reqGetB, []Head{{Err: errRequestLine}}},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		[]Head{{Method: "PRI", Target: "*", Proto: "HTTP/2.0", Err: errHTTPVersion}}},
	{"HTTP/0.9", "GET /\r\n", nil},
	{"CONNECT stops", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + reqGetB,
		[]Head{{Method: "CONNECT", Target: "a.example:443", Proto: "HTTP/1.1", Host: []string{"a.example:443"}}}},
	{"CONNECT pipelined stops", reqGetA + "CONNECT a.example:443 HTTP/1.1\r\n\r\n" + reqGetB,
		[]Head{headGetA, {Method: "CONNECT", Target: "a.example:443", Proto: "HTTP/1.1"}}},
	{"Upgrade stops", "GET http://a.example/ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nupgrade: websocket\r\n\r\n\x81\x05hello" + reqGetB,
		[]Head{get("http://a.example/ws", "a.example")}},
	{"too many heads", strings.Repeat(reqGetB, maxQueuedHeads+2),
		append(slices.Repeat([]Head{headGetB}, maxQueuedHeads),
			Head{Method: "GET", Target: "http://b.example/x?y", Proto: "HTTP/1.1", Host: []string{"b.example"}, Err: errTooManyHeads})},
}

func TestHeadConn(t *testing.T) {
	t.Parallel()
	for _, tt := range headCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, sp := range splitsOf([]byte(tt.in)) {
				if d := diffHeads(parseChunks(t, sp.chunks...), tt.want); d != "" {
					t.Fatalf("%s: %s", sp.name, d)
				}
			}
		})
	}
}

func TestHeadConnHeadSize(t *testing.T) {
	t.Parallel()
	// head builds a request head of exactly n bytes.
	head := func(n int) []byte {
		const pre, post = "GET / HTTP/1.1\r\nX: ", "\r\n\r\n"
		return []byte(pre + strings.Repeat("a", n-len(pre)-len(post)) + post)
	}
	for _, tt := range []struct {
		name string
		in   []byte
		want []Head
	}{
		{"at limit", head(maxHeadBytes), []Head{{Method: "GET", Target: "/", Proto: "HTTP/1.1"}, headGetB}},
		{"over limit", head(maxHeadBytes + 1), []Head{{Err: errHeadTooLarge}}},
		{"no line end", bytes.Repeat([]byte("G"), maxHeadBytes+1), []Head{{Err: errHeadTooLarge}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := append(tt.in, reqGetB...)
			for _, n := range []int{len(in), 4096, 1000, 7} {
				var chunks [][]byte
				for rest := in; len(rest) > 0; {
					m := min(n, len(rest))
					chunks, rest = append(chunks, rest[:m]), rest[m:]
				}
				if d := diffHeads(parseChunks(t, chunks...), tt.want); d != "" {
					t.Fatalf("chunks of %d bytes: %s", n, d)
				}
			}
		})
	}
}

func TestHeadConnUnwrap(t *testing.T) {
	t.Parallel()
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	if got := NewConn(c1).Unwrap(); got != c1 {
		t.Fatalf("Unwrap() = %v, want the inner conn %v", got, c1)
	}
}

// TestHeadConnReadAllocs checks that following a body allocates nothing,
// and that a stopped parser is not fed at all. It is not parallel:
// testing.AllocsPerRun refuses to run in parallel tests.
func TestHeadConnReadAllocs(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 4096)
	for _, tt := range []struct {
		name   string
		prefix string
		loop   []byte
	}{
		{"content-length", "POST / HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n", data},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", append(append([]byte("1000;e=1\r\n"), data...), "\r\n"...)},
		{"connect", "CONNECT a:443 HTTP/1.1\r\n\r\n", []byte("\x16\x03\x01" + reqGetA)},
		{"upgrade", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", []byte("\x81\x05hello" + reqGetA)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := NewConn(&loopConn{prefix: []byte(tt.prefix), loop: tt.loop})
			buf := make([]byte, 32<<10)
			if _, err := hc.Read(buf); err != nil { // the head may allocate
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := hc.Read(buf); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Read allocates %v times per call, want 0", allocs)
			}
			hs := drainHeads(hc)
			if len(hs) != 1 || hs[0].Err != nil {
				t.Fatalf("heads = %+v, want one head without error", hs)
			}
		})
	}
}

// TestHeadConnConcurrent pops heads on one goroutine while another reads,
// as the handler and net/http's connection goroutine do.
func TestHeadConnConcurrent(t *testing.T) {
	t.Parallel()
	const n = 200
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	popped := make(chan struct{})
	go func() {
		defer client.Close()
		for i := range n {
			if _, err := fmt.Fprintf(client, "POST /%d HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", i); err != nil {
				return
			}
			<-popped // keep the queue short: the cap is not under test
		}
	}()
	hc := NewConn(server)
	go io.Copy(io.Discard, hc)
	for i := range n {
		var h Head
		for ok := false; !ok; {
			runtime.Gosched()
			h, ok = hc.NextHead()
		}
		if want := fmt.Sprintf("/%d", i); h.Target != want || h.Err != nil {
			t.Fatalf("head %d = %+v, want target %s without error", i, h, want)
		}
		popped <- struct{}{}
	}
	if h, ok := hc.NextHead(); ok {
		t.Fatalf("extra head %+v", h)
	}
}

// headListener wraps every accepted conn in a Conn, as the proxy's
// listener does.
type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

type headConnKey struct{}

// TestHeadConnHTTPServer runs a real http.Server over headConns and checks
// that each handler invocation pops the head of its own request: the FIFO
// stays aligned with net/http.
func TestHeadConnHTTPServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hc := r.Context().Value(headConnKey{}).(*Conn)
			h, ok := hc.NextHead()
			var body []byte
			if r.Header.Get("X-Skip-Body") == "" {
				body, _ = io.ReadAll(r.Body)
			}
			if !ok {
				fmt.Fprintf(w, "no head")
				return
			}
			fmt.Fprintf(w, "%s %s %s host=%q cl=%q te=%q err=%v; r.Host=%s body=%q",
				h.Method, h.Target, h.Proto, h.Host, h.ContentLength, h.TransferEncoding, h.Err, r.Host, body)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, headConnKey{}, c)
		},
	}
	go srv.Serve(headListener{ln})
	t.Cleanup(func() { srv.Close() })

	exchanges := []struct{ req, want string }{
		{"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
			`GET http://a.example/x HTTP/1.1 host=["b.example"] cl=[] te=[] err=<nil>; r.Host=a.example body=""`},
		{"GET /relative HTTP/1.1\r\nHost: c.example\r\n\r\n",
			`GET /relative HTTP/1.1 host=["c.example"] cl=[] te=[] err=<nil>; r.Host=c.example body=""`},
		{reqChunk,
			`POST http://a.example/c HTTP/1.1 host=["a.example"] cl=[] te=["chunked"] err=<nil>; r.Host=a.example body="hello world0123456789"`},
		{"POST http://e.example/ HTTP/1.1\r\nHost: e.example\r\nX-Skip-Body: 1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(reqEvil), reqEvil),
			`POST http://e.example/ HTTP/1.1 host=["e.example"] cl=["3"] te=["chunked"] err=<nil>; r.Host=e.example body=""`},
		{"POST http://f.example/ HTTP/1.1\r\nHost: f.example\r\nX-Skip-Body: 1\r\nContent-Length: 57\r\n\r\n" + reqEvil,
			`POST http://f.example/ HTTP/1.1 host=["f.example"] cl=["57"] te=[] err=<nil>; r.Host=f.example body=""`},
		{"GET http://g.example/last HTTP/1.1\r\nHost: g.example\r\n\r\n",
			`GET http://g.example/last HTTP/1.1 host=["g.example"] cl=[] te=[] err=<nil>; r.Host=g.example body=""`},
	}
	for _, tt := range []struct {
		name      string
		pipelined bool
	}{
		{"one at a time", false},
		{"pipelined", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if tt.pipelined {
				var all strings.Builder
				for _, ex := range exchanges {
					all.WriteString(ex.req)
				}
				if _, err := io.WriteString(c, all.String()); err != nil {
					t.Fatal(err)
				}
			}
			br := bufio.NewReader(c)
			for i, ex := range exchanges {
				if !tt.pipelined {
					if _, err := io.WriteString(c, ex.req); err != nil {
						t.Fatal(err)
					}
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				if res.StatusCode != http.StatusOK || string(body) != ex.want {
					t.Errorf("response %d: %s %s\nwant %s", i, res.Status, body, ex.want)
				}
			}
		})
	}
}

func FuzzHeadParser(f *testing.F) {
	for i, tt := range headCases {
		f.Add([]byte(tt.in), uint64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		whole := parseChunks(t, data)

		chunks := randomChunks(data, seed)
		split := parseChunks(t, chunks...)
		if d := diffHeads(split, whole); d != "" {
			t.Fatalf("split into %d chunks vs one: %s", len(chunks), d)
		}
		for i := range whole {
			if whole[i].Err == nil && (split[i].End != whole[i].End || split[i].Unusual != whole[i].Unusual) {
				t.Fatalf("head %d split into %d chunks vs one: End %d vs %d, Unusual %v vs %v", i, len(chunks), split[i].End, whole[i].End, split[i].Unusual, whole[i].Unusual)
			}
		}

		checkAlignedWithNetHTTP(t, data, whole)
	})
}

// checkAlignedWithNetHTTP frames data with net/http's request reader, the
// way http.Server does, and checks that every request it frames has its own
// head in heads, until the parser reported an error or stopped.
func checkAlignedWithNetHTTP(t *testing.T, data []byte, heads []Head) {
	t.Helper()
	src := bytes.NewReader(data)
	br := bufio.NewReader(src)
	lastPOST := false
	for i := 0; ; i++ {
		if lastPOST {
			// http.Server skips up to 4 CR or LF bytes after a POST.
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			// What the proxy's front door answers itself, which net/http
			// refuses, FuzzFrontDoor checks.
			return
		}
		if i >= len(heads) {
			t.Fatalf("net/http read request %d (%s %s), the parser has only %d heads: %+v", i, req.Method, req.RequestURI, len(heads), heads)
		}
		h := heads[i]
		if h.Err != nil {
			return // the proxy refuses from here on
		}
		// ReadRequest deletes the Host header; it survives in req.Host if
		// the target has no authority.
		hostOK := len(h.Host) <= 1
		if req.URL.Host == "" {
			hostOK = hostOK && strings.Join(h.Host, "") == req.Host
		}
		if h.Method != req.Method || h.Target != req.RequestURI || h.Proto != req.Proto || !hostOK {
			t.Fatalf("request %d: net/http read %q %q %q Host %q; head is %+v", i, req.Method, req.RequestURI, req.Proto, req.Host, h)
		}
		if req.Method == "CONNECT" || len(req.Header["Upgrade"]) > 0 {
			// The parser stopped here, where the tunnel's bytes start.
			if read := int64(len(data)) - int64(src.Len()) - int64(br.Buffered()); h.End != read {
				t.Fatalf("request %d: the head ends at %d, net/http read %d bytes", i, h.End, read)
			}
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		lastPOST = req.Method == "POST"
	}
}

func BenchmarkHeadConnRead(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 32<<10)
	for _, bc := range []struct {
		name   string
		prefix string
		loop   []byte
		raw    bool
	}{
		{"raw", "", data, true},
		{"content-length", "POST / HTTP/1.1\r\nContent-Length: 1099511627776\r\n\r\n", data, false},
		{"chunked-16k", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", append(append([]byte("4000\r\n"), data[:16<<10]...), "\r\n"...), false},
		{"stopped", "CONNECT a:443 HTTP/1.1\r\n\r\n", data, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c net.Conn = &loopConn{prefix: []byte(bc.prefix), loop: bc.loop}
			if !bc.raw {
				c = NewConn(c)
			}
			buf := make([]byte, 32<<10)
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHasCTL: hasCTL, eight bytes at a time, agrees with the byte loop for
// every byte value at every offset of values around a word's length, among
// bytes that are allowed and bytes that look like control bytes to the word
// test (tab).
func TestHasCTL(t *testing.T) {
	t.Parallel()
	for _, fill := range []byte{'a', '\t', 0x80, 0xff} {
		for n := range 20 {
			for at := range n {
				for c := range 256 {
					v := bytes.Repeat([]byte{fill}, n)
					v[at] = byte(c)
					if got, want := hasCTL(v), hasCTLBytes(v); got != want {
						t.Fatalf("hasCTL(%q) = %v, want %v", v, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkHasCTL checks a Basic Proxy-Authorization value with a 1.3 KB
// token, as every CONNECT of a managed identity carries.
func BenchmarkHasCTL(b *testing.B) {
	v := []byte("Basic " + base64.StdEncoding.EncodeToString([]byte("azegress:"+strings.Repeat("eyJ0eXAiOi", 130))))
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if hasCTL(v) {
			b.Fatal("a control byte in base64")
		}
	}
}

// A Parser fed a stream in pieces finds the heads a Conn reading the same
// bytes finds, and reports a partial head as Conn does.
func TestParser(t *testing.T) {
	stream := "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nProxy-Authorization: Basic eA==\r\n\r\ntunnel bytes"
	for split := range len(stream) + 1 {
		var p Parser
		p.Feed([]byte(stream[:split]))
		h, ok := p.Head()
		if full := strings.Index(stream, "\r\n\r\n") + 4; ok != (split >= full) {
			t.Fatalf("split %d: head %v, want it once %d bytes are in", split, ok, full)
		}
		if !ok {
			if m, n := p.Partial(); split > 8 && (m != "CONNECT" || n != split) {
				t.Errorf("split %d: Partial %q %d", split, m, n)
			}
			p.Feed([]byte(stream[split:]))
			h, ok = p.Head()
		}
		if !ok || h.Method != "CONNECT" || h.Target != "a.example:443" || h.End != int64(strings.Index(stream, "tunnel")) ||
			len(h.ProxyAuthorization) != 1 || h.Err != nil {
			t.Fatalf("split %d: %+v, %v", split, h, ok)
		}
	}
}

// BenchmarkParserConnect is the engine's parse of a CONNECT head that came
// in one read, as its loop does it for every tunnel: a new Parser (the
// engine's is in its connection's state, on the heap) fed the head and
// asked for it.
func BenchmarkParserConnect(b *testing.B) {
	head := []byte("CONNECT origin.azbench.example:7001 HTTP/1.1\r\nHost: origin.azbench.example:7001\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		p := new(Parser)
		p.Feed(head)
		if h, ok := p.Head(); !ok || h.Err != nil || h.End != int64(len(head)) {
			b.Fatalf("head %+v, %v", h, ok)
		}
	}
}
