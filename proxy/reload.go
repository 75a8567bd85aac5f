package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/azegress/azegress/policy"
)

// Loader produces a policy, or diagnostics saying why it cannot.
type Loader func() (*policy.Policy, hcl.Diagnostics)

// Reload loads a new policy and, if it is valid, swaps it in. A policy that
// fails to load is rejected with its diagnostics logged, and the policy being
// served stays in place. It reports whether the new policy was applied.
// Reloads (SIGHUP, WatchFile) run one at a time, load included, so a reload
// that read the file first cannot swap its policy in after a later one.
//
// With a TLS listener, Reload also loads Config.TLSCertFile and TLSKeyFile
// again, whatever became of the policy; a pair that fails to load keeps the
// one being served.
func (s *Server) Reload(load Loader) bool {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.tls != nil {
		defer s.tls.reload(s.log)
	}
	p, diags := load()
	var err error
	if !diags.HasErrors() && p != nil {
		err = s.setPolicy(p)
	}
	if diags.HasErrors() || p == nil || err != nil {
		msg := strings.TrimSpace(policy.FormatDiagnostics(diags))
		if err != nil {
			msg = err.Error()
		}
		s.m.reloads.WithLabelValues("failure").Inc()
		s.m.reloadOK.Set(0)
		s.log.LogAttrs(context.Background(), slog.LevelError, "policy reload rejected; the previous policy keeps serving",
			slog.String(keyPolicy, s.Policy().Filename()),
			slog.String(keyPolicySHA, s.Policy().SHA256()),
			slog.String(keyError, msg))
		return false
	}
	s.m.reloads.WithLabelValues("success").Inc()
	s.m.reloadOK.Set(1)
	s.m.reloadOKTime.SetToCurrentTime()
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "policy reloaded",
		slog.String(keyPolicy, p.Filename()),
		slog.String(keyPolicySHA, p.SHA256()),
		slog.Int("rules", p.RuleCount()),
		slog.Int("client_blocks", len(p.Clients())))
	return true
}

// WatchFile reloads through load when the file at path changes (size,
// modification time or identity, so a Kubernetes ConfigMap's symlink swap
// counts), and when a value arrives on asked (serve sends one for SIGHUP),
// changed or not. Either way the file is loaded only once it has stayed the
// same for one interval, so a file caught half-written is not loaded, and a
// SIGHUP cannot load what the watch would not: a file last modified an
// interval ago or more is loaded at once, a newer one once it has stayed the
// same for an interval. With poll false the file is
// checked only after asked, not for changes. It returns when ctx is done.
func (s *Server) WatchFile(ctx context.Context, path string, interval time.Duration, poll bool, asked <-chan struct{}, load Loader) {
	loaded := statOrNil(path)
	var (
		waiting bool        // a reload waits for the file to settle
		pending os.FileInfo // the file as last seen while waiting; nil: missing
		forced  bool        // asked for: load once settled, even if unchanged or missing
	)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-asked:
			fi := statOrNil(path)
			if fi != nil && time.Since(fi.ModTime()) >= interval {
				// Unchanged for an interval already: as settled as the
				// watch would wait for it to be, so load at once.
				loaded, waiting, forced, pending = fi, false, false, nil
				s.Reload(load)
				continue
			}
			waiting, forced, pending = true, true, fi
			t.Reset(interval) // the file must hold still for a whole interval from now
			continue
		case <-t.C:
		}
		if !waiting && !poll {
			continue
		}
		fi := statOrNil(path)
		if !forced && (fi == nil || sameFile(fi, loaded)) {
			waiting = false // back as loaded, or missing for a moment while being replaced
			continue
		}
		if !waiting || !settled(fi, pending) {
			waiting, pending = true, fi
			continue
		}
		loaded, waiting, forced, pending = fi, false, false, nil
		s.Reload(load) // a file missing twice is rejected, and the log says so
	}
}

func statOrNil(path string) os.FileInfo {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return fi
}

// settled reports whether the file looks the same at two checks: the same
// file, or missing both times.
func settled(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return sameFile(a, b)
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

// registerExpiryMetrics registers the gauges that count the served
// policy's rules by expiry, computed from the clock at each scrape, so they
// are current however long ago the policy was loaded: alert on
// azegress_policy_rules_expiring > 0 to renew or remove rules in time.
func (s *Server) registerExpiryMetrics(reg prometheus.Registerer) {
	count := func(expired bool) func() float64 {
		return func() float64 {
			g := s.gen.Load()
			if g == nil {
				return 0 // New has not set the policy yet
			}
			now := time.Now()
			n := 0
			for _, e := range g.pol.Expiries() {
				switch left := e.Rule.Expires.Sub(now); {
				case expired && left <= 0, !expired && left > 0 && left <= policy.ExpiryWarning:
					n++
				}
			}
			return float64(n)
		}
	}
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "policy_rules_expiring",
		Help: "Rules (allow and deny) of the served policy whose expires falls within the next 7 days.",
	}, count(false))
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "policy_rules_expired",
		Help: "Rules (allow and deny) of the served policy whose expires has passed; they no longer match.",
	}, count(true))
}

// warnExpiring logs one Warn record for each rule of p that expires within
// policy.ExpiryWarning of now or has expired.
func (s *Server) warnExpiring(p *policy.Policy, now time.Time) {
	for _, e := range p.Expiries() {
		left := e.Rule.Expires.Sub(now)
		if left > policy.ExpiryWarning {
			break // soonest first
		}
		msg := "rule expires soon"
		if left <= 0 {
			msg = "rule expired"
		}
		s.log.LogAttrs(context.Background(), slog.LevelWarn, msg,
			slog.String(keyPolicy, p.Filename()),
			slog.String(keyPolicySHA, p.SHA256()),
			slog.String(keyClientBlock, e.Client.Name),
			slog.String(keyRule, e.Rule.Name),
			slog.String(keyExpires, e.Rule.Expires.UTC().Format(time.RFC3339)),
			slog.String(keyDetail, expiryDetail(e, left)))
	}
}

func expiryDetail(e policy.RuleExpiry, left time.Duration) string {
	kind := "allow"
	if e.Rule.Deny {
		kind = "deny"
	}
	at := fmt.Sprintf("%s:%d:%d", e.Rule.Range.Filename, e.Rule.Range.Start.Line, e.Rule.Range.Start.Column)
	if left <= 0 {
		return fmt.Sprintf("%s rule %q in client block %q (%s) has expired and no longer matches; remove it, or move its expires forward", kind, e.Rule.Name, e.Client.Name, at)
	}
	return fmt.Sprintf("%s rule %q in client block %q (%s) stops matching in %s; move its expires forward if it is still needed", kind, e.Rule.Name, e.Client.Name, at, left.Round(time.Minute))
}
