package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/tlshello"
	"github.com/azegress/azegress/proxy/internal/tlshello/tlshellotest"
)

// openingFlow is an admitted CONNECT flow to allowed.example:8443 under
// frontingPolicy(8443, extra).
func openingFlow(t testing.TB, extra string) *flow {
	t.Helper()
	p := loadPolicy(t, frontingPolicy(8443, extra))
	h, err := wireHost("allowed.example")
	if err != nil {
		t.Fatal(err)
	}
	return &flow{kind: kindConnect, host: h, port: 8443, gen: &generation{pol: p}, block: p.Client(netip.MustParseAddr("127.0.0.1"))}
}

const (
	testHeaderTimeout = 10 * time.Second
	testIdleTimeout   = time.Minute
)

// hello13 is a ClientHello for name that offers TLS 1.3.
func hello13(exts ...tlshellotest.Ext) []byte {
	return tlshellotest.Hello(append(exts, tlshellotest.Ext{Type: 0x002b, Data: []byte{2, 3, 4}})...)
}

// serverHello is a ServerHello record with random; with hrrRandom it is a
// HelloRetryRequest (RFC 8446 §4.1.3).
func serverHello(random [32]byte) []byte {
	body := append([]byte{3, 3}, random[:]...)
	body = append(body, 0, 0x13, 0x01, 0)
	body = tlshellotest.AppendVec16(body, nil)
	return tlshellotest.Record(22, append([]byte{2, 0, byte(len(body) >> 8), byte(len(body))}, body...))
}

var (
	hrrRandom = [32]byte{
		0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
		0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
	}
	testHRR = serverHello(hrrRandom)
	testSH  = serverHello([32]byte{1})
	testCCS = tlshellotest.Record(20, []byte{1})
)

// act is one arrival or event an engine shows an openingCheck.
type act struct {
	client []byte // client bytes, added to those held
	server []byte // origin bytes
	ev     openingEvent
	err    error
}

func cl(b ...[]byte) act { return act{client: bytes.Join(b, nil)} }
func sv(b []byte) act    { return act{server: b} }
func ev(e openingEvent, err error) act {
	return act{ev: e, err: err}
}

// driveOpening shows m acts as an engine would, starting with start's
// step, and returns each step described, and the last step.
func driveOpening(m *openingCheck, first step, acts []act) (trace []string, last step) {
	var held []byte
	apply := func(st step) {
		trace = append(trace, describeStep(st))
		last = st
		if st.kind == stepForward {
			held = held[st.n:]
		}
	}
	apply(first)
	for _, a := range acts {
		switch {
		case a.client != nil:
			held = append(held, a.client...)
			apply(m.client(held))
		case a.server != nil:
			apply(m.server(a.server))
			if last.kind == stepMore && len(held) > 0 {
				apply(m.client(held))
			}
		default:
			apply(m.event(a.ev, a.err))
		}
	}
	return trace, last
}

func describeStep(st step) string {
	var s string
	switch st.kind {
	case stepMore:
		s = "more"
	case stepForward:
		s = fmt.Sprintf("forward %d", st.n)
	case stepRelay:
		s = "relay"
	case stepRefuse:
		s = "refuse " + st.d.reason
	case stepEnd:
		s = "end " + st.reason
	}
	switch st.timer {
	case timerOpening:
		s += ", opening timeout"
	case timerIdle:
		s += ", idle timeout"
	}
	if st.warn != nil {
		s += ", would deny " + st.warnHost.String()
	}
	return s
}

// TestOpeningCheck drives the check with byte sequences and events, as an
// engine would, and compares every step and the refusals' texts.
func TestOpeningCheck(t *testing.T) {
	t.Parallel()
	h12 := tlshellotest.Hello(tlshellotest.SNI("allowed.example"))
	h13 := hello13(tlshellotest.SNI("allowed.example"))
	denied13 := hello13(tlshellotest.SNI("denied.example"))
	n13 := fmt.Sprint(len(h13))
	boom := errors.New("boom")
	const (
		badFix     = `A TLS client must send its ClientHello first and whole, in TLS records of versions 3.0 to 3.4, within -header-timeout. A client that speaks another protocol starting with such a byte needs allow_sni_mismatch = true for client "local" in test.hcl.`
		retryFix   = "After a HelloRetryRequest, the client must send its second ClientHello, for the same server name, within -header-timeout."
		sameFix    = "A client must send the same server name (SNI) in both ClientHellos of a TLS 1.3 handshake (RFC 8446 §4.1.2); allow_sni_mismatch = true in the client block turns the check off."
		deniedName = `the TLS server name (SNI) denied.example in the tunnel to allowed.example:8443 names another host, which no allow rule in client block "local" allows on port 8443 (domain fronting)`
	)
	for _, tt := range []struct {
		name   string
		extra  string
		acts   []act
		trace  []string // after start's "more, opening timeout"
		detail string   // the refusal's, if any
		fix    string   // the refusal's fix, if not ""
	}{
		{name: "TLS 1.2 hello for the CONNECT host", acts: []act{cl(h12)}, trace: []string{"relay"}},
		{name: "TLS 1.2 hello for a host the block allows", acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("a.wild.example")))}, trace: []string{"relay"}},
		{name: "no server name", acts: []act{cl(tlshellotest.Hello())}, trace: []string{"relay"}},
		{name: "not TLS", acts: []act{cl([]byte("SSH-2.0-x\r\n"))}, trace: []string{"relay"}},
		{name: "another name", acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("denied.example")))},
			trace: []string{"refuse sni_mismatch"}, detail: deniedName,
			fix: "If the client must send this server name, allow it in client \"local\" in test.hcl:\n\n" + suggestRule(mustWireHost(t, "denied.example"), 8443) + "\nor turn the check off for the block with allow_sni_mismatch = true."},
		{name: "an invalid name", acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("a..b")))},
			trace: []string{"refuse sni_mismatch"}, detail: `the TLS server name (SNI) "a..b" in the tunnel to allowed.example:8443 is not a valid host name`},
		{name: "another name, learn mode", extra: `mode = "learn"`, acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("denied.example")))},
			trace: []string{"relay, would deny denied.example"}},
		{name: "an invalid name, learn mode", extra: `mode = "learn"`, acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("a..b")))},
			trace: []string{"refuse sni_mismatch"}},
		{name: "a name a deny rule names, learn mode", extra: "mode = \"learn\"\n  deny \"no\" {\n    hosts = [\"denied.example\"]\n    ports = [8443]\n  }",
			acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("denied.example")))}, trace: []string{"refuse sni_mismatch"}, detail: deniedName},
		{name: "an alert first", acts: []act{cl(tlshellotest.Alert(112), h12)},
			trace: []string{"refuse bad_request"}, detail: "tunnel to allowed.example:8443: malformed TLS ClientHello: TLS alert record before the ClientHello", fix: badFix},
		{name: "record version 2.0", acts: []act{cl(tlshellotest.WithRecordVersion(h12, 0x0200))},
			trace: []string{"refuse bad_request"}, detail: "tunnel to allowed.example:8443: malformed TLS ClientHello: TLS record version outside 3.0 to 3.4"},
		{name: "a ClientHello over 16 KiB", acts: []act{cl(tlshellotest.Fragment(tlshellotest.Hello(tlshellotest.Ext{Type: 0x1234, Data: make([]byte, 17<<10)}), 1<<14))},
			trace: []string{"refuse bad_request"}, detail: "tunnel to allowed.example:8443: malformed TLS ClientHello: ClientHello larger than 16 KiB, or spread over too many records"},

		// Events before a complete first message.
		{name: "the client closes first", acts: []act{ev(evClientEOF, nil)}, trace: []string{"relay"}},
		{name: "the client fails first", acts: []act{ev(evClientError, boom)}, trace: []string{"relay"}},
		{name: "the client closes mid-hello", acts: []act{cl(h12[:10]), ev(evClientEOF, nil)}, trace: []string{"more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client closed the connection", fix: badFix},
		{name: "the client fails mid-hello", acts: []act{cl(h12[:10]), ev(evClientError, boom)}, trace: []string{"more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client failed: boom"},
		{name: "neither side speaks", acts: []act{ev(evOpeningTimeout, nil)}, trace: []string{"refuse bad_request"},
			detail: "neither the client nor the origin sent anything within 10s of the 200 to the CONNECT to allowed.example:8443, so the tunnel could not be checked for domain fronting",
			fix:    `A TLS client sends its ClientHello at once. For a protocol in which neither side speaks that soon, raise -header-timeout, or set allow_sni_mismatch = true for client "local" in test.hcl.`},
		{name: "the client stops mid-hello", acts: []act{cl(h12[:10]), ev(evOpeningTimeout, nil)}, trace: []string{"more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client sent nothing more within 10s"},
		{name: "the origin closes first", acts: []act{ev(evOriginEOF, nil)}, trace: []string{"end eof"}},
		{name: "the origin fails first", acts: []act{ev(evOriginError, boom)}, trace: []string{"end eof"}},
		{name: "the origin closes mid-hello", acts: []act{cl(h12[:10]), ev(evOriginEOF, nil)}, trace: []string{"more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client waited and the origin closed the connection"},
		{name: "canceled", acts: []act{cl(h12[:10]), ev(evCanceled, boom)}, trace: []string{"more", "end canceled"}},
		{name: "writing to the client fails", acts: []act{sv([]byte("220 hi\r\n")), cl(h12[:10]), ev(evClientWriteError, boom)},
			trace: []string{"more, idle timeout", "more", "end error"}},
		{name: "the idle timeout before the origin speaks", acts: []act{ev(evIdleTimeout, nil), cl(h12)}, trace: []string{"more", "relay"}},

		// An origin that speaks first.
		{name: "origin first, then SMTP", acts: []act{sv([]byte("220 hi\r\n")), sv([]byte("more\r\n")), ev(evOpeningTimeout, nil), cl([]byte("EHLO me\r\n"))},
			trace: []string{"more, idle timeout", "more", "more", "relay"}},
		{name: "origin first, then another name", acts: []act{sv([]byte("220 hi\r\n")), cl(tlshellotest.Hello(tlshellotest.SNI("denied.example")))},
			trace: []string{"more, idle timeout", "refuse sni_mismatch"}, detail: deniedName},
		{name: "origin first, then idle", acts: []act{sv([]byte("220 hi\r\n")), ev(evIdleTimeout, nil)}, trace: []string{"more, idle timeout", "end idle_timeout"}},
		{name: "origin first, then idle mid-hello", acts: []act{sv([]byte("220 hi\r\n")), cl(h12[:10]), ev(evIdleTimeout, nil)},
			trace:  []string{"more, idle timeout", "more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: incomplete TLS ClientHello (10 bytes) when the client was idle for 1m0s"},
		{name: "origin first, then closes", acts: []act{sv([]byte("220 hi\r\n")), ev(evOriginEOF, nil)}, trace: []string{"more, idle timeout", "end eof"}},

		// TLS 1.3: the origin's answer, and a HelloRetryRequest.
		{name: "TLS 1.3, a ServerHello", acts: []act{cl(h13), sv(testSH)}, trace: []string{"forward " + n13 + ", opening timeout", "relay"}},
		{name: "TLS 1.3, a ServerHello in two parts", acts: []act{cl(h13), sv(testSH[:7]), sv(testSH[7:])},
			trace: []string{"forward " + n13 + ", opening timeout", "more", "relay"}},
		{name: "TLS 1.3, not TLS from the origin", acts: []act{cl(h13), sv([]byte("HTTP/1.1 400"))}, trace: []string{"forward " + n13 + ", opening timeout", "relay"}},
		{name: "TLS 1.3, client bytes held while the origin answers", acts: []act{cl(h13, []byte("x")), cl([]byte("y")), ev(evClientEOF, nil), sv(testSH)},
			trace: []string{"forward " + n13 + ", opening timeout", "more", "more", "relay"}},
		{name: "TLS 1.3, another name", acts: []act{cl(denied13)}, trace: []string{"refuse sni_mismatch"}, detail: deniedName},
		{name: "TLS 1.3, another name, learn mode", extra: `mode = "learn"`, acts: []act{cl(denied13), sv(testHRR), cl(testCCS, denied13)},
			trace: []string{"forward " + fmt.Sprint(len(denied13)) + ", opening timeout, would deny denied.example", "more, opening timeout", "relay"}},
		{name: "TLS 1.3, the origin closes", acts: []act{cl(h13), ev(evOriginEOF, nil)}, trace: []string{"forward " + n13 + ", opening timeout", "end eof"}},
		{name: "TLS 1.3, the origin fails", acts: []act{cl(h13), ev(evOriginError, boom)}, trace: []string{"forward " + n13 + ", opening timeout", "end error"}},
		{name: "TLS 1.3, the origin is silent", acts: []act{cl(h13), ev(evOpeningTimeout, nil)}, trace: []string{"forward " + n13 + ", opening timeout", "refuse dial_failed"},
			detail: "the origin of the tunnel to allowed.example:8443 did not answer the TLS ClientHello within 10s, so a HelloRetryRequest could not be ruled out", fix: originAnswerFix},
		{name: "TLS 1.3, an answer over 16 KiB", acts: []act{cl(h13), sv(tlshellotest.Record(22, []byte{2, 0, 0x40, 1}))},
			trace:  []string{"forward " + n13 + ", opening timeout", "refuse dial_failed"},
			detail: "the origin of the tunnel to allowed.example:8443 answered the TLS ClientHello with a handshake message larger than 16 KiB"},
		{name: "HRR, the same name", acts: []act{cl(h13), sv(testHRR), cl(testCCS, h13)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "relay"}},
		{name: "HRR, the same name without change_cipher_spec", acts: []act{cl(h13), sv(testHRR), cl(h13)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "relay"}},
		{name: "HRR, both ClientHellos in one arrival", acts: []act{cl(h13, testCCS, h13), sv(testHRR)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "relay"}},
		{name: "HRR, another name", acts: []act{cl(h13), sv(testHRR), cl(testCCS, denied13)},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse sni_mismatch"},
			detail: "after the origin's HelloRetryRequest in the tunnel to allowed.example:8443, the second TLS ClientHello names denied.example, the first allowed.example (domain fronting)", fix: sameFix},
		{name: "HRR, another name, learn mode", extra: `mode = "learn"`, acts: []act{cl(h13), sv(testHRR), cl(testCCS, denied13)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "relay, would deny denied.example"}},
		{name: "HRR, no server name", acts: []act{cl(h13), sv(testHRR), cl(testCCS, hello13())},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse sni_mismatch"},
			detail: "after the origin's HelloRetryRequest in the tunnel to allowed.example:8443, the second TLS ClientHello names no server name, the first allowed.example (domain fronting)"},
		{name: "HRR, no server name, learn mode", extra: `mode = "learn"`, acts: []act{cl(h13), sv(testHRR), cl(testCCS, hello13())},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse sni_mismatch"}},
		{name: "HRR, an invalid name", acts: []act{cl(h13), sv(testHRR), cl(testCCS, hello13(tlshellotest.SNI("a..b")))},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse sni_mismatch"},
			detail: `after the origin's HelloRetryRequest in the tunnel to allowed.example:8443, the second TLS ClientHello names "a..b", not a valid host name,, the first allowed.example (domain fronting)`},
		{name: "HRR, an alert", acts: []act{cl(h13), sv(testHRR), cl(tlshellotest.Alert(49))},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: after the origin's HelloRetryRequest, malformed TLS ClientHello: TLS alert record before the ClientHello", fix: retryFix},
		{name: "HRR, two change_cipher_specs", acts: []act{cl(h13), sv(testHRR), cl(testCCS, testCCS, h13)},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: after the origin's HelloRetryRequest, malformed TLS ClientHello: TLS change_cipher_spec record before the ClientHello"},
		{name: "HRR, not TLS", acts: []act{cl(h13), sv(testHRR), cl([]byte("GET / HTTP/1.1\r\n"))},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "refuse bad_request"},
			detail: `tunnel to allowed.example:8443: after the origin's HelloRetryRequest, not TLS: the connection starts with "GET / HT"`},
		{name: "HRR, the client is silent", acts: []act{cl(h13), sv(testHRR), ev(evOriginEOF, nil), ev(evOpeningTimeout, nil)},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: after the origin's HelloRetryRequest, incomplete TLS ClientHello (0 bytes) when the client sent nothing more within 10s", fix: retryFix},
		{name: "HRR, the client closes mid-hello", acts: []act{cl(h13), sv(testHRR), cl(testCCS), ev(evClientEOF, nil)},
			trace:  []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "more", "refuse bad_request"},
			detail: "tunnel to allowed.example:8443: after the origin's HelloRetryRequest, incomplete TLS ClientHello (6 bytes) when the client closed the connection"},
		{name: "HRR, writing it to the client fails", acts: []act{cl(h13), sv(testHRR), ev(evClientWriteError, boom)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "end error"}},
		{name: "HRR, canceled", acts: []act{cl(h13), sv(testHRR), ev(evCanceled, boom)},
			trace: []string{"forward " + n13 + ", opening timeout", "more, opening timeout", "end canceled"}},

		// A decision is final.
		{name: "a refusal is final", acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("denied.example"))), cl(h12), sv(testSH), ev(evCanceled, boom)},
			trace: []string{"refuse sni_mismatch", "refuse sni_mismatch", "refuse sni_mismatch", "refuse sni_mismatch"}, detail: deniedName},
		{name: "a relay is final", extra: `mode = "learn"`, acts: []act{cl(tlshellotest.Hello(tlshellotest.SNI("denied.example"))), ev(evOpeningTimeout, nil)},
			trace: []string{"relay, would deny denied.example", "relay"}},
		{name: "allow_sni_mismatch", extra: "allow_sni_mismatch = true", acts: []act{cl(denied13)}, trace: []string{"relay", "relay"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m openingCheck
			first := m.start(openingFlow(t, tt.extra), testHeaderTimeout, testIdleTimeout)
			trace, last := driveOpening(&m, first, tt.acts)
			want := append([]string{"more, opening timeout"}, tt.trace...)
			if tt.extra == "allow_sni_mismatch = true" {
				want = tt.trace
			}
			if strings.Join(trace, "\n") != strings.Join(want, "\n") {
				t.Fatalf("steps:\n\t%s\nwant:\n\t%s", strings.Join(trace, "\n\t"), strings.Join(want, "\n\t"))
			}
			if tt.detail != "" && last.d.detail != tt.detail {
				t.Errorf("detail:\n\t%s\nwant:\n\t%s", last.d.detail, tt.detail)
			}
			if tt.fix != "" && last.d.fix != tt.fix {
				t.Errorf("fix:\n\t%s\nwant:\n\t%s", last.d.fix, tt.fix)
			}
			if last.kind == stepRefuse && last.d.status != 0 {
				t.Errorf("status %d; after the 200 a refusal has none", last.d.status)
			}
			if last.kind == stepEnd && (last.reason == "canceled" || last.reason == "error") && !errors.Is(last.err, boom) {
				t.Errorf("end error %v, want the event's", last.err)
			}
		})
	}
}

// The first ClientHello, the origin's answer and the second ClientHello
// decide the same however their bytes are split.
func TestOpeningCheckSplits(t *testing.T) {
	t.Parallel()
	fl := openingFlow(t, "")
	goHello := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "allowed.example"})
	hrr := tlshellotest.ServerFirstFlight(t, tlshellotest.RetryConfig(t, "allowed.example"), goHello)
	if sh, err := tlshello.ParseServerHello(hrr); err != nil || !sh.Retry {
		t.Fatalf("crypto/tls's answer is no HelloRetryRequest: %v", err)
	}
	denied := tlshellotest.GoClientHello(t, &tls.Config{ServerName: "denied.example"})
	ccs := tlshellotest.WithRecordVersion(testCCS, 0x0303)
	for _, tt := range []struct {
		name   string
		prefix []act // shown before the split bytes
		split  []byte
		after  []act // shown after them
		want   string
	}{
		{name: "TLS 1.2 ClientHello", split: tlshellotest.Hello(tlshellotest.SNI("allowed.example")), want: "relay"},
		{name: "TLS 1.2 ClientHello, another name", split: tlshellotest.Hello(tlshellotest.SNI("denied.example")), want: "refuse sni_mismatch"},
		{name: "fragmented ClientHello", split: tlshellotest.Fragment(tlshellotest.Hello(tlshellotest.SNI("allowed.example")), 7), want: "relay"},
		{name: "crypto/tls ClientHello", split: goHello, want: fmt.Sprintf("forward %d, opening timeout", len(goHello))},
		{name: "crypto/tls ClientHello, another name", split: denied, want: "refuse sni_mismatch"},
		{name: "crypto/tls HelloRetryRequest", prefix: []act{cl(goHello)}, split: hrr, after: []act{cl(ccs, goHello)}, want: "relay"},
		{name: "second ClientHello", prefix: []act{cl(goHello), sv(hrr)}, split: slicesConcat(ccs, goHello), want: "relay"},
		{name: "second ClientHello, another name", prefix: []act{cl(goHello), sv(hrr)}, split: slicesConcat(ccs, denied), want: "refuse sni_mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			server := tt.prefix != nil && tt.prefix[len(tt.prefix)-1].server == nil
			for i := 0; i <= len(tt.split); i++ {
				var parts []act
				for _, p := range [][]byte{tt.split[:i], tt.split[i:]} {
					if len(p) == 0 {
						continue
					}
					if server {
						parts = append(parts, sv(p))
					} else {
						parts = append(parts, cl(p))
					}
				}
				var m openingCheck
				_, last := driveOpening(&m, m.start(fl, testHeaderTimeout, testIdleTimeout), append(append(append([]act{}, tt.prefix...), parts...), tt.after...))
				if got := describeStep(last); got != tt.want {
					t.Fatalf("split at %d of %d: %s, want %s", i, len(tt.split), got, tt.want)
				}
			}
		})
	}
}

func mustWireHost(t testing.TB, s string) host.Host {
	h, err := wireHost(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func slicesConcat(b ...[]byte) []byte { return bytes.Join(b, nil) }

// The transparent listener starts the check after its own first
// ClientHello.
func TestOpeningCheckStartAfter(t *testing.T) {
	t.Parallel()
	fl := openingFlow(t, "")
	for _, tt := range []struct {
		name  string
		hello []byte
		fl    *flow
		want  string
	}{
		{"TLS 1.2", tlshellotest.Hello(tlshellotest.SNI("allowed.example")), fl, "relay"},
		{"TLS 1.3", hello13(tlshellotest.SNI("allowed.example")), fl, fmt.Sprintf("forward %d, opening timeout", len(hello13(tlshellotest.SNI("allowed.example"))))},
		{"TLS 1.3, allow_sni_mismatch", hello13(tlshellotest.SNI("allowed.example")), openingFlow(t, "allow_sni_mismatch = true"), "relay"},
	} {
		h, err := tlshello.Parse(tt.hello)
		if err != nil {
			t.Fatal(err)
		}
		var m openingCheck
		if got := describeStep(m.startAfter(tt.fl, testHeaderTimeout, testIdleTimeout, len(tt.hello), &h, fl.host)); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// FuzzOpeningCheck shows the check arbitrary splits of a client's and an
// origin's bytes, among arbitrary events, as an engine would, and checks
// that no client byte reaches the origin before the ClientHello holding it
// passed the check, that a decision is final, and that the check never
// waits on the client with tlshello.MaxBytes held.
func FuzzOpeningCheck(f *testing.F) {
	flows := [2]*flow{openingFlow(f, ""), openingFlow(f, `mode = "learn"`)}
	goHello := tlshellotest.GoClientHello(f, &tls.Config{ServerName: "allowed.example"})
	hrr := tlshellotest.ServerFirstFlight(f, tlshellotest.RetryConfig(f, "allowed.example"), goHello)
	h13 := hello13(tlshellotest.SNI("allowed.example"))
	ccs := tlshellotest.WithRecordVersion(testCCS, 0x0303)
	sched := []byte{0, 0, 200, 1, 0, 50, 0, 1, 0, 1, 0, 90, 0, 16, 0, 9, 0, 0}
	for _, c := range [][2][]byte{
		{slicesConcat(goHello, ccs, goHello), hrr},
		{slicesConcat(h13, testCCS, hello13(tlshellotest.SNI("denied.example"))), testHRR},
		{slicesConcat(h13, testCCS, h13), testHRR},
		{slicesConcat(h13, []byte("app data")), testSH},
		{tlshellotest.Hello(tlshellotest.SNI("denied.example")), []byte("220 hi\r\n")},
		{[]byte("SSH-2.0-x\r\n"), []byte("SSH-2.0-y\r\n")},
	} {
		f.Add(c[0], c[1], sched, false)
		f.Add(c[0], c[1], sched, true)
		f.Add(c[0], c[1], []byte{1, 0, 3, 0, 0, 3, 5, 0, 0, 0, 2, 0, 1, 0, 100, 0, 255, 255}, false)
	}
	f.Fuzz(func(t *testing.T, client, server, sched []byte, learn bool) {
		learnMode := 0
		if learn {
			learnMode = 1
		}
		fl := flows[learnMode]
		var m openingCheck
		final := m.start(fl, testHeaderTimeout, testIdleTimeout)
		if final.kind != stepMore {
			t.Fatalf("start: %s", describeStep(final))
		}
		var (
			held                   []byte
			ci, si                 int // client and origin bytes shown
			forwarded              int // client bytes forwarded
			answerFrom             = -1
			clientEnded, originEnd bool
			decided                *step
			warned1                bool
			checkFinal             bool
		)
		nameOK := func(raw []byte, warned bool) bool {
			if raw == nil {
				return true
			}
			h, err := wireHost(string(raw))
			return err == nil && (h == fl.host || fl.block.Decide(h, fl.port).Allowed || learn && warned)
		}
		// legal reports why forwarding the client's bytes now would be
		// wrong, or "".
		legal := func(st step) string {
			shown := client[:ci]
			switch {
			case len(shown) == 0:
				if !clientEnded {
					return "relay before the client's first byte"
				}
				return ""
			case shown[0] < 20 || shown[0] > 24:
				return ""
			}
			h1, err := tlshello.Parse(shown)
			if err != nil {
				return fmt.Sprintf("first ClientHello: %v", err)
			}
			if st.kind == stepForward || forwarded == 0 {
				warned1 = st.warn != nil
			}
			if !nameOK(h1.ServerName, warned1) {
				return fmt.Sprintf("first ClientHello names %q", h1.ServerName)
			}
			if st.kind == stepForward {
				if !h1.TLS13 || st.n != h1.End || forwarded != 0 {
					return fmt.Sprintf("forward %d of a ClientHello of %d, TLS 1.3 %v, %d forwarded before", st.n, h1.End, h1.TLS13, forwarded)
				}
				return ""
			}
			if !h1.TLS13 {
				return ""
			}
			if forwarded != h1.End || answerFrom < 0 {
				return "TLS 1.3 relayed before its ClientHello was forwarded alone"
			}
			sh, err := tlshello.ParseServerHello(server[answerFrom:si])
			if err != nil {
				return fmt.Sprintf("origin's answer: %v", err)
			}
			if !sh.Retry {
				return ""
			}
			h2, err := tlshello.ParseSecond(shown[h1.End:])
			if err != nil {
				return fmt.Sprintf("second ClientHello: %v", err)
			}
			n1, err1 := wireHost(string(h1.ServerName))
			n2, err2 := wireHost(string(h2.ServerName))
			if (h1.ServerName == nil) != (h2.ServerName == nil) || err1 != nil || err2 != nil || n1 != n2 {
				if !(learn && st.warn != nil) {
					return fmt.Sprintf("second ClientHello names %q, the first %q", h2.ServerName, h1.ServerName)
				}
			}
			return ""
		}
		apply := func(st step, what string) {
			if decided != nil {
				if st.kind != decided.kind || st.d != decided.d || st.reason != decided.reason || st.err != decided.err || st.warn != nil {
					t.Fatalf("%s after the decision %s: %s", what, describeStep(*decided), describeStep(st))
				}
				return
			}
			if checkFinal && st.kind == stepMore {
				t.Fatalf("%s: the client's end left the check waiting", what)
			}
			switch st.kind {
			case stepMore:
				if clientWaits := m.phase == phaseFirst || m.phase == phaseSecond; clientWaits && len(held) >= tlshello.MaxBytes {
					t.Fatalf("%s: waits on the client with %d bytes held", what, len(held))
				}
				if m.need > tlshello.MaxBytes || len(m.sbuf) > tlshello.MaxBytes {
					t.Fatalf("%s: need %d, %d origin bytes kept", what, m.need, len(m.sbuf))
				}
			case stepForward:
				if why := legal(st); why != "" {
					t.Fatalf("%s: %s: %s", what, describeStep(st), why)
				}
				held = held[st.n:]
				forwarded += st.n
				answerFrom = si
			case stepRelay:
				if why := legal(st); why != "" {
					t.Fatalf("%s: %s: %s", what, describeStep(st), why)
				}
				fallthrough
			default:
				decided = &st
			}
		}
		for i := 0; i+2 < len(sched); i += 3 {
			k := int(sched[i+1])<<8 | int(sched[i+2])
			checkFinal = false
			switch op := sched[i] % 10; op {
			case 0:
				if clientEnded || ci == len(client) {
					continue
				}
				n := min(k+1, len(client)-ci)
				held = append(held, client[ci:ci+n]...)
				ci += n
				apply(m.client(held), fmt.Sprintf("client %d", ci))
			case 1:
				if originEnd || si == len(server) {
					continue
				}
				n := min(k+1, len(server)-si)
				si += n
				apply(m.server(server[si-n:si]), fmt.Sprintf("server %d", si))
				apply(m.client(held), "client after server")
			default:
				e := openingEvent(op - 1)
				switch e {
				case evClientEOF, evClientError:
					if clientEnded {
						continue
					}
					clientEnded = true
					checkFinal = m.phase == phaseFirst || m.phase == phaseSecond
				case evOriginEOF, evOriginError:
					originEnd = true
				}
				apply(m.event(e, errors.New("x")), fmt.Sprintf("event %d", e))
			}
		}
	})
}
