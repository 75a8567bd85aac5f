package asim

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The schema this package writes, and what names the product.
const (
	Schema        = "WebSession"
	SchemaVersion = "0.2.6"
	Product       = "azegress"
	Vendor        = "azegress"
)

// The proxy's record messages and attribute keys this package maps
// (proxy/logattrs.go; stable: the proxy adds keys, never renames them).
// An attribute it does not map goes to AdditionalFields as it is.
const (
	msgDeny      = "deny"
	msgWouldDeny = "would deny"
	msgTunnel    = "tunnel closed"
	msgRequest   = "request"

	keyKind     = "kind"
	keyClient   = "client"
	keyHost     = "host"
	keyPort     = "port"
	keyDecision = "decision"
	keyReason   = "reason"
	keyDetail   = "detail"
	keyRule     = "rule"
	keyDstIP    = "dst_ip"
	keyStatus   = "status"
	keyMethod   = "method"
	keyBytesUp  = "bytes_up"
	keyBytesDn  = "bytes_down"
	keyDuration = "duration_ms"
	keyOID      = "oid"
)

// Record is one decision in the Web Session schema, its fields in the
// schema's order; an empty field is left out. Every field is a column of
// ASimWebSessionLogs.
type Record struct {
	TimeGenerated              string `json:"TimeGenerated"`
	EventCount                 int    `json:"EventCount"`
	EventStartTime             string `json:"EventStartTime"`
	EventEndTime               string `json:"EventEndTime"`
	EventType                  string `json:"EventType"`
	EventResult                string `json:"EventResult"`
	EventResultDetails         string `json:"EventResultDetails,omitempty"`
	EventOriginalResultDetails string `json:"EventOriginalResultDetails,omitempty"`
	EventSeverity              string `json:"EventSeverity"`
	EventOriginalSeverity      string `json:"EventOriginalSeverity"`
	EventMessage               string `json:"EventMessage,omitempty"`
	EventProduct               string `json:"EventProduct"`
	EventProductVersion        string `json:"EventProductVersion,omitempty"`
	EventVendor                string `json:"EventVendor"`
	EventSchema                string `json:"EventSchema"`
	EventSchemaVersion         string `json:"EventSchemaVersion"`
	Dvc                        string `json:"Dvc,omitempty"`
	DvcHostname                string `json:"DvcHostname,omitempty"`
	DvcAction                  string `json:"DvcAction"`
	DvcOriginalAction          string `json:"DvcOriginalAction,omitempty"`
	SrcIpAddr                  string `json:"SrcIpAddr,omitempty"`
	SrcPortNumber              int    `json:"SrcPortNumber,omitempty"`
	SrcUserId                  string `json:"SrcUserId,omitempty"`
	SrcUserIdType              string `json:"SrcUserIdType,omitempty"`
	SrcUserType                string `json:"SrcUserType,omitempty"`
	DstIpAddr                  string `json:"DstIpAddr,omitempty"`
	DstPortNumber              int    `json:"DstPortNumber,omitempty"`
	DstHostname                string `json:"DstHostname,omitempty"`
	DstDomain                  string `json:"DstDomain,omitempty"`
	DstDomainType              string `json:"DstDomainType,omitempty"`
	DstFQDN                    string `json:"DstFQDN,omitempty"`
	NetworkApplicationProtocol string `json:"NetworkApplicationProtocol,omitempty"`
	NetworkProtocol            string `json:"NetworkProtocol"`
	NetworkDirection           string `json:"NetworkDirection"`
	NetworkDuration            *int64 `json:"NetworkDuration,omitempty"`
	SrcBytes                   *int64 `json:"SrcBytes,omitempty"`
	DstBytes                   *int64 `json:"DstBytes,omitempty"`
	NetworkBytes               *int64 `json:"NetworkBytes,omitempty"`
	Url                        string `json:"Url,omitempty"`
	HttpRequestMethod          string `json:"HttpRequestMethod,omitempty"`
	RuleName                   string `json:"RuleName,omitempty"`
	Rule                       string `json:"Rule,omitempty"`
	ThreatCategory             string `json:"ThreatCategory,omitempty"`
	AdditionalFields           Fields `json:"AdditionalFields,omitempty"`
}

// Options configure a Handler.
type Options struct {
	// Level is the minimum level written. If nil, Info.
	Level slog.Leveler
	// Dvc names the reporting device (Dvc, DvcHostname): this host. If
	// empty, the fields are left out.
	Dvc string
	// ProductVersion is EventProductVersion (azegress version). If empty,
	// it is left out.
	ProductVersion string
}

// Handler is an slog.Handler that writes decision records as Web Session
// records and every other record as slog's JSON handler would.
type Handler struct {
	w     *lockedWriter
	opts  Options
	other slog.Handler // the JSON handler for records that are not decisions
	attrs []slog.Attr  // from WithAttrs, group prefixes applied
	group string       // from WithGroup: the prefix of later keys, "a.b."
}

var _ slog.Handler = (*Handler)(nil)

// lockedWriter writes one record per Write, whole, for both forms.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// NewHandler returns a Handler that writes to w.
func NewHandler(w io.Writer, opts Options) *Handler {
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	lw := &lockedWriter{w: w}
	return &Handler{w: lw, opts: opts, other: slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: opts.Level})}
}

// Enabled reports whether level is at or above Options.Level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.opts.Level.Level()
}

// WithAttrs returns a Handler that adds as to every record.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.other = h.other.WithAttrs(as)
	c.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], prefixed(h.group, as)...)
	return &c
}

// WithGroup returns a Handler that qualifies later keys with name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.other = h.other.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

// prefixed is as with group before each key and each value resolved.
func prefixed(group string, as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if !a.Equal(slog.Attr{}) {
			out = append(out, slog.Attr{Key: group + a.Key, Value: a.Value.Resolve()})
		}
	}
	return out
}

// Handle writes r: a decision as one Web Session record, anything else in
// slog's JSON form.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if !IsDecision(r.Message) {
		return h.other.Handle(ctx, r)
	}
	var buf [32]slog.Attr // a decision record has fewer
	as := attrs(append(buf[:0], h.attrs...))
	r.Attrs(func(a slog.Attr) bool {
		if !a.Equal(slog.Attr{}) {
			as = append(as, slog.Attr{Key: h.group + a.Key, Value: a.Value.Resolve()})
		}
		return true
	})
	var rec Record
	h.fill(&rec, r, as)
	rec.AdditionalFields = Fields(as.rest())
	bp := bufPool.Get().(*[]byte)
	b := append(rec.AppendJSON((*bp)[:0]), '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
	return err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// attrs are a record's attributes; fill takes those it maps, and rest
// returns the others, for AdditionalFields.
type attrs []slog.Attr

// take returns the value of the last attribute named k, and removes every
// attribute named k.
func (as attrs) take(k string) (slog.Value, bool) {
	var v slog.Value
	found := false
	for i := range as {
		if as[i].Key == k {
			v, found = as[i].Value, true
			as[i].Key = ""
		}
	}
	return v, found
}

// peek is take without the removing.
func (as attrs) peek(k string) (slog.Value, bool) {
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].Key == k {
			return as[i].Value, true
		}
	}
	return slog.Value{}, false
}

func (as attrs) rest() []slog.Attr {
	out := as[:0]
	for _, a := range as {
		if a.Key != "" {
			out = append(out, a)
		}
	}
	return out
}

// IsDecision reports whether a record with message msg is a decision
// record, which Handle writes in the Web Session schema.
func IsDecision(msg string) bool {
	switch msg {
	case msgDeny, msgWouldDeny, msgTunnel, msgRequest:
		return true
	}
	return false
}

// fill maps a decision record into rec. It takes from as what it maps,
// and leaves the rest for AdditionalFields.
func (h *Handler) fill(rec *Record, r slog.Record, as attrs) {
	str := func(k string) string {
		v, ok := as.take(k)
		if !ok {
			return ""
		}
		return v.String()
	}
	num := func(k string) (int64, bool) {
		v, ok := as.peek(k)
		if !ok {
			return 0, false
		}
		switch v.Kind() {
		case slog.KindInt64:
			as.take(k)
			return v.Int64(), true
		case slog.KindUint64:
			as.take(k)
			return int64(v.Uint64()), true
		}
		return 0, false // not a number: left for AdditionalFields
	}
	end := r.Time
	if end.IsZero() {
		end = time.Now()
	}
	end = end.UTC()
	*rec = Record{
		TimeGenerated:         end.Format(time.RFC3339Nano),
		EventCount:            1,
		EventEndTime:          end.Format(time.RFC3339Nano),
		EventType:             "HTTPsession",
		EventOriginalSeverity: r.Level.String(),
		EventProduct:          Product,
		EventProductVersion:   h.opts.ProductVersion,
		EventVendor:           Vendor,
		EventSchema:           Schema,
		EventSchemaVersion:    SchemaVersion,
		Dvc:                   h.opts.Dvc,
		DvcHostname:           h.opts.Dvc,
		NetworkProtocol:       "TCP",
		NetworkDirection:      "Outbound",
	}
	start := end
	if ms, ok := num(keyDuration); ok {
		rec.NetworkDuration = ptr(ms)
		start = end.Add(-time.Duration(ms) * time.Millisecond)
	}
	rec.EventStartTime = start.Format(time.RFC3339Nano)

	kind := ""
	if v, ok := as.peek(keyKind); ok {
		kind = v.String() // kept in AdditionalFields too: the listener
	}
	decision, reason := str(keyDecision), str(keyReason)
	if decision == "" { // tunnel closed, request: only flows let through get there
		decision, reason = "allow", "allowed"
		if _, ok := as.peek(keyRule); !ok {
			decision, reason = "would_deny", "no_rule" // learn mode: no rule allowed it
		}
	}
	rec.DvcOriginalAction, rec.EventOriginalResultDetails = decision, reason
	status, hasStatus := num(keyStatus)
	hasStatus = hasStatus && status > 0 // 0: refused after the 200, or with a TLS alert
	if !hasStatus && r.Message == msgTunnel && kind == "connect" {
		status, hasStatus = 200, true // the tunnel began with a 200
	}
	if hasStatus {
		rec.EventResultDetails = strconv.FormatInt(status, 10)
	}
	switch {
	case decision == "deny":
		rec.DvcAction, rec.EventResult, rec.EventSeverity = "Deny", "Failure", "Low"
		rec.EventMessage = str(keyDetail)
	default: // allow, would_deny: the flow went through
		rec.DvcAction, rec.EventResult, rec.EventSeverity = "Allow", "Success", "Informational"
		if hasStatus && status >= 400 { // the schema's result is the HTTP status's
			rec.EventResult = "Failure"
		}
		rec.EventMessage = r.Message
		if d := str(keyDetail); d != "" {
			rec.EventMessage = d
		}
	}
	if c := threatCategory[reason]; c != "" {
		rec.ThreatCategory, rec.EventSeverity = c, "Medium"
	}

	if ap, err := netip.ParseAddrPort(str(keyClient)); err == nil {
		rec.SrcIpAddr, rec.SrcPortNumber = ap.Addr().String(), int(ap.Port())
	}
	if oid := str(keyOID); oid != "" {
		rec.SrcUserId, rec.SrcUserIdType, rec.SrcUserType = oid, "AADID", "Service Principal"
	}
	host := str(keyHost)
	port, _ := num(keyPort)
	rec.DstIpAddr = str(keyDstIP)
	if host != "" {
		if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			rec.DstHostname = ip.String() // no name: the schema wants the address here
			if rec.DstIpAddr == "" {
				rec.DstIpAddr = ip.String()
			}
		} else {
			rec.DstFQDN = host
			rec.DstHostname, rec.DstDomain, _ = strings.Cut(host, ".")
			if rec.DstDomain != "" {
				rec.DstDomainType = "FQDN"
			}
		}
		// The authority decided on; the path and query are never logged.
		rec.Url = host
		if port > 0 {
			rec.Url = net.JoinHostPort(strings.Trim(host, "[]"), strconv.FormatInt(port, 10))
		}
	}
	if port > 0 && port <= 65535 {
		rec.DstPortNumber = int(port)
	}
	rec.NetworkApplicationProtocol = appProtocol(kind, rec.DstPortNumber)
	rec.HttpRequestMethod = str(keyMethod)
	if rec.HttpRequestMethod == "" && kind == "connect" {
		rec.HttpRequestMethod = "CONNECT"
	}
	if rule := str(keyRule); rule != "" {
		rec.RuleName, rec.Rule = rule, rule
	}
	up, okUp := num(keyBytesUp)
	down, okDown := num(keyBytesDn)
	if okUp && okDown {
		rec.SrcBytes, rec.DstBytes, rec.NetworkBytes = ptr(up), ptr(down), ptr(up+down)
	}
}

func ptr(n int64) *int64 { return &n }

// threatCategory is ThreatCategory for the refusals that are a client
// evading the policy rather than a destination the policy lacks: a TLS
// server name other than the CONNECT target (domain fronting). The value is
// one of the ASIM's threat categories.
var threatCategory = map[string]string{
	"sni_mismatch": "Spoofing",
}

// appProtocol is NetworkApplicationProtocol: what the listener speaks, or
// for a CONNECT tunnel what its port implies (the schema's advice when the
// source does not know).
func appProtocol(kind string, port int) string {
	switch kind {
	case "http", "transparent_http":
		return "HTTP"
	case "transparent_tls":
		return "TLS"
	case "connect":
		switch port {
		case 443:
			return "HTTPS"
		case 80:
			return "HTTP"
		}
	}
	return ""
}
