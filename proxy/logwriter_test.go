package proxy

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogWriter(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, time.Hour) // only size, level and Close flush
	log := slog.New(lw.Handler(slog.NewJSONHandler(lw, nil)))

	log.Info(msgTunnelClosed, "n", 1)
	log.Info(msgRequest, "n", 2)
	if out.String() != "" {
		t.Fatalf("a per-flow record was written at once: %q", out.String())
	}
	log.Warn("deny", "n", 3)
	if got := out.String(); !strings.Contains(got, `"n":1`) || !strings.Contains(got, `"n":2`) || !strings.HasSuffix(got, "\"n\":3}\n") {
		t.Fatalf("a Warn record did not flush what was waiting, in order: %q", got)
	}
	log.Info(msgTunnelClosed, "n", 4)
	log.Info("policy reloaded", "n", 5)
	if got := out.String(); !strings.Contains(got, `"n":4`) || !strings.HasSuffix(got, "\"n\":5}\n") {
		t.Fatalf("an Info record other than a per-flow one was not written at once: %q", got)
	}

	// Past 32 KiB the batch is written without waiting.
	before := len(out.String())
	for i := 0; len(out.String()) == before; i++ {
		if i > logBatchBytes/32 {
			t.Fatalf("%d Info records and nothing written", i)
		}
		log.Info(msgRequest, "i", i)
	}
	log.With("k", "v").WithGroup("g").Info(msgRequest, "x", 1)
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasSuffix(got, "\"k\":\"v\",\"g\":{\"x\":1}}\n") {
		t.Fatalf("Close did not write the last record: %q", got[max(0, len(got)-200):])
	}
}

func TestLogWriterInterval(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, 10*time.Millisecond)
	slog.New(lw.Handler(slog.NewJSONHandler(lw, nil))).Info(msgTunnelClosed)
	waitFor(t, func() bool { return strings.Contains(out.String(), msgTunnelClosed) }, "the timer to flush the record")
}

// A negative interval writes every record at once, the per-flow ones too.
func TestLogWriterThrough(t *testing.T) {
	var out syncBuffer
	lw := NewLogWriter(&out, -1)
	slog.New(lw.JSONHandler(slog.LevelInfo)).Info(msgTunnelClosed, "n", 1)
	if got := out.String(); !strings.HasSuffix(got, "\"n\":1}\n") {
		t.Fatalf("the record was not written at once: %q", got)
	}
}
