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

	log.Info("tunnel closed", "n", 1)
	if out.String() != "" {
		t.Fatalf("an Info record was written at once: %q", out.String())
	}
	log.Warn("deny", "n", 2)
	if got := out.String(); !strings.Contains(got, `"n":1`) || !strings.HasSuffix(got, "\"n\":2}\n") {
		t.Fatalf("a Warn record did not flush what was waiting, in order: %q", got)
	}

	// Past 32 KiB the batch is written without waiting.
	before := len(out.String())
	for i := 0; len(out.String()) == before; i++ {
		if i > logBatchBytes/32 {
			t.Fatalf("%d Info records and nothing written", i)
		}
		log.Info("request", "i", i)
	}
	log.With("k", "v").WithGroup("g").Info("last", "x", 1)
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
	slog.New(lw.Handler(slog.NewJSONHandler(lw, nil))).Info("tunnel closed")
	waitFor(t, func() bool { return strings.Contains(out.String(), "tunnel closed") }, "the timer to flush the record")
}
