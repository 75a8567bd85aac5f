package asim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/internal/asim"
	"github.com/azegress/azegress/internal/asim/asimtest"
	"github.com/azegress/azegress/internal/depstest"
)

func TestDeps(t *testing.T) { depstest.Leaf(t) }

// handle writes one record through a Handler and returns the output.
func handle(t testing.TB, level slog.Level, msg string, attrs ...slog.Attr) []byte {
	t.Helper()
	var b bytes.Buffer
	h := asim.NewHandler(&b, asim.Options{Dvc: "proxy-1"})
	r := slog.NewRecord(time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC), level, msg, 0)
	r.AddAttrs(attrs...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// oneObject fails t unless out is exactly one JSON object on one line, and
// returns it.
func oneObject(t testing.TB, out []byte) map[string]any {
	t.Helper()
	line, ok := bytes.CutSuffix(out, []byte("\n"))
	if !ok || bytes.ContainsAny(line, "\n\r") {
		t.Fatalf("want one line, got %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %q", err, out)
	}
	return m
}

// Hostile names, methods and details stay inside their JSON strings.
func TestHostileValues(t *testing.T) {
	for _, tt := range []struct {
		name string
		msg  string
		val  string
	}{
		{"quotes and newlines", "deny", "evil\"}\n{\"EventResult\":\"Success\""},
		{"control bytes", "deny", "a\x00b\x1bc\x7f"},
		{"invalid UTF-8", "deny", "\xff\xfe\xc3("},
		{"HTML", "deny", "<script>&</script>"},
		{"line separators", "request", "a\u2028b\u2029c"},
		{"not a decision", "azegress listening\n{", "\"}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := oneObject(t, handle(t, slog.LevelWarn, tt.msg,
				slog.String("kind", "http"), slog.String("host", tt.val), slog.String("method", tt.val),
				slog.String("decision", "deny"), slog.String("detail", tt.val), slog.String("fix", tt.val),
				slog.String("client", tt.val), slog.Int("port", 80)))
			if asim.IsDecision(tt.msg) && (m["EventSchema"] != asim.Schema || m["DvcAction"] != "Deny") {
				t.Errorf("record %v", m)
			}
			if !asim.IsDecision(tt.msg) && m["EventSchema"] != nil {
				t.Errorf("a record that is not a decision got EventSchema: %v", m)
			}
		})
	}
}

// A value encoding/json cannot write does not lose the record.
func TestUnencodableValues(t *testing.T) {
	m := oneObject(t, handle(t, slog.LevelWarn, "deny", slog.Float64("ratio", math.NaN()), slog.Float64("inf", math.Inf(1)),
		slog.Any("err", context.Canceled), slog.Group("g", slog.Int("n", 1))))
	add, _ := m["AdditionalFields"].(map[string]any)
	if add["ratio"] != "NaN" || add["inf"] != "+Inf" || add["err"] != "context canceled" || !reflect.DeepEqual(add["g"], map[string]any{"n": 1.0}) {
		t.Errorf("AdditionalFields %v", add)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add("deny", "evil.example", "GET", "detail", "10.0.0.1:1234", int64(443), int64(403))
	f.Add("tunnel closed", "[::1]", "CONNECT", "", "[::1]:9", int64(0), int64(0))
	f.Add("request", "\xff\"\n", "G\x00T", "\u2028", "x", int64(-1), int64(99999))
	f.Fuzz(func(t *testing.T, msg, host, method, detail, client string, port, status int64) {
		out := handle(t, slog.LevelWarn, msg, slog.String("kind", "connect"), slog.String("client", client),
			slog.String("host", host), slog.Int64("port", port), slog.String("method", method),
			slog.String("detail", detail), slog.Int64("status", status), slog.String(host, method))
		m := oneObject(t, out)
		if asim.IsDecision(msg) != (m["EventSchema"] == asim.Schema) {
			t.Errorf("message %q: EventSchema %v", msg, m["EventSchema"])
		}
	})
}

// Every field the Handler writes is a column of ASimWebSessionLogs, with
// the column's type (testdata/ASimWebSessionLogs.json, from the table's
// reference).
func TestFieldsAreColumns(t *testing.T) {
	cols := asimtest.TableColumns(t)
	rt := reflect.TypeOf(asim.Record{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		want, ok := cols[name]
		if !ok {
			t.Errorf("field %s is not a column of ASimWebSessionLogs", name)
			continue
		}
		var got string
		switch k := f.Type.Kind(); {
		case k == reflect.String:
			got = "string"
		case k == reflect.Int || k == reflect.Pointer && f.Type.Elem().Kind() == reflect.Int64:
			got = "int" // or real, or datetime: a number either takes
		case k == reflect.Slice:
			got = "dynamic"
		}
		switch {
		case want == got, want == "real" && got == "int", want == "datetime" && got == "string":
		default:
			t.Errorf("field %s is written as %s; the column is %s", name, got, want)
		}
	}
}

// Attributes from WithAttrs are mapped like the record's own; a group
// qualifies the keys after it, in both forms.
func TestWithAttrsAndGroup(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(asim.NewHandler(&b, asim.Options{})).With("client", "10.0.0.5:4000", "listener", "explicit").WithGroup("g")
	log.Warn("deny", "detail", "x")
	log.Info("policy reloaded", "rules", 3)
	lines := bytes.Split(bytes.TrimSuffix(b.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 records, got %q", b.String())
	}
	deny, other := oneObject(t, append(lines[0], '\n')), oneObject(t, append(lines[1], '\n'))
	add, _ := deny["AdditionalFields"].(map[string]any)
	if deny["SrcIpAddr"] != "10.0.0.5" || add["listener"] != "explicit" || add["g.detail"] != "x" || deny["EventMessage"] != "deny" {
		t.Errorf("deny record %v", deny)
	}
	if g, _ := other["g"].(map[string]any); other["listener"] != "explicit" || g["rules"] != 3.0 || other["EventSchema"] != nil {
		t.Errorf("other record %v", other)
	}
}

// BenchmarkHandle is the cost of one tunnel's record in the Web Session
// schema, against the default JSON handler's.
func BenchmarkHandle(b *testing.B) {
	attrs := []slog.Attr{slog.String("kind", "connect"), slog.String("client", "10.0.1.4:51234"), slog.String("client_block", "workloads"),
		slog.String("mode", "enforce"), slog.String("host", "management.azure.com"), slog.Int("port", 443), slog.String("rule", "arm"),
		slog.String("policy", "/etc/azegress/policy.hcl"), slog.String("policy_sha256", strings.Repeat("ab", 32)), slog.String("label", "Azure Resource Manager"),
		slog.Int64("bytes_up", 4096), slog.Int64("bytes_down", 65536), slog.Int64("duration_ms", 120), slog.String("close_reason", "eof")}
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{
		{"asim", asim.NewHandler(io.Discard, asim.Options{Dvc: "proxy-1"})},
		{"json", slog.NewJSONHandler(io.Discard, nil)},
	} {
		b.Run(h.name, func(b *testing.B) {
			log := slog.New(h.h)
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(context.Background(), slog.LevelInfo, "tunnel closed", attrs...)
			}
		})
	}
}
