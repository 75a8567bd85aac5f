package policy

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// checkParseFast requires parseFast to return exactly the body
// hclsyntax.ParseConfig returns for src, or to decline. It reports whether
// parseFast accepted src.
func checkParseFast(t *testing.T, src []byte) bool {
	t.Helper()
	got, ok := parseFast(src, "fuzz.hcl")
	file, diags := hclsyntax.ParseConfig(src, "fuzz.hcl", hcl.InitialPos)
	fs, schemaOK := parseFastSchema(src, "fuzz.hcl")
	if split, _, splitOK := parseFastSchemaSplit(src, "fuzz.hcl", 0); splitOK != schemaOK || splitOK && !reflect.DeepEqual(split, fs) {
		t.Fatalf("parseFastSchema split in two (accepted=%v) differs from one pass (accepted=%v)\nsource:\n%q", splitOK, schemaOK, src)
	}
	if schemaOK {
		if !ok {
			t.Fatalf("parseFastSchema accepted a file parseFast declines:\n%q", src)
		}
		d := &decoder{}
		want := d.file(file.Body.(*hclsyntax.Body))
		if len(d.diags) > 0 {
			t.Fatalf("parseFastSchema accepted a file the decoder reports:\n%s\nsource:\n%q", FormatDiagnostics(d.diags), src)
		}
		clearBodies(want)
		syntaxSchema(t, fs)
		if !reflect.DeepEqual(fs, want) {
			t.Fatalf("parseFastSchema differs from decoding hclsyntax's body:\ngot:  %s\nwant: %s\nsource:\n%q", dumpSchema(fs), dumpSchema(want), src)
		}
	}
	if !ok {
		return false
	}
	if len(diags) > 0 {
		t.Fatalf("parseFast accepted a file hclsyntax reports:\n%s\nsource:\n%q", FormatDiagnostics(diags), src)
	}
	want := file.Body.(*hclsyntax.Body)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseFast differs from hclsyntax:\n%s\nsource:\n%q", astDiff(got, want), src)
	}
	// The compiled policies are then the same too, diagnostics included.
	gotP, gotDiags := Load("fuzz.hcl", src)
	wantP, wantDiags := loadSlow("fuzz.hcl", src)
	if g, w := FormatDiagnostics(gotDiags), FormatDiagnostics(wantDiags); g != w {
		t.Fatalf("diagnostics differ:\ngot:\n%s\nwant:\n%s", g, w)
	}
	if (gotP == nil) != (wantP == nil) {
		t.Fatalf("policy %v, want %v", gotP != nil, wantP != nil)
	}
	if !reflect.DeepEqual(gotP, wantP) {
		t.Fatalf("compiled policies differ\nsource:\n%q", src)
	}
	return true
}

// syntaxSchema replaces the compact values of parseFastSchema's
// attributes with the hclsyntax nodes they stand for, after checking that
// what the compiler reads from them without those nodes (range, value,
// string, whole number) is what it would read from the nodes.
func syntaxSchema(t *testing.T, fs *fileSchema) {
	t.Helper()
	var p *fastParser
	checkLit := func(l *fastLit, node hcl.Expression) {
		t.Helper()
		if got, want := l.Range(), node.Range(); got != want {
			t.Fatalf("compact literal %q has range %v, its node %v", l.text(), got, want)
		}
		want, ok := literalValue(node)
		if !ok || !l.value().RawEquals(want) {
			t.Fatalf("compact literal %q has value %#v, its node %#v", l.text(), l.value(), want)
		}
		if l.kind == tString && l.text() != want.AsString() {
			t.Fatalf("compact string %q, its node %q", l.text(), want.AsString())
		}
		if n, ok := l.smallInt(); ok {
			if f := want.AsBigFloat(); !f.IsInt() || f.Cmp(new(big.Float).SetInt64(n)) != 0 {
				t.Fatalf("compact number %q reads as %d, its node %v", l.text(), n, f)
			}
		}
	}
	conv := func(a *hcl.Attribute) {
		t.Helper()
		if a == nil {
			return
		}
		switch e := a.Expr.(type) {
		case *fastLit:
			if p == nil {
				p = newSyntaxParser(e.f)
			}
			a.Expr = p.litNode(e)
			checkLit(e, a.Expr)
		case *fastList:
			if p == nil {
				p = newSyntaxParser(e.f)
			}
			node := p.listNode(e)
			for i := range e.elems {
				checkLit(&e.elems[i], node.Exprs[i])
			}
			if got, want := e.Range(), node.Range(); got != want {
				t.Fatalf("compact list has range %v, its node %v", got, want)
			}
			a.Expr = node
		default:
			t.Fatalf("attribute %s has a %T, not a compact value", a.Name, a.Expr)
		}
	}
	conv(fs.Cloud)
	conv(fs.Mode)
	for _, c := range fs.Clients {
		conv(c.Sources)
		conv(c.Mode)
		conv(c.AllowSNIMismatch)
		for _, a := range c.Allows {
			for _, x := range []*hcl.Attribute{a.Hosts, a.Addresses, a.Ports, a.Endpoints, a.KeyVaults, a.StorageAccounts, a.Registries, a.Expires} {
				conv(x)
			}
		}
		for _, d := range c.Denies {
			for _, x := range []*hcl.Attribute{d.Hosts, d.Addresses, d.Ports, d.Expires} {
				conv(x)
			}
		}
		for _, l := range c.Limits {
			for _, x := range []*hcl.Attribute{l.ConnectionsPerSecond, l.Burst, l.MaxTunnels} {
				conv(x)
			}
		}
	}
}

// clearBodies sets the Body fields, which parseFastSchema leaves nil.
func clearBodies(fs *fileSchema) {
	for _, c := range fs.Clients {
		c.Body = nil
		for _, a := range c.Allows {
			a.Body = nil
		}
		for _, d := range c.Denies {
			d.Body = nil
		}
		for _, l := range c.Limits {
			l.Body = nil
		}
	}
}

// loadSlow is Load without the fast front ends.
func loadSlow(filename string, src []byte) (*Policy, hcl.Diagnostics) {
	return load(filename, src, false)
}

// astDiff describes the first difference between two bodies.
func astDiff(got, want *hclsyntax.Body) string {
	var out []string
	var walk func(path string, g, w reflect.Value)
	walk = func(path string, g, w reflect.Value) {
		if len(out) > 0 {
			return
		}
		if g.IsValid() != w.IsValid() {
			out = append(out, fmt.Sprintf("%s: validity %v vs %v", path, g.IsValid(), w.IsValid()))
			return
		}
		if !g.IsValid() {
			return
		}
		if g.Type() != w.Type() {
			out = append(out, fmt.Sprintf("%s: type %s vs %s", path, g.Type(), w.Type()))
			return
		}
		switch g.Kind() {
		case reflect.Pointer, reflect.Interface:
			if g.IsNil() != w.IsNil() {
				out = append(out, fmt.Sprintf("%s: nil %v vs %v", path, g.IsNil(), w.IsNil()))
				return
			}
			if !g.IsNil() {
				walk(path, g.Elem(), w.Elem())
			}
		case reflect.Struct:
			for i := range g.NumField() {
				walk(path+"."+g.Type().Field(i).Name, g.Field(i), w.Field(i))
			}
		case reflect.Slice:
			if g.IsNil() != w.IsNil() || g.Len() != w.Len() {
				out = append(out, fmt.Sprintf("%s: nil %v len %d vs nil %v len %d", path, g.IsNil(), g.Len(), w.IsNil(), w.Len()))
				return
			}
			for i := range g.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), g.Index(i), w.Index(i))
			}
		case reflect.Map:
			if g.IsNil() != w.IsNil() || g.Len() != w.Len() {
				out = append(out, fmt.Sprintf("%s: nil %v len %d vs nil %v len %d", path, g.IsNil(), g.Len(), w.IsNil(), w.Len()))
				return
			}
			for _, k := range w.MapKeys() {
				walk(fmt.Sprintf("%s[%v]", path, k), g.MapIndex(k), w.MapIndex(k))
			}
		default:
			if g.CanInterface() && !reflect.DeepEqual(g.Interface(), w.Interface()) {
				out = append(out, fmt.Sprintf("%s: %v vs %v", path, g.Interface(), w.Interface()))
			} else if !g.CanInterface() && fmt.Sprint(g) != fmt.Sprint(w) {
				out = append(out, fmt.Sprintf("%s: %v vs %v", path, g, w))
			}
		}
	}
	walk("body", reflect.ValueOf(got), reflect.ValueOf(want))
	if len(out) == 0 {
		return "(no difference found by walk; reflect.DeepEqual differs)"
	}
	return strings.Join(out, "\n")
}

// fastParseCases are table tests: sources parseFast must accept, and
// sources it must decline (hclsyntax reports them, or they are outside the
// subset).
var fastParseCases = []struct {
	src    string
	accept bool
}{
	{"", true},
	{"\n\n", true},
	{"# only a comment", true},
	{"# only a comment\n", true},
	{"/* c */ mode = \"learn\"\n", true},
	{"mode = \"learn\"", true},
	{"mode = \"learn\" # why\n", true},
	{"mode = \"learn\" // why\r\n", true},
	{"mode = \"learn\"\r\ncloud = \"AzureCloud\"\r\n", true},
	{"  \t mode = \"\"\n", true},
	{"client \"a\" {\n  sources = [\"10.0.0.0/8\",]\n  allow \"r\" {\n    hosts = [\n      \"a.example.com\", # one\n      \"*.b.example.com\"\n    ]\n    ports = [443, 8443]\n  }\n  limits {\n    connections_per_second = 2.5\n    burst = 10\n  }\n}\n", true},
	{"client \"a\" {}\n", true},
	{"client \"a\" {\n}", true},
	{"x = [true, false, null, 1, \"s\"]\n", true},
	{"x = []\n", true},
	{"x = [0, 0443, 65535, 123456789012345678, 1234567890123456789, 0.5, 2.50]\n", true},
	{"# Zürich – ünïcode in a comment\nx = 1\n", true},
	{"/* multi\nline */ x = 1\n", true},
	{"x = 1 /* trailing */\n", true},
	{"a \"b\" \"c\" {\n}\n", true},

	{"\xEF\xBB\xBFx = 1\n", false},
	{"x = 1\nx = 2\n", false},
	{"x = 1, y = 2\n", false},
	{"x = \"a\\\"b\"\n", false},
	{"x = \"${var.a}\"\n", false},
	{"x = \"100%\"\n", false},
	{"x = \"caf\u00e9\"\n", false},
	{"x = -1\n", false},
	{"x = 1e3\n", false},
	{"x = 1.\n", false},
	{"x = 1 + 2\n", false},
	{"x = a.b\n", false},
	{"x = [[1]]\n", false},
	{"x = [for v in y: v]\n", false},
	{"x = {a = 1}\n", false},
	{"x = <<EOT\nhi\nEOT\n", false},
	{"x = \"a\" [0]\n", false},
	{"x = [\"a\"\n[0]]\n", false},
	{"x = true(1)\n", false},
	{"client a {\n}\n", false},
	{"client \"a\" { x = 1 }\n", false},
	{"client \"a\"\n{\n}\n", false},
	{"client \"a\" {\n", false},
	{"client \"a\" {\n} x = 1\n", false},
	{"}\n", false},
	{"x = 1\r", false},
	{"x = 1 /* unterminated", false},
	{"x = 1 # Zürich", false},
	{"#\xec0\n", false}, // invalid UTF-8 in a comment: a grapheme cluster can swallow the newline
	{"\"x\" = 1\n", false},
	{"x = \"unterminated\n", false},
	{"x == 1\n", false},
	{"x;\n", false},
}

func TestParseFast(t *testing.T) {
	t.Parallel()
	for _, tt := range fastParseCases {
		t.Run(fmt.Sprintf("%q", tt.src), func(t *testing.T) {
			if got := checkParseFast(t, []byte(tt.src)); got != tt.accept {
				t.Errorf("parseFast accepted=%v, want %v", got, tt.accept)
			}
		})
	}
}

// TestParseFastSchema checks which files parseFastSchema takes; what it
// returns is checked against the decoder by checkParseFast.
func TestParseFastSchema(t *testing.T) {
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
	} {
		_, ok := parseFastSchema([]byte(tt.src), "t.hcl")
		if ok != tt.accept {
			t.Errorf("parseFastSchema(%q) accepted=%v, want %v", tt.src, ok, tt.accept)
		}
		checkParseFast(t, []byte(tt.src))
	}
}

// TestParseFastPolicies requires parseFast to accept every valid policy in
// the repository and to agree with hclsyntax on all of them.
func TestParseFastPolicies(t *testing.T) {
	t.Parallel()
	for name, src := range policyFiles(t) {
		accepted := checkParseFast(t, src)
		if _, schemaOK := parseFastSchema(src, name); strings.HasPrefix(name, "../policies/") && (!accepted || !schemaOK) {
			t.Errorf("%s: a fast front end declined a shipped policy (parseFast %v, parseFastSchema %v)", name, accepted, schemaOK)
		}
	}
	if _, ok := parseFastSchema([]byte(benchPolicy(1000)), "bench.hcl"); !ok || !checkParseFast(t, []byte(benchPolicy(1000))) {
		t.Error("a fast front end declined the benchmark policy")
	}
}

// FuzzParseFast is the differential check of the fast front end: for any
// input it either declines or returns exactly hclsyntax's body, and Load
// gives the same diagnostics either way.
func FuzzParseFast(f *testing.F) {
	for _, src := range policyFiles(f) {
		f.Add(src)
	}
	for _, tt := range fastParseCases {
		f.Add([]byte(tt.src))
	}
	f.Add([]byte(benchPolicy(10)))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkParseFast(t, src)
	})
}

// TestLoadLargeDeepError puts one error deep inside a 100,000-rule policy,
// once a syntax error (the fast front end declines and hclsyntax reports
// it) and once a semantic one (the fast front end parses the file), and
// requires each to be reported alone at its line and column.
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
		fastSchema  bool // parseFastSchema accepts it
	}{
		{"syntax", `    hosts = ["*.tenant77777.example.net" "x"]` + "\n", 42, "Missing item separator", false, false},
		{"schema", `    host = ["*.tenant77777.example.net"]` + "\n", 5, "Unsupported argument", true, false},
		{"semantic", `    hosts = ["*.tenant77777.exa mple.net"]` + "\n", 14, "Invalid host pattern", true, true},
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
			if _, fast := parseFastSchema([]byte(bad), "big.hcl"); fast != tt.fastSchema {
				t.Errorf("parseFastSchema accepted=%v, want %v", fast, tt.fastSchema)
			}
		})
	}
}

// TestParseFastSchemaSplit parses files in two halves, as large files
// are, and requires the result of one pass, or a decline where one pass
// declines.
func TestParseFastSchemaSplit(t *testing.T) {
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
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := []byte(tt.src)
			split, joined, ok := parseFastSchemaSplit(src, "split.hcl", 0)
			if ok != tt.accept || joined != tt.joined {
				t.Fatalf("accepted=%v joined=%v, want %v and %v", ok, joined, tt.accept, tt.joined)
			}
			one, _, oneOK := parseFastSchemaSplit(src, "split.hcl", len(src)+1)
			if ok != oneOK {
				t.Fatalf("split accepted=%v, one pass %v", ok, oneOK)
			}
			if ok && !reflect.DeepEqual(split, one) {
				t.Errorf("split result differs from one pass:\n%s\n%s", dumpSchema(split), dumpSchema(one))
			}
			checkParseFast(t, src)
		})
	}
}
