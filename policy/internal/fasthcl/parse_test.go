package fasthcl

import (
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// item is an attribute or a block as a test binder takes them: every
// attribute and block is accepted.
type item struct {
	attr *hcl.Attribute

	typ         string
	labels      []string
	labelRanges []hcl.Range
	def, end    hcl.Range // the block's type and labels, its "}"
	body        []item
}

// parseItems parses src with a binder that accepts everything.
func parseItems(src []byte) ([]item, bool) {
	p, ok := NewParser(src, "fuzz.hcl")
	if !ok {
		return nil, false
	}
	var items []item
	ok = p.File(bindAll(p, &items))
	return items, ok
}

func bindAll(p *Parser, items *[]item) (AttrFunc, BlockFunc) {
	return func(name string, a *hcl.Attribute) bool {
			*items = append(*items, item{attr: a})
			return true
		}, func(typ string, labels []Label, def hcl.Range) bool {
			it := item{typ: typ, def: def}
			for _, l := range labels {
				text, rng := p.Label(l)
				it.labels = append(it.labels, text)
				it.labelRanges = append(it.labelRanges, rng)
			}
			var ok bool
			it.end, ok = p.Body(bindAll(p, &it.body))
			*items = append(*items, it)
			return ok
		}
}

// checkParse requires the parser to take src exactly as
// hclsyntax.ParseConfig does, item for item and node for node, or to
// decline it. It reports whether the parser accepted src.
func checkParse(t *testing.T, src []byte) bool {
	t.Helper()
	got, ok := parseItems(src)
	if !ok {
		return false
	}
	file, diags := hclsyntax.ParseConfig(src, "fuzz.hcl", hcl.InitialPos)
	if len(diags) > 0 {
		t.Fatalf("the parser accepted a file hclsyntax reports:\n%v\nsource:\n%q", diags, src)
	}
	compareBody(t, got, file.Body.(*hclsyntax.Body), src)
	return true
}

// compareBody compares what the parser took of a body with hclsyntax's.
func compareBody(t *testing.T, got []item, want *hclsyntax.Body, src []byte) {
	t.Helper()
	var attrs []*hclsyntax.Attribute
	for _, a := range want.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(a, b *hclsyntax.Attribute) int { return a.SrcRange.Start.Byte - b.SrcRange.Start.Byte })
	nAttr, nBlock := 0, 0
	for _, it := range got {
		if it.attr != nil {
			if nAttr == len(attrs) {
				t.Fatalf("attribute %s that hclsyntax does not have\nsource:\n%q", it.attr.Name, src)
			}
			compareAttr(t, it.attr, attrs[nAttr], src)
			nAttr++
			continue
		}
		if nBlock == len(want.Blocks) {
			t.Fatalf("block %s that hclsyntax does not have\nsource:\n%q", it.typ, src)
		}
		b := want.Blocks[nBlock]
		nBlock++
		if it.typ != b.Type || !slices.Equal(it.labels, b.Labels) || !slices.Equal(it.labelRanges, b.LabelRanges) ||
			it.def != b.DefRange() || it.end != b.CloseBraceRange {
			t.Fatalf("block %s %q at %v..%v, hclsyntax's %s %q at %v..%v\nsource:\n%q",
				it.typ, it.labels, it.def, it.end, b.Type, b.Labels, b.DefRange(), b.CloseBraceRange, src)
		}
		compareBody(t, it.body, b.Body, src)
	}
	if nAttr != len(attrs) || nBlock != len(want.Blocks) {
		t.Fatalf("%d attributes and %d blocks, hclsyntax %d and %d\nsource:\n%q", nAttr, nBlock, len(attrs), len(want.Blocks), src)
	}
}

// compareAttr compares an attribute the parser took with hclsyntax's: its
// ranges, the nodes its compact value stands for, and what a compiler
// reads from the compact value without them.
func compareAttr(t *testing.T, got *hcl.Attribute, want *hclsyntax.Attribute, src []byte) {
	t.Helper()
	if got.Name != want.Name || got.NameRange != want.NameRange || got.Range != want.SrcRange {
		t.Fatalf("attribute %s at %v, hclsyntax's %s at %v\nsource:\n%q", got.Name, got.Range, want.Name, want.SrcRange, src)
	}
	node := Syntax(got.Expr)
	if !reflect.DeepEqual(node, want.Expr) {
		t.Fatalf("attribute %s: the nodes of its compact value differ from hclsyntax's:\n%s\nsource:\n%q", got.Name, astDiff(node, want.Expr), src)
	}
	if got.Expr.Range() != want.Expr.Range() || got.Expr.StartRange() != want.Expr.StartRange() {
		t.Fatalf("attribute %s: compact value at %v, its node at %v\nsource:\n%q", got.Name, got.Expr.Range(), want.Expr.Range(), src)
	}
	switch e := got.Expr.(type) {
	case *Lit:
		checkLit(t, e, want.Expr)
	case *List:
		for i := range e.Elems() {
			checkLit(t, &e.Elems()[i], want.Expr.(*hclsyntax.TupleConsExpr).Exprs[i])
		}
	default:
		t.Fatalf("attribute %s has a %T, not a compact value", got.Name, got.Expr)
	}
}

// checkLit requires what a compiler reads from l without its node (range,
// value, string, whole number) to be what it would read from the node.
func checkLit(t *testing.T, l *Lit, node hclsyntax.Expression) {
	t.Helper()
	if got, want := l.Range(), node.Range(); got != want {
		t.Fatalf("compact literal %q has range %v, its node %v", l.Text(), got, want)
	}
	want, diags := node.Value(nil)
	if diags.HasErrors() || !l.Val().RawEquals(want) {
		t.Fatalf("compact literal %q has value %#v, its node %#v", l.Text(), l.Val(), want)
	}
	if l.IsString() && l.Text() != want.AsString() {
		t.Fatalf("compact string %q, its node %q", l.Text(), want.AsString())
	}
	if n, ok := l.SmallInt(); ok {
		if f := want.AsBigFloat(); !f.IsInt() || f.Cmp(new(big.Float).SetInt64(n)) != 0 {
			t.Fatalf("compact number %q reads as %d, its node %v", l.Text(), n, f)
		}
	}
}

// astDiff describes the first difference between two values.
func astDiff(got, want any) string {
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
	walk("node", reflect.ValueOf(got), reflect.ValueOf(want))
	if len(out) == 0 {
		return "(no difference found by walk; reflect.DeepEqual differs)"
	}
	return strings.Join(out, "\n")
}

// parseCases are table tests: sources the parser must accept, and sources
// it must decline (hclsyntax reports them, or they are outside the
// subset).
var parseCases = []struct {
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

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range parseCases {
		t.Run(fmt.Sprintf("%q", tt.src), func(t *testing.T) {
			if got := checkParse(t, []byte(tt.src)); got != tt.accept {
				t.Errorf("accepted=%v, want %v", got, tt.accept)
			}
		})
	}
}

// TestParsePolicies requires the parser to accept every policy shipped in
// policies/ and to take it as hclsyntax does.
func TestParsePolicies(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../../policies/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies: %v", err)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !checkParse(t, src) {
			t.Errorf("%s: declined", file)
		}
	}
}

// FuzzParse is the differential check of the parser against hclsyntax: for
// any input it declines, or takes exactly what hclsyntax parses.
func FuzzParse(f *testing.F) {
	for _, tt := range parseCases {
		f.Add([]byte(tt.src))
	}
	files, _ := filepath.Glob("../../../policies/*.hcl")
	for _, file := range files {
		if src, err := os.ReadFile(file); err == nil {
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkParse(t, src)
	})
}
