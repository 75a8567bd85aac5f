package main

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy/catalog"
)

func init() {
	// -update rewrites golden files; another test file may define it too.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files in testdata")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// TestCatalogTable compares `azegress catalog` for AzureCloud with its
// golden file. Run go test ./cmd/azegress -run TestCatalogTable -update to
// rewrite it after changing the catalog.
func TestCatalogTable(t *testing.T) {
	t.Parallel()
	out, errs, code := runCLI("catalog")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr: %s", code, errs)
	}
	const golden = "testdata/catalog-AzureCloud.golden"
	if updateGolden() {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if out != string(want) {
		t.Errorf("catalog output differs from %s (run with -update to rewrite it)\ngot:\n%s", golden, out)
	}
}

func TestCatalogCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"gov table", []string{"catalog", "-cloud", "AzureUSGovernment"}, 0, "azure.arm            management.usgovcloudapi.net", ""},
		{"china has no mtls", []string{"catalog", "-cloud", "AzureChinaCloud"}, 0, "login.chinacloudapi.cn", ""},
		{"unknown cloud", []string{"catalog", "-cloud", "AzureGermanCloud"}, 2, "", `"AzureGermanCloud" is not a known Azure cloud`},
		{"bad format", []string{"catalog", "-format", "yaml"}, 2, "", `"yaml" is not a format`},
		{"extra argument", []string{"catalog", "azure.arm"}, 2, "", "unexpected argument"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errs, code := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errs) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
		})
	}
	out, _, _ := runCLI("catalog", "-cloud", "AzureChinaCloud")
	if strings.Contains(out, "mtlsauth") {
		t.Error("AzureChinaCloud lists azure.entra.mtls")
	}
}

// TestCatalogJSON checks that the JSON form round-trips to the catalog.
func TestCatalogJSON(t *testing.T) {
	t.Parallel()
	out, errs, code := runCLI("catalog", "-cloud", "AzureUSGovernment", "-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Cloud  string          `json:"cloud"`
		Groups []catalog.Group `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := catalog.Groups("AzureUSGovernment")
	if got.Cloud != "AzureUSGovernment" || len(got.Groups) != len(want) {
		t.Fatalf("cloud %q with %d groups, want %d", got.Cloud, len(got.Groups), len(want))
	}
	for i, g := range got.Groups {
		if g.Name != want[i].Name || len(g.Endpoints) != len(want[i].Endpoints) || g.Local != want[i].Local {
			t.Errorf("group %d: %+v, want %+v", i, g, want[i])
		}
		for j, e := range g.Endpoints {
			w := want[i].Endpoints[j]
			if e.Host != w.Host || e.Label != w.Label || e.MultiTenant != w.MultiTenant || e.PrivateLinkZone != w.PrivateLinkZone || e.Source != w.Source {
				t.Errorf("%s endpoint %d: %+v, want %+v", g.Name, j, e, w)
			}
		}
	}
}
