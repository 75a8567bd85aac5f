package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The domain-fronting check of CONNECT tunnels against real TLS servers.
// A CDN in the internet namespace, on allowed.example's address, serves
// allowed.example and denied.example by SNI ("served-by NAME"): a client
// that reaches it through CONNECT allowed.example with SNI denied.example
// fronts for the denied name. The workload uses the explicit listener.
const (
	frontingListen      = nhProxyLANIP + ":3128"
	frontingCDNPort     = "8443" // the CDN
	frontingRetryPort   = "8444" // the CDN, answering Go's first ClientHello with a HelloRetryRequest
	frontingHeaderLimit = time.Second
)

const frontingPolicy = `# e2e/fronting_test.go: the workload may reach allowed.example only.
client "workload" {
  sources = ["` + nhWorkloadIP + `/32"]

  allow "cdn" {
    hosts = ["allowed.example"]
    ports = [443, ` + frontingCDNPort + `, ` + frontingRetryPort + `]
  }
}
`

// frontingTopo is a next-hop topology with the two CDN servers.
type frontingTopo struct {
	*nhTopo
	roots *x509.CertPool
	// handshakes has each CDN connection's handshake error.
	handshakes chan error
}

func frontingSetup(t *testing.T) *frontingTopo {
	t.Helper()
	tp := &frontingTopo{
		nhTopo: nhSetupWith(t, nhOptions{Policy: frontingPolicy, Listen: frontingListen,
			Args: []string{"-header-timeout", frontingHeaderLimit.String()}}),
		roots:      x509.NewCertPool(),
		handshakes: make(chan error, 16),
	}
	ca, caKey := nhCA(t)
	tp.roots.AddCert(ca)
	certs := []tls.Certificate{nhLeaf(t, ca, caKey, "allowed.example"), nhLeaf(t, ca, caKey, "denied.example")}
	for port, curves := range map[string][]tls.CurveID{
		frontingCDNPort:   nil,
		frontingRetryPort: {tls.CurveP256}, // Go's client first sends X25519MLKEM768 and X25519 key shares
	} {
		ln, err := tp.inet.Listen("tcp4", net.JoinHostPort(nhNames["allowed.example"], port))
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{Certificates: certs, CurvePreferences: curves}
		done := make(chan struct{})
		t.Cleanup(func() { ln.Close(); <-done })
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go tp.serveCDN(tls.Server(c, cfg))
			}
		}()
	}
	return tp
}

// serveCDN answers one request with the name the client asked for.
func (tp *frontingTopo) serveCDN(c *tls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(nhLimit))
	err := c.Handshake()
	select {
	case tp.handshakes <- err:
	default:
	}
	if err != nil {
		return
	}
	if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
		return
	}
	body := "served-by " + c.ConnectionState().ServerName + "\n"
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// connect opens a CONNECT tunnel to allowed.example:port from the workload.
func (tp *frontingTopo) connect(t *testing.T, port string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	c, err := tp.workload.Dial(ctx, "tcp4", frontingListen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(nhLimit))
	target := "allowed.example:" + port
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	// Read byte by byte, so that nothing after the 200 is buffered here.
	resp, err := http.ReadResponse(bufio.NewReaderSize(oneByteReader{c}, 16), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	return c
}

type oneByteReader struct{ r io.Reader }

func (r oneByteReader) Read(b []byte) (int, error) { return r.r.Read(b[:1]) }

// fronted runs a TLS client for sni over c and returns the name of the
// server it got a session with, or "" and the handshake's error.
func (tp *frontingTopo) fronted(c net.Conn, sni string) (string, error) {
	tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: tp.roots})
	if err := tc.Handshake(); err != nil {
		return "", err
	}
	return servedBy(tc)
}

// servedBy asks the CDN over an established session which name it serves.
func servedBy(tc *tls.Conn) (string, error) {
	name := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", tc.ConnectionState().ServerName)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return name, err
	}
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "served-by "), nil
}

// rewriteFirst applies edit to the first write through it: a TLS client's
// ClientHello.
type rewriteFirst struct {
	net.Conn
	edit func([]byte) []byte
	done bool
}

func (c *rewriteFirst) Write(b []byte) (int, error) {
	if c.done {
		return c.Conn.Write(b)
	}
	c.done = true
	if _, err := c.Conn.Write(c.edit(append([]byte(nil), b...))); err != nil {
		return 0, err
	}
	return len(b), nil
}

// TestFrontingConnect: TLS that a real server reads as a ClientHello for
// denied.example never gets a session through CONNECT allowed.example,
// however it starts and however late it comes.
func TestFrontingConnect(t *testing.T) {
	t.Parallel()
	tp := frontingSetup(t)

	t.Run("SNI of the CONNECT host", func(t *testing.T) {
		got, err := tp.fronted(tp.connect(t, frontingCDNPort), "allowed.example")
		if err != nil || got != "allowed.example" {
			t.Fatalf("served by %q, %v; want allowed.example", got, err)
		}
	})

	for _, tt := range []struct {
		name   string
		edit   func([]byte) []byte
		late   bool
		detail string
	}{
		{name: "warning alert before the ClientHello", edit: func(b []byte) []byte {
			return append([]byte{21, 3, 1, 0, 2, 1, 112}, b...) // warning, unrecognized_name
		}, detail: "alert record before the ClientHello"},
		{name: "record version 2.0", edit: func(b []byte) []byte {
			b[1], b[2] = 2, 0 // crypto/tls takes any version below 0x1000 in its first record
			return b
		}, detail: "record version outside 3.0 to 3.4"},
		{name: "ClientHello after the header timeout", late: true,
			detail: "neither the client nor the origin sent anything within " + frontingHeaderLimit.String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mark := tp.log.mark()
			c := tp.connect(t, frontingCDNPort)
			if tt.late {
				// Wait past the header timeout: until the proxy closes the
				// tunnel, or for three times the timeout if it does not.
				_ = c.SetReadDeadline(time.Now().Add(3 * frontingHeaderLimit))
				_, _ = io.Copy(io.Discard, c)
				_ = c.SetDeadline(time.Now().Add(nhLimit))
			}
			var conn net.Conn = c
			if tt.edit != nil {
				conn = &rewriteFirst{Conn: c, edit: tt.edit}
			}
			if got, err := tp.fronted(conn, "denied.example"); got != "" {
				t.Fatalf("got a TLS session with %s through CONNECT allowed.example (%v)", got, err)
			}
			tp.log.wait(t, mark, "a bad_request refusal: "+tt.detail, func(r nhRecord) bool {
				return r.str("msg") == "deny" && r.str("reason") == "bad_request" && r.str("kind") == "connect" &&
					r.str("host") == "allowed.example" && strings.Contains(r.str("detail"), tt.detail)
			})
		})
	}
}

// TestFrontingRetry: after a HelloRetryRequest, a second ClientHello for
// another name does not reach the server; a real client's retry works.
func TestFrontingRetry(t *testing.T) {
	t.Parallel()
	tp := frontingSetup(t)

	t.Run("real client", func(t *testing.T) {
		c := tp.connect(t, frontingRetryPort)
		tc := tls.Client(c, &tls.Config{ServerName: "allowed.example", RootCAs: tp.roots})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if !tc.ConnectionState().HelloRetryRequest {
			t.Fatal("the server sent no HelloRetryRequest; the test does not test it")
		}
		if got, err := servedBy(tc); err != nil || got != "allowed.example" {
			t.Fatalf("served by %q, %v; want allowed.example", got, err)
		}
	})

	t.Run("second ClientHello for another name", func(t *testing.T) {
		drain(tp.handshakes)
		mark := tp.log.mark()
		c := tp.connect(t, frontingRetryPort)
		if _, err := c.Write(clientHello(t, "allowed.example")); err != nil {
			t.Fatal(err)
		}
		if !readRetry(t, c) {
			t.Fatal("the server answered the first ClientHello without a HelloRetryRequest")
		}
		// A change_cipher_spec and a second ClientHello, in records of
		// version 3.3, as a TLS 1.3 client sends them.
		second := clientHello(t, "denied.example")
		second[1], second[2] = 3, 3
		if _, err := c.Write(append([]byte{20, 3, 3, 0, 1, 1}, second...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(nhLimit))
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the tunnel is still open")
		}
		tp.log.wait(t, mark, "an sni_mismatch refusal after the HelloRetryRequest", func(r nhRecord) bool {
			return r.str("msg") == "deny" && r.str("reason") == "sni_mismatch" && r.str("host") == "allowed.example" &&
				strings.Contains(r.str("detail"), "HelloRetryRequest") && strings.Contains(r.str("detail"), "denied.example")
		})
		// The server never read the second ClientHello: its handshake ended
		// with the connection, not with a TLS error.
		select {
		case err := <-tp.handshakes:
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the server's handshake: %v, want EOF or a reset", err)
			}
		case <-time.After(nhLimit):
			t.Error("the server's handshake did not end")
		}
	})
}

func drain(ch chan error) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// clientHello returns the ClientHello (one record) a default crypto/tls
// client sends for sni.
func clientHello(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		defer a.Close()
		_ = tls.Client(a, &tls.Config{ServerName: sni}).Handshake() // ends when b closes
	}()
	_ = b.SetReadDeadline(time.Now().Add(nhLimit))
	rec, err := readRecord(b)
	if err != nil || rec[0] != 22 || rec[5] != 1 {
		t.Fatalf("crypto/tls's first record: %x, %v", rec, err)
	}
	return rec
}

// readRetry reads the server's first record and reports whether it is a
// HelloRetryRequest: a ServerHello whose random is RFC 8446's magic value.
func readRetry(t *testing.T, c net.Conn) bool {
	t.Helper()
	rec, err := readRecord(c)
	if err != nil {
		t.Fatalf("reading the server's first record: %v", err)
	}
	hrr := "\xcf\x21\xad\x74\xe5\x9a\x61\x11\xbe\x1d\x8c\x02\x1e\x65\xb8\x91\xc2\xa2\x11\x16\x7a\xbb\x8c\x5e\x07\x9e\x09\xe2\xc8\xa8\x33\x9c"
	return len(rec) >= 5+4+2+32 && rec[0] == 22 && rec[5] == 2 && string(rec[11:43]) == hrr
}

// readRecord reads one TLS record.
func readRecord(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	rec := make([]byte, 5+(int(hdr[3])<<8|int(hdr[4])))
	copy(rec, hdr)
	_, err := io.ReadFull(r, rec[5:])
	return rec, err
}
