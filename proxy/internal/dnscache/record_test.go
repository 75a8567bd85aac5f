package dnscache

import (
	"bytes"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// seedMessages are responses of the kinds the recorder meets: addresses
// behind a CNAME, NXDOMAIN and NODATA with an SOA, a truncated answer, a
// TTL with its top bit set.
func seedMessages(tb testing.TB) [][]byte {
	tb.Helper()
	name := dnsmessage.MustNewName("svc.test.")
	target := dnsmessage.MustNewName("svc.privatelink.test.")
	q := dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	soa := dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("test."), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: 900},
		Body: &dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.test."), MBox: dnsmessage.MustNewName("hm.test."),
			Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: 30},
	}
	msgs := []dnsmessage.Message{
		{Header: dnsmessage.Header{ID: 1, RecursionDesired: true}, Questions: []dnsmessage.Question{q}},
		{Header: dnsmessage.Header{ID: 1, Response: true}, Questions: []dnsmessage.Question{q}, Answers: []dnsmessage.Resource{
			{Header: dnsmessage.ResourceHeader{Name: name, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 3600},
				Body: &dnsmessage.CNAMEResource{CNAME: target}},
			{Header: dnsmessage.ResourceHeader{Name: target, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 10},
				Body: &dnsmessage.AResource{A: [4]byte{10, 0, 0, 4}}},
		}},
		{Header: dnsmessage.Header{ID: 2, Response: true, RCode: dnsmessage.RCodeNameError}, Questions: []dnsmessage.Question{q},
			Authorities: []dnsmessage.Resource{soa}},
		{Header: dnsmessage.Header{ID: 3, Response: true}, Questions: []dnsmessage.Question{q}, Authorities: []dnsmessage.Resource{soa}},
		{Header: dnsmessage.Header{ID: 4, Response: true, Truncated: true}, Questions: []dnsmessage.Question{q}},
		{Header: dnsmessage.Header{ID: 5, Response: true}, Questions: []dnsmessage.Question{q}, Answers: []dnsmessage.Resource{
			{Header: dnsmessage.ResourceHeader{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1 << 31},
				Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}}},
		}},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestParseMessage holds what parseMessage reads of the seeds.
func TestParseMessage(t *testing.T) {
	t.Parallel()
	seeds := seedMessages(t)
	for i, want := range []message{
		{id: 1, qtype: dnsmessage.TypeA},
		{id: 1, response: true, qtype: dnsmessage.TypeA, answers: 2, minTTL: 10},
		{id: 2, response: true, rcode: dnsmessage.RCodeNameError, qtype: dnsmessage.TypeA, soa: true, soaTTL: 30},
		{id: 3, response: true, qtype: dnsmessage.TypeA, soa: true, soaTTL: 30},
		{id: 4, response: true, truncated: true, qtype: dnsmessage.TypeA},
		{id: 5, response: true, qtype: dnsmessage.TypeA, answers: 1, minTTL: 0},
	} {
		if got, ok := parseMessage(seeds[i]); !ok || got != want {
			t.Errorf("seed %d: %+v %v, want %+v", i, got, ok, want)
		}
	}
}

// FuzzParseMessage checks parseMessage against dnsmessage's full unpacking
// (a message both read is read the same; parseMessage may refuse more, as
// it checks each record's length, which costs only the caching of that
// answer), and the TCP
// framing: the message split anywhere over two reads is seen once, whole.
func FuzzParseMessage(f *testing.F) {
	for _, b := range seedMessages(f) {
		f.Add(b, uint16(len(b)/2))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		got, ok := parseMessage(b)
		var m dnsmessage.Message
		if err := m.Unpack(b); ok && err == nil {
			want := message{id: m.ID, response: m.Response, truncated: m.Truncated, rcode: m.RCode,
				qtype: m.Questions[0].Type, answers: len(m.Answers)}
			for i, a := range m.Answers {
				want.minTTL = lower(want.minTTL, i > 0, ttlOf(a.Header.TTL))
			}
			for _, a := range m.Authorities {
				if s, isSOA := a.Body.(*dnsmessage.SOAResource); isSOA && !want.soa {
					want.soa, want.soaTTL = true, min(ttlOf(a.Header.TTL), ttlOf(s.MinTTL))
				}
			}
			if got != want {
				t.Fatalf("parseMessage = %+v %v, want %+v (unpacked)", got, ok, want)
			}
		}
		if len(b) > 0xffff {
			return
		}
		framed := append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
		cut := int(split) % (len(framed) + 1)
		var seen [][]byte
		each := func(m []byte) { seen = append(seen, bytes.Clone(m)) }
		rest := frames(append([]byte(nil), framed[:cut]...), each)
		rest = frames(append(rest, framed[cut:]...), each)
		if len(seen) != 1 || !bytes.Equal(seen[0], b) || len(rest) != 0 {
			t.Fatalf("framed in two reads at %d: saw %d messages, %d bytes left", cut, len(seen), len(rest))
		}
	})
}
