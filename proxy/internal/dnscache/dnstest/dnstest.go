// Package dnstest is a DNS server on loopback, UDP and TCP on one port,
// for the tests and benchmarks of dnscache and of the proxy: it answers
// A and AAAA queries as told, with chosen TTLs, negative answers and
// failures, and counts the queries it gets. Only tests import it.
//
// It imports nothing of the module.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Answer is what the server answers for a name.
type Answer struct {
	// Addrs are the name's addresses: its A and AAAA records. A name with
	// none of a query's type gets NODATA (NOERROR, no answer, an SOA).
	Addrs []netip.Addr
	// TTL is every record's TTL.
	TTL uint32
	// RCode, if not success, is the answer with no records: NameError
	// (NXDOMAIN, with an SOA), ServerFailure, Refused.
	RCode dnsmessage.RCode
	// AAAARCode, if not success, is the answer to AAAA queries instead
	// (with RCode success: A answers, AAAA fails).
	AAAARCode dnsmessage.RCode
	// NegTTL is the SOA's TTL and MINIMUM in negative answers.
	NegTTL uint32
	// TruncateUDP answers over UDP with the TC bit and no records, so
	// that the client asks again over TCP.
	TruncateUDP bool
	// Wait, if not nil, holds every answer for the name until it is
	// closed.
	Wait <-chan struct{}
}

// Server is a running DNS server.
type Server struct {
	// Addr is the UDP and TCP address.
	Addr netip.AddrPort

	mu      sync.Mutex
	answers map[string]Answer // by lowercased name without the dot
	queries map[string]int    // A queries by name, over UDP and TCP
}

// New starts a server on 127.0.0.1 that stops when tb's test ends. Names
// it was not told of are NXDOMAIN with a negative TTL of 60.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{answers: map[string]Answer{}, queries: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 { // the UDP port may be taken for TCP
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		tb.Fatal("dnstest: no port free for both UDP and TCP")
	}
	s.Addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.serveUDP(pc) }()
	go func() { defer wg.Done(); s.serveTCP(ln) }()
	tb.Cleanup(func() {
		pc.Close()
		ln.Close()
		wg.Wait()
	})
	return s
}

// Set makes the server answer a for name.
func (s *Server) Set(name string, a Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[canonical(name)] = a
}

// Queries returns how many A queries for name the server got: one per
// lookup of the name's addresses that reached it, more for a lookup that
// was retried (a truncated answer, a failure).
func (s *Server) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[canonical(name)]
}

// Dial connects to the server over network ("udp" or "tcp"), whatever addr
// resolv.conf named: a net.Resolver's Dial, or dnscache's.
func (s *Server) Dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, s.Addr.String())
}

func canonical(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (s *Server) serveUDP(pc net.PacketConn) {
	b := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(b)
		if err != nil {
			return
		}
		q := append([]byte(nil), b[:n]...)
		go func() {
			if out, ok := s.answer(q, false); ok {
				pc.WriteTo(out, from)
			}
		}()
	}
}

func (s *Server) serveTCP(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	var buf []byte
	b := make([]byte, 1024)
	for {
		n, err := c.Read(b)
		if err != nil {
			return
		}
		buf = append(buf, b[:n]...)
		for len(buf) >= 2 {
			l := int(buf[0])<<8 | int(buf[1])
			if len(buf) < 2+l {
				break
			}
			out, ok := s.answer(buf[2:2+l], true)
			buf = buf[2+l:]
			if !ok {
				continue
			}
			if _, err := c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...)); err != nil {
				return
			}
		}
	}
}

// answer builds the response to the query q, ok false if q is no query.
func (s *Server) answer(q []byte, tcp bool) (_ []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil, false
	}
	qq, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := canonical(qq.Name.String())
	s.mu.Lock()
	a, known := s.answers[name]
	if qq.Type == dnsmessage.TypeA {
		s.queries[name]++
	}
	s.mu.Unlock()
	if !known {
		a = Answer{RCode: dnsmessage.RCodeNameError, NegTTL: 60}
	}
	if qq.Type == dnsmessage.TypeAAAA && a.AAAARCode != dnsmessage.RCodeSuccess {
		a.RCode = a.AAAARCode
	}
	if a.Wait != nil {
		<-a.Wait
	}

	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true, Authoritative: true, RCode: a.RCode}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(qq); err != nil {
		return nil, false
	}
	if a.TruncateUDP && !tcp {
		rh.Truncated = true
		b = dnsmessage.NewBuilder(nil, rh)
		b.StartQuestions()
		b.Question(qq)
		out, err := b.Finish()
		return out, err == nil
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false
	}
	n := 0
	if a.RCode == dnsmessage.RCodeSuccess {
		for _, addr := range a.Addrs {
			hdr := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: a.TTL}
			switch {
			case qq.Type == dnsmessage.TypeA && addr.Is4():
				err = b.AResource(hdr, dnsmessage.AResource{A: addr.As4()})
			case qq.Type == dnsmessage.TypeAAAA && addr.Is6():
				err = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: addr.As16()})
			default:
				continue
			}
			if err != nil {
				return nil, false
			}
			n++
		}
	}
	if n == 0 && (a.RCode == dnsmessage.RCodeSuccess || a.RCode == dnsmessage.RCodeNameError) {
		if err := b.StartAuthorities(); err != nil {
			return nil, false
		}
		zone := dnsmessage.MustNewName("test.")
		err := b.SOAResource(dnsmessage.ResourceHeader{Name: zone, Class: dnsmessage.ClassINET, TTL: a.NegTTL},
			dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.test."), MBox: dnsmessage.MustNewName("hostmaster.test."),
				Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: a.NegTTL})
		if err != nil {
			return nil, false
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, false
	}
	return out, true
}
