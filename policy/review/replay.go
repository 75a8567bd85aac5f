package review

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
)

// Replay reads recorded decisions, observation files (package learn's
// JSON lines) and the proxy's JSON log, and decides each recorded
// (client block, host, port) under a policy. It keeps one entry per such
// key, not per line, so a log of any length is read in memory bounded by
// the number of distinct destinations. A line that is not JSON, or not
// a record replay knows, is counted and skipped with a warning naming
// file and line.
//
// Log records: "deny" and "would deny" (decision deny, would_deny), and
// for allowed traffic "tunnel closed" and "request" records that name the
// allowing rule (a would_deny flow's has none; its "would deny" record
// counts it). An observation line counts with its cumulative count: per
// run the largest, summed over runs, as package learn merges them.
type Replay struct {
	pol *policy.Policy
	at  time.Time

	keys map[string]*replayKey // key: block, host, port
	runs map[string]*obsSnap   // observations: run and key -> the latest snapshot

	stats    ReplayStats
	warnings []string

	f    lineFields
	kbuf []byte
	long []byte
}

// ReplayStats counts what Replay read.
type ReplayStats struct {
	Files        int   `json:"files"`
	Lines        int64 `json:"lines"`
	Decisions    int64 `json:"decision_records"` // log records counted
	Observations int64 `json:"observation_lines"`
	Other        int64 `json:"other_records"` // log records that are no decision (startup, reloads, ...)
	Corrupt      int64 `json:"corrupt_lines"` // skipped, with a warning
}

type replayKey struct {
	block, host string
	port        uint16
	counts      [3]int64 // by verdict index
	rule        string   // the latest allowing rule
	reason      string   // the latest reason of a deny or would_deny
}

type obsSnap struct {
	key          *replayKey
	count        int64
	verdict      int
	rule, reason string
}

// The verdicts, as replayKey.counts indexes them.
var verdicts = [3]policy.Verdict{policy.VerdictAllow, policy.VerdictWouldDeny, policy.VerdictDeny}

func verdictIndex(v []byte) (int, bool) {
	for i, x := range verdicts {
		if string(v) == string(x) {
			return i, true
		}
	}
	return 0, false
}

// maxWarnings is how many corrupt lines are named one by one.
const maxWarnings = 20

// maxLine is the longest line read; a longer one is corrupt.
const maxLine = 1 << 20

// NewReplay returns a Replay that decides under p at the instant at.
func NewReplay(p *policy.Policy, at time.Time) *Replay {
	return &Replay{pol: p, at: at, keys: map[string]*replayKey{}, runs: map[string]*obsSnap{}}
}

// Read reads one file of JSON lines; name is for warnings. Only a read
// error is returned: corrupt lines are counted and skipped.
func (r *Replay) Read(name string, rd io.Reader) error {
	r.stats.Files++
	br := bufio.NewReaderSize(rd, 64<<10)
	for line := int64(1); ; line++ {
		b, err := br.ReadSlice('\n')
		tooLong := false
		if errors.Is(err, bufio.ErrBufferFull) {
			b, tooLong, err = r.longLine(br, b)
		}
		if len(b) > 0 || tooLong {
			r.stats.Lines++
			if tooLong {
				r.corrupt(name, line, fmt.Sprintf("line longer than %d KiB", maxLine>>10))
			} else {
				r.line(name, line, b)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
}

// longLine reads the rest of a line longer than the reader's buffer, b
// its start. A line longer than maxLine is skipped: tooLong, and no
// bytes.
func (r *Replay) longLine(br *bufio.Reader, b []byte) (line []byte, tooLong bool, err error) {
	r.long = append(r.long[:0], b...)
	for {
		more, err := br.ReadSlice('\n')
		if !tooLong {
			r.long = append(r.long, more...)
			if len(r.long) > maxLine {
				tooLong, r.long = true, r.long[:0]
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return nil, true, err
		}
		return r.long, false, err
	}
}

func (r *Replay) corrupt(name string, line int64, why string) {
	r.stats.Corrupt++
	if len(r.warnings) < maxWarnings {
		r.warnings = append(r.warnings, fmt.Sprintf("%s:%d: skipped: %s", name, line, why))
	}
}

// line counts one line.
func (r *Replay) line(name string, line int64, b []byte) {
	if len(bytes.TrimSpace(b)) == 0 {
		return
	}
	f := &r.f
	if err := f.scan(b); err != nil {
		r.corrupt(name, line, err.Error())
		return
	}
	switch {
	case f.hasMsg:
		r.logRecord()
	case f.hasRun:
		if len(f.host) == 0 || !f.hasPort || f.port == 0 {
			r.corrupt(name, line, "observation without host or port")
			return
		}
		v, ok := verdictIndex(f.decision)
		if !ok {
			r.corrupt(name, line, fmt.Sprintf("observation with decision %q", f.decision))
			return
		}
		r.stats.Observations++
		r.observation(v)
	default:
		r.corrupt(name, line, "neither a log record (msg) nor an observation (run)")
	}
}

// logRecord counts a proxy log record, if it is a decision.
func (r *Replay) logRecord() {
	f := &r.f
	v := -1
	switch string(f.msg) {
	case "deny":
		v = 2
	case "would deny":
		v = 1
	case "allow":
		v = 0
	case "tunnel closed", "request":
		if len(f.rule) > 0 {
			v = 0
		}
	}
	if d, ok := verdictIndex(f.decision); ok && v >= 0 {
		v = d
	}
	if v < 0 || len(f.host) == 0 || !f.hasPort {
		r.stats.Other++
		return
	}
	r.stats.Decisions++
	k := r.key(f.block, f.host, f.port)
	k.counts[v]++
	if v == 0 {
		setString(&k.rule, f.rule)
	} else {
		setString(&k.reason, f.reason)
	}
}

// setString sets *s to b, allocating only when it changes.
func setString(s *string, b []byte) {
	if *s != string(b) {
		*s = string(b)
	}
}

// key returns the entry of (block, host, port), made on first sight.
func (r *Replay) key(block, h []byte, port uint16) *replayKey {
	r.kbuf = append(append(append(r.kbuf[:0], block...), 0), h...)
	r.kbuf = append(r.kbuf, 0, byte(port>>8), byte(port))
	if k := r.keys[string(r.kbuf)]; k != nil {
		return k
	}
	k := &replayKey{block: string(block), host: string(h), port: port}
	r.keys[string(r.kbuf)] = k
	return k
}

// observation keeps the latest cumulative snapshot of its run and key.
func (r *Replay) observation(v int) {
	f := &r.f
	k := r.key(f.block, f.host, f.port)
	rk := string(f.run) + "\x00" + string(r.kbuf)
	s := r.runs[rk]
	if s == nil {
		s = &obsSnap{key: k, count: -1}
		r.runs[rk] = s
	}
	if f.count >= s.count {
		s.count, s.verdict, s.rule, s.reason = f.count, v, string(f.rule), string(f.reason)
	}
}

// ReplayReport is what the recorded traffic meets under the policy. Its
// JSON form is documented in the package documentation.
type ReplayReport struct {
	Policy string `json:"policy"`
	// PolicySHA256 is the policy's hash (policy.Policy.SHA256).
	PolicySHA256 string      `json:"policy_sha256"`
	At           time.Time   `json:"at"`
	Stats        ReplayStats `json:"stats"`
	Warnings     []string    `json:"warnings"` // the first corrupt lines, file:line
	// Destinations are the recorded keys, by client block, host and port.
	Destinations []ReplayDest `json:"destinations"`
	// Breaks counts the destinations the policy would break, and
	// BrokenConnections their recorded connections.
	Breaks            int   `json:"breaks"`
	BrokenConnections int64 `json:"broken_connections"`
	// Unused are the policy's allowed destinations no record used.
	Unused []UnusedGrant `json:"unused"`
}

// ReplayDest is one recorded destination of one client block.
type ReplayDest struct {
	ClientBlock string `json:"client_block"` // "" when the client was in no block
	Host        string `json:"host"`
	Port        uint16 `json:"port"`
	Count       int64  `json:"count"`
	// Then are the recorded decisions, with their counts.
	Then []Recorded `json:"then"`
	// Now is the policy's decision at At.
	Now Period `json:"now"`
	// Breaks reports whether traffic that passed (allow, or would_deny in
	// learn mode) is now denied.
	Breaks bool `json:"breaks"`
}

// Recorded is a recorded decision and how often it was made.
type Recorded struct {
	Verdict policy.Verdict `json:"verdict"`
	Count   int64          `json:"count"`
	Rule    string         `json:"rule,omitempty"`   // the latest allowing rule
	Reason  string         `json:"reason,omitempty"` // the latest reason
}

// UnusedGrant is an allowed destination of the policy that no record
// reached, on the ports listed.
type UnusedGrant struct {
	ClientBlock string   `json:"client_block"`
	Rule        string   `json:"rule"`
	Pos         string   `json:"pos"`
	Destination string   `json:"destination"`
	Ports       []uint16 `json:"ports"`
	Label       string   `json:"label,omitempty"`
}

// Report decides every recorded destination under the policy.
func (r *Replay) Report() *ReplayReport {
	for _, s := range r.runs {
		s.key.counts[s.verdict] += s.count
		if s.verdict == 0 && s.rule != "" {
			s.key.rule = s.rule
		} else if s.reason != "" {
			s.key.reason = s.reason
		}
	}
	clear(r.runs)
	rep := &ReplayReport{Policy: r.pol.Filename(), PolicySHA256: r.pol.SHA256(), At: r.at.UTC(), Stats: r.stats,
		Warnings: append([]string{}, r.warnings...), Destinations: []ReplayDest{}, Unused: []UnusedGrant{}}
	if r.stats.Corrupt > maxWarnings {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("and %d more corrupt lines", r.stats.Corrupt-maxWarnings))
	}
	byName := map[string]*policy.Client{}
	for _, c := range r.pol.Clients() {
		byName[c.Name] = c
	}
	var allowed []allowedKey
	for _, k := range r.keys {
		d := ReplayDest{ClientBlock: k.block, Host: k.host, Port: k.port}
		for i, n := range k.counts {
			if n == 0 {
				continue
			}
			rec := Recorded{Verdict: verdicts[i], Count: n}
			if i == 0 {
				rec.Rule = k.rule
			} else {
				rec.Reason = k.reason
			}
			d.Count += n
			d.Then = append(d.Then, rec)
		}
		c := byName[k.block]
		h, err := host.Parse(k.host)
		var p period
		switch {
		case err != nil:
			p = period{verdict: policy.VerdictDeny, reason: "invalid_host"}
		default:
			p = decideAt(c, h, k.port, r.at)
			if p.verdict == policy.VerdictAllow {
				allowed = append(allowed, allowedKey{c, h, k.port})
			}
		}
		d.Now = periods([]period{p})[0]
		d.Breaks = k.counts[0]+k.counts[1] > 0 && p.verdict == policy.VerdictDeny
		if d.Breaks {
			rep.Breaks++
			rep.BrokenConnections += k.counts[0] + k.counts[1]
		}
		rep.Destinations = append(rep.Destinations, d)
	}
	slices.SortFunc(rep.Destinations, func(a, b ReplayDest) int {
		return cmp.Or(strings.Compare(a.ClientBlock, b.ClientBlock), strings.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
	})
	rep.Unused = r.unused(allowed)
	return rep
}

// allowedKey is a recorded destination the policy allows.
type allowedKey struct {
	c    *policy.Client
	h    host.Host
	port uint16
}

// unused lists the destinations of the policy's allow rules, on the ports
// where the policy lets them through, that no recorded destination it
// allows falls under: a host pattern that covers its name, a prefix that
// contains its address. Which rule decides does not matter.
func (r *Replay) unused(allowed []allowedKey) []UnusedGrant {
	type blockGrants struct {
		gs     []Grant
		byHost map[string][]int // host pattern -> indexes in gs
		addrs  []int            // address grants
	}
	blocks := map[*policy.Client]*blockGrants{}
	for _, c := range r.pol.Clients() {
		bg := &blockGrants{gs: grants(r.pol, c, r.at), byHost: map[string][]int{}}
		for i, g := range bg.gs {
			switch {
			case g.Kind != "allow":
			case g.pattern != "":
				bg.byHost[g.pattern] = append(bg.byHost[g.pattern], i)
			default:
				bg.addrs = append(bg.addrs, i)
			}
		}
		blocks[c] = bg
	}
	type usedKey struct {
		c    *policy.Client
		i    int
		port uint16
	}
	used := map[usedKey]bool{}
	for _, a := range allowed {
		bg := blocks[a.c]
		mark := func(i int) {
			if slices.Contains(bg.gs[i].Ports, a.port) {
				used[usedKey{a.c, i, a.port}] = true
			}
		}
		if a.h.IsIP() {
			for _, i := range bg.addrs {
				if p := bg.gs[i].prefix; p.Contains(a.h.IP) || p.Contains(a.h.IP.Unmap()) {
					mark(i)
				}
			}
			continue
		}
		// The patterns that cover the name: itself, and a wildcard over
		// each proper suffix.
		for _, i := range bg.byHost[a.h.Name] {
			mark(i)
		}
		for s := a.h.Name; ; {
			dot := strings.IndexByte(s, '.')
			if dot < 0 {
				break
			}
			s = s[dot+1:]
			for _, i := range bg.byHost["*."+s] {
				mark(i)
			}
		}
	}
	out := []UnusedGrant{}
	for _, c := range r.pol.Clients() {
		bg := blocks[c]
		for i, g := range bg.gs {
			if g.Kind != "allow" {
				continue
			}
			var ports []uint16
			for _, port := range g.Ports {
				if !used[usedKey{c, i, port}] && strings.HasPrefix(statusOn(c, g.rule, g.probe, port, r.at), "reachable") {
					ports = append(ports, port)
				}
			}
			if len(ports) > 0 {
				out = append(out, UnusedGrant{ClientBlock: c.Name, Rule: g.Rule, Pos: g.Pos, Destination: g.Destination, Ports: ports, Label: g.Label})
			}
		}
	}
	return out
}
