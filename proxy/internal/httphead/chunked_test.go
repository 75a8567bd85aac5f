package httphead

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"testing"
)

const nextResponse = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

// chunkedCases are chunked bodies, each followed by what comes after it on
// the connection, and how many of their bytes Scan takes: the body, or the
// bytes before the one that breaks its framing. They also seed FuzzChunked.
var chunkedCases = []struct {
	name string
	in   string
	n    int // bytes of the body (or before the error)
	done bool
	err  error
}{
	{"empty body", "0\r\n\r\n" + nextResponse, 5, true, nil},
	{"chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + nextResponse, 26, true, nil},
	{"extensions", "5;name=value\r\nhello\r\n6;a=\"b;c\"\r\n world\r\n0;last\r\n\r\n" + nextResponse, 50, true, nil},
	{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n" + nextResponse, 20, true, nil},
	{"trailer", "1\r\nx\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n" + nextResponse, 37, true, nil},
	{"trailer bare LF", "1\r\nx\r\n0\r\nX-Checksum: 1\n\n" + nextResponse, 24, true, nil},
	{"chunk size OWS", "1 \t\r\nx\r\n1\t;a\r\ny\r\n0 \r\n\r\n" + nextResponse, 23, true, nil},
	{"chunk size 16 digits", "0000000000000001\r\nx\r\n0\r\n\r\n", 26, true, nil},
	{"body looks like a response", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(nextResponse), nextResponse) + nextResponse, 49, true, nil},
	{"incomplete: in a chunk", "5\r\nhel", 6, false, nil},
	{"incomplete: in the trailer", "0\r\nX: 1\r\n", 9, false, nil},
	{"incomplete: no data", "", 0, false, nil},
	{"chunk size 17 digits", "00000000000000001\r\nx\r\n0\r\n\r\n", 16, false, errChunkedLine},
	{"chunk size invalid", "zz\r\n", 0, false, errChunkedLine},
	{"chunk size empty", ";ext\r\n", 0, false, errChunkedLine},
	{"chunk size empty line", "\r\n0\r\n\r\n", 0, false, errChunkedLine},
	{"chunk size signed", "-1\r\n", 0, false, errChunkedLine},
	{"chunk size 0x", "0x5\r\n", 1, false, errChunkedLine},
	{"chunk size space inside", "1 1\r\n", 2, false, errChunkedLine},
	{"chunk line bare LF", "2\nhi\r\n0\r\n\r\n", 1, false, errChunkedLine},
	{"last chunk line bare LF", "1\r\nx\r\n0\n\r\n" + nextResponse, 7, false, errChunkedLine},
	{"chunk line bare CR", "1;a\rb\r\nx\r\n0\r\n\r\n", 4, false, errChunkedLine},
	{"chunk line too long", "1;" + strings.Repeat("e", maxChunkLineBytes) + "\r\nx\r\n0\r\n\r\n", maxChunkLineBytes - 1, false, errChunkedLine},
	{"chunk data too long", "2\r\nabc\r\n0\r\n\r\n", 5, false, errChunkedData},
	{"chunk data bare LF", "2\r\nab\n0\r\n\r\n", 5, false, errChunkedData},
	{"chunk data CR CR", "2\r\nab\r\r\n0\r\n\r\n", 6, false, errChunkedData},
	{"trailer too large", "0\r\nX: " + strings.Repeat("a", maxTrailerBytes) + "\r\n\r\n", 3 + maxTrailerBytes, false, errChunkedTrailer},
}

// scanSplit scans in as the chunks given, in order, and checks what a
// Chunked promises of every call: all of b until the body ends or fails,
// and the same answer again after that.
func scanSplit(t testing.TB, chunks ...[]byte) (n int, done bool, err error) {
	t.Helper()
	var c Chunked
	for _, ch := range chunks {
		k, d, e := c.Scan(ch)
		n += k
		if d || e != nil {
			if k2, d2, e2 := c.Scan(ch[k:]); k2 != 0 || d2 != d || e2 != e {
				t.Fatalf("Scan after (done %v, err %v) = %d, %v, %v", d, e, k2, d2, e2)
			}
			return n, d, e
		}
		if k != len(ch) {
			t.Fatalf("Scan(%d bytes) = %d, neither done nor failed", len(ch), k)
		}
	}
	return n, false, nil
}

func TestChunked(t *testing.T) {
	t.Parallel()
	for _, tt := range chunkedCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			sps := []split{{"one chunk", [][]byte{in}}}
			if len(in) <= 64<<10 { // every split of 1 MiB would be slow, and its chunks are alike
				sps = splitsOf(in)
			}
			for _, sp := range sps {
				if n, done, err := scanSplit(t, sp.chunks...); n != tt.n || done != tt.done || err != tt.err {
					t.Fatalf("%s: got (%d, %v, %v), want (%d, %v, %v)", sp.name, n, done, err, tt.n, tt.done, tt.err)
				}
			}
		})
	}
}

// TestChunkedRequestErrors: the request parser records the machine's errors
// as its own.
func TestChunkedRequestErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range chunkedCases {
		if tt.err == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := parseChunks(t, []byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"+tt.in))
			if len(hs) != 2 || hs[1].Err != reqChunkErr(tt.err) || !strings.HasPrefix(hs[1].Err.Error(), "reqhead: ") {
				t.Fatalf("heads %+v, want the POST then one with %v as the parser's", hs, tt.err)
			}
		})
	}
}

// TestChunkedAllocs: following a body allocates nothing. Not parallel:
// testing.AllocsPerRun refuses to run in parallel tests.
func TestChunkedAllocs(t *testing.T) {
	body := []byte("1000;e=1\r\n" + strings.Repeat("x", 4096) + "\r\n")
	var c Chunked
	if allocs := testing.AllocsPerRun(100, func() {
		if n, done, err := c.Scan(body); n != len(body) || done || err != nil {
			t.Fatalf("Scan = %d, %v, %v", n, done, err)
		}
	}); allocs != 0 {
		t.Errorf("Scan allocates %v times per call, want 0", allocs)
	}
}

func FuzzChunked(f *testing.F) {
	for i, tt := range chunkedCases {
		if len(tt.in) < 64<<10 {
			f.Add([]byte(tt.in), uint64(i))
		}
	}
	// The request parser's smuggling cases, from their first body on.
	for i, tt := range headCases {
		if _, body, ok := strings.Cut(tt.in, "\r\n\r\n"); ok {
			f.Add([]byte(body), uint64(i))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		n, done, err := scanSplit(t, data)

		chunks := randomChunks(data, seed)
		if n2, done2, err2 := scanSplit(t, chunks...); n2 != n || done2 != done || err2 != err {
			t.Fatalf("split into %d chunks: (%d, %v, %v), in one: (%d, %v, %v)", len(chunks), n2, done2, err2, n, done, err)
		}

		// A body net/http reads to its end must end at the same byte here.
		// The other way round it need not: net/http refuses whitespace
		// between a chunk size and ";", which RFC 9112 §7.1.1 allows (BWS),
		// a body with much more framing than data, and trailer lines that
		// are not fields, or not followed by "\r\n\r\n" within 4 KiB.
		end, herr := netHTTPChunkedEnd(data)
		if herr == nil && (!done || n != end) {
			t.Fatalf("net/http read a body of %d bytes; Scan: (%d, %v, %v)", end, n, done, err)
		}
	})
}

// netHTTPChunkedEnd reads a chunked body at the start of data as net/http's
// client does (httputil.NewChunkedReader, then the trailer section as
// http.body.readTrailer reads it) and returns how many bytes it took.
func netHTTPChunkedEnd(data []byte) (int, error) {
	src := bytes.NewReader(data)
	br := bufio.NewReader(src)
	if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
		return 0, err
	}
	peek, err := br.Peek(2)
	switch {
	case bytes.Equal(peek, []byte("\r\n")):
		_, _ = br.Discard(2)
	case err != nil:
		return 0, err
	default:
		// A trailer must show its "\r\n\r\n" within the reader's buffer.
		if buf, _ := br.Peek(br.Size()); !bytes.Contains(buf, []byte("\r\n\r\n")) {
			return 0, errors.New("http: suspiciously long trailer after chunked body")
		}
		if _, err := textproto.NewReader(br).ReadMIMEHeader(); err != nil {
			return 0, err
		}
	}
	return len(data) - src.Len() - br.Buffered(), nil
}

func BenchmarkChunkedScan(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"16k-chunks", []byte("4000\r\n" + strings.Repeat("x", 16<<10) + "\r\n")},
		{"64-byte-chunks", bytes.Repeat([]byte("40;e=1\r\n"+strings.Repeat("x", 64)+"\r\n"), 256)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c Chunked
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, done, err := c.Scan(bc.body); done || err != nil {
					b.Fatal(done, err)
				}
			}
		})
	}
}
