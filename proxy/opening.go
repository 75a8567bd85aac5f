package proxy

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/relay"
	"github.com/azegress/azegress/proxy/internal/tlshello"
)

// The domain-fronting check's decisions, apart from its I/O.
//
// openingCheck is the check described at the top of fronting.go as a state
// machine driven by bytes and events. It reads no socket, starts no
// goroutine and reads no clock: its caller reads and writes, shows it what
// arrived, and does what each answer (a step) says. fronting.go's goroutines
// drive it today; an event loop can drive it the same way. The one clock it
// consults is the policy's own, for rules that expire (Client.Decide).
//
// The caller's part:
//
//   - start (or startAfter) first, and act on its step.
//   - Each time client bytes arrive, client with every client byte held
//     and not yet forwarded. Each time origin bytes arrive, server with the
//     new ones (the caller may already have relayed them to the client).
//     After a server step, client again with the bytes held: the check may
//     have moved on to a ClientHello they already hold.
//   - event for the client's EOF or error, the origin's EOF or error, a
//     timeout, or the tunnel's cancellation.
//   - Steps are instructions, applied in order. A step's timer says which
//     timeout bounds the wait from then on. relay, refuse and end are final:
//     every later call answers the same (without the would-deny warning).
//
// Held client bytes never reach the origin except by a step: forward(n)
// hands it the first ClientHello, which passed the server-name check, and
// relay everything once the check is done. A caller that holds at most
// tlshello.MaxBytes client bytes never needs more: the check decides before.

// openingPhase is what an openingCheck waits for.
type openingPhase uint8

const (
	phaseFirst  openingPhase = iota // the client's first ClientHello; the origin may speak first
	phaseAnswer                     // the origin's first handshake message, after the first ClientHello
	phaseSecond                     // the second ClientHello, after a HelloRetryRequest
	phaseDone                       // nothing: the check has decided
)

// stepKind is what a step tells the caller to do.
type stepKind uint8

const (
	stepMore    stepKind = iota // wait for more bytes or an event
	stepForward                 // forward the first n held client bytes to the origin, and go on
	stepRelay                   // forward everything held, both ways, and start relaying
	stepRefuse                  // refuse the tunnel with d: log it, close both sides
	stepEnd                     // end the tunnel: reason (one of the relay's), err
)

// openingTimer is which timeout bounds the check's wait after a step.
type openingTimer uint8

const (
	timerKeep    openingTimer = iota // as before the step
	timerOpening                     // the header timeout, counted from now; the idle timeout does not apply
	timerIdle                        // the origin spoke first: the idle timeout, counted on the origin's bytes, instead of the header timeout
)

// step is an openingCheck's answer.
type step struct {
	kind   stepKind
	timer  openingTimer
	n      int     // stepForward: how many held client bytes
	d      *denial // stepRefuse
	reason string  // stepEnd
	err    error   // stepEnd; may be nil
	// warn, if not nil, is an sni_mismatch that learn mode lets through:
	// the caller logs it as a would_deny for warnHost (Server.wouldDeny)
	// before it acts on the step.
	warn     *denial
	warnHost host.Host
}

// openingEvent is something other than bytes that an openingCheck is told.
type openingEvent uint8

const (
	evClientEOF        openingEvent = iota + 1 // the client closed its side
	evClientError                              // reading from the client failed
	evClientWriteError                         // writing the origin's bytes to the client failed
	evOriginEOF                                // the origin closed its side
	evOriginError                              // reading from or writing to the origin failed
	evOpeningTimeout                           // the header timeout passed (timerOpening)
	evIdleTimeout                              // the idle timeout passed (timerIdle)
	evCanceled                                 // the tunnel's context is done; err is its cause
)

// openingCheck is the domain-fronting check of one tunnel. The zero value
// is ready for start or startAfter.
type openingCheck struct {
	fl     *flow
	header time.Duration // the header timeout, for messages
	idle   time.Duration // the idle timeout, for messages

	phase openingPhase
	spoke bool      // the origin spoke in phaseFirst
	held  int       // client bytes shown and not forwarded
	need  int       // client bytes held that can change the parser's answer
	first host.Host // the first ClientHello's server name; zero if none
	sneed int       // origin bytes that can change the parser's answer, in phaseAnswer
	sbuf  []byte    // origin bytes in phaseAnswer, once one arrival did not decide
	done  step      // the decision, in phaseDone
}

// start begins the check of fl's tunnel after the 200. header and idle are
// the timeouts the caller applies, which messages name.
func (m *openingCheck) start(fl *flow, header, idle time.Duration) step {
	*m = openingCheck{fl: fl, header: header, idle: idle, need: 1}
	// The policy's author turned the check off for the block. (An admitted
	// flow always has a block; nil only guards the dereference.)
	if fl.block == nil || fl.block.AllowSNIMismatch {
		return m.decide(step{kind: stepRelay})
	}
	return step{kind: stepMore, timer: timerOpening}
}

// startAfter begins the check of fl's tunnel after its first ClientHello,
// hello, was read and its server name, first, decided elsewhere (the
// transparent TLS listener): held client bytes, hello first, are held.
// Only a TLS 1.3 hello needs more: a HelloRetryRequest may follow.
func (m *openingCheck) startAfter(fl *flow, header, idle time.Duration, held int, hello *tlshello.ClientHello, first host.Host) step {
	*m = openingCheck{fl: fl, header: header, idle: idle, held: held}
	if fl.block == nil || fl.block.AllowSNIMismatch || !hello.TLS13 {
		return m.decide(step{kind: stepRelay})
	}
	return m.forward(hello.End, first)
}

// client shows the check buf, every client byte held and not forwarded.
func (m *openingCheck) client(buf []byte) step {
	if m.phase == phaseDone {
		return m.done
	}
	m.held = len(buf)
	if m.phase == phaseAnswer || len(buf) < m.need {
		return step{kind: stepMore}
	}
	if m.phase == phaseSecond {
		return m.second(buf)
	}
	h, err := tlshello.Parse(buf)
	switch {
	case err == tlshello.ErrIncomplete:
		m.need = h.Need()
		return step{kind: stepMore}
	case err == tlshello.ErrNotTLS:
		// SSH, SMTP, an SSLv2-format hello: none carries a server name a
		// front could route on, and the tunnel's host was decided.
		return m.decide(step{kind: stepRelay})
	case err != nil:
		return m.refuse(connectBadHello(m.fl, helloRefusal(buf, err, "")))
	}
	// With an Encrypted Client Hello the outer name is checked, the only one
	// in sight, as the transparent listener decides on it.
	sni, d, warn := checkSNI(m.fl, h.ServerName)
	if d != nil {
		return m.refuse(d)
	}
	st := step{kind: stepRelay}
	if h.TLS13 {
		st = m.forward(h.End, sni)
	} else {
		st = m.decide(st)
	}
	st.warn, st.warnHost = warn, sni
	return st
}

// forward answers a first ClientHello of n bytes, named first, that may
// meet a HelloRetryRequest: the origin reads it, and its answer decides.
func (m *openingCheck) forward(n int, first host.Host) step {
	m.phase, m.first, m.held, m.sneed = phaseAnswer, first, m.held-n, 1
	return step{kind: stepForward, n: n, timer: timerOpening}
}

// second checks the client's bytes after a HelloRetryRequest: a second
// ClientHello, after at most one change_cipher_spec, whose server name is
// the first's.
func (m *openingCheck) second(buf []byte) step {
	ch2, err := tlshello.ParseSecond(buf)
	if err == tlshello.ErrIncomplete {
		m.need = ch2.Need()
		return step{kind: stepMore}
	}
	if err != nil {
		return m.refuse(m.afterRetry(helloRefusal(buf, err, "")))
	}
	var second host.Host
	if ch2.ServerName != nil {
		second, err = wireHost(string(ch2.ServerName))
	}
	if err == nil && second == m.first {
		return m.decide(step{kind: stepRelay})
	}
	name := func(h host.Host) string {
		if h == (host.Host{}) {
			return "no server name"
		}
		return h.String()
	}
	said := name(second)
	if err != nil {
		said = fmt.Sprintf("%q, not a valid host name,", tlshello.PrintableSNI(ch2.ServerName))
	}
	d := &denial{
		reason: ReasonSNIMismatch,
		detail: fmt.Sprintf("after the origin's HelloRetryRequest in the tunnel to %s, the second TLS ClientHello names %s, the first %s (domain fronting)",
			m.fl.target(), said, name(m.first)),
		fix: "A client must send the same server name (SNI) in both ClientHellos of a TLS 1.3 handshake (RFC 8446 §4.1.2); allow_sni_mismatch = true in the client block turns the check off.",
	}
	if !learnLets(m.fl, second, err == nil && second != (host.Host{})) {
		return m.refuse(d)
	}
	st := m.decide(step{kind: stepRelay})
	st.warn, st.warnHost = d, second
	return st
}

// afterRetry is d, a refusal of what the client sent after the origin's
// HelloRetryRequest, for the tunnel.
func (m *openingCheck) afterRetry(d *denial) *denial {
	d.status = 0
	d.detail = fmt.Sprintf("tunnel to %s: after the origin's HelloRetryRequest, %s", m.fl.target(), d.detail)
	d.fix = "After a HelloRetryRequest, the client must send its second ClientHello, for the same server name, within -header-timeout."
	return d
}

// server shows the check b, bytes the origin sent since the last call. In
// phaseFirst only their arrival counts, and b may be empty if the caller
// relays them unread.
func (m *openingCheck) server(b []byte) step {
	switch m.phase {
	case phaseDone:
		return m.done
	case phaseFirst:
		// An origin that speaks first (an SSH or SMTP banner) is relayed
		// meanwhile: its client may wait for it however long, and the
		// tunnel's idle timeout bounds the wait instead.
		if m.spoke {
			return step{kind: stepMore}
		}
		m.spoke = true
		return step{kind: stepMore, timer: timerIdle}
	case phaseSecond:
		return step{kind: stepMore}
	}
	if len(b) == 0 {
		return step{kind: stepMore}
	}
	all := b
	if m.sbuf != nil {
		m.sbuf = append(m.sbuf, b[:min(len(b), tlshello.MaxBytes-len(m.sbuf))]...)
		all = m.sbuf
	}
	if len(all) >= m.sneed {
		sh, err := tlshello.ParseServerHello(all)
		if err != tlshello.ErrIncomplete {
			m.sbuf = nil
			return m.answer(sh, err)
		}
		m.sneed = sh.Need()
	}
	if m.sbuf == nil {
		m.sbuf = append(make([]byte, 0, max(len(b), 512)), b[:min(len(b), tlshello.MaxBytes)]...)
	}
	return step{kind: stepMore}
}

// answer decides on the origin's first handshake message after the first
// ClientHello: a HelloRetryRequest asks for a second ClientHello (checked
// when the client's bytes are shown again); anything else ends the check.
func (m *openingCheck) answer(sh tlshello.ServerHello, err error) step {
	switch {
	case err != nil:
		return m.refuse(&denial{reason: ReasonDialFailed, fix: originAnswerFix,
			detail: fmt.Sprintf("the origin of the tunnel to %s answered the TLS ClientHello with a handshake message larger than 16 KiB", m.fl.target())})
	case !sh.Retry:
		return m.decide(step{kind: stepRelay})
	}
	m.phase, m.need = phaseSecond, 0
	return step{kind: stepMore, timer: timerOpening}
}

// originAnswerFix is the fix of an origin whose answer to a ClientHello
// could not be read.
const originAnswerFix = "The origin must answer a TLS ClientHello within -header-timeout, with a first handshake message of at most 16 KiB."

// event tells the check of e; err is the error of an error event or the
// cause of evCanceled.
func (m *openingCheck) event(e openingEvent, err error) step {
	switch {
	case m.phase == phaseDone:
		return m.done
	case e == evCanceled:
		return m.end(relay.ReasonCanceled, err)
	case e == evClientWriteError:
		return m.end(relay.ReasonError, err)
	}
	switch m.phase {
	case phaseFirst:
		return m.firstEvent(e, err)
	case phaseAnswer:
		switch e {
		case evOriginEOF:
			// The origin closed without answering, so no
			// HelloRetryRequest comes; but a half-closed origin still
			// reads, and nothing would check a second ClientHello: the
			// tunnel ends.
			return m.end(relay.ReasonEOF, nil)
		case evOriginError:
			return m.end(relay.ReasonError, err)
		case evOpeningTimeout:
			return m.refuse(&denial{reason: ReasonDialFailed, fix: originAnswerFix,
				detail: fmt.Sprintf("the origin of the tunnel to %s did not answer the TLS ClientHello within %s, so a HelloRetryRequest could not be ruled out", m.fl.target(), m.header)})
		}
	case phaseSecond:
		switch e {
		case evClientEOF:
			return m.refuse(m.afterRetry(incompleteHello(m.held, readStopped(io.EOF, m.header))))
		case evClientError:
			return m.refuse(m.afterRetry(incompleteHello(m.held, readStopped(err, m.header))))
		case evOpeningTimeout:
			return m.refuse(m.afterRetry(incompleteHello(m.held, readStopped(os.ErrDeadlineExceeded, m.header))))
		}
	}
	// Not what this phase waits for: the origin is not read while the
	// client's second ClientHello is, nor the client while the origin's
	// answer is.
	return step{kind: stepMore}
}

// firstEvent decides a tunnel whose client has sent no complete first
// message when e comes.
func (m *openingCheck) firstEvent(e openingEvent, err error) step {
	var stopped string
	var st step
	switch e {
	case evOriginEOF, evOriginError:
		// The origin closed before the client spoke. A half-closed origin
		// still reads, and nothing would check what the client sends
		// next: the tunnel ends.
		stopped, st = "waited and the origin closed the connection", step{kind: stepEnd, reason: relay.ReasonEOF}
	case evIdleTimeout:
		if !m.spoke {
			return step{kind: stepMore} // only the header timeout applies yet
		}
		stopped, st = "was idle for "+m.idle.String(), step{kind: stepEnd, reason: relay.ReasonIdleTimeout}
	case evOpeningTimeout:
		if m.spoke {
			return step{kind: stepMore} // lifted: the idle timeout applies
		}
		stopped = readStopped(os.ErrDeadlineExceeded, m.header)
		d := badRequest("neither the client nor the origin sent anything within %s of the 200 to the CONNECT to %s, so the tunnel could not be checked for domain fronting",
			m.header, m.fl.target())
		d.status = 0
		d.fix = fmt.Sprintf("A TLS client sends its ClientHello at once. For a protocol in which neither side speaks that soon, raise -header-timeout, or set allow_sni_mismatch = true for client %q in %s.",
			m.fl.block.Name, m.fl.gen.pol.Filename())
		st = step{kind: stepRefuse, d: d}
	case evClientEOF, evClientError:
		// The client closed or failed: it sends nothing more to check.
		stopped, st = readStopped(err, m.header), step{kind: stepRelay}
		if e == evClientEOF {
			stopped = readStopped(io.EOF, m.header)
		}
	default:
		return step{kind: stepMore}
	}
	if m.held > 0 {
		return m.refuse(connectBadHello(m.fl, incompleteHello(m.held, stopped)))
	}
	return m.decide(st)
}

func (m *openingCheck) refuse(d *denial) step { return m.decide(step{kind: stepRefuse, d: d}) }

func (m *openingCheck) end(reason string, err error) step {
	return m.decide(step{kind: stepEnd, reason: reason, err: err})
}

// decide makes st the check's final answer.
func (m *openingCheck) decide(st step) step {
	m.phase, m.sbuf = phaseDone, nil
	m.done = st
	return st
}

// connectBadHello is d, a refusal of a tunnel's first bytes, for a CONNECT
// tunnel: no HTTP status (the 200 is sent), and the tunnel named.
func connectBadHello(fl *flow, d *denial) *denial {
	d.status = 0
	d.detail = "tunnel to " + fl.target() + ": " + d.detail
	d.fix = fmt.Sprintf("A TLS client must send its ClientHello first and whole, in TLS records of versions 3.0 to 3.4, within -header-timeout. A client that speaks another protocol starting with such a byte needs allow_sni_mismatch = true for client %q in %s.",
		fl.block.Name, fl.gen.pol.Filename())
	return d
}

// helloRefusal is the verdict on the first bytes a client sent in a tunnel,
// on which the CONNECT check and the transparent TLS listener agree: nil
// for a well-formed ClientHello, a bad_request otherwise. The CONNECT check
// lets bytes that are not TLS (tlshello.ErrNotTLS) pass before it asks. stopped says
// why reading ended before a ClientHello was complete.
func helloRefusal(buf []byte, perr error, stopped string) *denial {
	switch perr {
	case nil:
		return nil
	case tlshello.ErrNotTLS:
		return badRequest("not TLS: the connection starts with %q", truncate(string(buf[:min(len(buf), 8)]), 8))
	case tlshello.ErrIncomplete:
		return incompleteHello(len(buf), stopped)
	}
	return badRequest("malformed TLS ClientHello: %v", perr)
}

// incompleteHello refuses n bytes that began a ClientHello when reading
// stopped, as stopped says.
func incompleteHello(n int, stopped string) *denial {
	return badRequest("incomplete TLS ClientHello (%d bytes) when the client %s", n, stopped)
}

// checkSNI checks the server name raw of a ClientHello in fl's CONNECT
// tunnel: it must name fl's host, or a host fl's client block allows on
// fl's port. It returns the name (zero if there is none) and, if not, the
// sni_mismatch: a refusal d, or in learn mode a warning to log as a
// would_deny (learnLets).
func checkSNI(fl *flow, raw []byte) (sni host.Host, d, warn *denial) {
	if raw == nil {
		// No name to front with; and a client of an IP-literal target
		// sends none (RFC 6066).
		return host.Host{}, nil, nil
	}
	sni, err := wireHost(string(raw))
	if err == nil && (sni == fl.host || fl.block.Decide(sni, fl.port).Allowed) {
		return sni, nil, nil
	}
	d = &denial{
		reason: ReasonSNIMismatch,
		detail: fmt.Sprintf("the TLS server name (SNI) %s in the tunnel to %s names another host, which no allow rule in client block %q allows on port %d (domain fronting)",
			tlshello.PrintableSNI(raw), fl.target(), fl.block.Name, fl.port),
	}
	if err != nil {
		d.detail = fmt.Sprintf("the TLS server name (SNI) %q in the tunnel to %s is not a valid host name", tlshello.PrintableSNI(raw), fl.target())
	} else {
		d.fix = fmt.Sprintf("If the client must send this server name, allow it in client %q in %s:\n\n%s\nor turn the check off for the block with allow_sni_mismatch = true.",
			fl.block.Name, fl.gen.pol.Filename(), suggestRule(sni, fl.port))
	}
	if learnLets(fl, sni, err == nil) {
		return sni, nil, d
	}
	return sni, d, nil
}

// learnLets reports whether learn mode lets an sni_mismatch through, to be
// logged as a would_deny: if sni is the valid server name the client sent
// (which learning records) and no deny rule refuses it. Learning fills
// gaps in the allow rules: like a CONNECT target, a server name it cannot
// read or that a deny rule names is refused in learn mode too.
func learnLets(fl *flow, sni host.Host, valid bool) bool {
	return fl.block.Mode == policy.ModeLearn && valid && fl.block.Decide(sni, fl.port).Deny == nil
}
