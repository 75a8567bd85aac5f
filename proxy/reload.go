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
