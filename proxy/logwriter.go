package proxy

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// LogWriter batches the per-flow log records on their way to w: one
// write(2) per allowed tunnel or request is a tenth of the CPU time of a
// forwarded request. Those records wait at most the flush interval, or until
// 32 KiB are waiting. Every other record that goes through Handler (denials,
// reloads, errors, start and stop) is written at once, with what is waiting
// before it, so an operator watching the log sees them as they happen.
// Close writes what is left.
type LogWriter struct {
	w        io.Writer
	interval time.Duration

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // armed while buf holds records
	err   error       // the first write error, reported by Flush and Close
}

// The messages of the per-flow records, which LogWriter batches.
const (
	msgTunnelClosed = "tunnel closed"
	msgRequest      = "request"
)

// logBatchBytes is how much LogWriter buffers before it writes regardless
// of the interval.
const logBatchBytes = 32 << 10

// NewLogWriter returns a LogWriter for w that writes buffered records at
// least every interval (if zero, 100 ms); a negative interval writes every
// record at once (tests that read the log right after a request).
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	return &LogWriter{w: w, interval: interval, buf: make([]byte, 0, logBatchBytes)}
}

// Write buffers p, which must be whole records (slog handlers write one
// record per call).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logBatchBytes || l.interval < 0 {
		l.flushLocked()
	} else if l.timer == nil {
		l.timer = time.AfterFunc(l.interval, func() { _ = l.Flush() })
	}
	return len(p), nil
}

// Flush writes the buffered records now.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	return l.err
}

func (l *LogWriter) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.buf) == 0 {
		return
	}
	if _, err := l.w.Write(l.buf); err != nil && l.err == nil {
		l.err = err
	}
	if cap(l.buf) > 4*logBatchBytes {
		l.buf = make([]byte, 0, logBatchBytes) // after one huge record
	} else {
		l.buf = l.buf[:0]
	}
}

// Close writes the buffered records. Records written after Close are still
// buffered and flushed by the timer.
func (l *LogWriter) Close() error { return l.Flush() }

// Handler wraps h, which must write to l, so that every record but the
// per-flow ones (msgTunnelClosed, msgRequest at Info) is flushed at once.
func (l *LogWriter) Handler(h slog.Handler) slog.Handler { return &flushHandler{Handler: h, l: l} }

// JSONHandler is Handler(slog.NewJSONHandler(l, &slog.HandlerOptions{Level:
// level})), serve's default format, with one difference in CPU only: a
// Server whose Logger has this handler writes its per-flow records into l
// itself (logFlow), the bytes slog would write.
func (l *LogWriter) JSONHandler(level slog.Leveler) slog.Handler {
	return &flushHandler{Handler: slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level}), l: l, json: true}
}

type flushHandler struct {
	slog.Handler
	l    *LogWriter
	json bool // Handler is slog's JSONHandler on l with only a level (JSONHandler), no attributes or groups
}

func (h *flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level != slog.LevelInfo || (r.Message != msgTunnelClosed && r.Message != msgRequest) {
		if ferr := h.l.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *flushHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &flushHandler{Handler: h.Handler.WithAttrs(as), l: h.l}
}

func (h *flushHandler) WithGroup(name string) slog.Handler {
	return &flushHandler{Handler: h.Handler.WithGroup(name), l: h.l}
}
