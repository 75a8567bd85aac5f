package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/azegress/azegress/internal/asim"
	"github.com/azegress/azegress/proxy"
)

// Log formats of serve's -log-format.
const (
	logFormatJSON = "json" // slog's JSON: the keys of proxy/logattrs.go
	logFormatASIM = "asim" // decisions in Microsoft Sentinel's ASIM Web Session schema (internal/asim)
)

// logHandler is serve's record handler for -log-format, writing to lw in
// batches (LogWriter.Handler). JSON is lw's JSONHandler, whose per-flow
// records the proxy writes without slog.
func logHandler(format string, lw *proxy.LogWriter, level slog.Level) slog.Handler {
	if format == logFormatASIM {
		host, _ := os.Hostname() // Dvc: the reporting device; left out if unknown
		return lw.Handler(asim.NewHandler(lw, asim.Options{Level: level, Dvc: host, ProductVersion: readBuildInfo().Version}))
	}
	return lw.JSONHandler(level)
}

// logFile is -log-file: records appended to a file that Reopen opens
// again by name, so that logrotate can move it away and signal serve
// (SIGHUP) instead of copying and truncating it under a reader such as the
// Azure Monitor Agent.
type logFile struct {
	path string

	mu sync.Mutex
	f  *os.File
}

// openLogFile opens path for appending, creating it (mode 0640) if needed.
func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Write appends p, one or more whole records.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the file by its name again and closes the old one; on an
// error the old one stays in use.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("-log-file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// reopener returns what SIGHUP does to the log: with -log-file (lf not
// nil), write what is buffered to the old file, then open the file by its
// name again; a failure is logged to the old file, which stays in use.
func reopener(lf *logFile, lw *proxy.LogWriter, log *slog.Logger) func() {
	return func() {
		if lf == nil {
			return
		}
		_ = lw.Flush()
		if err := lf.Reopen(); err != nil {
			log.Error("log file not reopened; writing on to the file it had open", "error", err.Error(),
				"fix", "Check that the directory of -log-file exists and that azegress may create files there.")
		}
	}
}
