package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// identityPolicy has address-keyed blocks beside identity blocks with and
// without sources, overlapping on purpose: an identity block's sources
// are its own and do not compete with address-keyed ones.
const identityPolicy = `
cloud = "AzureUSGovernment"

entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress", "99999999-8888-7777-6666-55555555555A"]
}

client "bootstrap" {
  sources = ["10.0.0.0/16"]
  allow "entra" {
    endpoints = ["azure.entra"]
  }
}

client "kv-reader" {
  identity {
    object_ids = ["AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee"]
    client_ids = ["ffffffff-1111-2222-3333-444444444444"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}

client "pinned" {
  sources = ["10.0.0.0/16", "2001:db8::/32"]
  identity {
    object_ids = ["bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"]
    client_ids = ["cccccccc-1111-2222-3333-444444444444"]
  }
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
`

func TestEntra(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, identityPolicy)
	e := p.Entra()
	if e == nil {
		t.Fatal("Entra() = nil")
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"tenant", e.TenantID, "11111111-2222-3333-4444-555555555555"},
		{"audiences", strings.Join(e.Audiences, " "), "api://azegress 99999999-8888-7777-6666-55555555555a"},
		{"default skew", e.ClockSkew, 60 * time.Second},
		{"cloud's authority", e.Authority, "https://login.microsoftonline.us"},
		{"range", e.Range.Start.Line, 4},
		{"object IDs lower case", strings.Join(p.Clients()[1].Identity.ObjectIDs, " "), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"},
		{"identity's entra", p.Clients()[1].Identity.Entra, e},
		{"address-keyed block", p.Clients()[0].Identity == (*Identity)(nil), true},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if e := loadForTest(t, matchPolicy).Entra(); e != nil {
		t.Errorf("policy without entra: Entra() = %+v, want nil", e)
	}
	if e := (*Policy)(nil).Entra(); e != nil {
		t.Errorf("nil policy: Entra() = %+v", e)
	}
}

// TestEntraAttributes checks the values clock_skew and authority take.
func TestEntraAttributes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		attrs     string
		skew      time.Duration
		authority string
	}{
		{``, time.Minute, "https://login.microsoftonline.com"},
		{`clock_skew = "0s"`, 0, "https://login.microsoftonline.com"},
		{`clock_skew = "5m"`, 5 * time.Minute, "https://login.microsoftonline.com"},
		{`authority = "https://Login.MicrosoftOnline.com/"`, time.Minute, "https://login.microsoftonline.com"},
		{`authority = "http://127.0.0.1:8400"`, time.Minute, "http://127.0.0.1:8400"},
		{`authority = "http://[::1]:8400/"`, time.Minute, "http://[::1]:8400"},
		{`authority = "https://login.example.test:8443"`, time.Minute, "https://login.example.test:8443"},
	} {
		src := "entra {\n  tenant_id = \"11111111-2222-3333-4444-555555555555\"\n  audiences = [\"api://azegress\"]\n  " + tt.attrs + "\n}\n" +
			"client \"c\" {\n  identity {\n    object_ids = [\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"]\n  }\n  allow \"a\" {\n    hosts = [\"a.example.com\"]\n  }\n}\n"
		e := loadForTest(t, src).Entra()
		if e.ClockSkew != tt.skew || e.Authority != tt.authority {
			t.Errorf("%s: skew %v, authority %q; want %v, %q", tt.attrs, e.ClockSkew, e.Authority, tt.skew, tt.authority)
		}
	}
}

func TestClientForIdentity(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, identityPolicy)
	const (
		kvOID   = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
		kvCID   = "ffffffff-1111-2222-3333-444444444444"
		pinOID  = "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"
		pinCID  = "cccccccc-1111-2222-3333-444444444444"
		unknown = "dddddddd-1111-2222-3333-444444444444"
	)
	for _, tt := range []struct {
		name          string
		oid, cid, src string
		want          string // block name, or "" for nil
		listed        bool
	}{
		{"object ID, no sources", kvOID, unknown, "192.0.2.1", "kv-reader", true},
		{"object ID in upper case", strings.ToUpper(kvOID), "", "192.0.2.1", "kv-reader", true},
		{"client ID when the object ID is unlisted", unknown, kvCID, "10.0.0.5", "kv-reader", true},
		{"client ID without object ID", "", kvCID, "10.0.0.5", "kv-reader", true},
		{"no source needed without sources", kvOID, "", "", "kv-reader", true},
		{"object ID, source inside", pinOID, "", "10.0.9.9", "pinned", true},
		{"object ID, IPv4-mapped source", pinOID, "", "::ffff:10.0.9.9", "pinned", true},
		{"object ID, IPv6 source with zone", pinOID, "", "2001:db8::1%eth0", "pinned", true},
		{"object ID, source outside: refused", pinOID, "", "10.1.0.1", "", true},
		{"object ID, no source: refused", pinOID, "", "", "", true},
		{"object ID wins over another block's client ID", pinOID, kvCID, "10.1.0.1", "", true},
		{"object ID wins, source inside", kvOID, pinCID, "10.1.0.1", "kv-reader", true},
		{"client ID, source outside: refused", unknown, pinCID, "10.1.0.1", "", true},
		{"object ID listed only as a client ID", kvCID, "", "10.0.0.5", "", false},
		{"client ID listed only as an object ID", "", kvOID, "10.0.0.5", "", false},
		{"unknown identity", unknown, unknown, "10.0.0.5", "", false},
		{"empty", "", "", "10.0.0.5", "", false},
		{"malformed", kvOID + " ", "{" + kvCID + "}", "10.0.0.5", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var src netip.Addr
			if tt.src != "" {
				src = netip.MustParseAddr(tt.src)
			}
			c, listed := p.ClientForIdentity(tt.oid, tt.cid, src)
			got := ""
			if c != nil {
				got = c.Name
			}
			if got != tt.want || listed != tt.listed {
				t.Errorf("ClientForIdentity(%q, %q, %v) = %q, %v; want %q, %v", tt.oid, tt.cid, src, got, listed, tt.want, tt.listed)
			}
		})
	}
	if c, listed := (*Policy)(nil).ClientForIdentity(kvOID, kvCID, netip.Addr{}); c != nil || listed {
		t.Errorf("nil policy: %v, %v", c, listed)
	}
	if c, listed := loadForTest(t, matchPolicy).ClientForIdentity(kvOID, kvCID, netip.Addr{}); c != nil || listed {
		t.Errorf("policy without identity blocks: %v, %v", c, listed)
	}
}

// TestClientIgnoresIdentityBlocks: without credentials, only
// address-keyed blocks are selected, whatever an identity block's sources
// say; an address only an identity block lists selects nothing.
func TestClientIgnoresIdentityBlocks(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, identityPolicy)
	for _, tt := range []struct{ addr, want string }{
		{"10.0.9.9", "bootstrap"},
		{"2001:db8::1", ""},
		{"192.0.2.1", ""},
	} {
		c := p.Client(netip.MustParseAddr(tt.addr))
		got := ""
		if c != nil {
			got = c.Name
		}
		if got != tt.want {
			t.Errorf("Client(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestIdentitySourcesNotExclusive: an identity block's sources may repeat
// those of an address-keyed block or of another identity block.
func TestIdentitySourcesNotExclusive(t *testing.T) {
	t.Parallel()
	src := identityPolicy + `
client "also-pinned" {
  sources = ["10.0.0.0/16"]
  identity {
    object_ids = ["eeeeeeee-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
`
	p, diags := Load("test.hcl", []byte(src))
	if p == nil || len(diags) > 0 {
		t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
	}
}

func TestClientForIdentityZeroAllocs(t *testing.T) {
	p := loadForTest(t, identityPolicy)
	in := netip.MustParseAddr("::ffff:10.0.9.9")
	out := netip.MustParseAddr("10.1.0.1")
	for _, tt := range []struct {
		name     string
		oid, cid string
		src      netip.Addr
	}{
		{"object ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "", out},
		{"object ID upper case", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", "", out},
		{"client ID", "dddddddd-1111-2222-3333-444444444444", "ffffffff-1111-2222-3333-444444444444", out},
		{"sources, inside", "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee", "", in},
		{"sources, outside", "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee", "", out},
		{"unknown", "dddddddd-1111-2222-3333-444444444444", "dddddddd-1111-2222-3333-444444444444", in},
	} {
		if n := testing.AllocsPerRun(100, func() { p.ClientForIdentity(tt.oid, tt.cid, tt.src) }); n != 0 {
			t.Errorf("%s allocates %v times per run, want 0", tt.name, n)
		}
	}
}

// BenchmarkDecideIdentity is the decision for a verified token: its
// identity's block among 1,000 identity blocks (ClientForIdentity), then
// Decide in that block's 1,000 rules. It must stay allocation-free.
func BenchmarkDecideIdentity(b *testing.B) {
	const oid = "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"
	var src strings.Builder
	src.WriteString("entra {\n  tenant_id = \"11111111-2222-3333-4444-555555555555\"\n  audiences = [\"api://azegress\"]\n}\n")
	for i := range 999 {
		fmt.Fprintf(&src, "client \"mi%d\" {\n  identity {\n    object_ids = [\"%08x-bbbb-cccc-dddd-eeeeeeeeeeee\"]\n  }\n  allow \"r\" {\n    hosts = [\"svc%d.example.org\"]\n  }\n}\n", i, i, i)
	}
	src.WriteString(strings.Replace(benchPolicy(1000), `sources = ["10.0.0.0/8"]`, `identity {
    object_ids = ["`+oid+`"]
  }`, 1))
	p := loadForTest(b, src.String())
	h := policytest.Host(b, "svc998.region48.example.com")
	from := netip.MustParseAddr("10.1.2.3")
	b.ReportAllocs()
	for b.Loop() {
		c, _ := p.ClientForIdentity(oid, "", from)
		if c == nil || !c.Decide(h, 443).Allowed {
			b.Fatalf("the identity's block does not allow %s", h)
		}
	}
}

func TestParseGUID(t *testing.T) {
	t.Parallel()
	g, ok := parseGUID("0123ABCD-4567-89ab-cdef-0123456789AB")
	want := guid{0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab}
	if !ok || g != want {
		t.Errorf("parseGUID = %x, %v; want %x", g, ok, want)
	}
	for _, s := range []string{
		"", "0123abcd-4567-89ab-cdef-0123456789a", "0123abcd-4567-89ab-cdef-0123456789abc",
		"0123abcd04567-89ab-cdef-0123456789ab", "0123abcd-4567-89ab-cdef-0123456789ag",
		"{123abcd-4567-89ab-cdef-0123456789a}", "0123abcd-4567-89ab-cdef+0123456789ab",
		"0123abcd-4567-89ab-cdef-0123456789\u00e9",
	} {
		if _, ok := parseGUID(s); ok {
			t.Errorf("parseGUID(%q) accepted", s)
		}
	}
}
