package asim

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// marshal is what encoding/json writes for v, HTML characters unescaped.
func marshal(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// The hand-written encoding is byte for byte encoding/json's: for strings,
// and for whole records (fields, order, what is left out).
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\x7f\n\r\t", "\xff\xfe\xc3(", "\u2028\u2029", "<&>", "é漢🙂"} {
		f.Add(s, s, int64(443), true)
	}
	f.Fuzz(func(t *testing.T, a, b string, n int64, full bool) {
		if got, want := appendString(nil, a), marshal(t, a); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", a, got, want)
		}
		r := Record{TimeGenerated: a, EventType: b, EventMessage: a, SrcPortNumber: int(n), DstHostname: b, Url: a}
		if full {
			r.NetworkDuration, r.SrcBytes = ptr(n), ptr(-n)
			r.AdditionalFields = Fields{slog.String(a, b), slog.Int64("n", n), slog.Bool("ok", full), slog.Group("g", slog.String(b, a))}
		}
		if got, want := r.AppendJSON(nil), marshal(t, &r); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON = %s\nencoding/json %s", got, want)
		}
	})
}
