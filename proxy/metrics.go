package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/dnscache"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// metrics holds every collector the proxy exports. Labels never carry a
// hostname or an address, so cardinality is bounded by the policy's size.
type metrics struct {
	decisions     *prometheus.CounterVec // kind, decision, reason, mode, client_block
	ruleHits      *prometheus.CounterVec // client_block, rule
	tunnelsActive prometheus.Gauge
	tunnelsTotal  *prometheus.CounterVec // close reason
	// tunnelsBy holds tunnelsTotal's series for the reasons a tunnel
	// ends with, looked up once: a lookup hashes the label at every
	// tunnel's end. Read-only after newMetrics.
	tunnelsBy    map[string]prometheus.Counter
	bytes        *prometheus.CounterVec // direction
	bytesUp      prometheus.Counter     // bytes{direction="upstream"}, looked up once
	bytesDown    prometheus.Counter     // bytes{direction="downstream"}
	dialSeconds  prometheus.Histogram
	connsActive  prometheus.Gauge
	connsShed    prometheus.Counter
	reloads      *prometheus.CounterVec // result
	reloadOK     prometheus.Gauge
	reloadOKTime prometheus.Gauge
	rules        prometheus.Gauge
	clientBlocks prometheus.Gauge
	policyInfo   *prometheus.GaugeVec // sha256: 1 for the policy being served
	draining     prometheus.Gauge
	authResults  *prometheus.CounterVec // result, reason (identity.go)
}

const namespace = "azegress"

// allowedKey is what the labels of an allowed decision's counters depend
// on: the rule, its block and the request kind.
type allowedKey struct {
	block *policy.Client
	rule  *policy.Rule
	kind  string
}

// allowedCounters are an allowed decision's series of rule_hits_total and
// decisions_total.
type allowedCounters struct{ hits, decisions prometheus.Counter }

// countAllowed counts the decision of fl, which a rule allowed, in m's
// rule hits and decisions. Their series are looked up by label values once
// per generation, rule and kind, not at every request: a lookup hashes and
// validates all seven values, which cost as much as the rest of a tunnel's
// decision.
func (g *generation) countAllowed(m *metrics, fl *flow) {
	k := allowedKey{fl.block, fl.rule, fl.kind}
	g.allowedMu.RLock()
	c, ok := g.allowed[k]
	g.allowedMu.RUnlock()
	if !ok {
		c = allowedCounters{hits: m.ruleHits.WithLabelValues(fl.block.Name, fl.rule.Name),
			decisions: m.decisions.WithLabelValues(fl.kind, fl.decision(), ReasonAllowed, fl.mode(), fl.blockName())}
		g.allowedMu.Lock()
		if g.allowed == nil {
			g.allowed = make(map[allowedKey]allowedCounters)
		}
		g.allowed[k] = c
		g.allowedMu.Unlock()
	}
	c.hits.Inc()
	c.decisions.Inc()
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		decisions: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "decisions_total",
			Help: "Policy decisions by request kind (connect, http), decision (allow, deny, would_deny), reason, mode and client block.",
		}, []string{"kind", "decision", "reason", "mode", "client_block"}),
		ruleHits: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rule_hits_total",
			Help: "Requests allowed by each rule.",
		}, []string{"client_block", "rule"}),
		tunnelsActive: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "tunnels_active",
			Help: "CONNECT tunnels currently open.",
		}),
		tunnelsTotal: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnels_closed_total",
			Help: "CONNECT tunnels closed, by why they closed (eof, idle_timeout, canceled, error).",
		}, []string{"reason"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "transferred_bytes_total",
			Help: "Bytes moved through tunnels and forwarded requests; upstream is client to destination, downstream the reverse.",
		}, []string{"direction"}),
		dialSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "dial_duration_seconds",
			Help:    "Time to resolve, check and connect to a destination.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		connsActive: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "client_connections_active",
			Help: "Client connections currently accepted by the proxy listener.",
		}),
		connsShed: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "client_connections_shed_total",
			Help: "Client connections refused at accept because the global connection cap was reached.",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_reloads_total",
			Help: "Policy reload attempts by result (success, failure).",
		}, []string{"result"}),
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_last_reload_successful",
			Help: "Whether the last policy reload attempt succeeded (1) or was rejected (0).",
		}),
		reloadOKTime: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful policy load.",
		}),
		rules: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_rules",
			Help: "Allow rules in the policy being served.",
		}),
		clientBlocks: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_client_blocks",
			Help: "Client blocks in the policy being served.",
		}),
		policyInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_info",
			Help: "1 for the policy being served, labelled with the SHA-256 of its canonical compiled form (azegress check prints it; decision records carry it as policy_sha256).",
		}, []string{"sha256"}),
		draining: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "draining",
			Help: "1 while the proxy is shutting down and draining tunnels.",
		}),
		authResults: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_results_total",
			Help: "Proxy credentials judged under the policy's entra block, by result (ok, refused, missing) and reason (valid, missing, or why refused: malformed, expired, wrong_audience, identity_unknown, ...).",
		}, []string{"result", "reason"}),
	}
	m.bytesUp = m.bytes.WithLabelValues("upstream")
	m.bytesDown = m.bytes.WithLabelValues("downstream")
	// Both reload results, and every way a tunnel ends, so that the first
	// rejected reload or idle timeout shows in increase() on the dashboard.
	atZero(m.reloads, "success", "failure")
	m.tunnelsBy = map[string]prometheus.Counter{}
	for _, why := range []string{relay.ReasonEOF, relay.ReasonIdleTimeout, relay.ReasonCanceled, relay.ReasonError} {
		m.tunnelsBy[why] = m.tunnelsTotal.WithLabelValues(why)
	}
	return m
}

// tunnelClosed counts a tunnel that ended for why.
func (m *metrics) tunnelClosed(why string) {
	if c, ok := m.tunnelsBy[why]; ok {
		c.Inc()
		return
	}
	m.tunnelsTotal.WithLabelValues(why).Inc()
}

// atZero exports v's series for each of values (v has one label, or one
// left uncurried) at 0 from the start: PromQL sees no increase in a counter
// series that first appears at 1, so the first event would otherwise be
// invisible to rate and increase.
func atZero(v *prometheus.CounterVec, values ...string) {
	for _, x := range values {
		v.WithLabelValues(x)
	}
}

// tlsMetrics are the TLS listener's collectors. They are registered only
// when the proxy has a certificate pair, so that no expiry reads 0 where
// there is no certificate.
type tlsMetrics struct {
	certReloads       *prometheus.CounterVec // result
	certExpiry        prometheus.Gauge
	handshakeFailures *prometheus.CounterVec // reason
}

func newTLSMetrics(reg prometheus.Registerer) *tlsMetrics {
	f := promauto.With(reg)
	m := &tlsMetrics{
		certReloads: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_cert_reloads_total",
			Help: "Reloads of the TLS listener's certificate and key by result (success, failure).",
		}, []string{"result"}),
		certExpiry: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "tls_cert_expiry_timestamp_seconds",
			Help: "Unix time at which the certificate the TLS listener presents expires (its not-after).",
		}),
		handshakeFailures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_handshake_failures_total",
			Help: "Failed TLS handshakes on the TLS listener by reason (closed, timeout, not_tls, client_alert, protocol).",
		}, []string{"reason"}),
	}
	atZero(m.certReloads, "success", "failure")
	atZero(m.handshakeFailures, tlsClosed, tlsTimeout, tlsNotTLS, tlsClientAlert, tlsProtocol)
	return m
}

// dnsCollector exports the DNS cache's counters (package dnscache keeps
// them; it knows nothing of Prometheus). Every result is exported from the
// start, at 0 until it happens.
type dnsCollector struct{ c *dnscache.Cache }

var (
	descDNSLookups = prometheus.NewDesc(namespace+"_dns_lookups_total",
		"Destination name lookups by result: hit and negative_hit (\"no such host\") answered from the DNS cache, miss asked the DNS server, error failed (timeout, SERVFAIL, refused; never cached).",
		[]string{"result"}, nil)
	descDNSEntries = prometheus.NewDesc(namespace+"_dns_cache_entries",
		"Names whose answers the DNS cache holds (at most -dns-cache-size; expired ones count until replaced).", nil, nil)
)

func (d dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDNSLookups
	ch <- descDNSEntries
}

func (d dnsCollector) Collect(ch chan<- prometheus.Metric) {
	st := d.c.Stats()
	for _, r := range []struct {
		result string
		n      uint64
	}{{"hit", st.Hits}, {"negative_hit", st.NegativeHits}, {"miss", st.Misses}, {"error", st.Errors}} {
		ch <- prometheus.MustNewConstMetric(descDNSLookups, prometheus.CounterValue, float64(r.n), r.result)
	}
	ch <- prometheus.MustNewConstMetric(descDNSEntries, prometheus.GaugeValue, float64(st.Entries))
}
