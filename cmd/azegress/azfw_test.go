package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const azfwTestdata = "../../policy/azfw/testdata"

// TestImportAzfwCommand imports each Azure Firewall export of the policy
// package's golden tests through the CLI, checks that every warning is on
// stderr, and runs the golden cases against the imported policy with
// "azegress test", which decides them with the proxy's own Explain.
func TestImportAzfwCommand(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join(azfwTestdata, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 5 {
		t.Fatalf("found %d inputs in %s", len(inputs), azfwTestdata)
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			t.Parallel()
			out, errs, code := runCLI("import-azfw", in)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errs)
			}
			want, err := os.ReadFile(base + ".warnings.golden")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				// The golden warnings name the input by its base name.
				w = strings.TrimPrefix(w, filepath.Base(in))
				if !strings.Contains(errs, "warning: "+in+w) {
					t.Errorf("stderr lacks warning %q:\n%s", in+w, errs)
				}
			}
			golden, err := os.ReadFile(base + ".hcl.golden")
			if err != nil {
				t.Fatal(err)
			}
			if strings.ReplaceAll(out, in, filepath.Base(in)) != string(golden) {
				t.Errorf("stdout differs from %s.hcl.golden:\n%s", base, out)
			}
			policy := filepath.Join(t.TempDir(), "imported.hcl")
			if err := os.WriteFile(policy, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, errs, code := runCLI("check", policy); code != 0 {
				t.Fatalf("check: exit %d\n%s%s", code, out, errs)
			}
			out, errs, code = runCLI("test", policy, base+".cases.hcl")
			if code != 0 || !strings.Contains(out, " 0 failed") {
				t.Errorf("azegress test: exit %d\n%s%s", code, out, errs)
			}
		})
	}
}

func TestImportAzfwErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vnet := filepath.Join(dir, "vnet.json")
	if err := os.WriteFile(vnet, []byte(`{"type": "Microsoft.Network/virtualNetworks", "name": "vnet"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import-azfw"}, 2, "usage: azegress import-azfw"},
		{[]string{"import-azfw", filepath.Join(dir, "missing.json")}, 1, "missing.json"},
		{[]string{"import-azfw", vnet}, 1, "no Azure Firewall rule collections found"},
		{[]string{"import-azfw", "-cloud", "Mars", filepath.Join(azfwTestdata, "classic.json")}, 1, `unknown cloud "Mars"`},
		{[]string{"export-azfw"}, 2, "usage: azegress export-azfw"},
		{[]string{"export-azfw", "-priority", "99", "../../policies/default.hcl"}, 1, "out of range"},
	} {
		_, errs, code := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d (want %d), stderr:\n%s", tt.args, code, tt.code, errs)
		}
	}
}

// TestExportAzfwCommand exports a preset with a learn-mode block and
// limits, checks the warnings, and imports the export back.
func TestExportAzfwCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(src, []byte(`client "app" {
  sources = ["10.0.1.0/24"]
  mode    = "learn"
  allow "arm" {
    hosts = ["management.azure.com"]
  }
  deny "paste" {
    hosts = ["pastebin.com"]
  }
  limits {
    connections_per_second = 5
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCLI("export-azfw", "-group", "from-azegress", src)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	for _, w := range []string{"mode learn has no Azure Firewall equivalent", "limits have no Azure Firewall equivalent"} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}
	for _, w := range []string{`"[format('{0}/from-azegress', parameters('firewallPolicyName'))]"`, `"name": "app-deny"`, `"priority": 1000`, `"name": "app-allow"`, `"priority": 30000`} {
		if !strings.Contains(out, w) {
			t.Errorf("export lacks %s:\n%s", w, out)
		}
	}
	export := filepath.Join(dir, "export.json")
	if err := os.WriteFile(export, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	back, errs, code := runCLI("import-azfw", export)
	if code != 0 || !strings.Contains(back, `deny "app-deny.paste"`) || !strings.Contains(back, `allow "app-allow.arm"`) {
		t.Errorf("import of the export: exit %d\n%s%s", code, back, errs)
	}
}

// TestCheckLint checks that lint warnings are printed and never change
// the exit status.
func TestCheckLint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	risky := filepath.Join(dir, "risky.hcl")
	if err := os.WriteFile(risky, []byte("client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"vaults\" {\n    hosts = [\"*.vault.azure.net\"]\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCLI("check", "-lint", risky)
	if code != 0 || !strings.Contains(errs, risky+":4:14: warning: Broad data-plane wildcard;") || !strings.Contains(out, "ok") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if _, errs, _ := runCLI("check", risky); strings.Contains(errs, "warning") {
		t.Errorf("check without -lint printed lint warnings:\n%s", errs)
	}
	if _, errs, code := runCLI("check", "-lint", "../../policies"); code != 0 || errs != "" {
		t.Errorf("presets: exit %d\n%s", code, errs)
	}
}
