package review

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestAccessGolden renders each block of testdata/access/policy.hcl in
// every format and compares with the golden files.
func TestAccessGolden(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/access/policy.hcl")
	for _, c := range p.Clients() {
		a := Access(p, c, "client "+c.Name, testAt)
		base := filepath.Join("testdata/access", c.Name)
		policytest.Golden(t, base+".golden", a.Text())
		policytest.Golden(t, base+".md.golden", a.Markdown())
		csv, err := a.CSV()
		if err != nil {
			t.Fatal(err)
		}
		policytest.Golden(t, base+".csv.golden", csv)
		j, err := a.JSON()
		if err != nil {
			t.Fatal(err)
		}
		policytest.Golden(t, base+".json.golden", j)
	}
}

// TestAccessStatus checks what the policy does with each destination of
// block app, at two instants.
func TestAccessStatus(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/access/policy.hcl")
	c, err := ClientByName(p, "app")
	if err != nil {
		t.Fatal(err)
	}
	status := func(a *AccessReport, dest, rule string) string {
		for _, g := range a.Destinations {
			if g.Destination == dest && g.Rule == rule {
				return g.Status
			}
		}
		t.Fatalf("no destination %s of rule %s", dest, rule)
		return ""
	}
	a := Access(p, c, "test", testAt)
	for _, tt := range []struct{ dest, rule, want string }{
		{"management.azure.com", "arm", "reachable"},
		{"kv-prod-01.vault.azure.net", "vaults", "reachable"},
		{"10.20.0.0/24", "vaults", "reachable"},
		{"*.vendor.example.com", "vendor", "reachable"},
		{"admin.vendor.example.com", "vendor-admin", "refuses"},
		{"old.example.com", "legacy", "expired"},
	} {
		if got := status(a, tt.dest, tt.rule); got != tt.want {
			t.Errorf("%s (rule %s): status %q, want %q", tt.dest, tt.rule, got, tt.want)
		}
	}
	later := Access(p, c, "test", testAt.AddDate(1, 0, 0))
	if got := status(later, "*.vendor.example.com", "vendor"); got != "expired" {
		t.Errorf("a year later, *.vendor.example.com: %q, want expired", got)
	}
}

func TestClientSelection(t *testing.T) {
	t.Parallel()
	p := load(t, "testdata/access/policy.hcl")
	addr := netip.MustParseAddr
	const oid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	for _, tt := range []struct {
		name      string
		pick      func() (*policy.Client, error)
		want, err string
	}{
		{"by name", func() (*policy.Client, error) { return ClientByName(p, "app") }, "app", ""},
		{"unknown name", func() (*policy.Client, error) { return ClientByName(p, "nope") }, "",
			`has no client block "nope"; its blocks are "app", "kv-reader", "empty"`},
		{"by source", func() (*policy.Client, error) { return ClientBySource(p, addr("10.0.1.7")) }, "app", ""},
		{"source in no block", func() (*policy.Client, error) { return ClientBySource(p, addr("10.9.9.9")) }, "",
			"10.9.9.9 is in no address-keyed client block"},
		{"identity blocks are not selected by source", func() (*policy.Client, error) { return ClientBySource(p, addr("10.0.2.5")) }, "",
			"10.0.2.5 is in no address-keyed client block"},
		{"by identity, from its sources", func() (*policy.Client, error) { return ClientByIdentity(p, strings.ToUpper(oid), addr("10.0.2.5")) }, "kv-reader", ""},
		{"by identity, no source given", func() (*policy.Client, error) { return ClientByIdentity(p, oid, netip.Addr{}) }, "kv-reader", ""},
		{"by identity, from elsewhere", func() (*policy.Client, error) { return ClientByIdentity(p, oid, addr("10.0.1.5")) }, "",
			"does not accept it from 10.0.1.5"},
		{"unknown identity", func() (*policy.Client, error) {
			return ClientByIdentity(p, "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee", netip.Addr{})
		}, "",
			"is listed in no identity block"},
	} {
		c, err := tt.pick()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: %v, %v; want error %q", tt.name, c, err, tt.err)
		case tt.err == "" && (err != nil || c == nil || c.Name != tt.want):
			t.Errorf("%s: %v, %v; want block %q", tt.name, c, err, tt.want)
		}
	}
}
