package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// A guarded (private) answer for an allowed Azure name passes the guard when
// the name's canonical name is the same name in the service's privatelink
// zone, without listing addresses; every other private answer stays refused.
func TestPrivateLinkCNAME(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "origin")
	res := newResolver(map[string]string{
		"kv-x.vault.azure.net":             "10.20.0.7",
		"st01.blob.core.windows.net":       "172.16.5.4",
		"acr01.westeurope.data.azurecr.io": "fd00::7",
		"kv-nocname.vault.azure.net":       "10.20.0.9",
		"kv-wrong.vault.azure.net":         "10.20.0.10",
		"kv-imds.vault.azure.net":          "169.254.169.254",
		"kv-loop.vault.azure.net":          "127.0.0.1",
		"kv-mixed.vault.azure.net":         "127.0.0.1, 10.20.0.11",
		"kv-denied.vault.azure.net":        "10.20.0.12",
		"api.example.com":                  "10.20.0.13",
	})
	res.cnames = map[string]string{
		"kv-x.vault.azure.net":             "kv-x.privatelink.vaultcore.azure.net",
		"st01.blob.core.windows.net":       "ST01.privatelink.blob.core.windows.net",
		"acr01.westeurope.data.azurecr.io": "acr01.westeurope.data.privatelink.azurecr.io",
		"kv-wrong.vault.azure.net":         "kv-other.privatelink.vaultcore.azure.net",
		"kv-imds.vault.azure.net":          "kv-imds.privatelink.vaultcore.azure.net",
		"kv-loop.vault.azure.net":          "kv-loop.privatelink.vaultcore.azure.net",
		"kv-mixed.vault.azure.net":         "kv-mixed.privatelink.vaultcore.azure.net",
		"kv-denied.vault.azure.net":        "kv-denied.privatelink.vaultcore.azure.net",
		"api.example.com":                  "api.privatelink.example.com",
	}
	var tp *testProxy
	tp = startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "azure" {
    keyvaults        = ["kv-x", "kv-nocname", "kv-wrong", "kv-imds", "kv-loop", "kv-mixed"]
    storage_accounts = ["st01"]
    registries       = ["acr01.westeurope"]
    hosts            = ["api.example.com"]
    ports            = [%d]
  }
}`, port), res, redirectDials(&tp, origin.Listener.Addr().String()))

	for _, tt := range []struct {
		host, dial string // dial: the address dialed, "" if refused
		reason     string
	}{
		{"kv-x.vault.azure.net", "10.20.0.7", ""},
		{"st01.blob.core.windows.net", "172.16.5.4", ""},
		{"acr01.westeurope.data.azurecr.io", "[fd00::7]", ""},
		{"kv-mixed.vault.azure.net", "10.20.0.11", ""},        // loopback dropped, private endpoint dialed
		{"kv-nocname.vault.azure.net", "", "blocked_address"}, // no privatelink CNAME
		{"kv-wrong.vault.azure.net", "", "blocked_address"},   // another name in the zone
		{"kv-imds.vault.azure.net", "", "local_endpoint"},     // IMDS is never a private endpoint
		{"kv-loop.vault.azure.net", "", "blocked_address"},    // nor is loopback
		{"api.example.com", "", "blocked_address"},            // not an Azure service with a zone
		{"kv-denied.vault.azure.net", "", "no_rule"},          // the name itself is not allowed
	} {
		t.Run(tt.host, func(t *testing.T) {
			resp, body := tp.connect("", fmt.Sprintf("%s:%d", tt.host, port))
			if tt.dial != "" {
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %s, want a tunnel", resp.StatusCode, body)
				}
				if got, want := <-tp.dials, fmt.Sprintf("%s:%d", tt.dial, port); got != want {
					t.Fatalf("dialed %s, want %s", got, want)
				}
				return
			}
			if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != tt.reason {
				t.Fatalf("got %d %q %s, want 403 %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body, tt.reason)
			}
			tp.noDial()
		})
	}
	// Denials of Azure names carry the catalog label.
	tp.connect("", fmt.Sprintf("kv-nocname.vault.azure.net:%d", port))
	if got := tp.lastDeny()["label"]; got != "Key Vault data plane: vault kv-nocname" {
		t.Errorf("deny label = %v", got)
	}
}

// The zone is the policy cloud's: a US Government vault must resolve
// through privatelink.vaultcore.usgovcloudapi.net.
func TestPrivateLinkCNAMECloud(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "origin")
	res := newResolver(map[string]string{
		"kv-gov.vault.usgovcloudapi.net": "10.30.0.7",
		"kv-pub.vault.usgovcloudapi.net": "10.30.0.8",
	})
	res.cnames = map[string]string{
		"kv-gov.vault.usgovcloudapi.net": "kv-gov.privatelink.vaultcore.usgovcloudapi.net",
		"kv-pub.vault.usgovcloudapi.net": "kv-pub.privatelink.vaultcore.azure.net",
	}
	var tp *testProxy
	tp = startProxy(t, fmt.Sprintf(`
cloud = "AzureUSGovernment"
client "local" {
  sources = ["127.0.0.0/8"]
  allow "vaults" {
    keyvaults = ["kv-gov", "kv-pub"]
    ports     = [%d]
  }
}`, port), res, redirectDials(&tp, origin.Listener.Addr().String()))
	if resp, body := tp.connect("", fmt.Sprintf("kv-gov.vault.usgovcloudapi.net:%d", port)); resp.StatusCode != 200 {
		t.Fatalf("gov vault: %d %s", resp.StatusCode, body)
	}
	<-tp.dials
	if resp, body := tp.connect("", fmt.Sprintf("kv-pub.vault.usgovcloudapi.net:%d", port)); resp.StatusCode != 403 {
		t.Fatalf("public zone in a gov policy: %d %s", resp.StatusCode, body)
	}
	tp.noDial()
}

// cnamelessResolver hides fakeResolver's LookupCNAME, like a custom
// Resolver that cannot report canonical names.
type cnamelessResolver struct{ r *fakeResolver }

func (c cnamelessResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return c.r.LookupNetIP(ctx, network, host)
}

// Without a resolver that reports canonical names, private answers need
// addresses, as before.
func TestPrivateLinkNeedsCNAMEResolver(t *testing.T) {
	t.Parallel()
	res := newResolver(map[string]string{"kv-x.vault.azure.net": "10.20.0.7"})
	res.cnames = map[string]string{"kv-x.vault.azure.net": "kv-x.privatelink.vaultcore.azure.net"}
	tp := startProxy(t, `
client "local" {
  sources = ["127.0.0.0/8"]
  allow "vault" {
    keyvaults = ["kv-x"]
  }
}`, res, func(c *Config) { c.Resolver = cnamelessResolver{res} })
	resp, body := tp.connect("", "kv-x.vault.azure.net:443")
	if resp.StatusCode != 403 || !strings.Contains(body, "10.20.0.7") {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	tp.noDial()
}
