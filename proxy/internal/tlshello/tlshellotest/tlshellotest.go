package tlshellotest

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

// The few TLS numbers the builders need (RFC 8446, RFC 6066, RFC 7301).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	handshakeTypeHello  = 1
	extServerName       = 0x0000
	extALPN             = 0x0010
)

// Ext is a ClientHello extension for Hello and Body.
type Ext struct {
	Type uint16
	Data []byte
}

// SNI is a server_name extension with a host_name entry for each name.
func SNI(names ...string) Ext {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = AppendVec16(list, []byte(n))
	}
	return Ext{extServerName, AppendVec16(nil, list)}
}

// ALPN is an ALPN extension offering protos.
func ALPN(protos ...string) Ext {
	var list []byte
	for _, p := range protos {
		list = append(list, byte(len(p)))
		list = append(list, p...)
	}
	return Ext{extALPN, AppendVec16(nil, list)}
}

// AppendVec16 appends v to b with a two-byte length prefix.
func AppendVec16(b, v []byte) []byte {
	b = append(b, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

// Body returns a TLS 1.2-style ClientHello body with exts.
func Body(exts ...Ext) []byte {
	b := []byte{3, 3}
	b = append(b, make([]byte, 32)...) // random
	b = append(b, 0)                   // session id
	b = AppendVec16(b, []byte{0x13, 0x01, 0xc0, 0x2f})
	b = append(b, 1, 0) // compression: null
	var e []byte
	for _, x := range exts {
		e = append(e, byte(x.Type>>8), byte(x.Type))
		e = AppendVec16(e, x.Data)
	}
	return AppendVec16(b, e)
}

// Hello returns a ClientHello with exts in one record.
func Hello(exts ...Ext) []byte {
	return Wrap(Body(exts...))
}

// Wrap puts a ClientHello body in a handshake message in one record.
func Wrap(body []byte) []byte {
	msg := append([]byte{handshakeTypeHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return Record(recordTypeHandshake, msg)
}

// Record is a TLS record of type typ, version 3.1, carrying payload.
func Record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// Alert is a fatal TLS alert record with description desc.
func Alert(desc byte) []byte { return []byte{21, 3, 3, 0, 2, 2, desc} }

// Message returns the handshake message a valid ClientHello stream starts
// with, gathered from its records. It panics if b holds no whole message.
func Message(b []byte) []byte {
	msg, ok := firstMessage(b)
	if !ok {
		panic("tlshellotest.Message: not a complete ClientHello")
	}
	return msg
}

// firstMessage gathers the first handshake message from the records b
// starts with, and reports whether b holds all of it.
func firstMessage(b []byte) ([]byte, bool) {
	var msg []byte
	for len(b) >= recordHeaderLen {
		n := min(int(b[3])<<8|int(b[4]), len(b)-recordHeaderLen)
		msg = append(msg, b[recordHeaderLen:recordHeaderLen+n]...)
		b = b[recordHeaderLen+n:]
		if len(msg) >= 4 {
			if end := 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])); len(msg) >= end {
				return msg[:end], true
			}
		}
	}
	return nil, false
}

// Fragment re-sends the ClientHello at the start of b in records of at most
// size bytes.
func Fragment(b []byte, size int) []byte {
	msg := Message(b)
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, Record(recordTypeHandshake, msg[:n])...)
		msg = msg[n:]
	}
	return out
}

// WithRecordVersion returns b, which starts with a TLS record, with the
// record's version set to v.
func WithRecordVersion(b []byte, v uint16) []byte {
	b = slices.Clone(b)
	b[1], b[2] = byte(v>>8), byte(v)
	return b
}

// ECHConfig returns an ECHConfigList (draft-ietf-tls-esni-22 §4) with one
// X25519, HKDF-SHA256, AES-128-GCM config whose public name is publicName,
// and the config's private key.
func ECHConfig(t testing.TB, publicName string) (list []byte, key *ecdh.PrivateKey) {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c []byte
	c = append(c, 1)       // config_id
	c = append(c, 0, 0x20) // kem_id: DHKEM(X25519, HKDF-SHA256)
	c = AppendVec16(c, key.PublicKey().Bytes())
	c = AppendVec16(c, []byte{0, 1, 0, 1}) // HKDF-SHA256, AES-128-GCM
	c = append(c, 0)                       // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = AppendVec16(c, nil) // extensions
	cfg := AppendVec16([]byte{0xfe, 0x0d}, c)
	return AppendVec16(nil, cfg), key
}

// GoClientHello returns the ClientHello a crypto/tls client with cfg sends.
func GoClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		defer c1.Close()
		_ = tls.Client(c1, cfg).Handshake() // ends when c2 closes
	}()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := readFirstMessage(c2)
	if err != nil {
		t.Fatalf("reading a crypto/tls ClientHello: %v", err)
	}
	return b
}

// ServerFirstFlight returns what a crypto/tls server with cfg answers to
// the ClientHello hello, up to and including its first handshake message.
func ServerFirstFlight(t testing.TB, cfg *tls.Config, hello []byte) []byte {
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
	b, err := readFirstMessage(c2)
	if err != nil {
		t.Fatalf("reading the server's answer: %v", err)
	}
	return b
}

// readFirstMessage reads from c until what it read holds a whole first
// handshake message, and returns every byte read.
func readFirstMessage(c net.Conn) ([]byte, error) {
	var b []byte
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		b = append(b, buf[:n]...)
		if _, ok := firstMessage(b); ok {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// RetryConfig is a server configuration that answers a default crypto/tls
// ClientHello with a HelloRetryRequest: the client's first key shares are
// for X25519MLKEM768 and X25519, and the server takes only P-256.
func RetryConfig(t testing.TB, names ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{SelfSigned(t, names...)}, CurvePreferences: []tls.CurveID{tls.CurveP256}}
}

// SelfSigned makes a certificate for names.
func SelfSigned(t testing.TB, names ...string) tls.Certificate {
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
