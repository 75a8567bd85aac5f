package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/azegress/azegress/internal/netaudit/netaudittest"
)

const auditData = "../../internal/netaudit/testdata/"

// fakeAzure starts the fake ARM and authority on fixture and returns the
// flags that point audit-network at it: a -cloud-config file and a
// -ca-file, the features a sovereign or private cloud uses too. The
// credential is the SDK's default chain, narrowed by
// AZURE_TOKEN_CREDENTIALS to the environment's service principal.
func fakeAzure(t *testing.T, fixture string) (*netaudittest.Server, []string) {
	t.Helper()
	srv := netaudittest.New(t, fixture)
	cloudFile, caFile := srv.Files(t)
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")
	t.Setenv("AZURE_TENANT_ID", netaudittest.Tenant)
	t.Setenv("AZURE_CLIENT_ID", netaudittest.ClientID)
	t.Setenv("AZURE_CLIENT_SECRET", netaudittest.ClientSecret)
	return srv, []string{"-cloud-config", cloudFile, "-ca-file", caFile,
		"-policy", auditData + "policy.hcl", "-subscription", "a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0", "-proxy-ip", "10.0.0.4"}
}

// TestAuditNetwork runs audit-network end to end against the fake ARM:
// the default credential chain signs in with the environment's client
// secret at the fake authority, the SDK reads every page, and the report
// is the one the package's golden file holds.
func TestAuditNetwork(t *testing.T) {
	_, flags := fakeAzure(t, auditData+"arm")
	out, errs, code := runCLI(append(append([]string{"audit-network"}, flags...), "-effective-routes", "-format", "json")...)
	if code != 1 || errs != "" {
		t.Fatalf("exit %d (want 1)\nstdout: %s\nstderr: %s", code, out, errs)
	}
	want, err := os.ReadFile(auditData + "audit.json")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(out, `"policy": "`+auditData+`policy.hcl"`, `"policy": "testdata/policy.hcl"`)
	got = strings.ReplaceAll(got, "in "+auditData+"policy.hcl", "in testdata/policy.hcl")
	if got != string(want) {
		t.Errorf("the report differs from %saudit.json:\n%s", auditData, out)
	}

	out, _, code = runCLI(append(append([]string{"audit-network"}, flags...), "-resource-group", "rg-net")...)
	if code != 1 || !strings.Contains(out, "azegress audit-network: subscription a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0, resource group rg-net; proxy 10.0.0.4") ||
		!strings.Contains(out, "default-route: /subscriptions/a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0/resourceGroups/rg-app/providers/Microsoft.Network/routeTables/rt-api/routes/default") {
		t.Errorf("text, one resource group: exit %d\n%s", code, out)
	}
	out, _, code = runCLI(append(append([]string{"audit-network"}, flags...), "-format", "markdown")...)
	if code != 1 || !strings.Contains(out, "## Network audit: subscription a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0") {
		t.Errorf("markdown: exit %d\n%s", code, out)
	}
}

// TestAuditNetworkClean: the deploy/azure pattern alone passes, exit 0.
func TestAuditNetworkClean(t *testing.T) {
	_, flags := fakeAzure(t, auditData+"arm-clean")
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(pol, []byte("client \"web\" {\n  sources = [\"10.1.1.0/24\"]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags = append(flags, "-policy", pol, "-effective-routes")
	out, errs, code := runCLI(append([]string{"audit-network"}, flags...)...)
	if code != 0 || !strings.Contains(out, "No findings: every covered subnet sends its internet traffic through the proxy.") {
		t.Fatalf("exit %d (want 0)\nstdout: %s\nstderr: %s", code, out, errs)
	}
	out, _, code = runCLI(append(append([]string{"audit-network"}, flags...), "-format", "json")...)
	var rep struct {
		Subnets []struct{ Status string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || len(rep.Subnets) != 2 || rep.Subnets[0].Status != "proxy" || rep.Subnets[1].Status != "checked" {
		t.Errorf("json: exit %d, %v\n%s", code, err, out)
	}
}

// TestAuditNetworkErrors: bad flags, files and answers exit 2 and say why.
func TestAuditNetworkErrors(t *testing.T) {
	_, flags := fakeAzure(t, auditData+"arm")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("client \"a\" {\n  sources = [\"10.0.0.0/33\"]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"-policy", auditData + "policy.hcl", "-subscription", "a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0", "-proxy-ip", "10.0.0.4"}
	with := func(extra ...string) []string { return append(append([]string{}, flags...), extra...) }
	runCases(t, "audit-network", []cliCase{
		{"no flags", nil, 2, "", "usage: azegress audit-network"},
		{"no proxy", []string{"-policy", auditData + "policy.hcl", "-subscription", "s"}, 2, "", "usage: azegress audit-network"},
		{"bad proxy address", append(base[:4:4], "-proxy-ip", "10.0.0.4,proxy"), 2, "", `"proxy" is not an IP address`},
		{"bad format", append(base, "-format", "yaml"), 2, "", `-format "yaml"`},
		{"resource path", append(base[:2:2], "-subscription", "/subscriptions/x", "-proxy-ip", "10.0.0.4"), 2, "", "give the ID and the name"},
		{"invalid policy", append(base[2:], "-policy", bad), 2, "", bad + ":2:"},
		{"cloud twice", append(base, "-cloud", "AzureCloud", "-cloud-config", "x.json"), 2, "", "-cloud and -cloud-config exclude each other"},
		{"unknown cloud", append(base, "-cloud", "AzureGermanCloud"), 2, "", `unknown cloud "AzureGermanCloud"`},
		{"missing cloud file", append(base, "-cloud-config", filepath.Join(dir, "none.json")), 2, "", "none.json: no such file"},
		{"bad CA file", append(base, "-ca-file", notPEM), 2, "", "-ca-file: " + notPEM + ": no PEM certificate"},
		{"missing resource group", with("-resource-group", "rg-none"), 2, "", "404 ResourceGroupNotFound: Resource group 'rg-none' could not be found"},
	})
	t.Setenv("AZURE_CLIENT_SECRET", "wrong")
	_, errs, code := runCLI(append([]string{"audit-network"}, flags...)...)
	if code != 2 || !strings.Contains(errs, "AADSTS7000215") {
		t.Errorf("refused credential: exit %d\n%s", code, errs)
	}
}
