package policy

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/policytest"
	"github.com/hashicorp/hcl/v2"
)

// TestInvalidPolicies loads each testdata/invalid/NAME.hcl and compares
// the short diagnostics with NAME.golden. Run with -update to rewrite them.
func TestInvalidPolicies(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 18 {
		t.Fatalf("found %d invalid policies, want at least 18", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".hcl")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := filepath.ToSlash(file)
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, diags := Load(file, src)
			if p != nil {
				t.Errorf("Load returned a policy for an invalid file")
			}
			if !diags.HasErrors() {
				t.Fatalf("Load returned no error diagnostics:\n%s", FormatDiagnostics(diags))
			}
			checkSubjects(t, diags)
			policytest.Golden(t, strings.TrimSuffix(file, ".hcl")+".golden", []byte(FormatDiagnostics(diags)))
		})
	}
}

// checkSubjects fails if an error diagnostic has no Subject, or a Context
// that does not contain its Subject.
func checkSubjects(t testing.TB, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject == nil {
			t.Errorf("error diagnostic without Subject: %s", FormatDiagnostics(hcl.Diagnostics{d}))
			continue
		}
		if d.Context != nil && (d.Context.Start.Byte > d.Subject.Start.Byte || d.Context.End.Byte < d.Subject.End.Byte) {
			t.Errorf("Context %s does not contain Subject %s: %s", d.Context, d.Subject, FormatDiagnostics(hcl.Diagnostics{d}))
		}
	}
}

// TestPolicies requires every policy shipped in ../policies to load
// without any diagnostic, warnings included.
func TestPolicies(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../policies/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no ../policies/*.hcl yet")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			p, diags := LoadFile(file)
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
			}
			if p == nil {
				t.Fatal("nil policy without diagnostics")
			}
		})
	}
}

// TestDeps keeps the policy package a pure library: it must not depend on
// the data plane, goproxy or Prometheus, nor on the packages above it.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t, "policy/host", "policy/catalog", "policy/internal/fasthcl", "policy/internal/slab", "policy/internal/text")
}

const examplePolicy = `
cloud = "AzureUSGovernment"
mode  = "learn"

client "workloads" {
  sources = ["10.0.1.0/24", "2001:db8::1"]
  allow "arm" {
    hosts = ["Management.Azure.COM.", "*.blob.core.windows.net"]
  }
  allow "private-vault" {
    hosts     = ["kv-int.vault.azure.net"]
    addresses = ["10.20.0.0/24"]
  }
  allow "ip-only" {
    addresses = ["20.1.2.3"]
    ports     = [443, 8443, 443]
  }
  limits {
    connections_per_second = 2.5
    max_tunnels            = 500
  }
}

client "batch" {
  sources = ["10.0.2.0/24"]
  mode    = "enforce"
  limits {
    connections_per_second = 10
    burst                  = 40
  }
}

client "open" {
  sources = ["10.0.3.0/24"]
  limits {}
}
`

func TestLoad(t *testing.T) {
	t.Parallel()
	p, diags := Load("example.hcl", []byte(examplePolicy))
	if len(diags) > 0 {
		t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
	}
	if got, want := p.Filename(), "example.hcl"; got != want {
		t.Errorf("Filename() = %q, want %q", got, want)
	}
	if got, want := p.Cloud(), "AzureUSGovernment"; got != want {
		t.Errorf("Cloud() = %q, want %q", got, want)
	}
	if got, want := p.RuleCount(), 3; got != want {
		t.Errorf("RuleCount() = %d, want %d", got, want)
	}
	cs := p.Clients()
	if len(cs) != 3 {
		t.Fatalf("got %d clients, want 3", len(cs))
	}
	w, b, o := cs[0], cs[1], cs[2]
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"workloads name", w.Name, "workloads"},
		{"workloads mode", w.Mode, ModeLearn},
		{"batch mode", b.Mode, ModeEnforce},
		{"open mode", o.Mode, ModeLearn},
		{"workloads limits", w.Limits, Limits{ConnectionsPerSecond: 2.5, Burst: 3, MaxTunnels: 500}},
		{"batch limits", b.Limits, Limits{ConnectionsPerSecond: 10, Burst: 40}},
		{"open limits", o.Limits, Limits{}},
		{"sources", fmt.Sprint(w.Sources), "[10.0.1.0/24 2001:db8::1/128]"},
		{"arm hosts", strings.Join(w.Rules[0].Hosts, " "), "management.azure.com *.blob.core.windows.net"},
		{"arm ports", len(w.Rules[0].Ports) == 1 && w.Rules[0].Ports[0] == 443, true},
		{"ip-only ports deduplicated", len(w.Rules[2].Ports), 2},
		{"ip-only addresses", fmt.Sprint(w.Rules[2].Addresses), "[20.1.2.3/32]"},
		{"rule index", w.Rules[2].Index, 2},
		{"rule name", w.Rules[1].Name, "private-vault"},
		{"rule range", w.Rules[0].Range.Start.Line, 7},
		{"client range", w.Range.Start.Line, 5},
		{"client range file", w.Range.Filename, "example.hcl"},
		{"mode string", ModeLearn.String() + " " + ModeEnforce.String(), "learn enforce"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestLoadWarnings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		src  string
		want string
	}{
		{
			name: "empty file",
			src:  "",
			want: "w.hcl:1:1: warning: No client blocks; The policy has no client blocks, so every connection will be refused as client_unknown.\n",
		},
		{
			name: "burst without rate",
			src:  "client \"c\" {\n  sources = [\"10.0.0.0/8\"]\n  limits {\n    burst = 5\n  }\n}\n",
			want: "w.hcl:4:13: warning: Ignored burst; burst has no effect without connections_per_second. Set connections_per_second or remove burst.\n",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, diags := Load("w.hcl", []byte(tt.src))
			if p == nil {
				t.Fatalf("Load returned nil policy for warnings only:\n%s", FormatDiagnostics(diags))
			}
			if got := FormatDiagnostics(diags); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadFileError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.hcl")
	p, diags := LoadFile(path)
	if p != nil || len(diags) != 1 || !diags.HasErrors() {
		t.Fatalf("LoadFile(missing) = %v, %v; want nil and one error", p, diags)
	}
	got := FormatDiagnostics(diags)
	if !strings.HasPrefix(got, "policy: Cannot read policy file; ") || !strings.Contains(got, path) {
		t.Errorf("got %q, want a read error naming %s", got, path)
	}
}

func TestLimitsBurstDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		rate  string
		burst int
	}{
		{"fraction below one", "0.2", 1},
		{"fraction", "2.1", 3},
		{"integer", "50", 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "client \"c\" {\n  sources = [\"10.0.0.0/8\"]\n  limits {\n    connections_per_second = " + tt.rate + "\n  }\n}\n"
			p, diags := Load("l.hcl", []byte(src))
			if p == nil {
				t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
			}
			l := p.Clients()[0].Limits
			if l.Burst != tt.burst || l.ConnectionsPerSecond <= 0 || math.IsInf(l.ConnectionsPerSecond, 0) {
				t.Errorf("got %+v, want burst %d", l, tt.burst)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"../policies/*.hcl", "testdata/invalid/*.hcl"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte(examplePolicy))
	f.Add([]byte(identityPolicy))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := Load("fuzz.hcl", src)
		if diags.HasErrors() != (p == nil) {
			t.Fatalf("policy %v with errors=%v", p != nil, diags.HasErrors())
		}
		checkSubjects(t, diags)
		out := FormatDiagnostics(diags)
		if n := strings.Count(out, "\n"); n != len(diags) {
			t.Fatalf("FormatDiagnostics printed %d lines for %d diagnostics:\n%s", n, len(diags), out)
		}
		if p == nil {
			return
		}
		// A loaded policy must answer queries without panicking.
		for _, c := range p.Clients() {
			if c.Identity != nil {
				// An identity block is selected by its identities, from
				// its sources if it has any, and never by address.
				for _, id := range slices.Concat(c.Identity.ObjectIDs, c.Identity.ClientIDs) {
					src := netip.MustParseAddr("192.0.2.1")
					if len(c.Sources) > 0 {
						src = c.Sources[0].Addr()
					}
					if got, listed := p.ClientForIdentity(id, id, src); got != c || !listed {
						t.Fatalf("identity %s of client %q from %v selects %v (listed=%v)", id, c.Name, src, got, listed)
					}
				}
				for _, s := range c.Sources {
					if got := p.Client(s.Addr()); got == c {
						t.Fatalf("source %s selects identity block %q by address", s, c.Name)
					}
				}
				continue
			}
			for _, s := range c.Sources {
				if got := p.Client(s.Addr()); got == nil {
					t.Fatalf("source %s of client %q selects no client", s, c.Name)
				}
			}
			for _, r := range c.Rules {
				for _, h := range r.Hosts {
					name := strings.TrimPrefix(h, "*.")
					if name != h {
						name = "x." + name
					}
					dst, err := host.Parse(name)
					if err != nil {
						continue // "x." prefix can push a name over 253 bytes
					}
					if d := c.Decide(dst, r.Ports[0]); !d.Allowed {
						t.Fatalf("rule %q host %q: %q on %d denied", r.Name, h, name, r.Ports[0])
					}
				}
			}
		}
	})
}
