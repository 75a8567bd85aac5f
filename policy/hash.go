package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"time"
)

// This file is the policy's identity: a canonical serialization of the
// compiled policy and its SHA-256, which the proxy writes on every decision
// record and metric so that a logged decision ties to the reviewed file.

// canonicalVersion opens the canonical form. A change to what the form
// holds, or how, changes it, so that hashes of two forms never collide.
const canonicalVersion = "azegress-policy-canonical-v1\n"

// SHA256 returns the SHA-256, in lower-case hex, of the canonical form of
// the compiled policy (see the package documentation, Policy identity).
// Two files have the same hash when they compile to the same policy:
// reformatting, comments and attribute order do not count; a renamed or
// reordered rule, and any changed value, do. It is computed on first use
// and cached; it is safe for concurrent use.
func (p *Policy) SHA256() string {
	p.shaOnce.Do(func() {
		h := sha256.New()
		p.writeCanonical(h)
		p.sha = hex.EncodeToString(h.Sum(nil))
	})
	return p.sha
}

// canonicalWriter appends the canonical form to a buffer that it hands to
// a hash in large pieces, so that a large policy is hashed without being
// held in memory whole.
type canonicalWriter struct {
	h   io.Writer
	buf []byte
}

func (w *canonicalWriter) flush() {
	_, _ = w.h.Write(w.buf)
	w.buf = w.buf[:0]
}

// line ends a line and flushes the buffer when it is nearly full.
func (w *canonicalWriter) line() {
	w.buf = append(w.buf, '\n')
	if len(w.buf) > cap(w.buf)-4096 {
		w.flush()
	}
}

func (w *canonicalWriter) key(k string) { w.buf = append(append(append(w.buf, ' '), k...), ' ') }

func (w *canonicalWriter) str(k, s string) {
	w.key(k)
	w.buf = appendQuote(w.buf, s)
}

// appendQuote is strconv.AppendQuote, quicker for the plain ASCII that
// names and normalized hosts are.
func appendQuote(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

func (w *canonicalWriter) strs(k string, ss []string) {
	w.key(k)
	w.buf = append(w.buf, '[')
	for i, s := range ss {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendQuote(w.buf, s)
	}
	w.buf = append(w.buf, ']')
}

// words writes a list of values that need no quotes: prefixes and ports.
func (w *canonicalWriter) words(k string, n int, word func(b []byte, i int) []byte) {
	w.key(k)
	w.buf = append(w.buf, '[')
	for i := range n {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = word(w.buf, i)
	}
	w.buf = append(w.buf, ']')
}

func (w *canonicalWriter) int(k string, n int64) {
	w.key(k)
	w.buf = strconv.AppendInt(w.buf, n, 10)
}

// writeCanonical writes p's canonical form to h: one line per top-level
// setting, client block, identity block, limits block and rule, every
// value in its compiled form and every list in compiled order. Source
// positions and the file name are left out.
func (p *Policy) writeCanonical(h io.Writer) {
	w := &canonicalWriter{h: h, buf: make([]byte, 0, 64<<10)}
	w.buf = append(w.buf, canonicalVersion...)
	w.buf = append(w.buf, "policy"...)
	w.str("cloud", p.cloud)
	w.line()
	if e := p.entra; e != nil {
		w.buf = append(w.buf, "entra"...)
		w.str("tenant_id", e.TenantID)
		w.strs("audiences", e.Audiences)
		w.int("clock_skew_ns", int64(e.ClockSkew))
		w.str("authority", e.Authority)
		w.line()
	}
	for _, c := range p.clients {
		w.buf = append(w.buf, "client"...)
		w.str("name", c.Name)
		w.str("mode", c.Mode.String())
		w.key("allow_sni_mismatch")
		w.buf = strconv.AppendBool(w.buf, c.AllowSNIMismatch)
		w.words("sources", len(c.Sources), func(b []byte, i int) []byte { return c.Sources[i].AppendTo(b) })
		w.line()
		if id := c.Identity; id != nil {
			w.buf = append(w.buf, " identity"...)
			w.strs("object_ids", id.ObjectIDs)
			w.strs("client_ids", id.ClientIDs)
			w.line()
		}
		if l := c.Limits; l != (Limits{}) {
			w.buf = append(w.buf, " limits"...)
			w.key("connections_per_second")
			w.buf = strconv.AppendFloat(w.buf, l.ConnectionsPerSecond, 'g', -1, 64)
			w.int("burst", int64(l.Burst))
			w.int("max_tunnels", int64(l.MaxTunnels))
			w.line()
		}
		for _, r := range c.Denies {
			w.rule(r)
		}
		for _, r := range c.Rules {
			w.rule(r)
		}
	}
	w.flush()
}

// rule writes one rule line. Deny rules come before allow rules, as Decide
// tries them; each kind keeps file order, which decides ties.
func (w *canonicalWriter) rule(r *Rule) {
	w.buf = append(append(w.buf, ' '), r.Kind()...)
	w.str("name", r.Name)
	w.strs("hosts", r.Hosts)
	w.strs("labels", r.Labels)
	w.strs("endpoints", r.Endpoints)
	w.words("ports", len(r.Ports), func(b []byte, i int) []byte { return strconv.AppendUint(b, uint64(r.Ports[i]), 10) })
	w.words("addresses", len(r.Addresses), func(b []byte, i int) []byte { return r.Addresses[i].AppendTo(b) })
	if !r.Expires.IsZero() {
		w.key("expires")
		w.buf = r.Expires.UTC().AppendFormat(w.buf, time.RFC3339Nano)
	}
	w.line()
}
