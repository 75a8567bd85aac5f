package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/policytest"
	"golang.org/x/net/idna"
)

const matchPolicy = `
client "web" {
  sources = ["10.0.0.0/8"]
  allow "exact" {
    hosts = ["api.example.com"]
  }
  allow "wild" {
    hosts = ["*.example.com"]
    ports = [443, 8443]
  }
  allow "deep" {
    hosts = ["*.deep.example.com"]
  }
  allow "exact-8443" {
    hosts = ["API.example.com."]
    ports = [8443]
  }
  allow "unicode" {
    hosts = ["bücher.example"]
  }
  allow "punycode-wild" {
    hosts = ["*.xn--bcher-kva.example"]
  }
  allow "vault" {
    hosts     = ["kv.vault.azure.net"]
    addresses = ["10.20.0.0/24"]
  }
  allow "vault-wild" {
    hosts     = ["*.vault.azure.net"]
    addresses = ["10.30.0.0/24"]
  }
  allow "ip" {
    addresses = ["20.1.2.3", "2001:db8::/32"]
    ports     = [443, 8443]
  }
  allow "first" {
    hosts = ["dup.example.org"]
  }
  allow "second" {
    hosts = ["dup.example.org", "other.example.org"]
  }
}

client "web-narrow" {
  sources = ["10.1.0.0/16"]
}

client "one-host" {
  sources = ["10.1.2.3"]
}

client "v6" {
  sources = ["2001:db8:1::/48", "0.0.0.0/0"]
}
`

func loadForTest(t testing.TB, src string) *Policy {
	t.Helper()
	p, diags := Load("test.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("Load:\n%s", FormatDiagnostics(diags))
	}
	return p
}

func TestDecide(t *testing.T) {
	t.Parallel()
	c := loadForTest(t, matchPolicy).Clients()[0]
	for _, tt := range []struct {
		name string
		host string
		port uint16
		want string // rule name, or "" for deny
	}{
		{"exact", "api.example.com", 443, "exact"},
		{"exact case and trailing dot", "API.Example.COM.", 443, "exact"},
		{"exact beats earlier wildcard", "api.example.com", 8443, "exact-8443"},
		{"wildcard one level", "a.example.com", 443, "wild"},
		{"wildcard any depth", "a.b.c.example.com", 8443, "wild"},
		{"wildcard never matches apex", "example.com", 443, ""},
		{"wildcard suffix is label-aligned", "badexample.com", 443, ""},
		{"suffix in the middle", "example.com.evil.net", 443, ""},
		{"longer wildcard beats shorter", "x.deep.example.com", 443, "deep"},
		{"longer wildcard lacks port", "x.deep.example.com", 8443, "wild"},
		{"apex of longer wildcard", "deep.example.com", 443, "wild"},
		{"default port only", "api.example.com", 80, ""},
		{"unicode host unicode pattern", "bücher.example", 443, "unicode"},
		{"punycode host unicode pattern", "xn--bcher-kva.example", 443, "unicode"},
		{"uppercase unicode host", "BÜCHER.example", 443, "unicode"},
		{"unicode host punycode wildcard", "www.bücher.example", 443, "punycode-wild"},
		{"first in file order", "dup.example.org", 443, "first"},
		{"second rule other host", "other.example.org", 443, "second"},
		{"unknown host", "login.microsoftonline.com", 443, ""},
		{"ip literal via addresses", "20.1.2.3", 443, "ip"},
		{"ip literal other port", "20.1.2.3", 8443, "ip"},
		{"ip literal wrong port", "20.1.2.3", 80, ""},
		{"ip literal not listed", "20.1.2.4", 443, ""},
		{"ip literal inet_aton spelling", "0x14010203", 443, "ip"},
		{"ip literal ipv4-mapped", "::ffff:20.1.2.3", 443, "ip"},
		{"ip literal ipv6 prefix", "[2001:db8::5]", 443, "ip"},
		{"ip literal guarded range of a host rule", "10.20.0.5", 443, "vault"},
		{"ip literal loopback", "0177.0.0.1", 443, ""},
		{"host rule does not match its address range by name", "10.30.0.1", 8443, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := c.Decide(policytest.Host(t, tt.host), tt.port)
			got := ""
			if d.Rule != nil {
				got = d.Rule.Name
			}
			if got != tt.want || d.Allowed != (tt.want != "") {
				t.Errorf("Decide(%q, %d) = %v %q, want %q", tt.host, tt.port, d.Allowed, got, tt.want)
			}
		})
	}
	if d := c.Decide(host.Host{}, 443); d.Allowed || d.Rule != nil {
		t.Errorf("Decide(Host{}) = %+v, want deny", d)
	}
	var none *Client
	if d := none.Decide(policytest.Host(t, "api.example.com"), 443); d.Allowed {
		t.Errorf("nil Client.Decide = %+v, want deny", d)
	}
	if none.AddressAllowed(policytest.Host(t, "api.example.com"), 443, netip.MustParseAddr("10.0.0.1")) {
		t.Error("nil Client.AddressAllowed = true, want false")
	}
}

func TestAddressAllowed(t *testing.T) {
	t.Parallel()
	c := loadForTest(t, matchPolicy).Clients()[0]
	for _, tt := range []struct {
		name string
		host string
		port uint16
		ip   string
		want bool
	}{
		{"exact rule range", "kv.vault.azure.net", 443, "10.20.0.5", true},
		{"any matching rule, not only the winner", "kv.vault.azure.net", 443, "10.30.0.5", true},
		{"ipv4-mapped resolved address", "kv.vault.azure.net", 443, "::ffff:10.20.0.5", true},
		{"outside every range", "kv.vault.azure.net", 443, "10.40.0.5", false},
		{"wildcard rule range", "other.vault.azure.net", 443, "10.30.0.5", true},
		{"range of a rule that does not match the host", "other.vault.azure.net", 443, "10.20.0.5", false},
		{"port not allowed", "kv.vault.azure.net", 8443, "10.20.0.5", false},
		{"host rule without addresses", "api.example.com", 443, "10.20.0.5", false},
		{"unknown host", "login.microsoftonline.com", 443, "10.20.0.5", false},
		{"ip literal inside its rule", "20.1.2.3", 443, "20.1.2.3", true},
		{"ip literal port not allowed", "20.1.2.3", 80, "20.1.2.3", false},
		{"ip literal of a host rule range", "10.20.0.5", 443, "10.20.0.5", true},
		{"ip literal not listed", "10.40.0.5", 443, "10.40.0.5", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := c.AddressAllowed(policytest.Host(t, tt.host), tt.port, netip.MustParseAddr(tt.ip))
			if got != tt.want {
				t.Errorf("AddressAllowed(%q, %d, %s) = %v, want %v", tt.host, tt.port, tt.ip, got, tt.want)
			}
		})
	}
	if c.AddressAllowed(policytest.Host(t, "kv.vault.azure.net"), 443, netip.Addr{}) {
		t.Error("AddressAllowed with the zero address = true, want false")
	}
}

// A guarded address is unlocked only by a prefix that lies inside its
// guarded range: a wide prefix covers it without naming it.
func TestAddressAllowedNamesTheRange(t *testing.T) {
	t.Parallel()
	c := loadForTest(t, `
client "c" {
  sources = ["10.0.0.0/8"]
  allow "wide" {
    hosts     = ["wide.example"]
    addresses = ["64.0.0.0/2", "10.0.0.0/7", "::/0"]
  }
  allow "named" {
    hosts     = ["named.example"]
    addresses = ["127.0.0.0/8", "10.20.0.0/24", "192.168.1.0/24", "fd00::/8"]
  }
}`).Clients()[0]
	for _, tt := range []struct {
		host, ip string
		want     bool
	}{
		{"wide.example", "127.0.0.1", false},   // loopback under 64.0.0.0/2
		{"wide.example", "10.1.2.3", false},    // 10/8 under 10.0.0.0/7
		{"wide.example", "11.1.2.3", true},     // public, under 10.0.0.0/7
		{"wide.example", "100.64.0.1", false},  // CGNAT under 64.0.0.0/2
		{"wide.example", "::1", false},         // IPv6 loopback under ::/0
		{"wide.example", "fd00::1", false},     // ULA under ::/0
		{"wide.example", "2001:db8::1", true},  // public IPv6 under ::/0
		{"named.example", "127.0.0.1", true},   // 127.0.0.0/8 names loopback
		{"named.example", "10.20.0.5", true},   // inside 10/8
		{"named.example", "192.168.1.9", true}, // mapped prefix, by its IPv4 form
		{"named.example", "::ffff:10.20.0.5", true},
		{"named.example", "fd00::1", true},
		{"wide.example", "20.1.2.3", false}, // outside every prefix
	} {
		if got := c.AddressAllowed(policytest.Host(t, tt.host), 443, netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("AddressAllowed(%s, %s) = %v, want %v", tt.host, tt.ip, got, tt.want)
		}
	}
	// An IP literal under a wide prefix: Decide matches it, the guard does not.
	lit := policytest.Host(t, "10.1.2.3")
	if d := c.Decide(lit, 443); !d.Allowed {
		t.Fatalf("Decide(10.1.2.3) = %+v, want allowed by rule wide", d)
	}
	if c.AddressAllowed(lit, 443, lit.IP) {
		t.Error("AddressAllowed(10.1.2.3 literal) = true under 10.0.0.0/7, want false")
	}
}

func TestClientLookup(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, matchPolicy)
	for _, tt := range []struct {
		name string
		addr string
		want string // client name, or "" for nil
	}{
		{"broad prefix", "10.9.9.9", "web"},
		{"longer prefix wins", "10.1.9.9", "web-narrow"},
		{"host route wins", "10.1.2.3", "one-host"},
		{"ipv4-mapped client", "::ffff:10.1.9.9", "web-narrow"},
		{"ipv4-mapped host route", "::ffff:10.1.2.3", "one-host"},
		{"default route", "192.0.2.1", "v6"},
		{"ipv6 client", "2001:db8:1::5", "v6"},
		{"ipv6 zone ignored", "2001:db8:1::5%eth0", "v6"},
		{"ipv6 no match", "2001:db8:2::5", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.Client(netip.MustParseAddr(tt.addr))
			got := ""
			if c != nil {
				got = c.Name
			}
			if got != tt.want {
				t.Errorf("Client(%s) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
	if c := p.Client(netip.Addr{}); c != nil {
		t.Errorf("Client(zero) = %q, want nil", c.Name)
	}
	noDefault := loadForTest(t, "client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n}\n")
	if c := noDefault.Client(netip.MustParseAddr("11.0.0.1")); c != nil {
		t.Errorf("Client(11.0.0.1) = %q, want nil", c.Name)
	}
}

func TestZeroAllocs(t *testing.T) {
	p := loadForTest(t, matchPolicy)
	c := p.Clients()[0]
	wild := policytest.Host(t, "a.b.c.example.com")
	exact := policytest.Host(t, "kv.vault.azure.net")
	miss := policytest.Host(t, "login.microsoftonline.com")
	ip := policytest.Host(t, "::ffff:20.1.2.3")
	resolved := netip.MustParseAddr("10.30.0.5")
	client := netip.MustParseAddr("::ffff:10.1.2.3")
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"Decide wildcard", func() { c.Decide(wild, 8443) }},
		{"Decide exact", func() { c.Decide(exact, 443) }},
		{"Decide miss", func() { c.Decide(miss, 443) }},
		{"Decide ip", func() { c.Decide(ip, 443) }},
		{"AddressAllowed", func() { c.AddressAllowed(exact, 443, resolved) }},
		{"AddressAllowed miss", func() { c.AddressAllowed(miss, 443, resolved) }},
		{"Client", func() { p.Client(client) }},
		{"host.Parse", func() { _, _ = host.Parse("management.azure.com") }},
	} {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s allocates %v times per run, want 0", tt.name, n)
		}
	}
}

// matchLabels are the building blocks of FuzzMatch patterns and hosts:
// case variants, Unicode and its punycode form, and a wildcard.
var matchLabels = []string{"a", "b", "c", "A", "ü", "Ü", "xn--tda", "*", "com", "x-y"}

func fuzzName(spec []byte) string {
	labels := make([]string, 0, len(spec))
	for _, b := range spec {
		labels = append(labels, matchLabels[int(b)%len(matchLabels)])
	}
	return strings.Join(labels, ".")
}

// refNormalize is the reference normalization: lowercase each label and
// punycode-encode the non-ASCII ones.
func refNormalize(s string) string {
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	for i, l := range labels {
		a, err := idna.Punycode.ToASCII(strings.ToLower(l))
		if err != nil {
			panic(err)
		}
		labels[i] = a
	}
	return strings.Join(labels, ".")
}

// refValid is the reference validity rule for the patterns FuzzMatch
// builds: "*" only as a whole first label, followed by at least two labels.
func refValid(pattern string) bool {
	labels := strings.Split(pattern, ".")
	for i, l := range labels {
		if l == "*" && i > 0 {
			return false
		}
	}
	return labels[0] != "*" || len(labels) >= 3
}

// refRank is how specific a pattern match is: -1 for no match, 1000 for an
// exact match, else the number of labels in the wildcard suffix.
func refRank(pattern, host string) int {
	if !strings.HasPrefix(pattern, "*.") {
		if pattern == host {
			return 1000
		}
		return -1
	}
	suffix := pattern[1:] // ".example.com"
	if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
		return strings.Count(suffix, ".")
	}
	return -1
}

// FuzzMatch compares Decide with a naive reference matcher that tries every
// rule and pattern in turn.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{7, 0, 8, 0xff, 0, 8}, []byte{1, 0, 8}, uint8(0))             // *.a.com vs b.a.com
	f.Add([]byte{7, 8, 0xff, 7, 0, 8}, []byte{0, 8}, uint8(0))                // *.com rejected
	f.Add([]byte{0, 8, 0xff, 7, 8}, []byte{3, 8}, uint8(1))                   // exact with case
	f.Add([]byte{7, 4, 8, 0xff, 7, 6, 8}, []byte{0, 5, 8}, uint8(2))          // unicode vs punycode wildcard
	f.Add([]byte{7, 1, 0, 8, 0xff, 7, 0, 8}, []byte{2, 1, 0, 8}, uint8(0))    // longer suffix wins
	f.Add([]byte{0, 7, 8, 0xff, 7, 9, 8, 0xff, 9, 8}, []byte{9, 8}, uint8(0)) // mid wildcard, apex
	f.Fuzz(func(t *testing.T, patternSpec, hostSpec []byte, portSel uint8) {
		if len(patternSpec) > 64 || len(hostSpec) > 16 || len(hostSpec) == 0 {
			return
		}
		portsByRule := [][]uint16{{443}, {443, 8443}, {8443}}
		port := []uint16{443, 8443, 80}[int(portSel)%3]

		var patterns []string
		for _, spec := range strings.Split(string(patternSpec), "\xff") {
			if spec != "" && len(spec) <= 16 { // short enough for the 253-byte limit
				patterns = append(patterns, fuzzName([]byte(spec)))
			}
		}
		var src strings.Builder
		src.WriteString("client \"c\" {\n  sources = [\"0.0.0.0/0\"]\n")
		var valid []string
		for _, pat := range patterns {
			_, diags := Load("p.hcl", []byte(fmt.Sprintf("client \"c\" {\n  sources = [\"0.0.0.0/0\"]\n  allow \"r\" {\n    hosts = [%q]\n  }\n}\n", pat)))
			if ok := !diags.HasErrors(); ok != refValid(pat) {
				t.Fatalf("pattern %q: Load valid=%v, reference valid=%v\n%s", pat, ok, refValid(pat), FormatDiagnostics(diags))
			} else if !ok {
				continue
			}
			i := len(valid)
			valid = append(valid, refNormalize(pat))
			fmt.Fprintf(&src, "  allow \"r%d\" {\n    hosts = [%q]\n    ports = [%s]\n  }\n", i, pat, joinPorts(portsByRule[i%3]))
		}
		src.WriteString("}\n")
		c := loadForTest(t, src.String()).Clients()[0]

		hostStr := fuzzName(hostSpec)
		h, err := host.Parse(hostStr)
		if strings.Contains(hostStr, "*") {
			if err == nil {
				t.Fatalf("host.Parse(%q) accepted a wildcard", hostStr)
			}
			return
		}
		if err != nil {
			t.Fatalf("host.Parse(%q): %v", hostStr, err)
		}
		if want := refNormalize(hostStr); h.Name != want {
			t.Fatalf("host.Parse(%q) = %q, reference %q", hostStr, h.Name, want)
		}

		want, bestRank := -1, -1
		for i, pat := range valid {
			if rank := refRank(pat, h.Name); rank > bestRank && containsPort(portsByRule[i%3], port) {
				want, bestRank = i, rank
			}
		}
		d := c.Decide(h, port)
		got := -1
		if d.Rule != nil {
			got = d.Rule.Index
		}
		if got != want || d.Allowed != (want >= 0) {
			t.Fatalf("Decide(%q, %d) = rule %d, reference rule %d; patterns %q", h.Name, port, got, want, valid)
		}
	})
}

func joinPorts(ports []uint16) string {
	var s []string
	for _, p := range ports {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ", ")
}

func containsPort(ports []uint16, port uint16) bool {
	for _, p := range ports {
		if p == port {
			return true
		}
	}
	return false
}

// benchPolicy returns a policy with one client block and n rules, half
// exact hosts and half wildcards.
func benchPolicy(n int) string {
	var b strings.Builder
	b.WriteString("client \"bench\" {\n  sources = [\"10.0.0.0/8\"]\n")
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  allow \"r%d\" {\n    hosts = [\"svc%d.region%d.example.com\"]\n  }\n", i, i, i%50)
		} else {
			fmt.Fprintf(&b, "  allow \"r%d\" {\n    hosts = [\"*.tenant%d.example.net\"]\n    ports = [443, 8443]\n  }\n", i, i)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		c := loadForTest(b, benchPolicy(n)).Clients()[0]
		exact := policytest.Host(b, fmt.Sprintf("svc%d.region%d.example.com", n-2, (n-2)%50))
		wild := policytest.Host(b, fmt.Sprintf("a.b.tenant%d.example.net", n-1))
		miss := policytest.Host(b, "login.microsoftonline.com")
		for _, bb := range []struct {
			name  string
			h     host.Host
			allow bool
		}{
			{"exact", exact, true},
			{"wildcard", wild, true},
			{"miss", miss, false},
		} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, bb.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if d := c.Decide(bb.h, 443); d.Allowed != bb.allow {
						b.Fatalf("Decide(%s) = %v", bb.h, d.Allowed)
					}
				}
			})
		}
	}
}

func BenchmarkLoad100kRules(b *testing.B) {
	src := []byte(benchPolicy(100_000))
	b.ReportAllocs()
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, diags := Load("bench.hcl", src); diags.HasErrors() {
			b.Fatal(FormatDiagnostics(diags))
		}
	}
}

const denyPolicy = `
client "web" {
  sources = ["10.0.0.0/8"]
  allow "wild" {
    hosts = ["*.example.com", "example.org"]
    ports = [443, 8443]
  }
  allow "ip" {
    addresses = ["20.1.2.0/24"]
  }
  allow "vendor" {
    hosts   = ["vendor.example.net"]
    expires = "2026-12-31"
  }
  allow "vendor-after" {
    hosts = ["*.example.net"]
    ports = [8443]
  }
  deny "admin" {
    hosts = ["admin.example.com", "*.internal.example.com"]
    ports = [443]
  }
  deny "ip-one" {
    addresses = ["20.1.2.3"]
  }
  deny "freeze" {
    hosts   = ["example.org"]
    expires = "2026-06-30T12:00:00Z"
  }
}
`

// TestDenyRules checks that deny rules are evaluated before allow rules,
// match with the same host and port semantics, and name themselves.
func TestDenyRules(t *testing.T) {
	t.Parallel()
	c := loadForTest(t, denyPolicy).Clients()[0]
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		host       string
		port       uint16
		allow, dny string // rule names; "" for none
	}{
		{"admin.example.com", 443, "", "admin"},
		{"ADMIN.example.com.", 443, "", "admin"},
		{"admin.example.com", 8443, "wild", ""}, // the deny rule has port 443 only
		{"x.internal.example.com", 443, "", "admin"},
		{"a.b.internal.example.com", 443, "", "admin"},
		{"internal.example.com", 443, "wild", ""}, // a wildcard never matches its apex
		{"www.example.com", 443, "wild", ""},
		{"20.1.2.3", 443, "", "ip-one"},
		{"20.1.2.4", 443, "ip", ""},
		{"example.org", 443, "", "freeze"},
		{"unknown.example.io", 443, "", ""},
	} {
		h := policytest.Host(t, tt.host)
		d := c.DecideAt(h, tt.port, at)
		var gotAllow, gotDeny string
		if d.Rule != nil {
			gotAllow = d.Rule.Name
		}
		if d.Deny != nil {
			gotDeny = d.Deny.Name
			if !d.Deny.Deny {
				t.Errorf("%s:%d: Decision.Deny %q is not a deny rule", tt.host, tt.port, gotDeny)
			}
		}
		if gotAllow != tt.allow || gotDeny != tt.dny || d.Allowed != (tt.allow != "") {
			t.Errorf("%s:%d: got allowed=%v rule=%q deny=%q, want rule=%q deny=%q", tt.host, tt.port, d.Allowed, gotAllow, gotDeny, tt.allow, tt.dny)
		}
	}
	if len(c.Denies) != 3 || len(c.Rules) != 4 {
		t.Errorf("got %d deny and %d allow rules, want 3 and 4", len(c.Denies), len(c.Rules))
	}
}

// TestExpires checks that an expired rule stops matching at its instant,
// for allow and deny rules, and that a date means the end of that day in
// UTC.
func TestExpires(t *testing.T) {
	t.Parallel()
	c := loadForTest(t, denyPolicy).Clients()[0]
	vendor, org := policytest.Host(t, "vendor.example.net"), policytest.Host(t, "example.org")
	endOfYear := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	freezeEnd := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		h     host.Host
		port  uint16
		at    time.Time
		allow bool
	}{
		{"allow before expiry", vendor, 443, endOfYear.Add(-time.Second), true},
		{"allow at expiry", vendor, 443, endOfYear, false},
		{"allow after expiry", vendor, 443, endOfYear.Add(time.Hour), false},
		{"expired exact falls through to the wildcard", vendor, 8443, endOfYear, true},
		{"deny before expiry", org, 443, freezeEnd.Add(-time.Second), false},
		{"deny expired: allow applies", org, 443, freezeEnd, true},
	} {
		if got := c.DecideAt(tt.h, tt.port, tt.at).Allowed; got != tt.allow {
			t.Errorf("%s: allowed=%v, want %v", tt.name, got, tt.allow)
		}
	}
	r := c.Rules[2]
	if want := endOfYear; !r.Expires.Equal(want) {
		t.Errorf("vendor Expires = %s, want %s", r.Expires, want)
	}
	if r.Expired(endOfYear.Add(-time.Second)) || !r.Expired(endOfYear) {
		t.Errorf("Expired is wrong around %s", endOfYear)
	}
	// Decide reads the real clock: this rule expired long ago.
	old := loadForTest(t, "client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"old\" {\n    hosts   = [\"old.example.com\"]\n    expires = \"2001-01-01T00:00:00Z\"\n  }\n}\n")
	if old.Clients()[0].Decide(policytest.Host(t, "old.example.com"), 443).Allowed {
		t.Errorf("Decide allowed a rule that expired in 2001")
	}
	if exp := old.Expiries(); len(exp) != 1 || exp[0].Rule.Name != "old" {
		t.Errorf("Expiries() = %v, want rule old", exp)
	}
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-31", endOfYear},
		{"2026-12-31T18:00:00+01:00", time.Date(2026, 12, 31, 17, 0, 0, 0, time.UTC)},
		{"1969-12-31", time.Unix(0, 0).UTC()},
	} {
		got, ok := ParseExpires(tt.in)
		if !ok || !got.Equal(tt.want) {
			t.Errorf("ParseExpires(%q) = %s, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
	// An expiry at the Unix epoch must not read as "never".
	epoch := loadForTest(t, "client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"e\" {\n    hosts   = [\"e.example.com\"]\n    expires = \"1969-12-31\"\n  }\n}\n")
	if epoch.Clients()[0].Decide(policytest.Host(t, "e.example.com"), 443).Allowed {
		t.Errorf("a rule that expired at the Unix epoch still matches")
	}
}

func TestZeroAllocsDenyExpires(t *testing.T) {
	c := loadForTest(t, denyPolicy).Clients()[0]
	deny, allow, ip := policytest.Host(t, "x.internal.example.com"), policytest.Host(t, "vendor.example.net"), policytest.Host(t, "20.1.2.3")
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"Decide deny", func() { c.Decide(deny, 443) }},
		{"Decide expiring allow", func() { c.Decide(allow, 443) }},
		{"Decide deny ip", func() { c.Decide(ip, 443) }},
		{"AddressAllowed", func() { c.AddressAllowed(allow, 443, netip.MustParseAddr("10.0.0.1")) }},
		{"AddressAllowedAt", func() { c.AddressAllowedAt(allow, 443, netip.MustParseAddr("10.0.0.1"), time.Time{}) }},
	} {
		if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
			t.Errorf("%s allocates %v times per run, want 0", tt.name, n)
		}
	}
}

// BenchmarkDecideDenyExpires measures what deny rules and expiry checks
// add to Decide: a block with an expiring rule reads the clock once per
// call.
func BenchmarkDecideDenyExpires(b *testing.B) {
	for _, bb := range []struct {
		name, extra string
	}{
		{"plain", ""},
		{"deny", "  deny \"d\" {\n    hosts = [\"*.internal.example.net\", \"blocked.example.com\"]\n  }\n"},
		{"expires", "  allow \"tmp\" {\n    hosts   = [\"tmp.example.com\"]\n    expires = \"2999-12-31\"\n  }\n"},
	} {
		src := strings.Replace(benchPolicy(1000), "client \"bench\" {\n", "client \"bench\" {\n"+bb.extra, 1)
		c := loadForTest(b, src).Clients()[0]
		wild := policytest.Host(b, "a.b.tenant999.example.net")
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := c.Decide(wild, 443); !d.Allowed {
					b.Fatal("denied")
				}
			}
		})
	}
}

// TestAddressAllowedAtAndVerdict checks the two helpers the review kit
// decides with: AddressAllowedAt follows expiry at the instant given,
// not the clock; Verdict names what the proxy does with a decision in
// each mode.
func TestAddressAllowedAtAndVerdict(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, `
client "e" {
  sources = ["10.0.0.0/16"]
  allow "pe" {
    hosts     = ["kv1.vault.azure.net"]
    addresses = ["10.20.0.0/24"]
    expires   = "2026-12-31"
  }
  deny "no" {
    hosts = ["bad.example.com"]
  }
}
client "l" {
  sources = ["10.1.0.0/16"]
  mode    = "learn"
  deny "no" {
    hosts = ["bad.example.com"]
  }
}
`)
	e, l := p.Clients()[0], p.Clients()[1]
	kv, ip := policytest.Host(t, "kv1.vault.azure.net"), netip.MustParseAddr("10.20.0.5")
	end := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if !e.AddressAllowedAt(kv, 443, ip, end.Add(-time.Second)) || e.AddressAllowedAt(kv, 443, ip, end) {
		t.Errorf("AddressAllowedAt does not follow the expiry at %s", end)
	}
	if e.AddressAllowedAt(kv, 443, netip.MustParseAddr("10.30.0.5"), end.Add(-time.Second)) {
		t.Errorf("AddressAllowedAt allows an address outside the rule's prefixes")
	}
	bad, other := policytest.Host(t, "bad.example.com"), policytest.Host(t, "other.example.com")
	var nilClient *Client
	for _, tt := range []struct {
		name string
		c    *Client
		h    host.Host
		want Verdict
	}{
		{"enforce allow", e, kv, VerdictAllow},
		{"enforce no rule", e, other, VerdictDeny},
		{"enforce deny rule", e, bad, VerdictDeny},
		{"learn no rule", l, other, VerdictWouldDeny},
		{"learn deny rule", l, bad, VerdictDeny},
		{"no block", nilClient, other, VerdictDeny},
	} {
		if got := tt.c.Verdict(tt.c.DecideAt(tt.h, 443, end.Add(-time.Hour))); got != tt.want {
			t.Errorf("%s: Verdict = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestPatternCovers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		q, p string
		want bool
	}{
		{"*.vault.azure.net", "kv1.vault.azure.net", true},
		{"*.vault.azure.net", "*.kv1.vault.azure.net", true},
		{"*.vault.azure.net", "*.vault.azure.net", true},
		{"*.vault.azure.net", "vault.azure.net", false},
		{"kv1.vault.azure.net", "*.vault.azure.net", false},
		{"*.kv1.vault.azure.net", "*.vault.azure.net", false},
		{"a.example.com", "a.example.com", true},
		{"*.example.com", "a.badexample.com", false},
	} {
		if got := PatternCovers(tt.q, tt.p); got != tt.want {
			t.Errorf("PatternCovers(%q, %q) = %v, want %v", tt.q, tt.p, got, tt.want)
		}
	}
}
