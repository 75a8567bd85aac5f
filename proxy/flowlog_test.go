package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// slogJSON is what slog.JSONHandler writes for a record at Info at t.
func slogJSON(t testing.TB, at time.Time, msg string, attrs []slog.Attr) string {
	t.Helper()
	var b bytes.Buffer
	r := slog.NewRecord(at, slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	if err := slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// hostile are strings that JSON must escape, or that a careless escaper
// gets wrong.
var hostile = []string{
	"",
	`quote " and backslash \ and \"`,
	"controls \x00\x01\x07\x08\x0b\x0c\x1b\x1f and \n\r\t and DEL \x7f",
	"invalid UTF-8: \xff \xfe \xc3 \xe2\x80 \xed\xa0\x80 (surrogate) \xf4\x90\x80\x80 (beyond U+10FFFF)",
	"truncated at the end \xe2\x80",
	"html <script>alert('&amp;')</script>",
	"separators \u2028 and \u2029 and \u2027 \u202a",
	"multibyte é 日本 🙂 \ufffd \ufeff",
	strings.Repeat("long \"string\" \\ \x01 é \u2028 ", 300), // beyond logFlow's 1 KiB buffer
}

// flowCase is a flow to log, built under the policy p.
type flowCase struct {
	name string
	make func(p *policy.Policy, s string) *flow
}

// flowCases are flows with each optional part of a record present and
// absent, their free text s.
var flowCases = []flowCase{
	{"bare", func(*policy.Policy, string) *flow { return &flow{kind: kindConnect} }},
	{"unserved", func(p *policy.Policy, _ string) *flow {
		return &flow{kind: kindHTTP, gen: &generation{pol: p}, client: netip.MustParseAddrPort("[2001:db8::1]:443")}
	}},
	{"allowed", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindConnect, client: netip.MustParseAddrPort("127.0.0.1:40720"), gen: &generation{pol: p},
			block: &policy.Client{Name: s}, host: host.Host{Name: "origin." + s}, port: 7001, rule: &policy.Rule{Name: s}}
	}},
	{"label, IP host, learn mode", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindTransparentTLS, client: netip.MustParseAddrPort("10.0.0.1:1"), gen: &generation{pol: p},
			block: &policy.Client{Name: s, Mode: policy.ModeLearn}, host: host.Host{IP: netip.MustParseAddr("2001:db8::2")}, port: 443}
	}},
	{"catalog label", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindHTTP, client: netip.MustParseAddrPort("10.0.0.1:1"), gen: &generation{pol: p},
			block: &policy.Client{Name: s}, host: host.Host{Name: "management.azure.com"}, port: 443, rule: &policy.Rule{Name: s}}
	}},
	{"identity", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindConnect, client: netip.MustParseAddrPort("10.0.0.1:1"), gen: &generation{pol: p},
			block: &policy.Client{Name: s}, host: host.Host{Name: "x.example"}, port: 443, rule: &policy.Rule{Name: s},
			auth: authOK, id: identity.Identity{ObjectID: "oid" + s, AppID: s, TenantID: s,
				Expiry: time.Date(2026, 12, 7, 13, 0, 0, 0, time.FixedZone("CET", 3600)), Fingerprint: s}}
	}},
	{"identity, zero expiry", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindConnect, gen: &generation{pol: p}, auth: authOK, id: identity.Identity{ObjectID: "oid", Fingerprint: s}}
	}},
	{"refused token", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindConnect, gen: &generation{pol: p}, auth: authRefused, authReason: s, tokenFP: s}
	}},
	{"no token", func(p *policy.Policy, s string) *flow {
		return &flow{kind: kindHTTP, gen: &generation{pol: p}, block: &policy.Client{Name: s}, auth: authMissing}
	}},
}

// tunnelAttrs and requestAttrs are the attributes of the two per-flow
// records, as tunnelClosed, forward and the engine build them.
func tunnelAttrs(fl *flow, why string, err error) []slog.Attr {
	a := append(fl.attrs(), slog.Int64(keyBytesUp, 1), slog.Int64(keyBytesDown, -1<<63),
		slog.Int64(keyDurationMS, 6), slog.String(keyCloseReason, why))
	if err != nil {
		a = append(a, slog.String(keyError, err.Error()))
	}
	return a
}

func requestAttrs(fl *flow) []slog.Attr {
	return append(fl.attrs(), slog.Int(keyStatus, 200), slog.Int64(keyDurationMS, 1<<62))
}

// The per-flow records logFlow writes itself are byte for byte what slog's
// JSON handler writes, for every shape of flow and any text in it.
func TestAppendJSONRecord(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		time.Date(2026, 12, 7, 12, 37, 47, 938165222, time.UTC),
		time.Date(2026, 12, 7, 12, 37, 47, 0, time.UTC),           // no fraction
		time.Date(2026, 12, 7, 12, 37, 47, 100000000, time.Local), // trailing zeros, local zone
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", -(9*3600+30*60))),
		time.Date(2026, 1, 2, 3, 4, 5, 7, time.UTC), // the same second, another zone
		time.Date(2026, 1, 2, 3, 4, 5, 8, time.FixedZone("", 30)),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), // before 1970
		time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC),
	}
	for _, s := range hostile {
		pol := loadPolicy(t, "client \"c\" {\n  sources = [\"10.0.0.0/8\"]\n}\n")
		if s != "" {
			p, diags := policy.Load("/etc/"+s+".hcl", []byte("client \"c\" {\n  sources = [\"10.0.0.0/8\"]\n}\n"))
			if diags.HasErrors() {
				t.Fatal(policy.FormatDiagnostics(diags))
			}
			pol = p
		}
		for i, fc := range flowCases {
			fl := fc.make(pol, s)
			at := times[i%len(times)]
			for _, rec := range []struct {
				msg   string
				attrs []slog.Attr
			}{
				{msgTunnelClosed, tunnelAttrs(fl, s, nil)},
				{msgTunnelClosed, tunnelAttrs(fl, "error", errors.New(s))},
				{msgRequest, requestAttrs(fl)},
				{s, nil},
			} {
				want := slogJSON(t, at, rec.msg, rec.attrs)
				got, ok := appendJSONRecord(nil, at, rec.msg, rec.attrs)
				if !ok {
					t.Errorf("%s, %.20q: %s record left to slog", fc.name, s, rec.msg)
				} else if string(got) != want {
					t.Errorf("%s, %.20q: %s record\n got %q\nwant %q", fc.name, s, rec.msg, got, want)
				}
			}
		}
	}
}

// Every byte and every value kind: appendJSONRecord writes what slog does,
// or leaves the record to slog.
func TestAppendJSONRecordKinds(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 12, 37, 47, 938165222, time.UTC)
	var attrs []slog.Attr
	for c := range 256 {
		attrs = append(attrs, slog.String(fmt.Sprintf("k%d%c", c, byte(c)), string([]byte{'v', byte(c)})))
	}
	for _, tt := range []struct {
		name  string
		attrs []slog.Attr
		ok    bool
	}{
		{"every byte", attrs, true},
		{"ints", []slog.Attr{slog.Int64("a", 0), slog.Int64("b", -1<<63), slog.Int("c", 1<<62)}, true},
		{"times", []slog.Attr{slog.Time("a", time.Time{}), slog.Time("b", at.In(time.FixedZone("X", 7))), slog.Time("c", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC))}, true},
		{"year 10000", []slog.Attr{slog.Time("t", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}, false},
		{"year -1", []slog.Attr{slog.Time("t", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))}, false},
		{"bool", []slog.Attr{slog.Bool("b", true)}, false},
		{"uint", []slog.Attr{slog.Uint64("u", 1)}, false},
		{"float", []slog.Attr{slog.Float64("f", 1)}, false},
		{"duration", []slog.Attr{slog.Duration("d", time.Second)}, false},
		{"any", []slog.Attr{slog.Any("e", errors.New("x"))}, false},
		{"group", []slog.Attr{slog.Group("g", "a", 1)}, false},
		{"empty key", []slog.Attr{slog.String("", "v")}, false},
		{"empty attr", []slog.Attr{{}}, false},
	} {
		got, ok := appendJSONRecord(nil, at, "m", tt.attrs)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v", tt.name, ok, tt.ok)
		} else if want := slogJSON(t, at, "m", tt.attrs); ok && string(got) != want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, want)
		}
	}
	if _, ok := appendJSONRecord(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "m", nil); ok {
		t.Errorf("a record of the year 10000 was not left to slog")
	}
}

func FuzzAppendJSONRecord(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, "key", s, int64(-1), int64(1796647067938165222), int32(0))
		f.Add(s, "k", s, int64(1<<40), int64(1796647067000000000), int32(1))
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -1)}
	f.Fuzz(func(t *testing.T, msg, key, val string, n, nsec int64, zone int32) {
		loc := time.FixedZone("", int(zone%(24*3600)))
		if zone >= 0 && int(zone) < len(zones) {
			loc = zones[zone]
		}
		at := time.Unix(0, nsec).In(loc)
		attrs := []slog.Attr{slog.String(key, val), slog.Int64(val, n), slog.Time(key, at), slog.String(kindConnect, msg)}
		got, ok := appendJSONRecord(nil, at, msg, attrs)
		if ok && string(got) != slogJSON(t, at, msg, attrs) {
			t.Fatalf("\n got %q\nwant %q", got, slogJSON(t, at, msg, attrs))
		}
		if !ok && key != "" && val != "" { // an empty key is left to slog
			t.Fatalf("left to slog: %q", got)
		}
	})
}

// msgLog is a handler that notes the message of every record it and the
// handlers derived from it handle.
type msgLog struct {
	slog.Handler
	notes *msgNotes
}

type msgNotes struct {
	mu   sync.Mutex
	msgs []string
}

func (h *msgLog) Handle(ctx context.Context, r slog.Record) error {
	h.notes.mu.Lock()
	h.notes.msgs = append(h.notes.msgs, r.Message)
	h.notes.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *msgLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &msgLog{Handler: h.Handler.WithAttrs(as), notes: h.notes}
}

func (h *msgLog) WithGroup(name string) slog.Handler {
	return &msgLog{Handler: h.Handler.WithGroup(name), notes: h.notes}
}

func (h *msgLog) seen() []string {
	h.notes.mu.Lock()
	defer h.notes.mu.Unlock()
	return slices.Clone(h.notes.msgs)
}

// A Server whose Logger is a LogWriter's JSONHandler writes its tunnel and
// request records itself, not through slog, on either path (goroutines or
// the engine); other records still go through slog.
func TestFlowRecordsBypassSlog(t *testing.T) {
	t.Parallel()
	_, port := httpOrigin(t, "origin")
	var out syncBuffer
	lw := NewLogWriter(&out, time.Hour)
	h := lw.JSONHandler(slog.LevelInfo).(*flushHandler)
	inner := &msgLog{Handler: h.Handler, notes: new(msgNotes)}
	h.Handler = inner
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"), func(c *Config) { c.Logger = slog.New(h) })

	resp, err := tp.client("").Get(fmt.Sprintf("http://allowed.example.com:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	target := fmt.Sprintf("allowed.example.com:%d", port)
	resp, c, _ := tp.raw("", "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	c.Close()
	if resp, _ := tp.connect("", "denied.example.com:443"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied CONNECT: %d", resp.StatusCode)
	}

	waitFor(t, func() bool {
		_ = lw.Flush()
		return len(out.records(msgTunnelClosed)) == 1 && len(out.records(msgRequest)) == 1
	}, "a tunnel closed and a request record")
	if r := out.records(msgRequest)[0]; r["status"] != float64(200) || r["host"] != "allowed.example.com" || r["rule"] != "allowed" {
		t.Errorf("request record %v", r)
	}
	if r := out.records(msgTunnelClosed)[0]; r["close_reason"] != "eof" || r["host"] != "allowed.example.com" || r["bytes_up"] != float64(0) {
		t.Errorf("tunnel closed record %v", r)
	}
	seen := inner.seen()
	if slices.Contains(seen, msgTunnelClosed) || slices.Contains(seen, msgRequest) {
		t.Errorf("per-flow records went through slog: %q", seen)
	}
	if !slices.Contains(seen, "deny") {
		t.Errorf("the deny record did not go through slog: %q", seen)
	}
}

// logFlow writes the record itself only for a LogWriter's JSONHandler at a
// level that logs Info; any other Logger gets it through slog, or not at
// all.
func TestLogFlowHandlers(t *testing.T) {
	t.Parallel()
	pol := loadPolicy(t, basePolicy(1, ""))
	fl := &flow{kind: kindConnect, client: netip.MustParseAddrPort("127.0.0.1:1"), gen: &generation{pol: pol},
		block: pol.Client(netip.MustParseAddr("127.0.0.1")), host: host.Host{Name: "allowed.example.com"}, port: 1}
	for _, tt := range []struct {
		name        string
		logger      func(lw *LogWriter, inner *msgLog) *slog.Logger
		fast, write bool
	}{
		{"JSONHandler", func(lw *LogWriter, inner *msgLog) *slog.Logger { return slog.New(spy(lw.JSONHandler(nil), inner)) }, true, true},
		{"JSONHandler at Warn", func(lw *LogWriter, inner *msgLog) *slog.Logger {
			return slog.New(spy(lw.JSONHandler(slog.LevelWarn), inner))
		}, true, false},
		{"JSONHandler With", func(lw *LogWriter, inner *msgLog) *slog.Logger {
			return slog.New(spy(lw.JSONHandler(nil), inner)).With("a", 1)
		}, false, true},
		{"JSONHandler WithGroup", func(lw *LogWriter, inner *msgLog) *slog.Logger {
			return slog.New(spy(lw.JSONHandler(nil), inner)).WithGroup("g")
		}, false, true},
		{"Handler of slog's JSON", func(lw *LogWriter, inner *msgLog) *slog.Logger {
			inner.Handler = slog.NewJSONHandler(lw, nil)
			return slog.New(lw.Handler(inner))
		}, false, true},
	} {
		var out syncBuffer
		lw := NewLogWriter(&out, time.Hour)
		inner := &msgLog{notes: new(msgNotes)}
		s, err := New(Config{Policy: pol, Logger: tt.logger(lw, inner), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if (s.flowJSON != nil) != tt.fast {
			t.Errorf("%s: fast path %v, want %v", tt.name, s.flowJSON != nil, tt.fast)
		}
		s.tunnelClosed(fl, new(relay.Stats), "eof", nil)
		_ = lw.Flush()
		if got := len(out.records(msgTunnelClosed)); got != map[bool]int{true: 1}[tt.write] {
			t.Errorf("%s: %d records written, want %v", tt.name, got, tt.write)
		}
		if slog := slices.Contains(inner.seen(), msgTunnelClosed); slog != (tt.write && !tt.fast) {
			t.Errorf("%s: through slog %v, want %v", tt.name, slog, tt.write && !tt.fast)
		}
	}
}

// spy puts inner between h, a LogWriter's JSONHandler, and its JSON
// handler.
func spy(h slog.Handler, inner *msgLog) slog.Handler {
	fh := h.(*flushHandler)
	inner.Handler = fh.Handler
	fh.Handler = inner
	return fh
}

// BenchmarkTunnelClosedRecord is tunnelClosed with the record of one
// closed tunnel as serve logs it (to io.Discard, in batches): through
// slog's JSON handler, written by logFlow itself, or not at all (quiet:
// the metrics alone).
func BenchmarkTunnelClosedRecord(b *testing.B) {
	pol := loadPolicy(b, basePolicy(7001, ""))
	fl := &flow{kind: kindConnect, client: netip.MustParseAddrPort("127.0.0.1:40720"), gen: &generation{pol: pol},
		block: pol.Client(netip.MustParseAddr("127.0.0.1")), host: host.Host{Name: "allowed.example.com"}, port: 7001, start: time.Now()}
	if _, d := applyRules(fl); d != nil {
		b.Fatal(d.detail)
	}
	var st relay.Stats
	st.Up.Store(1)
	st.Down.Store(1)
	for _, bb := range []struct {
		name    string
		handler func(lw *LogWriter) slog.Handler
		quiet   bool
	}{
		{"slog", func(lw *LogWriter) slog.Handler { return lw.Handler(slog.NewJSONHandler(lw, nil)) }, false},
		{"logFlow", func(lw *LogWriter) slog.Handler { return lw.JSONHandler(nil) }, false},
		{"quiet", func(lw *LogWriter) slog.Handler { return lw.JSONHandler(nil) }, true}, // the metrics alone
	} {
		b.Run(bb.name, func(b *testing.B) {
			lw := NewLogWriter(io.Discard, 0)
			s, err := New(Config{Policy: pol, Logger: slog.New(bb.handler(lw)), Registerer: prometheus.NewRegistry(), QuietAllowed: bb.quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.tunnelClosed(fl, &st, "eof", nil)
			}
		})
	}
}

// Records logFlow writes from many goroutines at once, beside slog's, come
// out whole, one a line.
func TestLogFlowConcurrent(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	lw := NewLogWriter(&out, time.Millisecond)
	log := slog.New(lw.JSONHandler(nil))
	pol := loadPolicy(t, basePolicy(1, ""))
	s, err := New(Config{Policy: pol, Logger: log, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 3000) // a record longer than logFlow's buffer
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				fl := &flow{kind: kindConnect, gen: &generation{pol: pol}, client: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(g))}
				s.tunnelClosed(fl, new(relay.Stats), long[:i*15], nil)
				if i%50 == 0 {
					log.Warn("deny", "g", g)
				}
			}
		})
	}
	wg.Wait()
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(out.records(msgTunnelClosed)); n != 8*200 { // records panics on a line that is not JSON
		t.Errorf("%d records, want %d", n, 8*200)
	}
}
