//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/azemu"
)

const (
	azVault      = "kv-azegress-e2e"
	azSecretName = "db-password"
	azIMDSOnly   = "169.254.169.254" // NO_PROXY that keeps IMDS off the proxy
	// azPython is Debian's interpreter, the one azure-cli and python3-azure
	// are installed for (PATH may hold another).
	azPython = "/usr/bin/python3"
)

// azWorkflow is one first-use run of the workflow `record -minimize` repeats:
// a fresh Azure CLI config dir each time, so that every run sends the same
// requests, the first-use version check included. "kv URL" also reads a
// secret the way Debian's CLI can (its `az keyvault secret show` is broken).
const azWorkflow = `#!/bin/sh
set -e
AZURE_CONFIG_DIR=$(mktemp -d /tmp/azcli-e2e-config.XXXXXX)
export AZURE_CONFIG_DIR
trap 'rm -rf "$AZURE_CONFIG_DIR"' EXIT
az login --identity --output json
if [ "$1" = kv ]; then
  az rest --resource https://vault.azure.net --url "$2"
fi
`

// azSecretClient reads a secret with the Azure SDK for Python (Debian's
// python3-azure), whose challenge policy first sends the request without a
// token, takes the tenant and resource from Key Vault's 401, then asks IMDS.
const azSecretClient = `import sys
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
client = SecretClient(vault_url=sys.argv[1], credential=ManagedIdentityCredential())
print(client.get_secret(sys.argv[2]).value)
`

// TestAzureCLI runs Debian's unmodified Azure CLI against the emulator in
// network namespaces, through azegress.
func TestAzureCLI(t *testing.T) {
	azNeedRoot(t)
	for _, tool := range []string{"ip", "az", azPython} {
		azNeedTool(t, tool)
	}
	if exec.Command(azPython, "-c", "import azure.keyvault.secrets, azure.identity").Run() != nil {
		azMissing(t, "needs python3-azure (make test installs it)")
	}
	secret := "e2e-" + azRandomHex(8)
	tp := azNewTopo(t, azemu.Config{
		Vault:            azVault,
		SubscriptionName: "azegress e2e",
		Secrets:          map[string]string{azSecretName: secret},
	})
	emu := tp.Emu.Config()
	vaultHost := tp.Emu.VaultHost()
	secretURL := tp.Emu.VaultURL() + "secrets/" + azSecretName + "?api-version=7.3"
	for name, content := range map[string]string{"azflow.sh": azWorkflow, "kv_read.py": azSecretClient} {
		if err := os.WriteFile(filepath.Join(tp.Dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The minimal policy by hand: ARM for the login, the one vault for the
	// secret. IMDS never reaches the proxy.
	minimal := fmt.Sprintf(`cloud = "AzureCloud"

client "workload" {
  sources = ["%s/32"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
  allow "key-vault" {
    hosts = [%q]
  }
}
`, azWorkloadIP, vaultHost)

	login := func(t *testing.T, env []string) azResult {
		t.Helper()
		return azRun(t, tp.Workload, env, azCommandLimit, "az", "login", "--identity", "--output", "json")
	}
	checkLogin := func(t *testing.T, r azResult) {
		t.Helper()
		if r.Code != 0 {
			t.Fatalf("az login --identity: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
		}
		var subs []struct {
			ID, Name, TenantID string
			User               struct{ Name, Type string }
		}
		if err := json.Unmarshal([]byte(r.Stdout), &subs); err != nil || len(subs) != 1 {
			t.Fatalf("az login --identity printed %q, want one subscription (%v)", r.Stdout, err)
		}
		s := subs[0]
		if s.ID != emu.SubscriptionID || s.Name != emu.SubscriptionName || s.TenantID != emu.TenantID || s.User.Name != "systemAssignedIdentity" {
			t.Errorf("az login --identity: got %+v, want subscription %s %q in tenant %s as systemAssignedIdentity",
				s, emu.SubscriptionID, emu.SubscriptionName, emu.TenantID)
		}
	}
	checkSecret := func(t *testing.T, r azResult) {
		t.Helper()
		var got struct{ Value, ID string }
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil || got.Value != secret {
			t.Fatalf("az rest (Key Vault secret): exit %d, got %q, want value %q\nstderr:\n%s", r.Code, r.Stdout, secret, r.Stderr)
		}
	}

	t.Run("isolation", func(t *testing.T) {
		// The workload reaches the proxy's address, not the emulator; the
		// recorder, which runs its own learning proxy, reaches the emulator.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, c := range []struct {
			ns, addr string
			reach    bool
		}{
			{tp.Workload, azARMIP + ":443", false},
			{tp.Workload, azVaultIP + ":443", false},
			{tp.Workload, azemu.IMDSAddr + ":80", true},
			{tp.Recorder, azARMIP + ":443", true},
			{tp.Recorder, azemu.IMDSAddr + ":80", true},
		} {
			conn, err := azDialIn(ctx, c.ns, c.addr)
			if err == nil {
				conn.Close()
			}
			if (err == nil) != c.reach {
				t.Errorf("dial %s from %s: err=%v, want reachable=%v", c.addr, c.ns, err, c.reach)
			}
		}
	})

	t.Run("enforce", func(t *testing.T) {
		proxy := tp.azStartProxy(t, "minimal", minimal)
		env := tp.azEnv(t.TempDir(), proxy.URL(), azIMDSOnly)

		mark := len(tp.Emu.Requests())
		checkLogin(t, login(t, env))
		reqs := tp.azRequestsSince(mark)
		if got, want := azServices(reqs), "imds-workload:imds:200 azure:arm:200"; got != want {
			t.Errorf("emulator saw %q during login, want %q", got, want)
		}
		if len(reqs) > 0 && reqs[0].Resource != azemu.ARMResource {
			t.Errorf("login's IMDS resource %q, want %q", reqs[0].Resource, azemu.ARMResource)
		}
		// The first-use version check was denied and the login still succeeded.
		if !azDenied(proxy, azemu.ProbeHost, 443, "no_rule") {
			t.Errorf("no no_rule denial of the CLI's connectivity probe (%s:443); denials: %v", azemu.ProbeHost, proxy.Denials())
		}

		mark = len(tp.Emu.Requests())
		checkSecret(t, azRun(t, tp.Workload, env, azCommandLimit,
			"az", "rest", "--resource", azemu.VaultResource, "--url", secretURL))
		if got, want := azServices(tp.azRequestsSince(mark)), "imds-workload:imds:200 azure:keyvault:200"; got != want {
			t.Errorf("emulator saw %q during az rest, want %q", got, want)
		}

		// The SDK's challenge flow: a tokenless request answered with 401,
		// then IMDS (a probe without Metadata, refused with 400, then the
		// token), then the request with the token.
		mark = len(tp.Emu.Requests())
		r := azRun(t, tp.Workload, env, azCommandLimit, azPython, filepath.Join(tp.Dir, "kv_read.py"), tp.Emu.VaultURL(), azSecretName)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != secret {
			t.Fatalf("SecretClient: exit %d, got %q, want %q\nstderr:\n%s", r.Code, r.Stdout, secret, r.Stderr)
		}
		reqs = tp.azRequestsSince(mark)
		if got, want := azServices(reqs), "azure:keyvault:401 imds-workload:imds:400 imds-workload:imds:200 azure:keyvault:200"; got != want {
			t.Errorf("emulator saw %q during SecretClient.get_secret, want %q", got, want)
		}
		if len(reqs) == 4 && (reqs[0].Bearer || !reqs[3].Bearer || reqs[2].Resource != azemu.VaultResource) {
			t.Errorf("challenge flow: first Key Vault request bearer=%v (want false), last bearer=%v (want true), IMDS resource %q (want %q)",
				reqs[0].Bearer, reqs[3].Bearer, reqs[2].Resource, azemu.VaultResource)
		}
		for _, d := range proxy.Denials() {
			if d["host"] == azemu.ARMHost || d["host"] == vaultHost {
				t.Errorf("the minimal policy denied a needed destination: %v", d)
			}
		}
	})

	t.Run("arm-rule-removed", func(t *testing.T) {
		noARM := strings.Replace(minimal, "  allow \"arm\" {\n    hosts = [\"management.azure.com\"]\n  }\n", "", 1)
		if noARM == minimal {
			t.Fatal("could not remove the ARM rule from the policy")
		}
		proxy := tp.azStartProxy(t, "no-arm", noARM)
		mark := len(tp.Emu.Requests())
		r := login(t, tp.azEnv(t.TempDir(), proxy.URL(), azIMDSOnly))
		if r.Code == 0 {
			t.Fatalf("az login --identity succeeded without the ARM rule:\n%s", r.Stdout)
		}
		if !azDenied(proxy, azemu.ARMHost, 443, "no_rule") {
			t.Errorf("no deny record for %s:443 with reason no_rule; denials: %v", azemu.ARMHost, proxy.Denials())
		}
		if got, want := azServices(tp.azRequestsSince(mark)), "imds-workload:imds:200"; got != want {
			t.Errorf("emulator saw %q, want only the IMDS token %q", got, want)
		}
	})

	t.Run("imds-through-proxy", func(t *testing.T) {
		proxy := tp.azStartProxy(t, "imds", minimal)
		mark := len(tp.Emu.Requests())
		// A common mistake: NO_PROXY without IMDS. The CLI must fail at
		// once on the proxy's 403, not retry for minutes as on a 5xx; 60s
		// is a failure bound, not a timing assertion.
		r := azRun(t, tp.Workload, tp.azEnv(t.TempDir(), proxy.URL(), "localhost,127.0.0.1"), 60*time.Second,
			"az", "login", "--identity", "--output", "json")
		if r.TimedOut {
			t.Fatalf("az login --identity with IMDS sent to the proxy still ran after 60s:\n%s", r.Stderr)
		}
		if r.Code == 0 || !strings.Contains(r.Stderr, "403") {
			t.Errorf("az login --identity: exit %d, stderr %q; want a failure naming the 403", r.Code, r.Stderr)
		}
		if reqs := tp.azRequestsSince(mark); len(reqs) != 0 {
			t.Errorf("emulator saw %q; IMDS must not be reached through the proxy", azServices(reqs))
		}
		reason := ""
		for _, d := range proxy.Denials() {
			if d["host"] == azemu.IMDSAddr && d["port"] == float64(80) {
				reason, _ = d["reason"].(string)
				line, _ := json.Marshal(d)
				if reason == "local_endpoint" && !strings.Contains(string(line), "NO_PROXY") {
					t.Errorf("local_endpoint deny record lacks the NO_PROXY advice: %s", line)
				}
				break
			}
		}
		t.Logf("IMDS through the proxy: denied with reason %q", reason)
		if !slices.Contains([]string{"local_endpoint", "no_rule", "blocked_address"}, reason) {
			t.Errorf("IMDS through the proxy: reason %q, want local_endpoint; denials: %v", reason, proxy.Denials())
		}

		// What the CLI does not show: the 403 itself, with its advice.
		resp, err := azHTTPClientIn(tp.Workload, proxy.URL()).Do(azIMDSRequest(t))
		if err != nil {
			t.Fatalf("IMDS request through the proxy: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "NO_PROXY") || resp.Header.Get("X-Azegress-Reason") != reason {
			t.Errorf("IMDS through the proxy: %d (reason %q), body:\n%s\nwant 403 (reason %q) with NO_PROXY advice",
				resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body, reason)
		}
	})

	t.Run("record", func(t *testing.T) {
		if out, _ := exec.Command(azegressBin, "record", "-h").CombinedOutput(); strings.Contains(string(out), `unknown command "record"`) {
			t.Skip("needs azegress record")
		}
		// record runs its learning proxy next to the command, in the
		// recorder namespace, and sets the proxy variables itself.
		record := func(t *testing.T, args ...string) (policyOut []byte, r azResult) {
			t.Helper()
			r = azRun(t, tp.Recorder, tp.azEnv(t.TempDir(), "", ""), 5*time.Minute, append([]string{azegressBin, "record"}, args...)...)
			t.Logf("record %s:\n%s\nstderr (tail):\n%s", strings.Join(args, " "), r.Stdout, azTail(r.Stderr, 12))
			if r.Code != 0 {
				t.Fatalf("record %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
			}
			return []byte(r.Stdout), r
		}
		flow := filepath.Join(tp.Dir, "azflow.sh")
		arm, kv := azemu.ARMHost+":443", vaultHost+":443"

		t.Run("login-observed", func(t *testing.T) {
			out, _ := record(t, "--", "az", "login", "--identity", "--output", "json")
			got := azPolicyDestinations(t, "recorded.hcl", out)
			// Observed is not minimal: the first-use connectivity probe shows
			// up (and, if it answered within its 1s timeout, the version
			// check on raw.githubusercontent.com).
			for _, want := range []string{arm, azemu.ProbeHost + ":443"} {
				if !slices.Contains(got, want) {
					t.Errorf("recorded policy lacks %s; has %v", want, got)
				}
			}
			// The seed article's question: Entra ID is never contacted.
			for _, d := range got {
				if strings.HasPrefix(d, "login.") {
					t.Errorf("recorded policy has %s: az login --identity must not contact Entra ID", d)
				}
			}
		})

		minimized := map[string][]byte{}
		for _, c := range []struct {
			name string
			args []string
			want []string
		}{
			{"login-minimized", []string{"login"}, []string{arm}},
			{"login-keyvault-minimized", []string{"kv", secretURL}, []string{kv, arm}},
		} {
			t.Run(c.name, func(t *testing.T) {
				out, r := record(t, append([]string{"-minimize", "--", "/bin/sh", flow}, c.args...)...)
				got := azPolicyDestinations(t, c.name+".hcl", out)
				if !slices.Equal(got, c.want) {
					t.Errorf("minimized policy allows %v, want exactly %v (what the CLI's source says it needs)", got, c.want)
				}
				if !strings.Contains(string(out), "#   "+azemu.ProbeHost+":443") {
					t.Errorf("minimized policy does not list the dropped connectivity probe %s:443:\n%s", azemu.ProbeHost, out)
				}
				if !strings.Contains(r.Stderr, "verified: the command succeeds with only the") {
					t.Errorf("record -minimize did not verify the kept set:\n%s", r.Stderr)
				}
				minimized[c.name] = out
			})
		}

		t.Run("enforce-minimized", func(t *testing.T) {
			kvPolicy := minimized["login-keyvault-minimized"]
			if kvPolicy == nil {
				t.Fatal("no minimized policy for login and the Key Vault read")
			}
			src := azForWorkload(kvPolicy)
			if got := azPolicyDestinations(t, "workload.hcl", src); !slices.Equal(got, []string{kv, arm}) {
				t.Fatalf("rewritten policy allows %v", got)
			}
			proxy := tp.azStartProxy(t, "minimized", string(src))
			env := tp.azEnv(t.TempDir(), proxy.URL(), azIMDSOnly)
			checkLogin(t, login(t, env))
			checkSecret(t, azRun(t, tp.Workload, env, azCommandLimit,
				"az", "rest", "--resource", azemu.VaultResource, "--url", secretURL))
		})
	})
}

// azDenied reports whether the proxy logged a denial of host:port for reason.
func azDenied(p *azProxy, host string, port int, reason string) bool {
	for _, d := range p.Denials() {
		if d["host"] == host && d["port"] == float64(port) && d["reason"] == reason {
			return true
		}
	}
	return false
}

// azIMDSRequest is the CLI's IMDS token request.
func azIMDSRequest(t *testing.T) *http.Request {
	t.Helper()
	q := url.Values{"resource": {azemu.ARMResource}, "api-version": {"2018-02-01"}}
	req, err := http.NewRequest("GET", "http://"+azemu.IMDSAddr+"/metadata/identity/oauth2/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Metadata", "true")
	return req
}

func azRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// azTail returns the last n lines of s.
func azTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
