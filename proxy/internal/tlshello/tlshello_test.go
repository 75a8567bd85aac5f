package tlshello

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/proxy/internal/tlshello/tlshellotest"
)

// The recorded ClientHellos in testdata/clienthello/ are the first bytes real
// clients sent to a listener on 127.0.0.1. They are checked in; to record
// them again (curl, openssl and python3 must be installed):
//
//	go test ./proxy/internal/tlshello -run '^TestRecordClientHellos$' -record-clienthello
//
// then update recordedHellos below if a client's ALPN list changed.
var recordHellosFlag = flag.Bool("record-clienthello", false, "record testdata/clienthello/*.bin from real TLS clients")

// recordedHellos is what each recording must parse to.
var recordedHellos = []struct {
	file string
	sni  string
	ech  bool
	alpn []string
}{
	{"go.bin", "go.example", false, []string{"h2", "http/1.1"}},
	{"go-ech.bin", "public.example", true, []string{"h2", "http/1.1"}},
	{"curl.bin", "curl.example", false, []string{"h2", "http/1.1"}},
	{"python.bin", "python.example", false, []string{"http/1.1"}},
	{"openssl-nosni.bin", "", false, nil},
}

func TestRecordClientHellos(t *testing.T) {
	if !*recordHellosFlag {
		t.Skip("records testdata/clienthello/*.bin; run with -record-clienthello")
	}
	dir := filepath.Join("testdata", "clienthello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	goClient := func(cfg *tls.Config) func(string) {
		return func(addr string) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			_ = tls.Client(c, cfg).Handshake() // the recorder hangs up
		}
	}
	command := func(name string, args ...string) func(string) {
		return func(addr string) {
			_, port, _ := net.SplitHostPort(addr)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "PORT", port)
			}
			path, err := exec.LookPath(name)
			if err != nil {
				t.Fatalf("recording needs %s: %v", name, err)
			}
			cmd := exec.Command(path, args...)
			cmd.Stdin = strings.NewReader("")
			_ = cmd.Run()
		}
	}
	echList, _ := tlshellotest.ECHConfig(t, "public.example")
	for file, client := range map[string]func(string){
		"go.bin": goClient(&tls.Config{ServerName: "go.example", NextProtos: []string{"h2", "http/1.1"}}),
		"go-ech.bin": goClient(&tls.Config{ServerName: "secret.example", NextProtos: []string{"h2", "http/1.1"},
			MinVersion: tls.VersionTLS13, EncryptedClientHelloConfigList: echList}),
		"curl.bin": command("curl", "-s", "--max-time", "5", "--resolve", "curl.example:PORT:127.0.0.1", "https://curl.example:PORT/"),
		"python.bin": command("python3", "-c", `import socket, ssl
s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
c = ssl.create_default_context()
c.set_alpn_protocols(["http/1.1"])
try:
    c.wrap_socket(s, server_hostname="python.example")
except Exception:
    pass`),
		"openssl-nosni.bin": command("openssl", "s_client", "-connect", "127.0.0.1:PORT", "-noservername"),
	} {
		hello := captureHello(t, client)
		if err := os.WriteFile(filepath.Join(dir, file), hello, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s: %d bytes", file, len(hello))
	}
}

// captureHello runs client against a fresh listener and returns the bytes it
// sent until its ClientHello was complete.
func captureHello(t *testing.T, client func(addr string)) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() { defer close(done); client(ln.Addr().String()) }()
	defer func() { <-done }()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, MaxBytes)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if _, perr := Parse(buf[:n]); perr != ErrIncomplete {
			if perr != nil {
				t.Fatalf("client sent a ClientHello the parser refuses: %v", perr)
			}
			return buf[:n]
		}
		if err != nil {
			t.Fatalf("reading ClientHello: %v after %d bytes", err, n)
		}
	}
}

func readHello(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clienthello", file))
	if err != nil {
		t.Fatalf("%v (record with -record-clienthello)", err)
	}
	return b
}

// cryptoTLSView is what Go's crypto/tls server reads from hello: an
// independent parser to compare with.
func cryptoTLSView(t *testing.T, hello []byte) (sni string, alpn []string) {
	t.Helper()
	chi := cryptoTLSReads(hello)
	if chi == nil {
		t.Fatalf("crypto/tls did not read the ClientHello")
	}
	return chi.ServerName, chi.SupportedProtos
}

// cryptoTLSReads returns the ClientHello Go's crypto/tls server reads from
// in, or nil if it reads none.
func cryptoTLSReads(in []byte) *tls.ClientHelloInfo {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() {
		_, _ = c2.Write(in)
		_, _ = io.Copy(io.Discard, c2)
	}()
	stop := errors.New("seen")
	var got *tls.ClientHelloInfo
	_ = tls.Server(c1, &tls.Config{GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		got = chi
		return nil, stop
	}}).HandshakeContext(context.Background())
	return got
}

func TestParseClientHelloRecorded(t *testing.T) {
	t.Parallel()
	for _, tt := range recordedHellos {
		t.Run(tt.file, func(t *testing.T) {
			hello := readHello(t, tt.file)
			oracleSNI, oracleALPN := cryptoTLSView(t, hello)
			if oracleSNI != tt.sni || !slices.Equal(oracleALPN, tt.alpn) {
				t.Fatalf("crypto/tls reads SNI %q ALPN %q; the table says %q %q", oracleSNI, oracleALPN, tt.sni, tt.alpn)
			}
			variants := map[string][]byte{"as recorded": hello}
			for _, size := range []int{1, 3, 100, 512} {
				variants["records of "+strconv.Itoa(size)] = tlshellotest.Fragment(hello, size)
			}
			for name, in := range variants {
				h, err := Parse(in)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if string(h.ServerName) != tt.sni || h.ECH != tt.ech || !slices.Equal(h.ALPN(), tt.alpn) {
					t.Errorf("%s: SNI %q ECH %v ALPN %q, want %q %v %q", name, string(h.ServerName), h.ECH, h.ALPN(), tt.sni, tt.ech, tt.alpn)
				}
				// Byte by byte, as a reader of 1-byte TCP segments sees it.
				for n := 0; n < len(in); n++ {
					if _, err := Parse(in[:n]); err != ErrIncomplete {
						if want := len(tlshellotest.Message(in)); n < want { // a prefix can never be complete
							t.Fatalf("%s: prefix of %d bytes: %v, want ErrIncomplete", name, n, err)
						}
					}
				}
			}
		})
	}
}

func TestParseClientHelloCases(t *testing.T) {
	t.Parallel()
	valid := tlshellotest.Hello(tlshellotest.SNI("a.example"), tlshellotest.ALPN("h2"))
	big := tlshellotest.Body(tlshellotest.Ext{Type: 0x1234, Data: make([]byte, maxHelloLen)})
	dupExt := tlshellotest.Hello(tlshellotest.SNI("a.example"), tlshellotest.ALPN("h2"), tlshellotest.ALPN("http/1.1"))
	trailing := tlshellotest.Body(tlshellotest.SNI("a.example"))
	trailing = append(trailing, 0)
	noExts := tlshellotest.Body()[:len(tlshellotest.Body())-2]
	for _, tt := range []struct {
		name string
		in   []byte
		err  error
		sni  string
		ech  bool
	}{
		{"valid", valid, nil, "a.example", false},
		{"valid, more bytes after it", append(slices.Clip(valid), 23, 3, 3, 0, 1, 0), nil, "a.example", false},
		{"empty", nil, ErrIncomplete, "", false},
		{"no extensions", tlshellotest.Wrap(noExts), nil, "", false},
		{"no server_name", tlshellotest.Hello(tlshellotest.ALPN("h2")), nil, "", false},
		{"other name types only", tlshellotest.Hello(tlshellotest.Ext{Type: extServerName, Data: tlshellotest.AppendVec16(nil, []byte{1, 0, 1, 'x'})}), nil, "", false},
		{"ECH", tlshellotest.Hello(tlshellotest.SNI("public.example"), tlshellotest.Ext{Type: extECH, Data: []byte{0, 0, 1}}), nil, "public.example", true},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), ErrNotTLS, "", false},
		{"SSLv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, ErrNotTLS, "", false},
		{"record version 2.0", []byte{22, 2, 0, 0, 5}, errHelloRecordVer, "", false},
		{"record version 3.5", []byte{22, 3, 5, 0, 5}, errHelloRecordVer, "", false},
		{"record version 3.0", tlshellotest.WithRecordVersion(valid, 0x0300), nil, "a.example", false},
		{"record version 3.4", tlshellotest.WithRecordVersion(valid, 0x0304), nil, "a.example", false},
		{"warning alert, then a ClientHello", append(tlshellotest.Record(21, []byte{1, 112}), valid...), errHelloFirst[21-recordTypeCCS], "", false},
		{"change_cipher_spec first", tlshellotest.Record(20, []byte{1}), errHelloFirst[20-recordTypeCCS], "", false},
		{"application_data first", tlshellotest.Record(23, []byte{0}), errHelloFirst[23-recordTypeCCS], "", false},
		{"heartbeat first", tlshellotest.Record(24, []byte{1, 0, 0}), errHelloFirst[24-recordTypeCCS], "", false},
		{"first byte below the record types", []byte{19, 3, 1}, ErrNotTLS, "", false},
		{"first byte above the record types", []byte{25, 3, 1}, ErrNotTLS, "", false},
		{"more in the ClientHello's record", tlshellotest.Record(22, append(tlshellotest.Message(valid), 1, 0, 0, 0)), errHelloTrailing, "", false},
		{"malformed supported_versions", tlshellotest.Hello(tlshellotest.SNI("a.example"), tlshellotest.Ext{Type: extSupportedVersions, Data: []byte{3, 3, 4, 3}}), errHelloVersions, "", false},
		{"empty record", []byte{22, 3, 1, 0, 0}, errHelloEmptyRecord, "", false},
		{"record over 16 KiB", []byte{22, 3, 1, 0x40, 1}, errHelloRecordLen, "", false},
		{"server hello", tlshellotest.Record(22, []byte{2, 0, 0, 0}), errHelloType, "", false},
		{"message over 16 KiB", tlshellotest.Fragment(tlshellotest.Wrap(big), maxPlaintextLen)[:20], errHelloTooLarge, "", false},
		{"second record not handshake", append(tlshellotest.Fragment(valid, 10)[:15], 23, 3, 3, 0, 1), errHelloRecordType, "", false},
		{"second record version", append(tlshellotest.Fragment(valid, 10)[:15], 22, 4, 3, 0, 1), errHelloRecordVer, "", false},
		{"duplicate extension", dupExt, errHelloDupExt, "", false},
		{"two host_names", tlshellotest.Hello(tlshellotest.SNI("a.example", "b.example")), errHelloSNI, "", false},
		{"empty host_name", tlshellotest.Hello(tlshellotest.SNI("")), errHelloSNI, "", false},
		{"empty server_name list", tlshellotest.Hello(tlshellotest.Ext{Type: extServerName, Data: []byte{0, 0}}), errHelloSNI, "", false},
		{"empty ALPN name", tlshellotest.Hello(tlshellotest.ALPN("")), errHelloALPN, "", false},
		{"trailing bytes in body", tlshellotest.Wrap(trailing), errHelloSyntax, "", false},
		{"truncated body", tlshellotest.Wrap(tlshellotest.Body()[:30]), errHelloSyntax, "", false},
		{"session id over 32", tlshellotest.Wrap(append(append([]byte{3, 3}, make([]byte, 32)...), 33)), errHelloSyntax, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse(tt.in)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if string(h.ServerName) != tt.sni || h.ECH != tt.ech {
				t.Errorf("SNI %q ECH %v, want %q %v", string(h.ServerName), h.ECH, tt.sni, tt.ech)
			}
		})
	}
	// Spreading a ClientHello over very many records runs into the cap.
	if _, err := Parse(tlshellotest.Fragment(tlshellotest.Hello(tlshellotest.SNI(strings.Repeat("a", 200)+".example"), tlshellotest.Ext{Type: 0x1234, Data: make([]byte, 4000)}), 1)); err != errHelloTooLarge {
		t.Errorf("ClientHello in 1-byte records over %d bytes: err = %v, want errHelloTooLarge", MaxBytes, err)
	}
	if _, err := Parse(tlshellotest.Fragment(tlshellotest.Wrap(big), maxPlaintextLen)); err != errHelloTooLarge {
		t.Errorf("ClientHello over 16 KiB: err = %v, want errHelloTooLarge", err)
	}
}

// alertAccessDenied is the description of an access_denied alert.
const alertAccessDenied = 49

// FuzzParseClientHello checks that parsing never panics, that an answer
// other than ErrIncomplete is final, that ClientHello.Need is exact
// enough for a reader to rely on, and that how a ClientHello is split into
// records does not change what it says. The first three hold for
// ParseSecond and ParseServerHello too, on the same inputs.
func FuzzParseClientHello(f *testing.F) {
	for _, tt := range recordedHellos {
		hello := readHello(f, tt.file)
		f.Add(hello, uint8(0))
		f.Add(tlshellotest.Fragment(hello, 7), uint8(5))
	}
	f.Add(tlshellotest.Hello(tlshellotest.SNI("a.example"), tlshellotest.Ext{Type: extECH, Data: nil}), uint8(1))
	f.Add(slices.Concat(tlshellotest.Record(20, []byte{1}), tlshellotest.Hello(tlshellotest.SNI("a.example"))), uint8(2))
	f.Add(append(tlshellotest.Record(21, []byte{1, 112}), tlshellotest.Hello(tlshellotest.SNI("a.example"))...), uint8(3))
	f.Add(tlshellotest.ServerFirstFlight(f, tlshellotest.RetryConfig(f, "a.example"), readHello(f, "go.bin")), uint8(4))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte, step uint8) {
	h, err := checkFinal(t, data, step, Parse, sameHello)
	checkFinal(t, data, step, ParseSecond, sameHello)
	checkFinal(t, data, step, ParseServerHello, func(a ServerHello, aerr error, b ServerHello, berr error) bool {
		return a == b && aerr == berr
	})

	// The same message in other records says the same.
	if err == nil {
		re := tlshellotest.Fragment(data, 1+int(step))
		rh, rerr := Parse(re)
		if rerr == errHelloTooLarge && len(re) > MaxBytes {
			return
		}
		if !sameHello(rh, rerr, h, err) {
			t.Fatalf("in records of %d: %q %v; as given: %q %v", 1+int(step), string(rh.ServerName), rerr, string(h.ServerName), err)
		}
	}
}

// checkFinal checks that parse's need is one a reader can rely on, and
// that an answer other than ErrIncomplete is final: fed data as a
// reader would, every prefix before the answer is incomplete, and the
// answer equals the one-shot answer. It returns the one-shot answer.
func checkFinal[H interface{ Need() int }](t *testing.T, data []byte, step uint8, parse func([]byte) (H, error), same func(H, error, H, error) bool) (H, error) {
	t.Helper()
	h, err := parse(data)
	if err == ErrIncomplete && (h.Need() <= len(data) || h.Need() > MaxBytes) {
		t.Fatalf("incomplete with need %d for %d bytes", h.Need(), len(data))
	}
	if err != nil && err != ErrIncomplete && !isHelloMalformed(err) {
		t.Fatalf("unexpected error type %T", err)
	}
	// At most a few hundred prefixes, so that an exec stays cheap.
	need, stride := 0, max(1+int(step)%16, len(data)/256)
	for n := 0; n <= len(data); n += stride {
		ph, perr := parse(data[:n])
		if n < need && (perr != ErrIncomplete || ph.Need() != need) {
			t.Fatalf("prefix %d < need %d: %v need %d", n, need, perr, ph.Need())
		}
		if perr != ErrIncomplete {
			if !same(ph, perr, h, err) {
				t.Fatalf("at %d bytes: %+v %v; one-shot: %+v %v", n, ph, perr, h, err)
			}
			break
		}
		need = ph.Need()
	}
	return h, err
}

func sameHello(a ClientHello, aerr error, b ClientHello, berr error) bool {
	return aerr == berr && bytes.Equal(a.ServerName, b.ServerName) && a.ECH == b.ECH && a.TLS13 == b.TLS13 &&
		bytes.Equal(a.alpn, b.alpn) && a.need == b.need && (a.ServerName == nil) == (b.ServerName == nil)
}

func BenchmarkParseClientHello(b *testing.B) {
	for _, tt := range recordedHellos {
		for _, v := range []struct {
			name string
			in   []byte
		}{
			{tt.file, readHello(b, tt.file)},
			{tt.file + "/records-of-64", tlshellotest.Fragment(readHello(b, tt.file), 64)},
		} {
			b.Run(v.name, func(b *testing.B) {
				b.SetBytes(int64(len(v.in)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Parse(v.in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Whatever a real server reads as a ClientHello, the parser reads as the
// same ClientHello or refuses: it never passes such input as not TLS. The
// inputs are what servers skip or accept before or around one.
func TestParseClientHelloAsServersRead(t *testing.T) {
	t.Parallel()
	hello := readHello(t, "go.bin")
	warning := tlshellotest.Record(21, []byte{1, 112}) // a warning alert: unrecognized_name
	inputs := map[string][]byte{
		"as sent":                         hello,
		"warning alert first":             append(slices.Clip(warning), hello...),
		"change_cipher_spec first":        append(tlshellotest.Record(20, []byte{1}), hello...),
		"application_data first":          append(tlshellotest.Record(23, []byte{0}), hello...),
		"heartbeat first":                 append(tlshellotest.Record(24, []byte{1, 0, 0}), hello...),
		"records of 100, alert in second": slices.Concat(tlshellotest.Fragment(hello, 100)[:105], warning, tlshellotest.Fragment(hello, 100)[105:]),
	}
	for _, v := range []uint16{0x0000, 0x0002, 0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x03ff, 0x0400, 0x0fff} {
		inputs[fmt.Sprintf("record version %#04x", v)] = tlshellotest.WithRecordVersion(hello, v)
	}
	var readByGo []string
	for name, in := range inputs {
		h, err := Parse(in)
		chi := cryptoTLSReads(in)
		if chi == nil {
			continue
		}
		readByGo = append(readByGo, name)
		switch {
		case err == ErrNotTLS || err == ErrIncomplete:
			t.Errorf("%s: crypto/tls reads a ClientHello for %q; the parser says %v", name, chi.ServerName, err)
		case err == nil && string(h.ServerName) != chi.ServerName:
			t.Errorf("%s: crypto/tls reads SNI %q; the parser %q", name, chi.ServerName, string(h.ServerName))
		}
	}
	slices.Sort(readByGo)
	t.Logf("crypto/tls reads a ClientHello from: %s", strings.Join(readByGo, "; "))
	// SSL 3.0 record versions are the only ones outside 3.1-3.3 that the
	// parser reads rather than refuses; crypto/tls serves them.
	if !slices.Contains(readByGo, "record version 0x0300") {
		t.Errorf("crypto/tls no longer reads a ClientHello in a record of version 3.0; the parser need not either")
	}
}

func TestParseClientHelloOffersAndEnd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		in    []byte
		tls13 bool
	}{
		{"Go client", readHello(t, "go.bin"), true},
		{"Go client, records of 64", tlshellotest.Fragment(readHello(t, "go.bin"), 64), true},
		{"TLS 1.2 only", tlshellotest.GoClientHello(t, &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12}), false},
		{"no supported_versions", tlshellotest.Hello(tlshellotest.SNI("a.example")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append(slices.Clip(tt.in), 23, 3, 3, 0, 1, 0) // a record after the ClientHello's
			h, err := Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if h.TLS13 != tt.tls13 {
				t.Errorf("tls13 = %v, want %v", h.TLS13, tt.tls13)
			}
			if h.End != len(tt.in) {
				t.Errorf("end = %d, want %d, the length of the ClientHello's records", h.End, len(tt.in))
			}
		})
	}
}

func TestParseServerHello(t *testing.T) {
	t.Parallel()
	ch := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "a.example"})
	hrr := tlshellotest.ServerFirstFlight(t, tlshellotest.RetryConfig(t, "a.example"), ch)
	plain := tlshellotest.ServerFirstFlight(t, &tls.Config{Certificates: []tls.Certificate{tlshellotest.SelfSigned(t, "a.example")}}, ch)
	tls12 := tlshellotest.ServerFirstFlight(t, &tls.Config{Certificates: []tls.Certificate{tlshellotest.SelfSigned(t, "a.example")}, MaxVersion: tls.VersionTLS12}, ch)
	for _, tt := range []struct {
		name  string
		in    []byte
		err   error
		retry bool
	}{
		{"HelloRetryRequest", hrr, nil, true},
		{"HelloRetryRequest in records of 7", tlshellotest.Fragment(hrr, 7), nil, true},
		{"TLS 1.3 ServerHello", plain, nil, false},
		{"TLS 1.2 ServerHello", tls12, nil, false},
		{"alert", tlshellotest.Alert(alertAccessDenied), nil, false},
		{"not TLS", []byte("SSH-2.0-x\r\n"), nil, false},
		{"record version 2.0", tlshellotest.WithRecordVersion(hrr, 0x0200), nil, false},
		{"empty", nil, ErrIncomplete, false},
		{"message over 16 KiB", []byte{22, 3, 3, 0x40, 0, 2, 0, 0x40, 0}, errHelloTooLarge, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sh, err := ParseServerHello(tt.in)
			if err != tt.err || sh.Retry != tt.retry {
				t.Fatalf("got %v retry %v, want %v retry %v", err, sh.Retry, tt.err, tt.retry)
			}
			// Every prefix of what decides is incomplete, and asks for more.
			for n := 0; n < len(tt.in); n++ {
				ph, perr := ParseServerHello(tt.in[:n])
				if perr != ErrIncomplete {
					if ph.Retry != sh.Retry || perr != err {
						t.Fatalf("prefix of %d bytes: %v retry %v", n, perr, ph.Retry)
					}
					break
				}
				if ph.need <= n {
					t.Fatalf("prefix of %d bytes: need %d", n, ph.need)
				}
			}
		})
	}
}

func TestParseSecondHello(t *testing.T) {
	t.Parallel()
	hello := tlshellotest.Hello(tlshellotest.SNI("a.example"))
	ccs := tlshellotest.Record(20, []byte{1})
	for _, tt := range []struct {
		name string
		in   []byte
		err  error
		end  int
	}{
		{"ClientHello", hello, nil, len(hello)},
		{"change_cipher_spec, then a ClientHello", append(slices.Clip(ccs), hello...), nil, len(ccs) + len(hello)},
		{"change_cipher_spec of version 3.3", append(tlshellotest.WithRecordVersion(ccs, 0x0303), hello...), nil, len(ccs) + len(hello)},
		{"two change_cipher_specs", slices.Concat(ccs, ccs, hello), errHelloFirst[20-recordTypeCCS], 0},
		{"change_cipher_spec, then an alert", slices.Concat(ccs, tlshellotest.Alert(alertAccessDenied)), errHelloFirst[21-recordTypeCCS], 0},
		{"change_cipher_spec of 2 bytes", slices.Concat(tlshellotest.Record(20, []byte{1, 1}), hello), errHelloCCS, 0},
		{"change_cipher_spec of version 3.5", tlshellotest.WithRecordVersion(ccs, 0x0305), errHelloCCS, 0},
		{"alert", tlshellotest.Alert(alertAccessDenied), errHelloFirst[21-recordTypeCCS], 0},
		{"change_cipher_spec only", ccs, ErrIncomplete, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseSecond(tt.in)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && (string(h.ServerName) != "a.example" || h.End != tt.end) {
				t.Errorf("SNI %q end %d, want a.example %d", string(h.ServerName), h.End, tt.end)
			}
		})
	}
}
