package httphead

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

// forwardCases are client heads and what ForwardRequest makes of them;
// want "" means not ok. They also seed FuzzForwardRequest.
var forwardCases = []struct {
	name string
	in   string
	want string
	f    Forward
}{
	{"get", "GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
		"GET /x?y=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", Forward{Authority: "a.example"}},
	{"no path", "GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", Forward{Authority: "a.example"}},
	{"query without path", "HEAD http://a.example?q=%zz HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"HEAD /?q=%zz HTTP/1.1\r\nHost: a.example\r\n\r\n", Forward{Authority: "a.example"}},
	{"authority as written", "GET http://A.Example:8080/p%2Fq HTTP/1.1\r\nhost: a.example:8080\r\n\r\n",
		"GET /p%2Fq HTTP/1.1\r\nHost: A.Example:8080\r\n\r\n", Forward{Authority: "A.Example:8080"}},
	{"IP literal", "GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", Forward{Authority: "[::1]:80"}},
	{"host is the target's", "GET http://a.example/ HTTP/1.1\r\nX-A: 1\r\nHost: b.example\r\nX-B: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nX-B: 2\r\n\r\n", Forward{Authority: "a.example"}},
	{"hop-by-hop dropped, the rest in order and spelling",
		"GET http://a/ HTTP/1.1\r\nX-First: 1\r\nHost: a\r\nConnection: close, X-Secret\r\nx-secret: s\r\nProxy-Authorization: Basic eDp5\r\n" +
			"Proxy-Connection: keep-alive\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Authenticate: Basic\r\nx-last:  v \t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-First: 1\r\nx-last:  v \t\r\n\r\n", Forward{Authority: "a", Close: true}},
	{"connection names a field before it", "GET http://a/ HTTP/1.1\r\nX-Hop: 1\r\nHost: a\r\nX-Kept: 2\r\nconnection: ,x-hop , Keep-Alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Kept: 2\r\n\r\n", Forward{Authority: "a"}},
	{"connection close in any case", "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Forward{Authority: "a", Close: true}},
	{"bare LF", "GET http://a/ HTTP/1.1\nHost: a\nX: 1\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n", Forward{Authority: "a"}},
	{"content-length zero", "POST http://a/form HTTP/1.1\r\nHost: a\r\nContent-Length:  0 \r\n\r\n",
		"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length:  0 \r\n\r\n", Forward{Authority: "a"}},
	{"bytes after the head", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nGET http://b/ HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Forward{Authority: "a"}},
	{"obs-text in a value", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", Forward{Authority: "a"}},

	{"HTTP/1.0", "GET http://a/ HTTP/1.0\r\nHost: a\r\n\r\n", "", Forward{}},
	{"HTTP/2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "", Forward{}},
	{"version lower case", "GET http://a/ http/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"request line three spaces", "GET http://a/ HTTP/1.1 x\r\nHost: a\r\n\r\n", "", Forward{}},
	{"request line two fields", "GET http://a/\r\nHost: a\r\n\r\n", "", Forward{}},
	{"method not a token", "G@T http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"CONNECT", "CONNECT http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"https", "GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"scheme upper case", "GET HTTP://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"origin form", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"fragment", "GET http://a/x#f HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"target not ASCII", "GET http://a/caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"target control byte", "GET http://a/\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"target DEL", "GET http://a/?\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"userinfo", "GET http://allowed.example@b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", "", Forward{}},
	{"percent in authority", "GET http://a%2eb/ HTTP/1.1\r\nHost: a.b\r\n\r\n", "", Forward{}},
	{"backslash in authority", "GET http://a\\b/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"bad escape in path", "GET http://a/%zz HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"short escape in path", "GET http://a/%4 HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"host absent", "GET http://a/ HTTP/1.1\r\n\r\n", "", Forward{}},
	{"host twice", "GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "", Forward{}},
	{"expect", "GET http://a/ HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", "", Forward{}},
	{"upgrade", "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "", Forward{}},
	{"transfer-encoding", "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "", Forward{}},
	{"content-length", "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", "", Forward{}},
	{"content-length zero twice", "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", "", Forward{}},
	{"content-length 00", "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 00\r\n\r\n", "", Forward{}},
	{"obs-fold", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", "", Forward{}},
	{"space before colon", "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n", "", Forward{}},
	{"no colon", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", "", Forward{}},
	{"control byte in value", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "", Forward{}},
	{"CR in value", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "", Forward{}},
	{"CR line", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n", "", Forward{}},
	{"leading empty line", "\r\nGET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "", Forward{}},
	{"incomplete", "GET http://a/ HTTP/1.1\r\nHost: a\r\n", "", Forward{}},
	{"connection names 33 fields", "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: " + strings.Repeat("x,", 33) + "\r\n\r\n", "", Forward{}},
	{"head over 1 MiB", "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n", "", Forward{}},
}

func TestForwardRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range forwardCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte("kept")
			out, f, ok := ForwardRequest(dst, []byte(tt.in))
			if tt.want == "" {
				if ok || string(out) != "kept" || f != (Forward{}) {
					t.Fatalf("got ok %v, %+v, %q; want not ok and dst unchanged", ok, f, out)
				}
				return
			}
			if !ok || string(out) != "kept"+tt.want || f != tt.f {
				t.Fatalf("got ok %v, %+v,\n%q\nwant %+v,\n%q", ok, f, out, tt.f, "kept"+tt.want)
			}
		})
	}
}

// TestForwardRequestAllocs: the one allocation is Authority's string.
// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestForwardRequestAllocs(t *testing.T) {
	head := []byte(forwardCases[0].in)
	dst := make([]byte, 0, 4096)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, _, ok := ForwardRequest(dst, head); !ok {
			t.Fatal("not ok")
		}
	}); allocs > 1 {
		t.Errorf("ForwardRequest allocates %v times per call, want at most 1", allocs)
	}
}

// forwardDropped is every field ForwardRequest never forwards, as net/http
// canonicalizes it.
var forwardDropped = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade",
	"Proxy-Authorization", "Proxy-Authenticate"}

func FuzzForwardRequest(f *testing.F) {
	for _, tt := range forwardCases {
		if len(tt.in) < 64<<10 {
			f.Add([]byte(tt.in))
		}
	}
	for _, tt := range headCases { // the request parser's smuggling cases
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, fw, ok := ForwardRequest(nil, data)
		var p Parser
		p.Feed(data)
		h, complete := p.Head()
		if !ok {
			if len(out) != 0 || fw != (Forward{}) {
				t.Fatalf("not ok, yet out %q, %+v", out, fw)
			}
			return
		}
		// What the Parser refuses is never plain.
		if !complete || h.Err != nil || h.Unusual || h.Leading {
			t.Fatalf("ok, but the Parser's head is %+v (complete %v)", h, complete)
		}

		// The output is one bodiless request that net/http reads.
		br := bufio.NewReader(bytes.NewReader(out))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http refuses the output %q: %v", out, err)
		}
		if req.ContentLength != 0 || req.Body != http.NoBody || br.Buffered() != 0 {
			t.Fatalf("output %q: ContentLength %d, body %v, %d bytes left", out, req.ContentLength, req.Body, br.Buffered())
		}
		if req.Host != fw.Authority || strings.Count(string(out), "\r\nHost: ") != 1 {
			t.Fatalf("output %q: Host %q, authority %q", out, req.Host, fw.Authority)
		}
		for _, name := range forwardDropped {
			if _, ok := req.Header[name]; ok {
				t.Fatalf("output %q forwards %s", out, name)
			}
		}

		// It is the request net/http reads from the input, less what a
		// proxy drops.
		in, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			// Accepted by the Parser and ForwardRequest, not by net/http:
			// only an authority net/http's URL parser refuses (a port that
			// is not a number, say), which the caller's check refuses too.
			at := len(h.Method) + len(" http://")
			plain := slices.Concat(data[:at], []byte("x"), data[at+len(fw.Authority):])
			if _, err2 := http.ReadRequest(bufio.NewReader(bytes.NewReader(plain))); err2 != nil {
				t.Fatalf("net/http refuses the input (%v), and not only for its authority (%v)", err, err2)
			}
			return
		}
		if req.Method != in.Method || req.URL.Path != cmpPath(in.URL.Path) || req.URL.RawQuery != in.URL.RawQuery || in.URL.Host != fw.Authority {
			t.Fatalf("output %s %q ? %q, Host %q; net/http read the input as %s %q ? %q, Host %q",
				req.Method, req.URL.Path, req.URL.RawQuery, req.Host, in.Method, in.URL.Path, in.URL.RawQuery, in.URL.Host)
		}
		if fw.Close != in.Close {
			t.Fatalf("Close %v, net/http reads %v", fw.Close, in.Close)
		}
		want := in.Header.Clone()
		for _, v := range in.Header.Values("Connection") {
			for name := range strings.SplitSeq(v, ",") {
				want.Del(textproto.TrimString(name))
			}
		}
		for _, name := range forwardDropped {
			want.Del(name)
		}
		if !headersEqual(req.Header, want) {
			t.Fatalf("output header %q, want the input's less hop-by-hop %q", req.Header, want)
		}
	})
}

// cmpPath is the path net/http reads from the origin form of a target
// whose path is p.
func cmpPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func BenchmarkForwardRequest(b *testing.B) {
	head := []byte("GET http://api.example.com/v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\n" +
		"Accept: application/json\r\nProxy-Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nProxy-Connection: Keep-Alive\r\n" +
		"X-Request-Id: 7f2c1c9e-43a1-4c5b-9d3e-5a1f0e2b7c44\r\n\r\n")
	b.Run("forward", func(b *testing.B) {
		dst := make([]byte, 0, 4096)
		b.SetBytes(int64(len(head)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := ForwardRequest(dst, head); !ok {
				b.Fatal("not ok")
			}
		}
	})
	b.Run("net/http", func(b *testing.B) { // for scale: read, drop, write as the goroutine path does
		r := bytes.NewReader(head)
		br := bufio.NewReader(r)
		var out bytes.Buffer
		b.SetBytes(int64(len(head)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(head)
			br.Reset(r)
			out.Reset()
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			for _, name := range forwardDropped {
				req.Header.Del(name)
			}
			if err := req.Write(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
