package proxy

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/azegress/azegress/policy"
)

// Loader produces a policy, or diagnostics saying why it cannot.
type Loader func() (*policy.Policy, hcl.Diagnostics)

// Reload loads a new policy and, if it is valid, swaps it in. A policy that
// fails to load is rejected with its diagnostics logged, and the policy being
// served stays in place. It reports whether the new policy was applied.
func (s *Server) Reload(load Loader) bool {
	p, diags := load()
	if diags.HasErrors() || p == nil {
		s.m.reloads.WithLabelValues("failure").Inc()
		s.m.reloadOK.Set(0)
		s.log.LogAttrs(context.Background(), slog.LevelError, "policy reload rejected; the previous policy keeps serving",
			slog.String(keyPolicy, s.Policy().Filename()),
			slog.String(keyError, strings.TrimSpace(policy.FormatDiagnostics(diags))))
		return false
	}
	s.SetPolicy(p)
	s.m.reloads.WithLabelValues("success").Inc()
	s.m.reloadOK.Set(1)
	s.m.reloadOKTime.SetToCurrentTime()
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "policy reloaded",
		slog.String(keyPolicy, p.Filename()),
		slog.Int("rules", p.RuleCount()),
		slog.Int("client_blocks", len(p.Clients())))
	return true
}

// WatchFile reloads through load whenever the file at path changes (size,
// modification time or identity, so a Kubernetes ConfigMap's symlink swap
// counts), checking every interval until ctx is done. A change is acted on
// once the file has stayed the same for one interval, so a file caught
// half-written is not loaded.
func (s *Server) WatchFile(ctx context.Context, path string, interval time.Duration, load Loader) {
	loaded, _ := os.Stat(path)
	var pending os.FileInfo // changed since loaded, waiting to settle
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			pending = nil // a file being replaced may be missing for a moment
			continue
		}
		if sameFile(fi, loaded) {
			pending = nil
			continue
		}
		if !sameFile(fi, pending) {
			pending = fi
			continue
		}
		loaded, pending = fi, nil
		s.Reload(load)
	}
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}
