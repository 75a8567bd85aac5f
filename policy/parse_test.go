package policy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/internal/fasthcl"
	"github.com/hashicorp/hcl/v2"
)

// policyFiles returns every policy under policies/ and the testdata of
// the policy packages, valid and invalid, and the cases files there: the
// seeds of the parse path checks.
func policyFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	files := map[string][]byte{}
	for _, pattern := range []string{"../policies/*.hcl", "testdata/*/*.hcl", "*/testdata/*.hcl", "*/testdata/*/*.hcl"} {
		names, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		for _, name := range names {
			src, err := os.ReadFile(name)
			if err != nil {
				tb.Fatal(err)
			}
			files[filepath.ToSlash(name)] = src
		}
	}
	if len(files) < 40 {
		tb.Fatalf("found %d policy files, want at least 40", len(files))
	}
	return files
}

// checkParse requires the two parse paths to agree on src. parseFast
// declines it, or it takes what parseSyntax takes, field for field and
// node for node, where parseSyntax reports nothing; a split parse gives
// what one pass gives; and then Load gives the same policy, diagnostics,
// lint warnings and decisions either way. It reports whether parseFast
// accepted src.
func checkParse(t *testing.T, src []byte) bool {
	t.Helper()
	fast, _, ok := parseFastSplit(src, "fuzz.hcl", len(src)+1)
	if split, _, splitOK := parseFastSplit(src, "fuzz.hcl", 0); splitOK != ok || splitOK && !reflect.DeepEqual(split, fast) {
		t.Fatalf("parseFast split in two (accepted=%v) differs from one pass (accepted=%v)\nsource:\n%q", splitOK, ok, src)
	}
	if !ok {
		return false
	}
	ref, diags := parseSyntax(src, "fuzz.hcl")
	if len(diags) > 0 {
		t.Fatalf("parseFast accepted a file parseSyntax reports:\n%s\nsource:\n%q", FormatDiagnostics(finishDiags(diags, nil, "fuzz.hcl")), src)
	}
	for _, a := range schemaAttrs(fast) {
		*a = syntaxAttr(*a)
	}
	for _, b := range schemaBodies(ref) {
		*b = nil // parseFast leaves them nil
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("parseFast differs from parseSyntax:\ngot:  %s\nwant: %s\nsource:\n%q", dumpSchema(fast), dumpSchema(ref), src)
	}

	gotP, gotDiags := Load("fuzz.hcl", src)
	wantP, wantDiags := load("fuzz.hcl", src, false)
	if g, w := FormatDiagnostics(gotDiags), FormatDiagnostics(wantDiags); g != w {
		t.Fatalf("diagnostics differ:\nfast:\n%s\nreference:\n%s", g, w)
	}
	if (gotP == nil) != (wantP == nil) {
		t.Fatalf("policy %v, reference %v", gotP != nil, wantP != nil)
	}
	if gotP == nil {
		return true
	}
	if !reflect.DeepEqual(gotP, wantP) {
		t.Fatalf("compiled policies differ\nsource:\n%q", src)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if g, w := FormatDiagnostics(Lint(gotP, now)), FormatDiagnostics(Lint(wantP, now)); g != w {
		t.Fatalf("lint warnings differ:\nfast:\n%s\nreference:\n%s", g, w)
	}
	probes := decisionProbes(gotP)
	if g, w := decisions(gotP, probes, now), decisions(wantP, probes, now); !slices.Equal(g, w) {
		t.Fatalf("decisions differ:\nfast:\n%s\nreference:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	return true
}

// schemaAttrs returns pointers to the attribute fields of fs that are set,
// found through the schema structs' types, so that a field added to them
// is compared too.
func schemaAttrs(fs *fileSchema) []**hcl.Attribute {
	var out []**hcl.Attribute
	walkSchema(reflect.ValueOf(fs), func(f reflect.Value) {
		if a, ok := f.Addr().Interface().(**hcl.Attribute); ok && *a != nil {
			out = append(out, a)
		}
	})
	return out
}

// schemaBodies returns pointers to the Body fields of fs.
func schemaBodies(fs *fileSchema) []*hcl.Body {
	var out []*hcl.Body
	walkSchema(reflect.ValueOf(fs), func(f reflect.Value) {
		if b, ok := f.Addr().Interface().(*hcl.Body); ok {
			out = append(out, b)
		}
	})
	return out
}

// walkSchema calls f with each exported field of the schema struct v
// points to and of the blocks in it.
func walkSchema(v reflect.Value, f func(reflect.Value)) {
	s := v.Elem()
	for i := range s.NumField() {
		fv := s.Field(i)
		if !s.Type().Field(i).IsExported() {
			continue
		}
		f(fv)
		if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Pointer {
			for j := range fv.Len() {
				walkSchema(fv.Index(j), f)
			}
		}
	}
}

// syntaxAttr returns a copy of a whose compact value is replaced by the
// hclsyntax nodes it stands for.
func syntaxAttr(a *hcl.Attribute) *hcl.Attribute {
	c := *a
	c.Expr = fasthcl.Syntax(a.Expr)
	return &c
}

func dumpSchema(fs *fileSchema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloud=%v mode=%v", fs.Cloud != nil, fs.Mode != nil)
	for _, c := range fs.Clients {
		fmt.Fprintf(&b, " client %q{%+v}", c.Name, *c)
		for _, a := range c.Allows {
			fmt.Fprintf(&b, " allow{%+v}", *a)
		}
	}
	return b.String()
}

// probe is a connection to ask a policy about.
type probe struct {
	client netip.Addr
	host   string
	port   uint16
}

// decisionProbes returns connections that p's own sources, hosts,
// addresses and ports make interesting: each rule's hosts (a name below
// each wildcard) and first address, on each of its ports and one other.
func decisionProbes(p *Policy) []probe {
	var out []probe
	for _, c := range p.Clients() {
		for _, src := range c.Sources {
			for _, r := range slices.Concat(c.Denies, c.Rules) {
				var hosts []string
				for _, h := range r.Hosts {
					hosts = append(hosts, strings.Replace(h, "*.", "x.", 1))
				}
				for _, a := range r.Addresses {
					hosts = append(hosts, a.Addr().String())
				}
				for _, h := range hosts {
					for _, port := range append(slices.Clone(r.Ports), 1) {
						out = append(out, probe{src.Addr(), h, port})
					}
				}
			}
		}
	}
	return out
}

// decisions describes what p decides for each probe at now: the client
// block, the verdict, the rule, and whether each address of a rule passes
// the destination guard; and which block each identity selects, from
// each source of its block and from elsewhere.
func decisions(p *Policy, probes []probe, now time.Time) []string {
	var out []string
	for _, c := range p.Clients() {
		if c.Identity == nil {
			continue
		}
		srcs := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
		for _, s := range c.Sources {
			srcs = append(srcs, s.Addr())
		}
		for _, id := range slices.Concat(c.Identity.ObjectIDs, c.Identity.ClientIDs) {
			for _, src := range srcs {
				for _, ids := range [][2]string{{id, ""}, {"", id}, {strings.ToUpper(id), id}} {
					got, listed := p.ClientForIdentity(ids[0], ids[1], src)
					name := "-"
					if got != nil {
						name = got.Name
					}
					out = append(out, fmt.Sprintf("identity %q %q from %v: %s listed=%v", ids[0], ids[1], src, name, listed))
				}
			}
		}
	}
	for _, pr := range probes {
		c := p.Client(pr.client)
		h, err := host.Parse(pr.host)
		if c == nil || err != nil {
			out = append(out, fmt.Sprintf("%v %s:%d: no client or host", pr.client, pr.host, pr.port))
			continue
		}
		d := c.DecideAt(h, pr.port, now)
		line := fmt.Sprintf("%s %s:%d: allowed=%v rule=%s deny=%s", c.Name, pr.host, pr.port, d.Allowed, ruleName(d.Rule), ruleName(d.Deny))
		for _, r := range c.Rules {
			for _, a := range r.Addresses {
				line += fmt.Sprintf(" %s=%v", a.Addr(), c.AddressAllowed(h, pr.port, a.Addr()))
			}
		}
		out = append(out, line)
	}
	return out
}

func ruleName(r *Rule) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%s#%d", r.Name, r.Index)
}

// TestParseFast checks which files parseFast takes; checkParse checks
// what it takes against parseSyntax.
func TestParseFast(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		src    string
		accept bool
	}{
		{"", true},
		{"cloud = \"AzureCloud\"\nmode = \"learn\"\n", true},
		{"client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  mode = \"learn\"\n  allow_sni_mismatch = true\n" +
			"  allow \"r\" {\n    hosts = [\"a.example.com\"]\n    addresses = []\n    ports = [443]\n    endpoints = []\n" +
			"    keyvaults = []\n    storage_accounts = []\n    registries = []\n    expires = \"2026-12-31\"\n  }\n" +
			"  deny \"d\" {\n    hosts = [\"b.example.com\"]\n    addresses = []\n    ports = [443]\n    expires = \"2026-12-31\"\n  }\n" +
			"  limits {\n    connections_per_second = 1.5\n    burst = 3\n    max_tunnels = 10\n  }\n  limits {\n  }\n}\nclient \"a\" {}\n", true},
		{"entra {\n  tenant_id = \"t\"\n  audiences = []\n  clock_skew = \"1s\"\n  authority = \"a\"\n}\nentra {\n}\n" +
			"client \"a\" {\n  identity {\n    object_ids = []\n    client_ids = [\"x\"]\n  }\n  identity {\n  }\n}\n", true},
		{"entra \"x\" {\n}\n", false},
		{"entra {\n  tenant = \"t\"\n}\n", false},
		{"entra {\n  identity {\n  }\n}\n", false},
		{"client \"a\" {\n  identity \"x\" {\n  }\n}\n", false},
		{"client \"a\" {\n  identity {\n    object_id = []\n  }\n}\n", false},
		{"client \"a\" {\n  identity { object_ids = [] }\n}\n", false},
		{"clouds = 1\n", false},
		{"client \"a\" {\n  source = []\n}\n", false},
		{"client \"a\" {\n  deny \"d\" {\n    endpoints = []\n  }\n}\n", false},
		{"client \"a\" {\n  allow \"r\" {\n    allow \"x\" {}\n  }\n}\n", false},
		{"client {\n}\n", false},
		{"client \"a\" \"b\" {\n}\n", false},
		{"client \"a\" {\n  limits \"x\" {}\n}\n", false},
		{"client \"a\" {\n  allow {}\n}\n", false},
		{"server \"a\" {\n}\n", false},
		{"client = 1\n", false},
		{"client \"a\" {\n  sources = []\n  sources = []\n}\n", false},
	} {
		if _, ok := parseFast([]byte(tt.src), "t.hcl"); ok != tt.accept {
			t.Errorf("parseFast(%q) accepted=%v, want %v", tt.src, ok, tt.accept)
		}
		checkParse(t, []byte(tt.src))
	}
}

// TestParsePolicies requires parseFast to accept every policy shipped in
// policies/ and the benchmark policy, and checks both parse paths on every
// policy file of the repository.
func TestParsePolicies(t *testing.T) {
	t.Parallel()
	for name, src := range policyFiles(t) {
		if !checkParse(t, src) && strings.HasPrefix(name, "../policies/") {
			t.Errorf("%s: parseFast declined a shipped policy", name)
		}
	}
	if !checkParse(t, []byte(benchPolicy(1000))) {
		t.Error("parseFast declined the benchmark policy")
	}
}

// exampleValues are valid values for every attribute of the schema, for
// TestParsePaths.
var exampleValues = map[string]string{
	"cloud":                  `"AzureUSGovernment"`,
	"mode":                   `"learn"`,
	"sources":                `["10.0.0.0/8", "2001:db8::/32"]`,
	"allow_sni_mismatch":     `true`,
	"hosts":                  `["a.example.com", "*.b.example.com"]`,
	"addresses":              `["10.20.0.0/24", "20.1.2.3"]`,
	"ports":                  `[443, 8443]`,
	"endpoints":              `["azure.arm", "azure.entra"]`,
	"keyvaults":              `["kv-prod-01"]`,
	"storage_accounts":       `["stprod01", "stprod01.queue"]`,
	"registries":             `["acrprod.westeurope"]`,
	"expires":                `"2099-12-31"`,
	"connections_per_second": `2.5`,
	"burst":                  `5`,
	"max_tunnels":            `10`,
	"tenant_id":              `"11111111-2222-3333-4444-555555555555"`,
	"audiences":              `["api://azegress", "99999999-8888-7777-6666-555555555555"]`,
	"clock_skew":             `"30s"`,
	"authority":              `"http://127.0.0.1:8400"`,
	"object_ids":             `["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]`,
	"client_ids":             `["ffffffff-1111-2222-3333-444444444444"]`,
}

// schemaSource writes a body with every attribute and block the schema
// struct type t declares in its gohcl tags, each attribute set to
// value(name) and each block labelled after its type.
func schemaSource(b *strings.Builder, t reflect.Type, indent string, value func(name string) string) {
	for i := range t.NumField() {
		name, kind, _ := strings.Cut(t.Field(i).Tag.Get("hcl"), ",")
		switch kind {
		case "", "optional":
			if name != "" {
				fmt.Fprintf(b, "%s%s = %s\n", indent, name, value(name))
			}
		case "block":
			elem := t.Field(i).Type.Elem().Elem()
			b.WriteString(indent + name)
			for j := range elem.NumField() {
				if _, k, _ := strings.Cut(elem.Field(j).Tag.Get("hcl"), ","); k == "label" {
					fmt.Fprintf(b, " %q", name+"1")
				}
			}
			b.WriteString(" {\n")
			schemaSource(b, elem, indent+"  ", value)
			b.WriteString(indent + "}\n")
		}
	}
}

// TestParsePaths pushes every attribute and block of the schema, as its
// gohcl tags declare them, through both parse paths: with valid values,
// which must compile, and with values of the wrong type, which must be
// reported alike. parseFast must accept each file, so an attribute or
// block the schema gains fails here until parse.go binds it.
func TestParsePaths(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		value func(name string) string
		valid bool
	}{
		{"valid", func(name string) string {
			v, ok := exampleValues[name]
			if !ok {
				t.Fatalf("no example value for attribute %q; add one to exampleValues", name)
			}
			return v
		}, true},
		{"null", func(string) string { return "null" }, false},
		{"number", func(string) string { return "1" }, false},
		{"string", func(string) string { return `"x"` }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			schemaSource(&b, reflect.TypeFor[fileSchema](), "", tt.value)
			src := []byte(b.String())
			if !checkParse(t, src) {
				t.Fatalf("parseFast declines a file with every attribute and block of the schema; bind the new ones in parse.go:\n%s", src)
			}
			p, diags := Load("paths.hcl", src)
			if (p != nil) != tt.valid || tt.valid && len(diags) > 0 {
				t.Errorf("policy %v, diagnostics:\n%s\nsource:\n%s", p != nil, FormatDiagnostics(diags), src)
			}
		})
	}
}

// FuzzParseFast is the differential check of the two parse paths: for
// any input parseFast declines, or it takes what parseSyntax takes, and
// Load gives the same policy, diagnostics, lint warnings and decisions
// either way.
func FuzzParseFast(f *testing.F) {
	for _, src := range policyFiles(f) {
		f.Add(src)
	}
	f.Add([]byte(benchPolicy(10)))
	f.Add([]byte(identityPolicy))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkParse(t, src)
	})
}

// TestLoadLargeDeepError puts one error deep inside a 100,000-rule policy,
// once a syntax error and once a schema error (parseFast declines, and
// hclsyntax or gohcl reports it) and once a semantic one (parseFast takes
// the file), and requires each to be reported alone at its line and
// column.
func TestLoadLargeDeepError(t *testing.T) {
	t.Parallel()
	src := benchPolicy(100_000)
	// Rule r77777 is an odd rule: allow "r77777" {, hosts, ports, }.
	const rule = "  allow \"r77777\" {\n    hosts = [\"*.tenant77777.example.net\"]\n"
	at := strings.Index(src, rule)
	if at < 0 {
		t.Fatal("benchmark policy changed; update the test")
	}
	line := 1 + strings.Count(src[:at], "\n") + 1 // the hosts line
	for _, tt := range []struct {
		name, hosts string
		col         int
		want        string
		fast        bool // parseFast accepts it
	}{
		{"syntax", `    hosts = ["*.tenant77777.example.net" "x"]` + "\n", 42, "Missing item separator", false},
		{"schema", `    host = ["*.tenant77777.example.net"]` + "\n", 5, "Unsupported argument", false},
		{"semantic", `    hosts = ["*.tenant77777.exa mple.net"]` + "\n", 14, "Invalid host pattern", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := src[:at] + "  allow \"r77777\" {\n" + tt.hosts + src[at+len(rule):]
			p, diags := Load("big.hcl", []byte(bad))
			if p != nil || len(diags) != 1 {
				t.Fatalf("got policy %v and %d diagnostics, want one error:\n%s", p != nil, len(diags), FormatDiagnostics(diags))
			}
			want := fmt.Sprintf("big.hcl:%d:%d: %s", line, tt.col, tt.want)
			if got := FormatDiagnostics(diags); !strings.HasPrefix(got, want) {
				t.Errorf("got %q, want prefix %q", got, want)
			}
			if _, fast := parseFast([]byte(bad), "big.hcl"); fast != tt.fast {
				t.Errorf("parseFast accepted=%v, want %v", fast, tt.fast)
			}
		})
	}
}

// TestParseFastSplit parses files in two halves, as large files are, and
// requires the result of one pass, or a decline where one pass declines.
func TestParseFastSplit(t *testing.T) {
	t.Parallel()
	rules := benchPolicy(400)
	body := strings.TrimSuffix(strings.TrimPrefix(rules, "client \"bench\" {\n  sources = [\"10.0.0.0/8\"]\n"), "}\n")
	comment := "/*\n" + strings.Repeat("  allow \"c\" {\n  }\n", 3000) + "*/\n" // longer than rules: the middle is in it
	for _, tt := range []struct {
		name, src      string
		accept, joined bool
	}{
		{"one client", rules, true, true},
		{"second client", "client \"a\" {\n  sources = [\"10.1.0.0/16\"]\n}\n" + rules + "mode = \"learn\"\n", true, true},
		{"attribute after the split", "client \"a\" {\n" + body + "  sources = [\"10.1.0.0/16\"]\n  mode = \"learn\"\n}\n", true, true},
		{"attribute in both halves", "client \"a\" {\n  sources = [\"10.1.0.0/16\"]\n" + body + "  sources = [\"10.2.0.0/16\"]\n}\n", false, false},
		{"split inside a comment", rules + comment, true, false},
		{"error after the split", rules[:len(rules)-2] + "  allow \"x\" { hosts = [] }\n}\n", false, false},
		{"deny rules", strings.ReplaceAll(rules, "allow", "deny"), true, true},
		{"identity after the split", "entra {\n  tenant_id = \"11111111-2222-3333-4444-555555555555\"\n  audiences = [\"api://azegress\"]\n}\n" +
			"client \"a\" {\n" + body + "  identity {\n    object_ids = [\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\"]\n  }\n}\n", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := []byte(tt.src)
			split, joined, ok := parseFastSplit(src, "split.hcl", 0)
			if ok != tt.accept || joined != tt.joined {
				t.Fatalf("accepted=%v joined=%v, want %v and %v", ok, joined, tt.accept, tt.joined)
			}
			one, _, oneOK := parseFastSplit(src, "split.hcl", len(src)+1)
			if ok != oneOK {
				t.Fatalf("split accepted=%v, one pass %v", ok, oneOK)
			}
			if ok && !reflect.DeepEqual(split, one) {
				t.Errorf("split result differs from one pass:\n%s\n%s", dumpSchema(split), dumpSchema(one))
			}
			checkParse(t, src)
		})
	}
}
