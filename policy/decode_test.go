package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// policyFiles returns every policy under policies/ and the testdata of
// the policy packages, valid and invalid, and the cases files there: the
// seeds of the decoder and parser equivalence checks.
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

// checkDecodeLikeGohcl requires the decoder to fill the schema structs and
// report the diagnostics exactly as gohcl.DecodeBody does.
func checkDecodeLikeGohcl(t *testing.T, name string, src []byte) {
	t.Helper()
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return
	}
	var want fileSchema
	wantDiags := gohcl.DecodeBody(file.Body, nil, &want)
	setBlockRanges(&want)
	d := &decoder{}
	got := d.file(file.Body.(*hclsyntax.Body))
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("%s: decoded schema differs from gohcl's:\ngot:  %s\nwant: %s", name, dumpSchema(got), dumpSchema(&want))
	}
	g, w := FormatDiagnostics(finishDiags(d.diags, nil, name)), FormatDiagnostics(finishDiags(wantDiags, nil, name))
	if g != w {
		t.Errorf("%s: diagnostics differ from gohcl's:\ngot:\n%s\nwant:\n%s", name, g, w)
	}
}

// setBlockRanges sets the block ranges gohcl does not know about.
func setBlockRanges(fs *fileSchema) {
	for _, c := range fs.Clients {
		c.rng = blockRange(c.DefRange, c.Body)
		for _, a := range c.Allows {
			a.rng = blockRange(a.DefRange, a.Body)
		}
		for _, d := range c.Denies {
			d.rng = blockRange(d.DefRange, d.Body)
		}
		for _, l := range c.Limits {
			l.rng = blockRange(l.DefRange, l.Body)
		}
	}
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

func TestDecodeLikeGohcl(t *testing.T) {
	t.Parallel()
	for name, src := range policyFiles(t) {
		checkDecodeLikeGohcl(t, name, src)
	}
	// Every attribute each schema names, so that a field added to a schema
	// struct but not to the decoder fails here; and some that no schema
	// names, and blocks with the wrong labels.
	attrs := func(s *hcl.BodySchema, extra ...string) string {
		var b strings.Builder
		for _, a := range s.Attributes {
			fmt.Fprintf(&b, "%s = 1\n", a.Name)
		}
		for _, e := range extra {
			b.WriteString(e + "\n")
		}
		return b.String()
	}
	src := attrs(fileBodySchema, "clouds = 1") + `client "a" {
` + attrs(clientBodySchema, "source = 1") + `
  allow "r" {
` + attrs(allowBodySchema, "host = 1") + `
  }
  deny "d" {
` + attrs(denyBodySchema, "endpoints = 1") + `
  }
  limits {
` + attrs(limitsBodySchema, "burts = 1") + `
  }
  limits "x" {
  }
  allow {
  }
  deny "a" "b" {
  }
  alow "x" {
  }
}
client {
}
`
	checkDecodeLikeGohcl(t, "all.hcl", []byte(src))
	plain := []byte(attrs(fileBodySchema) + "client \"a\" {\n" + attrs(clientBodySchema) +
		"allow \"r\" {\n" + attrs(allowBodySchema) + "}\ndeny \"d\" {\n" + attrs(denyBodySchema) + "}\nlimits {\n" + attrs(limitsBodySchema) + "}\n}\n")
	checkDecodeLikeGohcl(t, "plain.hcl", plain)
	if _, ok := parseFastSchema(plain, "plain.hcl"); !ok {
		t.Error("parseFastSchema declines a file with every schema attribute; add the new ones to fastschema.go")
	}
	checkParseFast(t, plain)
}
