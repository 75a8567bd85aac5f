package main

import (
	"strings"
	"testing"
	"time"
)

// The DNS cache's flags reach the proxy's Config, where 0 turns the cache
// (or the keeping of "no such host") off, and bad values are refused with
// what to give instead.
func TestServeDNSFlags(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args          []string
		size          int
		maxTTL, neg   time.Duration
		wantErrSubstr string
	}{
		{nil, 10000, time.Hour, time.Minute, ""},
		{[]string{"-dns-cache-size", "0"}, -1, time.Hour, time.Minute, ""},
		{[]string{"-dns-cache-size", "50000", "-dns-max-ttl", "5m", "-dns-negative-ttl", "0"}, 50000, 5 * time.Minute, -1, ""},
		{[]string{"-dns-cache-size", "-1"}, 0, 0, 0, "-dns-cache-size -1: want a number of names, or 0 for no cache"},
		{[]string{"-dns-max-ttl", "0"}, 0, 0, 0, "-dns-max-ttl 0s: want a positive duration (to keep no answer, -dns-cache-size 0)"},
		{[]string{"-dns-negative-ttl", "-1s"}, 0, 0, 0, "-dns-negative-ttl -1s: want a duration, or 0"},
	} {
		var stderr strings.Builder
		f, ok := parseServeFlags(tt.args, &stderr)
		if tt.wantErrSubstr != "" {
			if ok || !strings.Contains(stderr.String(), tt.wantErrSubstr) {
				t.Errorf("%v: ok %v, stderr %q; want it refused with %q", tt.args, ok, stderr.String(), tt.wantErrSubstr)
			}
			continue
		}
		if !ok {
			t.Fatalf("%v: refused: %s", tt.args, stderr.String())
		}
		c := f.proxyConfig(nil, nil, nil, nil, nil)
		if c.DNSCacheSize != tt.size || c.DNSCacheMaxTTL != tt.maxTTL || c.DNSCacheNegativeTTL != tt.neg {
			t.Errorf("%v: Config size %d, max TTL %v, negative TTL %v; want %d, %v, %v", tt.args,
				c.DNSCacheSize, c.DNSCacheMaxTTL, c.DNSCacheNegativeTTL, tt.size, tt.maxTTL, tt.neg)
		}
	}
}
