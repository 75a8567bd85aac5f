package azfw

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/policytest"
	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// azfwNow is the clock of the import and export golden tests.
var azfwNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// TestImportGolden imports each testdata/NAME.json and
// checks the HCL (NAME.hcl.golden) and the warnings (NAME.warnings.golden);
// that the policy loads; that it decides each case of NAME.cases.hcl the
// way Azure Firewall does (or, where the warnings say so, the documented
// way azegress differs); and that exporting it (NAME.json.golden) and
// importing the export gives back an equivalent policy.
func TestImportGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".golden") {
			inputs = append(inputs, f)
		}
	}
	if len(inputs) < 5 {
		t.Fatalf("found %d Azure Firewall exports, want at least 5", len(inputs))
	}
	for _, file := range inputs {
		base := strings.TrimSuffix(file, ".json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			imp, err := Import("AzureCloud", Input{Name: filepath.Base(file), Data: data})
			if err != nil {
				t.Fatal(err)
			}
			policytest.Golden(t, base+".hcl.golden", imp.HCL)
			policytest.Golden(t, base+".warnings.golden", []byte(strings.Join(imp.Warnings, "\n")+"\n"))
			if got := hclwrite.Format(imp.HCL); string(got) != string(imp.HCL) {
				t.Errorf("the HCL is not formatted:\n%s", imp.HCL)
			}
			p, diags := policy.Load(filepath.Base(base)+".hcl", imp.HCL)
			if diags.HasErrors() {
				t.Fatalf("the imported policy does not load:\n%s", policy.FormatDiagnostics(diags))
			}
			cases, diags := policy.LoadCasesFile(base + ".cases.hcl")
			if diags.HasErrors() {
				t.Fatal(policy.FormatDiagnostics(diags))
			}
			if len(cases) < 3 {
				t.Errorf("%d cases, want at least 3", len(cases))
			}
			for _, c := range cases {
				checkCase(t, p, c)
			}

			out, _, err := Export(p, ExportOptions{Now: azfwNow})
			if err != nil {
				t.Fatal(err)
			}
			policytest.Golden(t, base+".json.golden", out)
			checkRoundTrip(t, p, out)
		})
	}
}

// checkCase decides c against p without the proxy: Decide's rule, or the
// reason the proxy would give (deny_rule, no_rule, client_unknown).
func checkCase(t *testing.T, p *policy.Policy, c policy.Case) {
	t.Helper()
	name, port := c.Target, uint16(443)
	if h, ps, ok := strings.Cut(c.Target, ":"); ok {
		var n int
		fmt.Sscan(ps, &n)
		name, port = h, uint16(n)
	}
	h, err := host.Parse(name)
	if err != nil {
		t.Fatalf("case %q: %v", c.Name, err)
	}
	cl := p.Client(c.Client)
	d := cl.DecideAt(h, port, azfwNow)
	got, rule, reason := policy.VerdictDeny, "", ""
	switch {
	case cl == nil:
		reason = "client_unknown"
	case d.Allowed:
		got, rule = policy.VerdictAllow, d.Rule.Name
	case d.Deny != nil:
		reason = "deny_rule"
	default:
		reason = "no_rule"
	}
	if got != c.Expect || c.Rule != "" && rule != c.Rule || c.Reason != "" && reason != c.Reason {
		t.Errorf("case %q (%s): %s from %s: got %s rule=%q reason=%q; want %s rule=%q reason=%q",
			c.Name, text.Pos(c.Range), c.Target, c.Client, got, rule, reason, c.Expect, c.Rule, c.Reason)
	}
}

// checkRoundTrip imports the export of p and requires the same decisions
// as p from the first source address of each of p's client blocks, for
// every host and port p names and for near misses.
func checkRoundTrip(t *testing.T, p *policy.Policy, export []byte) {
	t.Helper()
	imp, err := Import(p.Cloud(), Input{Name: "export.json", Data: export})
	if err != nil {
		if len(p.Clients()) == 0 || slices.IndexFunc(p.Clients(), func(c *policy.Client) bool { return len(c.Rules)+len(c.Denies) > 0 }) < 0 {
			return // nothing to export
		}
		t.Fatalf("importing the export: %v", err)
	}
	q, diags := policy.Load("roundtrip.hcl", imp.HCL)
	if diags.HasErrors() {
		t.Fatalf("the round-tripped policy does not load:\n%s\n%s", policy.FormatDiagnostics(diags), imp.HCL)
	}
	n := 0
	for _, c := range p.Clients() {
		if len(c.Sources) == 0 {
			continue
		}
		client := c.Sources[0].Addr()
		if p.Client(client) != c {
			continue // a more specific block owns this address
		}
		for _, tg := range targets(p) {
			n++
			a := p.Client(client).DecideAt(tg.h, tg.port, azfwNow)
			b := q.Client(client).DecideAt(tg.h, tg.port, azfwNow)
			if a.Allowed != b.Allowed || (a.Deny == nil) != (b.Deny == nil) {
				t.Errorf("round trip: %s:%d from %s (block %q): allowed=%v deny=%v before, allowed=%v deny=%v after\n%s",
					tg.h, tg.port, client, c.Name, a.Allowed, a.Deny != nil, b.Allowed, b.Deny != nil, imp.HCL)
			}
		}
	}
	if n == 0 && p.RuleCount() > 0 {
		t.Errorf("round trip compared nothing")
	}
}

type target struct {
	h    host.Host
	port uint16
}

// targets returns every host and port p's rules name, with near misses:
// the apex and a deeper name of each wildcard, a look-alike, an IP
// literal's neighbour, and each host on a port its rule does not list.
func targets(p *policy.Policy) []target {
	var out []target
	add := func(name string, port uint16) {
		if h, err := host.Parse(name); err == nil {
			out = append(out, target{h, port})
		}
	}
	for _, c := range p.Clients() {
		for _, r := range slices.Concat(c.Rules, c.Denies) {
			ports := append(slices.Clone(r.Ports), 80, 443, 8443)
			for _, host := range r.Hosts {
				for _, port := range ports {
					if suffix, ok := strings.CutPrefix(host, "*."); ok {
						add("a."+suffix, port)
						add("a.b."+suffix, port)
						add(suffix, port)
						add("evil"+suffix, port)
					} else {
						add(host, port)
						add("x"+host, port)
						add("sub."+host, port)
					}
				}
			}
			for _, a := range r.Addresses {
				for _, port := range ports {
					add(a.Addr().String(), port)
					add(lastAddr(a).Next().String(), port)
				}
			}
		}
	}
	return out
}

// TestRoundTripPresets exports every preset in ../policies and imports the
// export: the result must decide every host and port the preset names,
// and near misses, as the preset does.
func TestRoundTripPresets(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../policies/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d presets", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			for _, cloud := range catalog.Clouds() {
				src, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				src = []byte(strings.Replace(string(src), `cloud = "AzureCloud"`, fmt.Sprintf("cloud = %q", cloud), 1))
				p, diags := policy.Load(file, src)
				if diags.HasErrors() {
					t.Fatal(policy.FormatDiagnostics(diags))
				}
				out, _, err := Export(p, ExportOptions{Now: azfwNow})
				if err != nil {
					t.Fatal(err)
				}
				checkRoundTrip(t, p, out)
			}
		})
	}
}

// TestImportSourceSemantics checks that overlapping Azure source sets
// give each client the union of the rules whose sources contain it, as
// Azure Firewall does, although azegress picks one client block.
func TestImportSourceSemantics(t *testing.T) {
	t.Parallel()
	doc := `{"type": "Microsoft.Network/firewallPolicies/ruleCollectionGroups", "name": "p/g", "properties": {"priority": 100, "ruleCollections": [
	  {"ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "c", "priority": 100, "action": {"type": "Allow"}, "rules": [
	    {"ruleType": "ApplicationRule", "name": "wide", "sourceAddresses": ["10.0.0.0/16"], "protocols": [{"protocolType": "Https", "port": 443}], "targetFqdns": ["wide.example.com"]},
	    {"ruleType": "ApplicationRule", "name": "narrow", "sourceAddresses": ["10.0.1.0/24", "10.9.0.1"], "protocols": [{"protocolType": "Https", "port": 443}], "targetFqdns": ["narrow.example.com"]},
	    {"ruleType": "ApplicationRule", "name": "any", "sourceAddresses": ["*"], "protocols": [{"protocolType": "Http", "port": 80}], "targetFqdns": ["crl.example.com"]},
	    {"ruleType": "ApplicationRule", "name": "range", "sourceAddresses": ["10.0.1.250-10.0.2.5"], "protocols": [{"protocolType": "Https", "port": 443}], "targetFqdns": ["range.example.com"]}
	  ]}]}}`
	imp, err := Import("", Input{Name: "doc.json", Data: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	p, diags := policy.Load("doc.hcl", imp.HCL)
	if diags.HasErrors() {
		t.Fatalf("%s\n%s", policy.FormatDiagnostics(diags), imp.HCL)
	}
	for _, tt := range []struct {
		client string
		allow  []string
		deny   []string
	}{
		{"10.0.0.5", []string{"wide.example.com", "crl.example.com:80"}, []string{"narrow.example.com", "range.example.com"}},
		{"10.0.1.5", []string{"wide.example.com", "narrow.example.com", "crl.example.com:80"}, []string{"range.example.com"}},
		{"10.0.1.251", []string{"wide.example.com", "narrow.example.com", "range.example.com"}, nil},
		{"10.0.2.5", []string{"wide.example.com", "range.example.com"}, []string{"narrow.example.com"}},
		{"10.0.2.6", []string{"wide.example.com"}, []string{"range.example.com"}},
		{"10.9.0.1", []string{"narrow.example.com", "crl.example.com:80"}, []string{"wide.example.com"}},
		{"192.0.2.1", []string{"crl.example.com:80"}, []string{"wide.example.com", "crl.example.com:443"}},
		{"2001:db8::1", []string{"crl.example.com:80"}, []string{"wide.example.com"}},
	} {
		c := p.Client(netip.MustParseAddr(tt.client))
		for _, want := range []struct {
			targets []string
			allow   bool
		}{{tt.allow, true}, {tt.deny, false}} {
			for _, tg := range want.targets {
				host, port := tg, uint16(443)
				if h, ps, ok := strings.Cut(tg, ":"); ok {
					host = h
					fmt.Sscan(ps, &port)
				}
				if got := c.Decide(policytest.Host(t, host), port).Allowed; got != want.allow {
					t.Errorf("%s -> %s: allowed=%v, want %v", tt.client, tg, got, want.allow)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("policy:\n%s", imp.HCL)
	}
}

func TestRangePrefixes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"10.0.0.0-10.0.0.255", "10.0.0.0/24"},
		{"10.0.0.1-10.0.0.10", "10.0.0.1/32 10.0.0.2/31 10.0.0.4/30 10.0.0.8/31 10.0.0.10/32"},
		{"192.168.20.10-192.168.20.20", "192.168.20.10/31 192.168.20.12/30 192.168.20.16/30 192.168.20.20/32"},
		{"0.0.0.0-255.255.255.255", "0.0.0.0/0"},
		{"2001:db8::-2001:db8::ffff", "2001:db8::/112"},
		{"10.0.0.5", "10.0.0.5/32"},
		{"10.0.0.5/24", "10.0.0.0/24"},
		{"*", "0.0.0.0/0 ::/0"},
	} {
		ps, err := parseAzureAddress(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: got %v, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"10.0.0.9-10.0.0.1", "AzureCloud", "10.0.0.1-::1", "host.example.com"} {
		if _, err := parseAzureAddress(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestSubtractPrefix(t *testing.T) {
	t.Parallel()
	got := subtractPrefix([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}, netip.MustParsePrefix("10.0.1.0/24"))
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	want := "10.0.0.0/24 10.0.2.0/23 10.0.4.0/22 10.0.8.0/21 10.0.16.0/20 10.0.32.0/19 10.0.64.0/18 10.0.128.0/17"
	if strings.Join(s, " ") != want {
		t.Errorf("got %v, want %s", s, want)
	}
	if got := subtractPrefix([]netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}, netip.MustParsePrefix("10.0.0.0/16")); len(got) != 0 {
		t.Errorf("a covering prefix left %v", got)
	}
}

func TestARMExpressions(t *testing.T) {
	t.Parallel()
	ev := newARMEval(jobj{
		"parameters": jobj{
			"name":  jobj{"defaultValue": "fw"},
			"group": jobj{"defaultValue": "[concat('ipg-', parameters('name'))]"},
			"loc":   jobj{"defaultValue": "[resourceGroup().location]"},
		},
		"variables": jobj{"api": "*.hcp.westeurope.azmk8s.io", "self": "[variables('self')]"},
	})
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"[[literal]", "[literal]", true},
		{"[parameters('name')]", "fw", true},
		{"[concat(parameters('name'), '/Default')]", "fw/Default", true},
		{"[format('{0}/{1}', parameters('name'), 'g')]", "fw/g", true},
		{"[resourceId('Microsoft.Network/ipGroups', parameters('group'))]", "Microsoft.Network/ipGroups/ipg-fw", true},
		{"[variables('api')]", "*.hcp.westeurope.azmk8s.io", true},
		{"[toLower('ABC')]", "abc", true},
		{"['it''s']", "it's", true},
		{"[parameters('loc')]", "", false},
		{"[parameters('missing')]", "", false},
		{"[variables('self')]", "", false},
		{"[uniqueString(resourceGroup().id)]", "", false},
		{"[concat('a', ]", "", false},
	} {
		got, ok := ev.eval(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("eval(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"not json", `{"type": `, "not JSON"},
		{"no collections", `{"type": "Microsoft.Network/virtualNetworks", "name": "vnet"}`, "no Azure Firewall rule collections found"},
	} {
		_, err := Import("", Input{Name: "x.json", Data: []byte(tt.doc)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := Import("Mars", Input{Name: "x.json", Data: []byte(`{}`)}); err == nil {
		t.Errorf("unknown cloud: no error")
	}
}

// TestExportSources checks that a block's exported sources leave out the
// addresses of more specific blocks, which azegress gives their own rules.
func TestExportSources(t *testing.T) {
	t.Parallel()
	p, diags := policy.Load("test.hcl", []byte(`client "wide" {
  sources = ["10.0.0.0/16"]
  allow "a" {
    hosts = ["a.example.com"]
  }
}
client "narrow" {
  sources = ["10.0.1.0/24"]
}
`))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	out, warnings, err := Export(p, ExportOptions{Now: azfwNow})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), `"10.0.0.0/16"`) || !strings.Contains(string(out), `"10.0.128.0/17"`) || strings.Contains(string(out), `"10.0.1.0/24"`) {
		t.Errorf("sources do not leave out 10.0.1.0/24:\n%s", out)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	checkRoundTrip(t, p, out)
	if _, _, err := Export(p, ExportOptions{Priority: 70000}); err == nil {
		t.Errorf("priority 70000: no error")
	}
	if _, _, err := Export(p, ExportOptions{GroupName: "bad name"}); err == nil {
		t.Errorf("group name with a space: no error")
	}
}

// TestImportCLIListOutput reads the Azure CLI's list output, an array of
// flattened resources, with the IP Groups in a second file.
func TestImportCLIListOutput(t *testing.T) {
	t.Parallel()
	groups := `[{"name": "apps", "priority": 300, "type": "Microsoft.Network/FirewallPolicies/RuleCollectionGroups",
	  "ruleCollections": [{"action": {"type": "Allow"}, "name": "web", "priority": 100, "ruleCollectionType": "FirewallPolicyFilterRuleCollection",
	    "rules": [{"name": "arm", "ruleType": "ApplicationRule", "protocols": [{"port": 443, "protocolType": "Https"}],
	      "sourceAddresses": [], "sourceIpGroups": ["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/ipGroups/ipg-web"],
	      "targetFqdns": ["management.azure.com"]}]}]}]`
	ipGroups := `[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/ipGroups/ipg-web", "name": "ipg-web",
	  "type": "Microsoft.Network/ipGroups", "ipAddresses": ["10.5.0.0/24"]}]`
	imp, err := Import("", Input{Name: "groups.json", Data: []byte(groups)}, Input{Name: "ipgroups.json", Data: []byte(ipGroups)})
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Warnings) != 0 {
		t.Errorf("warnings: %v", imp.Warnings)
	}
	p, diags := policy.Load("x.hcl", imp.HCL)
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	c := p.Client(netip.MustParseAddr("10.5.0.9"))
	if c == nil || c.Name != "ipg-web" || !c.Decide(policytest.Host(t, "management.azure.com"), 443).Allowed {
		t.Errorf("got:\n%s", imp.HCL)
	}
}

// FuzzImport requires the importer never to panic and, when it succeeds,
// to produce a policy that loads without errors.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		imp, err := Import("", Input{Name: "fuzz.json", Data: data})
		if err != nil {
			return
		}
		if _, diags := policy.Load("fuzz.hcl", imp.HCL); diags.HasErrors() {
			t.Fatalf("the imported policy does not load:\n%s\n%s", policy.FormatDiagnostics(diags), imp.HCL)
		}
	})
}

// TestExportIdentityBlocks: an identity block is not exported, since
// Azure Firewall cannot tell identities apart: its rules, given to its
// sources, would let every workload there reach what one identity may.
// Nor do its sources carve anything out of an address-keyed block.
func TestExportIdentityBlocks(t *testing.T) {
	t.Parallel()
	p, diags := policy.Load("test.hcl", []byte(`entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}
client "wide" {
  sources = ["10.0.0.0/16"]
  allow "a" {
    hosts = ["a.example.com"]
  }
}
client "kv-reader" {
  sources = ["10.0.1.0/24"]
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    hosts = ["kv-prod-01.vault.azure.net"]
  }
}
`))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	out, warnings, err := Export(p, ExportOptions{Now: azfwNow})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "kv-prod-01") || !strings.Contains(string(out), `"10.0.0.0/16"`) {
		t.Errorf("want only the address-keyed block, with all its sources:\n%s", out)
	}
	want := `test.hcl:11:1: client "kv-reader": not exported: Azure Firewall cannot select by identity, and its rules given to its sources would let every workload there reach them`
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
}
