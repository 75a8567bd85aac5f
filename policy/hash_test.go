package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// hashPolicy has a value of every kind the canonical form holds.
const hashPolicy = `
cloud = "AzureCloud"
mode  = "enforce"

entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = ["api://azegress"]
  clock_skew = "60s"
}

client "web" {
  sources = ["10.0.1.0/24", "10.0.2.0/24"]
  allow_sni_mismatch = false

  allow "arm" {
    endpoints = ["azure.arm"]
  }
  allow "vault" {
    keyvaults = ["kv-prod-01"]
    addresses = ["10.20.0.0/24"]
  }
  allow "api" {
    hosts   = ["api.example.com", "*.cdn.example.com"]
    ports   = [443, 8443]
    expires = "2026-12-31"
  }
  deny "admin" {
    hosts = ["admin.example.com"]
  }
  limits {
    connections_per_second = 50
    burst                  = 100
    max_tunnels            = 500
  }
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    hosts = ["kv1.vault.azure.net"]
  }
}
`

// hashPolicyReformatted is hashPolicy written differently: comments,
// layout, attribute and block order within a block, host case and a
// trailing dot, defaults written out or left out, the top-level mode
// written in each block, the same expiry as an RFC 3339 time in another
// zone, a repeated list element.
const hashPolicyReformatted = `# the same policy
entra {
  clock_skew = "1m"
  audiences = [ "api://azegress", ]
  tenant_id = "11111111-2222-3333-4444-555555555555"
}
client "web" {
  mode = "enforce"
  limits {
    max_tunnels = 500
    burst = 100
    connections_per_second = 50.0
  }
  deny "admin" { hosts = ["Admin.Example.com."] } # refused first anyway
  sources = ["10.0.1.0/24",
             "10.0.2.0/24"]
  allow "arm" { endpoints = ["azure.arm"] }
  allow "vault" {
    addresses = ["10.20.0.0/24", "10.20.0.0/24"]
    keyvaults = ["kv-prod-01"]
  }
  allow "api" {
    expires = "2027-01-01T01:00:00+01:00"
    ports = [443, 8443, 443]
    hosts = ["API.example.com", "*.cdn.example.com"]
  }
}
client "kv-reader" {
  identity { object_ids = ["AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"] }
  allow "kv" {
    ports = [443]
    hosts = ["kv1.vault.azure.net"]
  }
}
`

func mustLoadHash(t *testing.T, name, src string, fast bool) *Policy {
	t.Helper()
	p, diags := load(name, []byte(src), fast)
	if diags.HasErrors() {
		t.Fatalf("load %s: %s", name, FormatDiagnostics(diags))
	}
	return p
}

// TestSHA256Reformat checks that what compilation discards changes no
// hash, on both parse paths, and that the file's name is not part of it.
func TestSHA256Reformat(t *testing.T) {
	t.Parallel()
	want := mustLoadHash(t, "a.hcl", hashPolicy, true).SHA256()
	for _, tt := range []struct {
		name, file, src string
		fast            bool
	}{
		{"same file, other name", "b/other.hcl", hashPolicy, true},
		{"reference parse path", "a.hcl", hashPolicy, false},
		{"reformatted", "a.hcl", hashPolicyReformatted, true},
		{"reformatted, reference parse path", "a.hcl", hashPolicyReformatted, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustLoadHash(t, tt.file, tt.src, tt.fast)
			if got := p.SHA256(); got != want {
				t.Errorf("SHA256 = %s, want %s; canonical form:\n%s\nwant:\n%s", got, want,
					canonical(p), canonical(mustLoadHash(t, "a.hcl", hashPolicy, true)))
			}
		})
	}
}

// TestSHA256Changes checks that every change to the compiled policy,
// names and rule order included, changes the hash, each to a hash of its
// own.
func TestSHA256Changes(t *testing.T) {
	t.Parallel()
	base := mustLoadHash(t, "a.hcl", hashPolicy, true).SHA256()
	seen := map[string]string{base: "the base policy"}
	const kvReader = "client \"kv-reader\" {\n  identity {\n    object_ids = [\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"]\n  }\n  allow \"kv\" {\n    hosts = [\"kv1.vault.azure.net\"]\n  }\n}\n"
	check := func(name, src string) {
		t.Helper()
		got := mustLoadHash(t, name+".hcl", src, true).SHA256()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: SHA256 %s is that of %s", name, got, prev)
		}
		seen[got] = name
	}
	withoutKV := strings.Replace(hashPolicy, kvReader, "", 1)
	check("client order", strings.Replace(withoutKV, `client "web" {`, kvReader+`client "web" {`, 1))
	for _, tt := range []struct{ name, old, new string }{
		{"cloud", `cloud = "AzureCloud"`, `cloud = "AzureUSGovernment"`},
		{"top-level mode", `mode  = "enforce"`, `mode  = "learn"`},
		{"entra tenant", `tenant_id  = "11111111-2222-3333-4444-555555555555"`, `tenant_id  = "11111111-2222-3333-4444-555555555556"`},
		{"entra audience", `["api://azegress"]`, `["api://azegress2"]`},
		{"entra audience added", `["api://azegress"]`, `["api://azegress", "22222222-3333-4444-5555-666666666666"]`},
		{"entra clock skew", `clock_skew = "60s"`, `clock_skew = "61s"`},
		{"entra authority", `clock_skew = "60s"`, `clock_skew = "60s"` + "\n  authority = \"https://login.microsoftonline.us\""},
		{"client name", `client "web"`, `client "web2"`},
		{"client removed", kvReader, ""},
		{"source", `"10.0.2.0/24"]`, `"10.0.3.0/24"]`},
		{"source order", `["10.0.1.0/24", "10.0.2.0/24"]`, `["10.0.2.0/24", "10.0.1.0/24"]`},
		{"client mode", `allow_sni_mismatch = false`, `mode = "learn"`},
		{"allow_sni_mismatch", `allow_sni_mismatch = false`, `allow_sni_mismatch = true`},
		{"identity", `"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"`, `"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeef"`},
		{"identity kind", `object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]`, `client_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]`},
		{"rule name", `allow "arm"`, `allow "arm2"`},
		{"rule kind", `deny "admin"`, `allow "admin"`},
		{"catalog group", `["azure.arm"]`, `["azure.graph"]`},
		{"keyvault", `["kv-prod-01"]`, `["kv-prod-02"]`},
		{"host", `"api.example.com"`, `"api2.example.com"`},
		{"host order", `["api.example.com", "*.cdn.example.com"]`, `["*.cdn.example.com", "api.example.com"]`},
		{"port", `[443, 8443]`, `[443, 8444]`},
		{"default port written as another", `hosts = ["admin.example.com"]`, "hosts = [\"admin.example.com\"]\n    ports = [80]"},
		{"address", `["10.20.0.0/24"]`, `["10.20.1.0/24"]`},
		{"expires", `"2026-12-31"`, `"2027-01-01"`},
		{"expires removed", `expires = "2026-12-31"`, ``},
		{"rule order", "allow \"arm\" {\n    endpoints = [\"azure.arm\"]\n  }\n  allow \"vault\" {\n    keyvaults = [\"kv-prod-01\"]\n    addresses = [\"10.20.0.0/24\"]\n  }",
			"allow \"vault\" {\n    keyvaults = [\"kv-prod-01\"]\n    addresses = [\"10.20.0.0/24\"]\n  }\n  allow \"arm\" {\n    endpoints = [\"azure.arm\"]\n  }"},
		{"rate", `connections_per_second = 50`, `connections_per_second = 50.5`},
		{"burst", `burst                  = 100`, `burst                  = 101`},
		{"max tunnels", `max_tunnels            = 500`, `max_tunnels            = 501`},
	} {
		if !strings.Contains(hashPolicy, tt.old) {
			t.Fatalf("%s: %q is not in the base policy", tt.name, tt.old)
		}
		check(tt.name, strings.Replace(hashPolicy, tt.old, tt.new, 1))
	}
}

// TestCanonicalGolden pins the canonical form, so that a change to it,
// which changes every policy's hash, is a deliberate one (and bumps
// canonicalVersion). Run with -update to rewrite it.
func TestCanonicalGolden(t *testing.T) {
	t.Parallel()
	p := mustLoadHash(t, "a.hcl", hashPolicy, true)
	got := canonical(p)
	policytest.Golden(t, "testdata/canonical.golden", []byte(got))
	sum := sha256.Sum256([]byte(got))
	if want := hex.EncodeToString(sum[:]); p.SHA256() != want {
		t.Errorf("SHA256 = %s, want the SHA-256 of the canonical form, %s", p.SHA256(), want)
	}
}

// TestSHA256Concurrent asks a fresh policy for its hash from several
// goroutines at once (for the race detector) and checks they agree.
func TestSHA256Concurrent(t *testing.T) {
	t.Parallel()
	p := mustLoadHash(t, "a.hcl", hashPolicy, true)
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range got {
		wg.Go(func() { got[i] = p.SHA256() })
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] || len(g) != 64 {
			t.Fatalf("SHA256 from concurrent callers: %q", got)
		}
	}
}

// canonical returns p's canonical form.
func canonical(p *Policy) string {
	var b bytes.Buffer
	p.writeCanonical(&b)
	return b.String()
}

// BenchmarkSHA256 hashes the 100,000-rule policy of BenchmarkLoad100kRules,
// what the proxy adds to a load by asking for the hash.
func BenchmarkSHA256100kRules(b *testing.B) {
	p, diags := Load("bench.hcl", []byte(benchPolicy(100_000)))
	if diags.HasErrors() {
		b.Fatal(FormatDiagnostics(diags))
	}
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		p.writeCanonical(h)
	}
}

// TestAppendQuote checks the canonical form's quoting against
// strconv.Quote, whose output it must equal.
func TestAppendQuote(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a", "api://azegress", `a"b`, `a\b`, "bücher", "\x7f", "~ !", "tab\t", "\xff"} {
		if got, want := string(appendQuote(nil, s)), strconv.Quote(s); got != want {
			t.Errorf("appendQuote(%q) = %s, want %s", s, got, want)
		}
	}
}
