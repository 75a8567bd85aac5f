package proxy

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/proxy/internal/dnscache/dnstest"
)

// TestConnectResolvesThroughDNSCache: with no Resolver configured, the
// proxy resolves through Go's resolver and keeps the answer for its TTL,
// so two tunnels to one name ask the DNS server once; with the cache off
// (DNSCacheSize < 0) every tunnel asks. The lookups are exported.
func TestConnectResolvesThroughDNSCache(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	for _, tt := range []struct {
		name    string
		size    int
		queries int
		metrics string // azegress_dns_lookups_total, "" if not exported
	}{
		{"cache on", 0, 1, `
# HELP azegress_dns_lookups_total Destination name lookups by result: hit and negative_hit ("no such host") answered from the DNS cache, miss asked the DNS server, error failed (timeout, SERVFAIL, refused; never cached).
# TYPE azegress_dns_lookups_total counter
azegress_dns_lookups_total{result="error"} 0
azegress_dns_lookups_total{result="hit"} 1
azegress_dns_lookups_total{result="miss"} 1
azegress_dns_lookups_total{result="negative_hit"} 0
`},
		{"cache off", -1, 2, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := dnstest.New(t)
			srv.Set("allowed.example.com", dnstest.Answer{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TTL: 300})
			tp := startProxy(t, basePolicy(port, ""), nil, func(c *Config) {
				c.Resolver, c.DNSCacheSize, c.DNSDial = nil, tt.size, srv.Dial
			})
			for i := range 2 {
				if resp, body := tp.connect("", "allowed.example.com:"+strconv.Itoa(int(port))); resp.StatusCode != http.StatusOK {
					t.Fatalf("tunnel %d: %d %s", i, resp.StatusCode, body)
				}
			}
			if q := srv.Queries("allowed.example.com"); q != tt.queries {
				t.Fatalf("the DNS server got %d queries for two tunnels, want %d", q, tt.queries)
			}
			if tt.metrics == "" {
				if n, _ := testutil.GatherAndCount(tp.reg, "azegress_dns_lookups_total"); n != 0 {
					t.Fatalf("%d DNS cache series without a cache", n)
				}
				return
			}
			if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(tt.metrics), "azegress_dns_lookups_total"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
