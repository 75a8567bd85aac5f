package learn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/azegress/azegress/policy"
)

// Observation is one destination seen from one client block: what learning
// mode records and what reports are made from. In an observations file each
// line is an Observation as JSON, a cumulative snapshot for its key within
// one run of one proxy process.
type Observation struct {
	Run         string         `json:"run"`          // random id of the proxy process that saw it
	ClientBlock string         `json:"client_block"` // "" when the client was in no block
	Sources     []string       `json:"sources,omitempty"`
	Host        string         `json:"host"` // normalized name, or IP literal
	Port        uint16         `json:"port"`
	Count       int64          `json:"count"`
	FirstSeen   time.Time      `json:"first_seen"`
	LastSeen    time.Time      `json:"last_seen"`
	Label       string         `json:"label,omitempty"`    // catalog label, if the catalog knows the host
	Decision    policy.Verdict `json:"decision"`           // the latest
	Reason      string         `json:"reason,omitempty"`   // why, for deny and would_deny
	Rule        string         `json:"rule,omitempty"`     // allowing rule, for allow
	Cloud       string         `json:"cloud,omitempty"`    // the policy's cloud
	Mode        string         `json:"mode,omitempty"`     // the client block's mode
	Policy      string         `json:"policy,omitempty"`   // the policy file
	Instance    string         `json:"instance,omitempty"` // host name of the proxy
	// Identity is the client block's identity block, if it has one, and
	// Entra the policy's entra block with it, so that a report keeps
	// both.
	Identity *IdentityBlock `json:"identity,omitempty"`
	Entra    *EntraBlock    `json:"entra,omitempty"`
}

// IdentityBlock is a client block's identity block.
type IdentityBlock struct {
	ObjectIDs []string `json:"object_ids,omitempty"`
	ClientIDs []string `json:"client_ids,omitempty"`
}

// EntraBlock is a policy's entra block.
type EntraBlock struct {
	TenantID  string   `json:"tenant_id"`
	Audiences []string `json:"audiences"`
	ClockSkew string   `json:"clock_skew"` // a Go duration: "1m0s"
	Authority string   `json:"authority"`  // the one in force, given or the cloud's
}

// identityOf returns c's identity block and the policy's entra block, or
// nils for an address-keyed block.
func identityOf(c *policy.Client) (*IdentityBlock, *EntraBlock) {
	if c == nil || c.Identity == nil {
		return nil, nil
	}
	id := &IdentityBlock{ObjectIDs: c.Identity.ObjectIDs, ClientIDs: c.Identity.ClientIDs}
	if e := c.Identity.Entra; e != nil {
		return id, &EntraBlock{TenantID: e.TenantID, Audiences: e.Audiences, ClockSkew: e.ClockSkew.String(), Authority: e.Authority}
	}
	return id, nil
}

type obsKey struct {
	block, host string
	port        uint16
}

func (o *Observation) key() obsKey { return obsKey{o.ClientBlock, o.Host, o.Port} }

// Recorder accumulates observations in memory and appends them to a file:
// a destination seen for the first time is written at once (the fact that
// matters for a policy), later counts at most every FlushInterval. Each
// line is written with one write(2), so a crash of the process loses only
// counts not yet flushed, and a restart appends to the same file under a new
// run id.
type Recorder struct {
	run      string
	instance string

	mu    sync.Mutex
	obs   map[obsKey]*Observation
	dirty map[obsKey]bool
	w     io.Writer // nil: in memory only
	err   error     // first write error
}

// NewRecorder returns a Recorder writing to w (nil: memory only).
func NewRecorder(w io.Writer) *Recorder {
	var b [8]byte
	_, _ = rand.Read(b[:])
	host, _ := os.Hostname()
	return &Recorder{run: hex.EncodeToString(b[:]), instance: host, obs: map[obsKey]*Observation{}, dirty: map[obsKey]bool{}, w: w}
}

// Observe records one decided connection or request from client block c
// (nil: the client was in no block). o.Count, Run, Sources, FirstSeen and
// LastSeen are filled in by the Recorder.
func (r *Recorder) Observe(c *policy.Client, o Observation, now time.Time) {
	k := o.key()
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.obs[k]
	if cur == nil {
		o.Run, o.Instance = r.run, r.instance
		if c != nil {
			o.Sources = prefixStrings(c.Sources)
			o.Identity, o.Entra = identityOf(c)
		}
		o.Count, o.FirstSeen, o.LastSeen = 1, now, now
		r.obs[k] = &o
		r.writeLocked(&o)
		return
	}
	cur.Count++
	cur.LastSeen = now
	if cur.Decision != o.Decision || cur.Rule != o.Rule || cur.Reason != o.Reason {
		// A reload changed the verdict: that is news, write it now.
		cur.Decision, cur.Rule, cur.Reason, cur.Mode, cur.Policy = o.Decision, o.Rule, o.Reason, o.Mode, o.Policy
		delete(r.dirty, k)
		r.writeLocked(cur)
		return
	}
	r.dirty[k] = true
}

// Flush writes the observations updated since the last write.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]obsKey, 0, len(r.dirty))
	for k := range r.dirty {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	for _, k := range keys {
		r.writeLocked(r.obs[k])
	}
	clear(r.dirty)
	if s, ok := r.w.(interface{ Sync() error }); ok && r.err == nil {
		if err := s.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
			r.err = err
		}
	}
	return r.err
}

func (r *Recorder) writeLocked(o *Observation) {
	if r.w == nil {
		return
	}
	b, err := json.Marshal(o)
	if err == nil {
		_, err = r.w.Write(append(b, '\n'))
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("writing observations: %w", err)
	}
}

// Err returns the first write error, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Snapshot returns the current observations, sorted.
func (r *Recorder) Snapshot() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Observation, 0, len(r.obs))
	for _, o := range r.obs {
		out = append(out, *o)
	}
	sortObservations(out)
	return out
}

func keyLess(a, b obsKey) bool {
	if a.block != b.block {
		return a.block < b.block
	}
	if a.host != b.host {
		return a.host < b.host
	}
	return a.port < b.port
}

func sortObservations(obs []Observation) {
	sort.Slice(obs, func(i, j int) bool { return keyLess(obs[i].key(), obs[j].key()) })
}

// ReadObservations reads observation files (JSON lines) and merges them:
// within one run the last line for a key is its cumulative state; across
// runs and instances counts add up, first_seen is the earliest and
// last_seen, with its decision, the latest. A malformed line is an error
// naming file and line.
func ReadObservations(files ...string) ([]Observation, error) {
	var all []Observation
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		obs, err := parseObservations(f, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, obs...)
	}
	return MergeObservations(all), nil
}

func parseObservations(name string, r io.Reader) ([]Observation, error) {
	var out []Observation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var o Observation
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("%s:%d: not an observation line: %v", name, line, err)
		}
		if o.Host == "" || o.Port == 0 {
			return nil, fmt.Errorf("%s:%d: observation without host or port", name, line)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return out, nil
}

// MergeObservations merges snapshots as ReadObservations describes.
func MergeObservations(obs []Observation) []Observation {
	type runKey struct {
		run string
		k   obsKey
	}
	latest := map[runKey]Observation{}
	for _, o := range obs {
		rk := runKey{o.Run, o.key()}
		if prev, ok := latest[rk]; !ok || o.Count >= prev.Count || o.LastSeen.After(prev.LastSeen) {
			latest[rk] = o
		}
	}
	merged := map[obsKey]*Observation{}
	for _, o := range latest {
		m := merged[o.key()]
		if m == nil {
			c := o
			c.Run, c.Instance = "", ""
			merged[o.key()] = &c
			continue
		}
		m.Count += o.Count
		if o.FirstSeen.Before(m.FirstSeen) {
			m.FirstSeen = o.FirstSeen
		}
		if o.LastSeen.After(m.LastSeen) {
			m.LastSeen = o.LastSeen
			m.Decision, m.Reason, m.Rule, m.Mode, m.Policy = o.Decision, o.Reason, o.Rule, o.Mode, o.Policy
			if o.Identity != nil {
				m.Identity, m.Entra = o.Identity, o.Entra
			}
		}
		if m.Identity == nil {
			m.Identity, m.Entra = o.Identity, o.Entra
		}
		if m.Label == "" {
			m.Label = o.Label
		}
		if len(m.Sources) == 0 {
			m.Sources = o.Sources
		}
	}
	out := make([]Observation, 0, len(merged))
	for _, o := range merged {
		out = append(out, *o)
	}
	sortObservations(out)
	return out
}

// prefixStrings renders prefixes for an observation's Sources.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
