package httphead

import (
	"bufio"
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// responseCases are origin bytes (head, then what follows it), the request
// method and what ParseResponse makes of them: want, or incomplete. They
// also seed FuzzParseResponse.
var responseCases = []struct {
	name       string
	head, body string
	method     string
	want       Response // HeadLen is len(head) unless Err is set
	incomplete bool
}{
	{"content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5}, false},
	{"content-length zero", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", nextResponse, "GET",
		Response{Status: 200, Framing: FrameLength}, false},
	{"content-length repeated equal", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length:5 \r\n\r\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5}, false},
	{"content-length largest", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 1<<63 - 1}, false},
	{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n", "GET",
		Response{Status: 200, Framing: FrameChunked}, false},
	{"chunked after gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: , CHUNKED\r\n\r\n", "0\r\n\r\n", "GET",
		Response{Status: 200, Framing: FrameChunked}, false},
	{"transfer-encoding wins over content-length", "HTTP/1.1 200 OK\r\nContent-Length: 53\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n" + nextResponse, "GET",
		Response{Status: 200, Framing: FrameChunked, Close: true}, false},
	{"final coding not chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameClose, Close: true}, false},
	{"gzip alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameClose, Close: true}, false},
	{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "all of it", "GET",
		Response{Status: 200, Framing: FrameClose, Close: true}, false},
	{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", nextResponse, "HEAD",
		Response{Status: 200, Framing: FrameNone}, false},
	{"HEAD chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", nextResponse, "HEAD",
		Response{Status: 200, Framing: FrameNone}, false},
	{"204", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", nextResponse, "GET",
		Response{Status: 204, Framing: FrameNone}, false},
	{"304", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", nextResponse, "GET",
		Response{Status: 304, Framing: FrameNone}, false},
	{"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", nextResponse, "GET",
		Response{Status: 100, Framing: FrameNone}, false},
	{"101", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "\x81\x05hello", "GET",
		Response{Status: 101, Framing: FrameNone}, false},
	{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5, Close: true}, false},
	{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5}, false},
	{"HTTP/1.0 keep-alive until close", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", "hello", "GET",
		Response{Status: 200, Framing: FrameClose, Close: true}, false},
	{"HTTP/1.9", "HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameLength}, false},
	{"connection close", "HTTP/1.1 200 OK\r\nConnection: x-a, CLOSE\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameLength, Close: true}, false},
	{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameLength}, false},
	{"empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 200, Framing: FrameLength}, false},
	{"reason with tab and obs-text", "HTTP/1.1 404 Nicht\tgefunden \xfc\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 404, Framing: FrameLength}, false},
	{"status 999", "HTTP/1.1 999 Custom\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Status: 999, Framing: FrameLength}, false},
	{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 5\n\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5}, false},
	{"empty line bare LF after CRLF lines", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\n", "hello", "GET",
		Response{Status: 200, Framing: FrameLength, Length: 5}, false},

	{"incomplete: empty", "", "", "GET", Response{}, true},
	{"incomplete: status line", "HTTP/1.1 20", "", "GET", Response{}, true},
	{"incomplete: CR of the status line", "HTTP/1.1 200 OK\r", "", "GET", Response{}, true},
	{"incomplete: fields", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "", "GET", Response{}, true},
	{"incomplete: CR of the empty line", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r", "", "GET", Response{}, true},

	{"not HTTP, seen early", "SSH-2.0-OpenSSH_9.6", "", "GET", Response{Err: errStatusLine}, false},
	{"ICY", "ICY 200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"version lower case", "http/1.1 200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"HTTP/2", "HTTP/2.0 200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"status two digits", "HTTP/1.1 99 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"status below 100", "HTTP/1.1 099 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"status four digits", "HTTP/1.1 2000 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"status not digits", "HTTP/1.1 20a OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"status signed", "HTTP/1.1 +20 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"two spaces", "HTTP/1.1  200 OK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"tab after status", "HTTP/1.1 200\tOK\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"control byte in reason, seen early", "HTTP/1.1 200 O\x00K", "", "GET", Response{Err: errStatusLine}, false},
	{"bare CR in reason", "HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n", "", "GET", Response{Err: errStatusLine}, false},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "", "GET", Response{Err: errRespObsFold}, false},
	{"obs-fold first", "HTTP/1.1 200 OK\r\n\tContent-Length: 0\r\n\r\n", "", "GET", Response{Err: errRespObsFold}, false},
	{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "", "GET", Response{Err: errRespHeaderLine}, false},
	{"no colon", "HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\nhello", "", "GET", Response{Err: errRespHeaderLine}, false},
	{"CR line", "HTTP/1.1 200 OK\r\n\r\r\n\r\n", "", "GET", Response{Err: errRespHeaderLine}, false},
	{"NUL in value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "", "GET", Response{Err: errRespHeaderValue}, false},
	{"bare CR in value", "HTTP/1.1 200 OK\r\nX: a\rContent-Length: 0\r\n\r\n", "", "GET", Response{Err: errRespHeaderValue}, false},
	{"content-length differing", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "hello!", "GET", Response{Err: errRespContentLengths}, false},
	{"content-length leading zero differs", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n", "hello", "GET", Response{Err: errRespContentLengths}, false},
	{"content-length differing with transfer-encoding", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", "0\r\n\r\n", "GET",
		Response{Err: errRespContentLengths}, false},
	{"content-length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "", "GET", Response{Err: errRespContentLength}, false},
	{"content-length negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "", "GET", Response{Err: errRespContentLength}, false},
	{"content-length plus sign", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", "", "GET", Response{Err: errRespContentLength}, false},
	{"content-length empty", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "", "GET", Response{Err: errRespContentLength}, false},
	{"content-length too large", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", "", "GET", Response{Err: errRespContentLength}, false},
	{"content-length invalid in a HEAD response", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "", "HEAD", Response{Err: errRespContentLength}, false},
	{"transfer-encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "0\r\n\r\n", "GET",
		Response{Err: errRespTransferEncoding0}, false},
	{"transfer-encoding empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: , \r\n\r\n", "", "GET", Response{Err: errRespTransferEncoding}, false},
	{"transfer-encoding chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "", "GET",
		Response{Err: errRespTransferEncoding}, false},
	{"transfer-encoding parameter", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", "", "GET", Response{Err: errRespTransferEncoding}, false},
	{"connection names 33 fields", "HTTP/1.1 200 OK\r\nConnection: " + strings.Repeat("x,", 33) + "\r\nContent-Length: 0\r\n\r\n", "", "GET",
		Response{Err: errRespConnection}, false},
	{"head over 1 MiB", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n", "", "GET", Response{Err: errRespHeadTooLarge}, false},
	{"no end within 1 MiB", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxHeadBytes), "", "GET", Response{Err: errRespHeadTooLarge}, false},
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	for _, tt := range responseCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.head + tt.body)
			want := tt.want
			if want.Err == nil && !tt.incomplete {
				want.HeadLen = len(tt.head)
			}
			r, ok := ParseResponse(in, tt.method)
			if ok == tt.incomplete || r != want {
				t.Fatalf("got %+v, complete %v; want %+v, complete %v", r, ok, want, !tt.incomplete)
			}
			if len(in) > 64<<10 {
				in = in[:64<<10] // every prefix of 1 MiB would be slow, and they are alike
			}
			for i := range len(in) {
				r, ok := ParseResponse(in[:i], tt.method)
				if ok && r != want {
					t.Fatalf("prefix of %d bytes: %+v, want %+v or incomplete", i, r, want)
				}
				if want.HeadLen > 0 && ok != (i >= want.HeadLen) {
					t.Fatalf("prefix of %d bytes: complete %v, the head has %d", i, ok, want.HeadLen)
				}
			}
		})
	}
}

// appendCases are origin heads and the heads AppendResponseHead makes of
// them for the client.
var appendCases = []struct {
	name   string
	head   string
	method string
	close  bool
	want   string
}{
	{"hop-by-hop dropped, the rest in order and spelling",
		"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 04:00:00 GMT\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nx-hop: 1\r\n" +
			"X-Azegress-Reason: policy_allow\r\nProxy-Authenticate: Basic realm=x\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: close\r\n" +
			"Upgrade: h2c\r\nTE: trailers\r\nContent-Length: 5\r\nx-After:  2 \r\n\r\n", "GET", false,
		"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 04:00:00 GMT\r\nContent-Length: 5\r\nx-After:  2 \r\n\r\n"},
	{"HTTP/1.0 until close", "HTTP/1.0 200 OK\r\nServer: s\r\n\r\n", "GET", true,
		"HTTP/1.1 200 OK\r\nServer: s\r\nConnection: close\r\n\r\n"},
	{"chunked keeps its codings, drops content-length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, chunked\r\nVary: *\r\n\r\n", "GET", true,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nVary: *\r\nConnection: close\r\n\r\n"},
	{"final coding not chunked kept", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", true,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n"},
	{"no body: transfer-encoding dropped", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 7\r\nETag: \"x\"\r\n\r\n", "HEAD", false,
		"HTTP/1.1 200 OK\r\nETag: \"x\"\r\n\r\n"},
	{"304 keeps content-length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET", false,
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"},
	{"framing fields named in Connection stay", "HTTP/1.1 200 OK\r\nConnection: Content-Length, Transfer-Encoding\r\nContent-Length: 5\r\n\r\n", "GET", false,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
	{"chunked named in Connection stays", "HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", false,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{"no reason", "HTTP/1.1 204\r\nX: 1\r\n\r\n", "GET", false, "HTTP/1.1 204 \r\nX: 1\r\n\r\n"},
	{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\nX: 1\n\n", "GET", false, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: 1\r\n\r\n"},
	{"close asked by the client", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", true, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
}

func TestAppendResponseHead(t *testing.T) {
	t.Parallel()
	for _, tt := range appendCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := []byte(tt.head + "body bytes")
			r, ok := ParseResponse(b, tt.method)
			if !ok || r.Err != nil {
				t.Fatalf("ParseResponse: %+v, complete %v", r, ok)
			}
			if got := AppendResponseHead([]byte("kept"), b, r, tt.close); string(got) != "kept"+tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, "kept"+tt.want)
			}
		})
	}
}

// TestResponseAllocs: parsing a head and writing the client's allocate
// nothing. Not parallel: testing.AllocsPerRun refuses to run in parallel
// tests.
func TestResponseAllocs(t *testing.T) {
	b := []byte(appendCases[0].head)
	dst := make([]byte, 0, 4096)
	if allocs := testing.AllocsPerRun(100, func() {
		r, ok := ParseResponse(b, "GET")
		if !ok || r.Err != nil {
			t.Fatal(r, ok)
		}
		AppendResponseHead(dst, b, r, false)
	}); allocs != 0 {
		t.Errorf("ParseResponse and AppendResponseHead allocate %v times per call, want 0", allocs)
	}
}

// responseDropped is every field AppendResponseHead never forwards, as
// net/http canonicalizes it (Transfer-Encoding aside: it follows the body).
var responseDropped = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade",
	"Proxy-Authorization", "Proxy-Authenticate", "X-Azegress-Reason"}

// FuzzParseResponse checks that ParseResponse is split invariant, that the
// head AppendResponseHead writes for the client means what the origin's
// did, and that ParseResponse agrees with net/http's http.ReadResponse on
// status and framing where both accept a head.
//
// Intentional differences, where ParseResponse gives Err and net/http
// reads a response: a version other than HTTP/1.x (HTTP/2.0); more than one
// space after the version; a status below 100, or with a sign; a bare CR in
// the reason; obs-fold (net/http joins the lines); whitespace before a
// colon (net/http reads another field name); Transfer-Encoding in an
// HTTP/1.0 response (net/http ignores it and frames by Content-Length or
// close); more than 32 names in Connection; a head over 1 MiB (net/http's
// reader has no cap of its own). Where ParseResponse reads a response and
// net/http does not: a Transfer-Encoding other than exactly "chunked"
// (net/http refuses any other coding, even in a response without a body;
// RFC 9112 §6.3 frames by the final one). With both Content-Length and
// Transfer-Encoding, ParseResponse sets Close and net/http does not.
func FuzzParseResponse(f *testing.F) {
	for _, tt := range responseCases {
		if len(tt.head) < 64<<10 {
			f.Add([]byte(tt.head+tt.body), tt.method == "HEAD")
		}
	}
	for _, tt := range appendCases {
		f.Add([]byte(tt.head), tt.method == "HEAD")
	}
	// The request parser's smuggling cases, as responses.
	for _, tt := range headCases {
		if _, rest, ok := strings.Cut(tt.in, "\n"); ok {
			f.Add([]byte("HTTP/1.1 200 OK\r\n"+rest), false)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		r, ok := ParseResponse(data, method)
		if !ok && r != (Response{}) || r.Err != nil && r != (Response{Err: r.Err}) {
			t.Fatalf("ParseResponse = %+v, %v", r, ok)
		}
		step := max(1, len(data)/256)
		for i := 0; i < len(data); i += step {
			r2, ok2 := ParseResponse(data[:i], method)
			if ok2 && (!ok || r2 != r) {
				t.Fatalf("prefix of %d bytes: %+v; all %d: %+v, complete %v", i, r2, len(data), r, ok)
			}
			if ok && r.Err == nil && ok2 != (i >= r.HeadLen) {
				t.Fatalf("prefix of %d bytes: complete %v, the head has %d", i, ok2, r.HeadLen)
			}
		}
		if !ok || r.Err != nil {
			return
		}

		checkClientHead(t, data, r, method)

		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: method})
		if err != nil {
			if countFields(data[:r.HeadLen], "transfer-encoding") > 0 {
				return // a coding other than "chunked", which net/http refuses in any response
			}
			t.Fatalf("net/http refuses %q: %v; ParseResponse: %+v", data[:r.HeadLen], err, r)
		}
		defer resp.Body.Close()
		hasTE, hasCL := countFields(data[:r.HeadLen], "transfer-encoding") > 0, countFields(data[:r.HeadLen], "content-length") > 0
		var agree bool
		switch r.Framing {
		case FrameNone:
			agree = resp.Body == http.NoBody
		case FrameLength:
			agree = resp.ContentLength == r.Length && len(resp.TransferEncoding) == 0
		case FrameChunked:
			agree = slices.Equal(resp.TransferEncoding, []string{"chunked"})
		case FrameClose:
			agree = resp.ContentLength == -1 && len(resp.TransferEncoding) == 0
		}
		if resp.StatusCode != r.Status || !agree || resp.Close != r.Close && !(hasTE && hasCL && r.Close) {
			t.Fatalf("head %q: net/http reads status %d, length %d, codings %q, close %v; ParseResponse: %+v",
				data[:r.HeadLen], resp.StatusCode, resp.ContentLength, resp.TransferEncoding, resp.Close, r)
		}
	})
}

// checkClientHead checks that the head AppendResponseHead writes for r, the
// origin head at the start of data, means the same to ParseResponse and to
// net/http's client, and forwards no hop-by-hop field.
func checkClientHead(t *testing.T, data []byte, r Response, method string) {
	t.Helper()
	out := AppendResponseHead(nil, data, r, r.Close)
	r2, ok := ParseResponse(out, method)
	if want := (Response{Status: r.Status, HeadLen: len(out), Framing: r.Framing, Length: r.Length, Close: r.Close}); !ok || r2 != want {
		t.Fatalf("client head %q: %+v, complete %v; want %+v", out, r2, ok, want)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), &http.Request{Method: method})
	if err != nil {
		if countFields(out, "transfer-encoding") > 0 {
			return // a coding other than "chunked", which net/http refuses in any response
		}
		t.Fatalf("net/http refuses the client head %q: %v", out, err)
	}
	defer resp.Body.Close()
	for _, name := range responseDropped {
		if _, ok := resp.Header[name]; ok {
			t.Fatalf("client head %q forwards %s", out, name)
		}
	}
}

// countFields counts the fields called name in head.
func countFields(head []byte, name string) int {
	n := 0
	_, rest, _ := nextLine(head)
	for {
		line, r, ok := nextLine(rest)
		if !ok || len(line) == 0 {
			return n
		}
		rest = r
		if nm, _, k := fieldLine(line); k == lineField && asciiEqualFold(nm, name) {
			n++
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	head := []byte("HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 04:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 1234\r\n" +
		"Cache-Control: private, max-age=0\r\nServer: nginx\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n" +
		"X-Request-Id: 7f2c1c9e-43a1-4c5b-9d3e-5a1f0e2b7c44\r\n\r\n")
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(head)))
		b.ReportAllocs()
		for b.Loop() {
			if r, ok := ParseResponse(head, "GET"); !ok || r.Err != nil {
				b.Fatal(r, ok)
			}
		}
	})
	b.Run("net/http", func(b *testing.B) { // for scale: what the goroutine path reads with
		r := bytes.NewReader(head)
		br := bufio.NewReader(r)
		b.SetBytes(int64(len(head)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(head)
			br.Reset(r)
			if _, err := http.ReadResponse(br, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		r, _ := ParseResponse(head, "GET")
		dst := make([]byte, 0, 4096)
		b.SetBytes(int64(len(head)))
		b.ReportAllocs()
		for b.Loop() {
			AppendResponseHead(dst, head, r, false)
		}
	})
}
