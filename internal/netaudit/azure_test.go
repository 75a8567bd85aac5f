package netaudit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

func TestLoadCloud(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, body, err string
	}{
		{"custom cloud", `{"name": "stack", "activeDirectoryAuthorityHost": "https://login.example/", "resourceManager": {"endpoint": "https://management.example/", "audience": "https://management.example/aud"}, "disableInstanceDiscovery": true}`, ""},
		{"unknown field", `{"activeDirectoryAuthorityHost": "https://login.example/", "resourceManager": {"endpoint": "https://management.example", "audience": "a", "audiences": []}}`, `unknown field "audiences"`},
		{"plain http", `{"activeDirectoryAuthorityHost": "http://login.example/", "resourceManager": {"endpoint": "https://management.example", "audience": "a"}}`, `activeDirectoryAuthorityHost is "http://login.example/": write an https URL`},
		{"no endpoint", `{"activeDirectoryAuthorityHost": "https://login.example/", "resourceManager": {"audience": "a"}}`, `resourceManager.endpoint is "": write an https URL`},
		{"no audience", `{"activeDirectoryAuthorityHost": "https://login.example/", "resourceManager": {"endpoint": "https://management.example"}}`, "resourceManager.audience is empty"},
		{"not JSON", `activeDirectoryAuthorityHost = "x"`, "invalid character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCloud(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), path) {
					t.Errorf("got %v, want an error naming %s with %q", err, path, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			arm := c.Config.Services[cloud.ResourceManager]
			if c.Name != "stack" || !c.DisableInstanceDiscovery || c.Config.ActiveDirectoryAuthorityHost != "https://login.example/" ||
				arm.Endpoint != "https://management.example" || arm.Audience != "https://management.example/aud" {
				t.Errorf("got %+v", c)
			}
		})
	}
	if _, err := LoadCloud(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestCloudByName(t *testing.T) {
	t.Parallel()
	for name, host := range map[string]string{"": "https://login.microsoftonline.com/", "AzureCloud": "https://login.microsoftonline.com/",
		"AzureUSGovernment": "https://login.microsoftonline.us/", "AzureChinaCloud": "https://login.chinacloudapi.cn/"} {
		c, err := CloudByName(name)
		if err != nil || c.Config.ActiveDirectoryAuthorityHost != host {
			t.Errorf("%q: %+v, %v", name, c, err)
		}
	}
	if _, err := CloudByName("AzureGermanCloud"); err == nil || !strings.Contains(err.Error(), "-cloud-config") {
		t.Errorf("unknown cloud: %v", err)
	}
}

func TestClientOptions(t *testing.T) {
	t.Parallel()
	c, _ := CloudByName("AzureCloud")
	opts, err := ClientOptions(c, "")
	if err != nil || opts.Transport != nil || !opts.DisableRPRegistration {
		t.Errorf("default: %+v, %v", opts, err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ClientOptions(c, bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
	if _, err := ClientOptions(c, bad+".missing"); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
