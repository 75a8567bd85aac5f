package dnscache

import (
	"net"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// recorder collects, from the DNS messages one lookup's connections carry,
// what Go's resolver does not return: how long the answer may be kept. Go
// asks A and AAAA on connections of their own, in parallel, so it is
// shared and locked.
type recorder struct {
	mu       sync.Mutex
	asked    uint8  // qbit of each query type sent
	answered uint8  // qbit of each query type answered (NOERROR or NXDOMAIN)
	pos      uint32 // lowest TTL of the answer records, if hasPos
	hasPos   bool
	neg      uint32 // lowest negative TTL (RFC 2308 §5), if hasNeg
	hasNeg   bool
	negNoSOA bool // a negative answer had no SOA: it may not be cached
}

// qbit is a query type's bit in recorder.asked and answered. Go's lookups
// of addresses and canonical names ask A, AAAA and CNAME; anything else
// shares a bit.
func qbit(t dnsmessage.Type) uint8 {
	switch t {
	case dnsmessage.TypeA:
		return 1
	case dnsmessage.TypeAAAA:
		return 2
	case dnsmessage.TypeCNAME:
		return 4
	}
	return 8
}

func (r *recorder) sent(q message) {
	r.mu.Lock()
	r.asked |= qbit(q.qtype)
	r.mu.Unlock()
}

// received notes a response to a query of type qtype. A server failure or
// refusal notes nothing: Go asks another server or fails.
func (r *recorder) received(m message) {
	if m.rcode != dnsmessage.RCodeSuccess && m.rcode != dnsmessage.RCodeNameError {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answered |= qbit(m.qtype)
	if m.answers > 0 {
		r.pos = lower(r.pos, r.hasPos, m.minTTL)
		r.hasPos = true
	}
	if m.rcode == dnsmessage.RCodeNameError || m.answers == 0 {
		if !m.soa {
			r.negNoSOA = true
			return
		}
		r.neg = lower(r.neg, r.hasNeg, m.soaTTL)
		r.hasNeg = true
	}
}

func lower(cur uint32, set bool, v uint32) uint32 {
	if set && cur < v {
		return cur
	}
	return v
}

// ttl is how long the lookup's result may be kept: err is what the lookup
// returned. Zero means not at all.
func (r *recorder) ttl(err error, notFound bool) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answered&r.asked != r.asked {
		// A query went unanswered (a timeout, or every server failed):
		// the result may lack what a retry would find.
		return 0
	}
	switch {
	case err == nil && r.hasPos:
		return seconds(r.pos)
	case err == nil:
		// No answer record seen: the hosts file answered.
		return HostsTTL
	case notFound && r.hasNeg && !r.negNoSOA:
		// A CNAME chain that ends in "no such host" is kept no longer
		// than its links.
		return seconds(lower(r.pos, r.hasPos, r.neg))
	}
	return 0
}

func seconds(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// message is what the recorder needs of a DNS message.
type message struct {
	id        uint16
	response  bool
	truncated bool
	rcode     dnsmessage.RCode
	qtype     dnsmessage.Type // of the first question
	answers   int             // records in the answer section
	minTTL    uint32          // their lowest TTL
	soa       bool            // an SOA in the authority section
	soaTTL    uint32          // min(its TTL, its MINIMUM): the negative TTL
}

// parseMessage reads b, one DNS message without a length prefix. ok is
// false if b is not a whole message with a question: such a message
// counts for nothing (Go's resolver ignores it or fails).
func parseMessage(b []byte) (m message, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil {
		return m, false
	}
	m.id, m.response, m.truncated, m.rcode = h.ID, h.Response, h.Truncated, h.RCode
	q, err := p.Question()
	if err != nil {
		return m, false
	}
	m.qtype = q.Type
	if err := p.SkipAllQuestions(); err != nil {
		return m, false
	}
	for {
		rh, err := p.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return m, false
		}
		m.minTTL = lower(m.minTTL, m.answers > 0, ttlOf(rh.TTL))
		m.answers++
		if err := p.SkipAnswer(); err != nil {
			return m, false
		}
	}
	for {
		rh, err := p.AuthorityHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return m, false
		}
		if rh.Type != dnsmessage.TypeSOA || m.soa {
			if err := p.SkipAuthority(); err != nil {
				return m, false
			}
			continue
		}
		soa, err := p.SOAResource()
		if err != nil {
			return m, false
		}
		m.soa, m.soaTTL = true, min(ttlOf(rh.TTL), ttlOf(soa.MinTTL))
	}
	return m, true
}

// ttlOf is a TTL as RFC 2181 §8 reads it: a value with the top bit set is 0.
func ttlOf(v uint32) uint32 {
	if v > 1<<31-1 {
		return 0
	}
	return v
}

// recConn is a connection Go's resolver dialed for one lookup: it shows
// the recorder the query it carries and the responses to it. stream is a
// TCP connection, whose messages have a 2-byte length prefix (RFC 1035
// §4.2.2) and may be split over reads; over UDP a read is one message.
type recConn struct {
	net.Conn
	rec     *recorder
	stream  bool
	q       message // the query written; valid once asked
	asked   bool
	in, out []byte // stream: bytes of an incomplete message
}

// wrap returns c recording into rec, a net.PacketConn if c is one: Go's
// resolver frames its messages by that (net/dnsclient_unix.go, exchange).
func wrap(c net.Conn, rec *recorder) net.Conn {
	pc, ok := c.(net.PacketConn)
	rc := &recConn{Conn: c, rec: rec, stream: !ok}
	if ok {
		return &recPacketConn{recConn: rc, pc: pc}
	}
	return rc
}

func (c *recConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.wrote(b[:n])
	return n, err
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read(b[:n])
	return n, err
}

func (c *recConn) wrote(b []byte) {
	if !c.stream {
		c.query(b)
		return
	}
	c.out = frames(append(c.out, b...), c.query)
}

func (c *recConn) read(b []byte) {
	if !c.stream {
		c.response(b)
		return
	}
	c.in = frames(append(c.in, b...), c.response)
}

func (c *recConn) query(b []byte) {
	if m, ok := parseMessage(b); ok && !m.response {
		c.q, c.asked = m, true
		c.rec.sent(m)
	}
}

// response records b if it answers the query written, as Go's resolver
// checks (ID and question type; a forged or stray message counts for
// nothing). A truncated UDP answer is not the answer: Go asks again over
// TCP, whose answer is recorded.
func (c *recConn) response(b []byte) {
	m, ok := parseMessage(b)
	if !ok || !c.asked || !m.response || m.id != c.q.id || m.qtype != c.q.qtype || (m.truncated && !c.stream) {
		return
	}
	c.rec.received(m)
}

// frames calls each for every whole length-prefixed message at the start
// of buf, and returns what is left of buf.
func frames(buf []byte, each func([]byte)) []byte {
	for len(buf) >= 2 {
		n := int(buf[0])<<8 | int(buf[1])
		if len(buf) < 2+n {
			break
		}
		each(buf[2 : 2+n])
		buf = buf[2+n:]
	}
	if len(buf) == 0 {
		return nil
	}
	return buf
}

// recPacketConn is a recConn over UDP.
type recPacketConn struct {
	*recConn
	pc net.PacketConn
}

func (c *recPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.pc.ReadFrom(b)
	c.read(b[:n])
	return n, addr, err
}

func (c *recPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.pc.WriteTo(b, addr)
	c.wrote(b[:n])
	return n, err
}
