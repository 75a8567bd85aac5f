package learn

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestReportGolden merges two instances' observation files and renders
// every format, with and without a baseline, against golden files. The
// generated HCL must itself be a valid policy.
func TestReportGolden(t *testing.T) {
	t.Parallel()
	obs, err := ReadObservations("testdata/report/instance-a.jsonl", "testdata/report/instance-b.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	base, diags := policy.LoadFile("testdata/report/baseline.hcl")
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	for _, tt := range []struct {
		name string
		base *policy.Policy
		out  func(*Report) []byte
	}{
		{"learned.hcl", nil, func(r *Report) []byte { return r.HCL("AzureCloud") }},
		{"learned-with-baseline.hcl", base, func(r *Report) []byte { return r.HCL("AzureCloud") }},
		{"review.md", base, (*Report).Markdown},
		{"report.json", base, func(r *Report) []byte {
			b, err := r.JSON()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.out(NewReport(obs, tt.base))
			policytest.Golden(t, filepath.Join("testdata/report", tt.name+".golden"), got)
			if strings.HasSuffix(tt.name, ".hcl") {
				p, diags := policy.Load(tt.name, got)
				if diags.HasErrors() {
					t.Fatalf("generated policy does not pass check:\n%s", policy.FormatDiagnostics(diags))
				}
				// It allows exactly what was observed, and nothing near it.
				c := clientNamed(p, "workloads")
				for _, tc := range []struct {
					host  string
					port  uint16
					allow bool
				}{
					{"management.azure.com", 443, true},
					{"kv-prod-01.vault.azure.net", 443, true},
					{"dc.services.visualstudio.com", 443, true},
					{"kv-other.vault.azure.net", 443, false},
					{"management.azure.com", 80, false},
					{"169.254.169.254", 80, false},
				} {
					h, _ := host.Parse(tc.host)
					if got := c.Decide(h, tc.port).Allowed; got != tc.allow {
						t.Errorf("learned policy: %s:%d allowed=%v, want %v", tc.host, tc.port, got, tc.allow)
					}
				}
			}
		})
	}
}

func TestMergeObservations(t *testing.T) {
	t.Parallel()
	obs, err := ReadObservations("testdata/report/instance-a.jsonl", "testdata/report/instance-b.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var arm *Observation
	for i := range obs {
		if obs[i].Host == "management.azure.com" {
			arm = &obs[i]
		}
	}
	if arm == nil {
		t.Fatal("management.azure.com missing")
	}
	// Run a1's last snapshot (7) + run a2 (1) + run b1 (5).
	if arm.Count != 13 {
		t.Errorf("merged count %d, want 13", arm.Count)
	}
	if want := time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC); !arm.FirstSeen.Equal(want) {
		t.Errorf("first seen %v, want %v", arm.FirstSeen, want)
	}
	if want := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC); !arm.LastSeen.Equal(want) {
		t.Errorf("last seen %v, want %v", arm.LastSeen, want)
	}
}

func TestReadObservationsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"host\":\"a.example\",\"port\":443}\nnot json\n"), 0o644)
	if _, err := ReadObservations(bad); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2:") {
		t.Errorf("error = %v, want one naming bad.jsonl:2", err)
	}
}

// TestRecorder checks the file a Recorder writes: new destinations at once,
// counts at Flush, a new line when a reload changes the verdict, and that
// reading it back gives the in-memory state.
func TestRecorder(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := NewRecorder(&buf)
	c := &policy.Client{Name: "w", Sources: nil}
	t0 := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	o := Observation{ClientBlock: "w", Host: "a.example", Port: 443, Decision: policy.VerdictAllow, Rule: "a"}
	r.Observe(c, o, t0)
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("after a new destination: %d lines, want 1", n)
	}
	r.Observe(c, o, t0.Add(time.Second))
	r.Observe(c, o, t0.Add(2*time.Second))
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("repeat sightings must wait for Flush: %d lines", n)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	o.Decision, o.Rule, o.Reason = policy.VerdictDeny, "", "no_rule"
	r.Observe(c, o, t0.Add(3*time.Second))
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("after flush and a changed verdict: %d lines, want 3", n)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "obs.jsonl")
	os.WriteFile(f, buf.Bytes(), 0o644)
	got, err := ReadObservations(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Count != 4 || got[0].Decision != policy.VerdictDeny || !got[0].LastSeen.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("read back %+v", got)
	}
	if snap := r.Snapshot(); len(snap) != 1 || snap[0].Count != 4 {
		t.Fatalf("snapshot %+v", snap)
	}
}

// TestReportIdentity renders the learned policy of observations from
// identity blocks, with and without a baseline: each identity block keeps
// its identity block (and sources, where it has them), the entra block
// comes first, and the result loads and selects by identity.
func TestReportIdentity(t *testing.T) {
	t.Parallel()
	obs, err := ReadObservations("testdata/report/identity.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	base, diags := policy.LoadFile("testdata/report/identity-baseline.hcl")
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	for _, tt := range []struct {
		name string
		base *policy.Policy
		skew time.Duration
	}{
		{"learned-identity.hcl", nil, 30 * time.Second},               // the latest observed entra block
		{"learned-identity-with-baseline.hcl", base, 2 * time.Minute}, // the baseline's
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := NewReport(obs, tt.base).HCL("AzureCloud")
			policytest.Golden(t, filepath.Join("testdata/report", tt.name+".golden"), got)
			p, diags := policy.Load(tt.name, got)
			if diags.HasErrors() {
				t.Fatalf("generated policy does not pass check:\n%s", policy.FormatDiagnostics(diags))
			}
			if e := p.Entra(); e == nil || e.TenantID != "11111111-2222-3333-4444-555555555555" || e.ClockSkew != tt.skew {
				t.Errorf("entra block %+v, want the tenant and a skew of %v", e, tt.skew)
			}
			in, out := netip.MustParseAddr("10.0.3.4"), netip.MustParseAddr("192.0.2.1")
			for _, tc := range []struct {
				oid, cid string
				src      netip.Addr
				host     string
				want     string // block, "" for none
				allow    bool
			}{
				{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "", out, "kv-prod-01.vault.azure.net", "kv-reader", true},
				{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "", out, "kv-prod-02.vault.azure.net", "kv-reader", false},
				{"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "", out, "management.azure.com", "kv-reader", true},
				{"", "cccccccc-1111-2222-3333-444444444444", in, "stprod01.blob.core.windows.net", "pinned", true},
				{"", "cccccccc-1111-2222-3333-444444444444", out, "stprod01.blob.core.windows.net", "", false},
			} {
				c, _ := p.ClientForIdentity(tc.oid, tc.cid, tc.src)
				if name := blockName(c); name != tc.want {
					t.Errorf("identity %s%s from %v selects %q, want %q", tc.oid, tc.cid, tc.src, name, tc.want)
					continue
				}
				if c != nil && c.Decide(policytest.Host(t, tc.host), 443).Allowed != tc.allow {
					t.Errorf("%s: %s allowed=%v, want %v", c.Name, tc.host, !tc.allow, tc.allow)
				}
			}
			if c := p.Client(in); blockName(c) != "bootstrap" {
				t.Errorf("Client(%v) = %q, want the address-keyed bootstrap", in, blockName(c))
			}
		})
	}
	policytest.Golden(t, "testdata/report/review-identity.md.golden", NewReport(obs, nil).Markdown())
}

// TestRecorderIdentity: an observation from an identity block records
// the block's identities and the policy's entra block.
func TestRecorderIdentity(t *testing.T) {
	t.Parallel()
	p, diags := policy.LoadFile("testdata/report/identity-baseline.hcl")
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	r := NewRecorder(nil)
	now := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	for _, c := range p.Clients() {
		r.Observe(c, Observation{ClientBlock: c.Name, Host: "a.example", Port: 443, Decision: policy.VerdictWouldDeny, Reason: "no_rule"}, now)
	}
	got := map[string]Observation{}
	for _, o := range r.Snapshot() {
		got[o.ClientBlock] = o
	}
	if o := got["bootstrap"]; o.Identity != nil || o.Entra != nil {
		t.Errorf("address-keyed block: identity %+v, entra %+v", o.Identity, o.Entra)
	}
	o := got["kv-reader"]
	want := EntraBlock{TenantID: "11111111-2222-3333-4444-555555555555", Audiences: []string{"api://azegress"}, ClockSkew: "2m0s", Authority: "https://login.microsoftonline.com"}
	if o.Identity == nil || len(o.Identity.ObjectIDs) != 2 || o.Entra == nil || fmt.Sprint(*o.Entra) != fmt.Sprint(want) {
		t.Errorf("identity block: identity %+v, entra %+v; want two object IDs and %+v", o.Identity, o.Entra, want)
	}
}

func blockName(c *policy.Client) string {
	if c == nil {
		return ""
	}
	return c.Name
}
