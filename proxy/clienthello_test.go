package proxy

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The recorded ClientHellos in testdata/clienthello/ are the first bytes real
// clients sent to a listener on 127.0.0.1. They are checked in; to record
// them again (curl, openssl and python3 must be installed):
//
//	go test ./proxy -run '^TestRecordClientHellos$' -record-clienthello
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
			cmd := exec.Command(needTool(t, name), args...)
			cmd.Stdin = strings.NewReader("")
			_ = cmd.Run()
		}
	}
	echList, _ := testECHConfig(t, "public.example")
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
	buf := make([]byte, maxHelloBytes)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if _, perr := parseClientHello(buf[:n]); perr != errHelloIncomplete {
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

// testECHConfig returns an ECHConfigList (draft-ietf-tls-esni-22 §4) with
// one X25519, HKDF-SHA256, AES-128-GCM config whose public name is
// publicName, and the config's private key.
func testECHConfig(t testing.TB, publicName string) (list []byte, key *ecdh.PrivateKey) {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c []byte
	c = append(c, 1)       // config_id
	c = append(c, 0, 0x20) // kem_id: DHKEM(X25519, HKDF-SHA256)
	c = appendVec16(c, key.PublicKey().Bytes())
	c = appendVec16(c, []byte{0, 1, 0, 1}) // HKDF-SHA256, AES-128-GCM
	c = append(c, 0)                       // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = appendVec16(c, nil) // extensions
	cfg := appendVec16([]byte{0xfe, 0x0d}, c)
	return appendVec16(nil, cfg), key
}

func appendVec16(b, v []byte) []byte {
	b = append(b, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

func readHello(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clienthello", file))
	if err != nil {
		t.Fatalf("%v (record with -record-clienthello)", err)
	}
	return b
}

// testExt is a ClientHello extension for buildHello.
type testExt struct {
	typ  uint16
	data []byte
}

func sniExt(names ...string) testExt {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = appendVec16(list, []byte(n))
	}
	return testExt{extServerName, appendVec16(nil, list)}
}

func alpnExt(protos ...string) testExt {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return testExt{extALPN, appendVec16(nil, list)}
}

// helloBody returns a TLS 1.2-style ClientHello body with exts.
func helloBody(exts ...testExt) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...) // random
	b = append(b, 0)                   // session id
	b = appendVec16(b, []byte{0x13, 0x01, 0xc0, 0x2f})
	b = append(b, 1, 0) // compression: null
	var e []byte
	for _, x := range exts {
		e = append(e, byte(x.typ>>8), byte(x.typ))
		e = appendVec16(e, x.data)
	}
	return appendVec16(b, e)
}

// buildHello returns a ClientHello with exts in one record.
func buildHello(exts ...testExt) []byte {
	return wrapHello(helloBody(exts...))
}

// wrapHello puts a ClientHello body in a handshake message in one record.
func wrapHello(body []byte) []byte {
	msg := append([]byte{handshakeTypeHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return record(recordTypeHandshake, msg)
}

func record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// helloMessage returns the handshake message a valid ClientHello stream
// starts with, gathered from its records.
func helloMessage(b []byte) []byte {
	var msg []byte
	for len(b) >= recordHeaderLen {
		n := min(int(b[3])<<8|int(b[4]), len(b)-recordHeaderLen)
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
		if len(msg) >= 4 {
			if end := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])); len(msg) >= end {
				return msg[:end]
			}
		}
	}
	panic("helloMessage: not a complete ClientHello")
}

// fragment re-sends the ClientHello at the start of b in records of at most
// size bytes.
func fragment(b []byte, size int) []byte {
	msg := helloMessage(b)
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, record(recordTypeHandshake, msg[:n])...)
		msg = msg[n:]
	}
	return out
}

// withRecordVersion returns b, which starts with a TLS record, with the
// record's version set to v.
func withRecordVersion(b []byte, v uint16) []byte {
	b = slices.Clone(b)
	b[1], b[2] = byte(v>>8), byte(v)
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
				variants["records of "+strconv.Itoa(size)] = fragment(hello, size)
			}
			for name, in := range variants {
				h, err := parseClientHello(in)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if h.SNI() != tt.sni || h.ech != tt.ech || !slices.Equal(h.ALPN(), tt.alpn) {
					t.Errorf("%s: SNI %q ECH %v ALPN %q, want %q %v %q", name, h.SNI(), h.ech, h.ALPN(), tt.sni, tt.ech, tt.alpn)
				}
				// Byte by byte, as a reader of 1-byte TCP segments sees it.
				for n := 0; n < len(in); n++ {
					if _, err := parseClientHello(in[:n]); err != errHelloIncomplete {
						if want := len(helloMessage(in)); n < want { // a prefix can never be complete
							t.Fatalf("%s: prefix of %d bytes: %v, want errHelloIncomplete", name, n, err)
						}
					}
				}
			}
		})
	}
}

func TestParseClientHelloCases(t *testing.T) {
	t.Parallel()
	valid := buildHello(sniExt("a.example"), alpnExt("h2"))
	big := helloBody(testExt{0x1234, make([]byte, maxHelloLen)})
	dupExt := buildHello(sniExt("a.example"), alpnExt("h2"), alpnExt("http/1.1"))
	trailing := helloBody(sniExt("a.example"))
	trailing = append(trailing, 0)
	noExts := helloBody()[:len(helloBody())-2]
	for _, tt := range []struct {
		name string
		in   []byte
		err  error
		sni  string
		ech  bool
	}{
		{"valid", valid, nil, "a.example", false},
		{"valid, more bytes after it", append(slices.Clip(valid), 23, 3, 3, 0, 1, 0), nil, "a.example", false},
		{"empty", nil, errHelloIncomplete, "", false},
		{"no extensions", wrapHello(noExts), nil, "", false},
		{"no server_name", buildHello(alpnExt("h2")), nil, "", false},
		{"other name types only", buildHello(testExt{extServerName, appendVec16(nil, []byte{1, 0, 1, 'x'})}), nil, "", false},
		{"ECH", buildHello(sniExt("public.example"), testExt{extECH, []byte{0, 0, 1}}), nil, "public.example", true},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), errNotTLS, "", false},
		{"SSLv2", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, errNotTLS, "", false},
		{"record version 2.0", []byte{22, 2, 0, 0, 5}, errHelloRecordVer, "", false},
		{"record version 3.5", []byte{22, 3, 5, 0, 5}, errHelloRecordVer, "", false},
		{"record version 3.0", withRecordVersion(valid, 0x0300), nil, "a.example", false},
		{"record version 3.4", withRecordVersion(valid, 0x0304), nil, "a.example", false},
		{"warning alert, then a ClientHello", append(record(21, []byte{1, 112}), valid...), errHelloFirst[21-recordTypeCCS], "", false},
		{"change_cipher_spec first", record(20, []byte{1}), errHelloFirst[20-recordTypeCCS], "", false},
		{"application_data first", record(23, []byte{0}), errHelloFirst[23-recordTypeCCS], "", false},
		{"heartbeat first", record(24, []byte{1, 0, 0}), errHelloFirst[24-recordTypeCCS], "", false},
		{"first byte below the record types", []byte{19, 3, 1}, errNotTLS, "", false},
		{"first byte above the record types", []byte{25, 3, 1}, errNotTLS, "", false},
		{"more in the ClientHello's record", record(22, append(helloMessage(valid), 1, 0, 0, 0)), errHelloTrailing, "", false},
		{"malformed supported_versions", buildHello(sniExt("a.example"), testExt{extSupportedVersions, []byte{3, 3, 4, 3}}), errHelloVersions, "", false},
		{"empty record", []byte{22, 3, 1, 0, 0}, errHelloEmptyRecord, "", false},
		{"record over 16 KiB", []byte{22, 3, 1, 0x40, 1}, errHelloRecordLen, "", false},
		{"server hello", record(22, []byte{2, 0, 0, 0}), errHelloType, "", false},
		{"message over 16 KiB", fragment(wrapHello(big), maxPlaintextLen)[:20], errHelloTooLarge, "", false},
		{"second record not handshake", append(fragment(valid, 10)[:15], 23, 3, 3, 0, 1), errHelloRecordType, "", false},
		{"second record version", append(fragment(valid, 10)[:15], 22, 4, 3, 0, 1), errHelloRecordVer, "", false},
		{"duplicate extension", dupExt, errHelloDupExt, "", false},
		{"two host_names", buildHello(sniExt("a.example", "b.example")), errHelloSNI, "", false},
		{"empty host_name", buildHello(sniExt("")), errHelloSNI, "", false},
		{"empty server_name list", buildHello(testExt{extServerName, []byte{0, 0}}), errHelloSNI, "", false},
		{"empty ALPN name", buildHello(alpnExt("")), errHelloALPN, "", false},
		{"trailing bytes in body", wrapHello(trailing), errHelloSyntax, "", false},
		{"truncated body", wrapHello(helloBody()[:30]), errHelloSyntax, "", false},
		{"session id over 32", wrapHello(append(append([]byte{3, 3}, make([]byte, 32)...), 33)), errHelloSyntax, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseClientHello(tt.in)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if h.SNI() != tt.sni || h.ech != tt.ech {
				t.Errorf("SNI %q ECH %v, want %q %v", h.SNI(), h.ech, tt.sni, tt.ech)
			}
		})
	}
	// Spreading a ClientHello over very many records runs into the cap.
	if _, err := parseClientHello(fragment(buildHello(sniExt(strings.Repeat("a", 200)+".example"), testExt{0x1234, make([]byte, 4000)}), 1)); err != errHelloTooLarge {
		t.Errorf("ClientHello in 1-byte records over %d bytes: err = %v, want errHelloTooLarge", maxHelloBytes, err)
	}
	if _, err := parseClientHello(fragment(wrapHello(big), maxPlaintextLen)); err != errHelloTooLarge {
		t.Errorf("ClientHello over 16 KiB: err = %v, want errHelloTooLarge", err)
	}
}

// FuzzParseClientHello checks that parsing never panics, that an answer
// other than errHelloIncomplete is final, that clientHello.need is exact
// enough for a reader to rely on, and that how a ClientHello is split into
// records does not change what it says. The first three hold for
// parseSecondHello and parseServerHello too, on the same inputs.
func FuzzParseClientHello(f *testing.F) {
	for _, tt := range recordedHellos {
		hello := readHello(f, tt.file)
		f.Add(hello, uint8(0))
		f.Add(fragment(hello, 7), uint8(5))
	}
	f.Add(buildHello(sniExt("a.example"), testExt{extECH, nil}), uint8(1))
	f.Add(slices.Concat(record(20, []byte{1}), buildHello(sniExt("a.example"))), uint8(2))
	f.Add(append(record(21, []byte{1, 112}), buildHello(sniExt("a.example"))...), uint8(3))
	f.Add(serverFirstFlight(f, retryConfig(f, "a.example"), readHello(f, "go.bin")), uint8(4))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte, step uint8) {
	h, err := checkFinal(t, data, step, parseClientHello, sameHello)
	checkFinal(t, data, step, parseSecondHello, sameHello)
	checkFinal(t, data, step, parseServerHello, func(a serverHello, aerr error, b serverHello, berr error) bool {
		return a == b && aerr == berr
	})

	// The same message in other records says the same.
	if err == nil {
		re := fragment(data, 1+int(step))
		rh, rerr := parseClientHello(re)
		if rerr == errHelloTooLarge && len(re) > maxHelloBytes {
			return
		}
		if !sameHello(rh, rerr, h, err) {
			t.Fatalf("in records of %d: %q %v; as given: %q %v", 1+int(step), rh.SNI(), rerr, h.SNI(), err)
		}
	}
}

// checkFinal checks that parse's need is one a reader can rely on, and
// that an answer other than errHelloIncomplete is final: fed data as a
// reader would, every prefix before the answer is incomplete, and the
// answer equals the one-shot answer. It returns the one-shot answer.
func checkFinal[H interface{ wanted() int }](t *testing.T, data []byte, step uint8, parse func([]byte) (H, error), same func(H, error, H, error) bool) (H, error) {
	t.Helper()
	h, err := parse(data)
	if err == errHelloIncomplete && (h.wanted() <= len(data) || h.wanted() > maxHelloBytes) {
		t.Fatalf("incomplete with need %d for %d bytes", h.wanted(), len(data))
	}
	if err != nil && err != errHelloIncomplete && !isHelloMalformed(err) {
		t.Fatalf("unexpected error type %T", err)
	}
	// At most a few hundred prefixes, so that an exec stays cheap.
	need, stride := 0, max(1+int(step)%16, len(data)/256)
	for n := 0; n <= len(data); n += stride {
		ph, perr := parse(data[:n])
		if n < need && (perr != errHelloIncomplete || ph.wanted() != need) {
			t.Fatalf("prefix %d < need %d: %v need %d", n, need, perr, ph.wanted())
		}
		if perr != errHelloIncomplete {
			if !same(ph, perr, h, err) {
				t.Fatalf("at %d bytes: %+v %v; one-shot: %+v %v", n, ph, perr, h, err)
			}
			break
		}
		need = ph.wanted()
	}
	return h, err
}

func sameHello(a clientHello, aerr error, b clientHello, berr error) bool {
	return aerr == berr && bytes.Equal(a.serverName, b.serverName) && a.ech == b.ech && a.tls13 == b.tls13 &&
		bytes.Equal(a.alpn, b.alpn) && a.need == b.need && (a.serverName == nil) == (b.serverName == nil)
}

func BenchmarkParseClientHello(b *testing.B) {
	for _, tt := range recordedHellos {
		for _, v := range []struct {
			name string
			in   []byte
		}{
			{tt.file, readHello(b, tt.file)},
			{tt.file + "/records-of-64", fragment(readHello(b, tt.file), 64)},
		} {
			b.Run(v.name, func(b *testing.B) {
				b.SetBytes(int64(len(v.in)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := parseClientHello(v.in); err != nil {
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
	warning := record(21, []byte{1, 112}) // a warning alert: unrecognized_name
	inputs := map[string][]byte{
		"as sent":                         hello,
		"warning alert first":             append(slices.Clip(warning), hello...),
		"change_cipher_spec first":        append(record(20, []byte{1}), hello...),
		"application_data first":          append(record(23, []byte{0}), hello...),
		"heartbeat first":                 append(record(24, []byte{1, 0, 0}), hello...),
		"records of 100, alert in second": slices.Concat(fragment(hello, 100)[:105], warning, fragment(hello, 100)[105:]),
	}
	for _, v := range []uint16{0x0000, 0x0002, 0x0200, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x03ff, 0x0400, 0x0fff} {
		inputs[fmt.Sprintf("record version %#04x", v)] = withRecordVersion(hello, v)
	}
	var readByGo []string
	for name, in := range inputs {
		h, err := parseClientHello(in)
		chi := cryptoTLSReads(in)
		if chi == nil {
			continue
		}
		readByGo = append(readByGo, name)
		switch {
		case err == errNotTLS || err == errHelloIncomplete:
			t.Errorf("%s: crypto/tls reads a ClientHello for %q; the parser says %v", name, chi.ServerName, err)
		case err == nil && h.SNI() != chi.ServerName:
			t.Errorf("%s: crypto/tls reads SNI %q; the parser %q", name, chi.ServerName, h.SNI())
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
		{"Go client, records of 64", fragment(readHello(t, "go.bin"), 64), true},
		{"TLS 1.2 only", goClientHello(t, &tls.Config{ServerName: "a.example", MaxVersion: tls.VersionTLS12}), false},
		{"no supported_versions", buildHello(sniExt("a.example")), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append(slices.Clip(tt.in), 23, 3, 3, 0, 1, 0) // a record after the ClientHello's
			h, err := parseClientHello(in)
			if err != nil {
				t.Fatal(err)
			}
			if h.tls13 != tt.tls13 {
				t.Errorf("tls13 = %v, want %v", h.tls13, tt.tls13)
			}
			if h.end != len(tt.in) {
				t.Errorf("end = %d, want %d, the length of the ClientHello's records", h.end, len(tt.in))
			}
		})
	}
}

// goClientHello returns the ClientHello a crypto/tls client with cfg sends.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		defer c1.Close()
		_ = tls.Client(c1, cfg).Handshake() // ends when c2 closes
	}()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, _, perr, err := readClientHello(c2, nil)
	if perr != nil {
		t.Fatalf("reading a crypto/tls ClientHello: %v, %v", perr, err)
	}
	return slices.Clone(buf)
}

// serverFirstFlight returns what a crypto/tls server with cfg answers to
// the ClientHello hello, up to and including its first handshake message.
func serverFirstFlight(t testing.TB, cfg *tls.Config, hello []byte) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		defer c1.Close()
		_ = tls.Server(c1, cfg).Handshake() // ends when c2 closes
	}()
	_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Write(hello); err != nil {
		t.Fatal(err)
	}
	buf, _, perr, err := readRecords(c2, newHelloBuf(nil), parseServerHello)
	if perr != nil {
		t.Fatalf("reading the server's answer: %v, %v", perr, err)
	}
	return slices.Clone(buf)
}

// retryConfig is a server configuration that answers a default crypto/tls
// ClientHello with a HelloRetryRequest: the client's first key shares are
// for X25519MLKEM768 and X25519, and the server takes only P-256.
func retryConfig(t testing.TB, names ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{selfSigned(t, names...)}, CurvePreferences: []tls.CurveID{tls.CurveP256}}
}

// selfSigned makes a certificate for names.
func selfSigned(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestParseServerHello(t *testing.T) {
	t.Parallel()
	ch := goClientHello(t, &tls.Config{ServerName: "a.example"})
	hrr := serverFirstFlight(t, retryConfig(t, "a.example"), ch)
	plain := serverFirstFlight(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "a.example")}}, ch)
	tls12 := serverFirstFlight(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "a.example")}, MaxVersion: tls.VersionTLS12}, ch)
	for _, tt := range []struct {
		name  string
		in    []byte
		err   error
		retry bool
	}{
		{"HelloRetryRequest", hrr, nil, true},
		{"HelloRetryRequest in records of 7", fragment(hrr, 7), nil, true},
		{"TLS 1.3 ServerHello", plain, nil, false},
		{"TLS 1.2 ServerHello", tls12, nil, false},
		{"alert", alert(alertAccessDenied), nil, false},
		{"not TLS", []byte("SSH-2.0-x\r\n"), nil, false},
		{"record version 2.0", withRecordVersion(hrr, 0x0200), nil, false},
		{"empty", nil, errHelloIncomplete, false},
		{"message over 16 KiB", []byte{22, 3, 3, 0x40, 0, 2, 0, 0x40, 0}, errHelloTooLarge, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sh, err := parseServerHello(tt.in)
			if err != tt.err || sh.retry != tt.retry {
				t.Fatalf("got %v retry %v, want %v retry %v", err, sh.retry, tt.err, tt.retry)
			}
			// Every prefix of what decides is incomplete, and asks for more.
			for n := 0; n < len(tt.in); n++ {
				ph, perr := parseServerHello(tt.in[:n])
				if perr != errHelloIncomplete {
					if ph.retry != sh.retry || perr != err {
						t.Fatalf("prefix of %d bytes: %v retry %v", n, perr, ph.retry)
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
	hello := buildHello(sniExt("a.example"))
	ccs := record(20, []byte{1})
	for _, tt := range []struct {
		name string
		in   []byte
		err  error
		end  int
	}{
		{"ClientHello", hello, nil, len(hello)},
		{"change_cipher_spec, then a ClientHello", append(slices.Clip(ccs), hello...), nil, len(ccs) + len(hello)},
		{"change_cipher_spec of version 3.3", append(withRecordVersion(ccs, 0x0303), hello...), nil, len(ccs) + len(hello)},
		{"two change_cipher_specs", slices.Concat(ccs, ccs, hello), errHelloFirst[20-recordTypeCCS], 0},
		{"change_cipher_spec, then an alert", slices.Concat(ccs, alert(alertAccessDenied)), errHelloFirst[21-recordTypeCCS], 0},
		{"change_cipher_spec of 2 bytes", slices.Concat(record(20, []byte{1, 1}), hello), errHelloCCS, 0},
		{"change_cipher_spec of version 3.5", withRecordVersion(ccs, 0x0305), errHelloCCS, 0},
		{"alert", alert(alertAccessDenied), errHelloFirst[21-recordTypeCCS], 0},
		{"change_cipher_spec only", ccs, errHelloIncomplete, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseSecondHello(tt.in)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && (h.SNI() != "a.example" || h.end != tt.end) {
				t.Errorf("SNI %q end %d, want a.example %d", h.SNI(), h.end, tt.end)
			}
		})
	}
}
