//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/azemu"
	"github.com/azegress/azegress/identity"
)

// The full loop of identity-keyed egress (issue 13), with nothing stood in:
// in the Azure CLI topology (azcli_env_test.go) the workload gets its
// managed identity's token for api://azegress from the emulator's IMDS
// with `azegress proxy-url` (or through `azegress agent`), and the real
// `azegress serve` checks it against the signing keys it fetched, over
// verified TLS, from login.microsoftonline.com (the emulator, by the proxy
// namespace's hosts file and SSL_CERT_FILE), then selects the identity's
// client block. The policy names no authority: the cloud's default is the
// one the emulator answers for.
const loopPolicyFormat = `cloud = "AzureCloud"

entra {
  tenant_id = %[1]q
  audiences = ["api://azegress", %[2]q]
}

# The workload's address without credentials: only what fetching a token
# through the proxy needs (AKS workload identity).
client "bootstrap" {
  sources = ["%[3]s/32"]
  allow "entra" {
    endpoints = ["azure.entra"]
  }
}

client "workload-mi" {
  identity {
    object_ids = [%[4]q]
  }
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
`

// loopOtherApp is a second app registration of the tenant: its tokens are
// valid, but not for the proxy.
const loopOtherApp = "api://not-the-proxy"

// loopARMURL is what the workload asks ARM for.
const loopARMURL = "https://" + azemu.ARMHost + "/subscriptions?api-version=2022-12-01"

// loopTopo is the running loop: the topology, the proxy, and the ARM
// token's header file (the workload's own credential for ARM, which the
// proxy never sees).
type loopTopo struct {
	tp        *azTopo
	p         *azProxy
	emu       azemu.Config
	armHeader string
}

// TestLoop runs the loop end to end: (a) a token from proxy-url reaches ARM
// as its identity; (b) without credentials the workload is challenged
// with 407, and with the token a host the identity's block does not allow
// gets 403 naming the block; (c) the agent on the workload's loopback lets
// curl and the Azure CLI through, credential-less, as that identity; (d)
// on AKS workload identity, proxy-url -entra-via-proxy gets its token
// through the proxy's bootstrap block. Every proxy record names the
// identity, never a token.
func TestLoop(t *testing.T) {
	azNeedRoot(t)
	azNeedTool(t, "ip")
	azNeedTool(t, "curl")
	_, fedFile, err := azemu.MachineFiles(t.TempDir(), thAssertion)
	if err != nil {
		t.Fatal(err)
	}
	tp := azNewTopo(t, azemu.Config{
		SubscriptionName:   "azegress loop e2e",
		Apps:               []azemu.App{{IdentifierURI: thAppURI}, {IdentifierURI: loopOtherApp}},
		FederatedTokenFile: fedFile,
	})
	l := &loopTopo{tp: tp, emu: tp.Emu.Config()}
	src := fmt.Sprintf(loopPolicyFormat, l.emu.TenantID, l.emu.Apps[0].ClientID, azWorkloadIP, l.emu.PrincipalID)
	l.p = tp.azStartProxyEnv(t, "loop", src, []string{"SSL_CERT_FILE=" + tp.CAFile})
	l.armHeader = l.writeARMHeader(t)
	var tokens []string // every token proxy-url printed, for the log check
	proxies := []*azProxy{l.p}

	t.Run("proxy-url from IMDS", func(t *testing.T) {
		n := len(tp.Emu.Requests())
		proxyURL, tok := l.proxyURL(t, nil)
		tokens = append(tokens, tok)
		if got := l.services(n); got != "imds-workload:imds:200" {
			t.Errorf("the emulator answered %q, want IMDS's token on the workload", got)
		}
		mark := len(l.p.log.Lines())
		l.armVia(t, proxyURL)
		l.record(t, mark, map[string]any{"msg": "tunnel closed", "host": azemu.ARMHost, "client_block": "workload-mi",
			"identity_source": "token", "auth_result": "ok", "oid": l.emu.PrincipalID, "tid": l.emu.TenantID,
			"token_fp": identity.Fingerprint(tok)})
		// What verified it: the tenant's key set, which the proxy fetched
		// from the emulator's Entra ID (listener "azure" is reached only
		// from the proxy namespace).
		keys := false
		for _, r := range tp.Emu.Requests() {
			keys = keys || r.Listener == "azure" && r.Path == "/"+l.emu.TenantID+"/discovery/v2.0/keys" && r.Status == 200
		}
		if !keys {
			t.Errorf("the emulator served no key set of tenant %s: %s", l.emu.TenantID, azServices(tp.Emu.Requests()))
		}
	})

	t.Run("without credentials", func(t *testing.T) {
		n, mark := len(tp.Emu.Requests()), len(l.p.log.Lines())
		r := l.curl(t, []string{"https_proxy=" + l.p.URL()}, "-D", "-", "-o", "/dev/null", loopARMURL)
		l.wantRefusal(t, r, 407, "no_rule", true)
		if got := l.services(n); got != "" {
			t.Errorf("the emulator saw %q", got)
		}
		l.record(t, mark, map[string]any{"msg": "deny", "host": azemu.ARMHost, "status": 407, "reason": "no_rule",
			"client_block": "bootstrap", "identity_source": "cidr", "auth_result": "missing"})
	})

	t.Run("host the identity may not reach", func(t *testing.T) {
		proxyURL, tok := l.proxyURL(t, nil)
		tokens = append(tokens, tok)
		mark := len(l.p.log.Lines())
		// Plain HTTP, so that curl shows the refusal's body.
		r := l.curl(t, []string{"http_proxy=" + proxyURL}, "-D", "-", "http://"+azemu.ProbeHost+"/")
		l.wantRefusal(t, r, 403, "no_rule", false)
		if !strings.Contains(r.Stdout, `no allow rule in client block "workload-mi" matches `+azemu.ProbeHost+":80") {
			t.Errorf("the 403 does not name the identity's block:\n%s", r.Stdout)
		}
		l.record(t, mark, map[string]any{"msg": "deny", "host": azemu.ProbeHost, "status": 403, "reason": "no_rule",
			"client_block": "workload-mi", "identity_source": "token", "oid": l.emu.PrincipalID})
	})

	t.Run("token for another audience", func(t *testing.T) {
		proxyURL, tok := l.proxyURL(t, nil, "-resource", loopOtherApp)
		tokens = append(tokens, tok)
		mark := len(l.p.log.Lines())
		r := l.curl(t, []string{"https_proxy=" + proxyURL}, "-D", "-", "-o", "/dev/null", loopARMURL)
		l.wantRefusal(t, r, 407, "wrong_audience", false)
		l.record(t, mark, map[string]any{"msg": "deny", "host": azemu.ARMHost, "status": 407, "reason": "wrong_audience",
			"identity_source": "token", "auth_result": "refused", "token_fp": identity.Fingerprint(tok)})
	})

	t.Run("agent", func(t *testing.T) {
		a := startAgentIn(t, tp.Workload, []string{thBasePath}, azegressBin, "agent", "-listen", "127.0.0.1:0",
			"-upstream", l.p.URL(), "-drain", "2s")
		mark := len(l.p.log.Lines())
		l.armVia(t, "http://"+a.addr)
		tr := a.wait(t, "a tunnel to ARM", func(r map[string]any) bool { return r["msg"] == "tunnel closed" && r["host"] == azemu.ARMHost })
		l.record(t, mark, map[string]any{"msg": "tunnel closed", "host": azemu.ARMHost, "client_block": "workload-mi",
			"identity_source": "token", "oid": l.emu.PrincipalID, "token_fp": tr["token_fp"]})

		t.Run("Azure CLI", func(t *testing.T) {
			azNeedTool(t, "az")
			mark := len(l.p.log.Lines())
			env := tp.azEnv(t.TempDir(), "http://"+a.addr, azIMDSOnly)
			if r := azRun(t, tp.Workload, env, azCommandLimit, "az", "login", "--identity", "--output", "json"); r.Code != 0 {
				t.Fatalf("az login --identity through the agent: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			r := azRun(t, tp.Workload, env, azCommandLimit, "az", "rest", "--method", "get", "--url", loopARMURL)
			if r.Code != 0 || !strings.Contains(r.Stdout, l.emu.SubscriptionID) {
				t.Fatalf("az rest through the agent: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
			}
			l.record(t, mark, map[string]any{"msg": "tunnel closed", "host": azemu.ARMHost, "client_block": "workload-mi",
				"identity_source": "token", "oid": l.emu.PrincipalID, "token_fp": tr["token_fp"]})
			// The CLI's connectivity probe: refused by the identity's block,
			// and the login went on.
			l.record(t, mark, map[string]any{"msg": "deny", "host": azemu.ProbeHost, "status": 403, "reason": "no_rule",
				"client_block": "workload-mi", "identity_source": "token", "oid": l.emu.PrincipalID})
		})
	})

	t.Run("workload identity through the proxy", func(t *testing.T) {
		env := l.workloadEnv(fedFile)
		// The workload has no other way to Entra ID: its names do not
		// resolve there, let alone route.
		r := azRun(t, tp.Workload, append([]string{thBasePath}, env...), thCmdLimit,
			azegressBin, "proxy-url", "-proxy", l.p.URL(), "-timeout", "2s")
		if r.Code != 1 || !strings.Contains(r.Stderr, "-entra-via-proxy") {
			t.Errorf("proxy-url without -entra-via-proxy: exit %d, stderr %q; want 1 and the advice", r.Code, r.Stderr)
		}

		n, mark := len(tp.Emu.Requests()), len(l.p.log.Lines())
		proxyURL, tok := l.proxyURL(t, env, "-entra-via-proxy")
		tokens = append(tokens, tok)
		// Listener "azure" is reached only from the proxy namespace.
		if got := l.services(n); got != "azure:entra:200" {
			t.Errorf("the emulator answered %q, want Entra's token exchange through the proxy", got)
		}
		l.record(t, mark, map[string]any{"msg": "tunnel closed", "host": azemu.EntraHost, "client_block": "bootstrap",
			"identity_source": "cidr", "auth_result": "missing"})
		l.armVia(t, proxyURL)
		l.record(t, mark, map[string]any{"msg": "tunnel closed", "host": azemu.ARMHost, "client_block": "workload-mi",
			"identity_source": "token", "oid": l.emu.PrincipalID, "token_fp": identity.Fingerprint(tok)})
	})

	// A bootstrap block that does not allow Entra ID: the proxy's 407 is
	// its answer, not a network failure, so proxy-url says so at once
	// instead of asking again until its timeout.
	t.Run("bootstrap block without Entra", func(t *testing.T) {
		noEntra := strings.Replace(src, `endpoints = ["azure.entra"]`, `endpoints = ["azure.arm"]`, 1)
		if noEntra == src {
			t.Fatal("could not take Entra ID out of the bootstrap block")
		}
		p := tp.azStartProxyEnv(t, "no-entra", noEntra, []string{"SSL_CERT_FILE=" + tp.CAFile})
		proxies = append(proxies, p)
		r := azRun(t, tp.Workload, append([]string{thBasePath}, l.workloadEnv(fedFile)...), thCmdLimit,
			azegressBin, "proxy-url", "-proxy", p.URL(), "-entra-via-proxy", "-timeout", "20s")
		if r.Code != 1 || !strings.Contains(r.Stderr, "407") || !strings.Contains(r.Stderr, "no_rule") || !strings.Contains(r.Stderr, `"azure.entra"`) {
			t.Errorf("proxy-url: exit %d, stderr %q; want 1, the proxy's 407 no_rule and the bootstrap rule to add", r.Code, r.Stderr)
		}
		var refusals int
		for _, d := range p.Denials() {
			if d["host"] == azemu.EntraHost {
				refusals++
			}
		}
		if refusals != 1 {
			t.Errorf("the proxy refused %d CONNECTs to Entra ID, want 1 (no retries)", refusals)
		}
	})

	// A policy with another tenant's ID: Entra ID (the emulator, like the
	// real one for a tenant it does not have) serves no keys for it, so
	// every token gets 503, and the proxy's log says what Entra said.
	t.Run("wrong tenant in the policy", func(t *testing.T) {
		const other = "11111111-2222-3333-4444-555555555555"
		p := tp.azStartProxyEnv(t, "wrong-tenant", strings.Replace(src, l.emu.TenantID, other, 1), []string{"SSL_CERT_FILE=" + tp.CAFile})
		proxies = append(proxies, p)
		proxyURL, tok := l.proxyURL(t, nil)
		tokens = append(tokens, tok)
		r := l.curl(t, []string{"https_proxy=" + strings.Replace(proxyURL, l.p.addr, p.addr, 1)}, "-D", "-", "-o", "/dev/null", loopARMURL)
		l.wantRefusal(t, r, 503, "keys_unavailable", false)
		p.wantRecord(t, 0, map[string]any{"msg": "identity: signing-key refresh failed; keeping the last good keys", "tenant_id": other},
			"400 Bad Request: AADSTS90002: Tenant '"+other+"' not found.")
	})

	// A proxy that does not trust the authority's certificate loads no
	// keys: the key fetch is verified TLS, and a token gets 503.
	t.Run("authority not trusted", func(t *testing.T) {
		p := tp.azStartProxy(t, "untrusted", src)
		proxies = append(proxies, p)
		proxyURL, tok := l.proxyURL(t, nil)
		tokens = append(tokens, tok)
		proxyURL = strings.Replace(proxyURL, l.p.addr, p.addr, 1)
		r := l.curl(t, []string{"https_proxy=" + proxyURL}, "-D", "-", "-o", "/dev/null", loopARMURL)
		l.wantRefusal(t, r, 503, "keys_unavailable", false)
		p.wantRecord(t, 0, map[string]any{"msg": "identity: signing-key refresh failed; keeping the last good keys"},
			"x509: certificate signed by unknown authority")
	})

	// The proxies' logs name the identity, never a token: neither one
	// proxy-url printed nor any JWT (the agent's), bare or in Basic form.
	jwt := regexp.MustCompile(`eyJ[\w-]{8,}\.eyJ|YXplZ3Jlc3M6ZXlK`) // base64("azegress:eyJ")
	for _, p := range proxies {
		for _, line := range p.log.Lines() {
			leaked := jwt.MatchString(line)
			for _, tok := range tokens {
				leaked = leaked || strings.Contains(line, tok[strings.LastIndexByte(tok, '.')+1:])
			}
			if leaked {
				t.Fatalf("a proxy logged a token: %s", line)
			}
		}
	}
}

// writeARMHeader gets the workload's token for ARM from its IMDS and
// writes it as a curl header file, so that no token is in an argv.
func (l *loopTopo) writeARMHeader(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return azDialIn(ctx, l.tp.Workload, addr) },
	}}
	resp, err := c.Do(azIMDSRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || json.Unmarshal(b, &body) != nil || body.AccessToken == "" {
		t.Fatalf("IMDS's ARM token: %s %s", resp.Status, b)
	}
	file := filepath.Join(l.tp.Dir, "arm-header")
	if err := os.WriteFile(file, []byte("Authorization: Bearer "+body.AccessToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// workloadEnv is what AKS's workload-identity webhook sets in a pod, with
// fedFile as its service-account token, and trust in the emulator's CA.
func (l *loopTopo) workloadEnv(fedFile string) []string {
	return []string{"SSL_CERT_FILE=" + l.tp.CAFile, "AZURE_FEDERATED_TOKEN_FILE=" + fedFile, "AZURE_CLIENT_ID=" + l.emu.ClientID,
		"AZURE_TENANT_ID=" + l.emu.TenantID, "AZURE_AUTHORITY_HOST=https://" + azemu.EntraHost + "/"}
}

// proxyURL runs `azegress proxy-url -proxy PROXY args...` in the workload
// namespace with env added, and returns the URL it printed and its token,
// which must be the emulator's for the proxy (or for -resource).
func (l *loopTopo) proxyURL(t *testing.T, env []string, args ...string) (string, string) {
	t.Helper()
	r := azRun(t, l.tp.Workload, append([]string{thBasePath}, env...), thCmdLimit,
		append([]string{azegressBin, "proxy-url", "-proxy", l.p.URL(), "-timeout", "20s"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("proxy-url: exit %d\n%s", r.Code, r.Stderr)
	}
	u, err := url.Parse(strings.TrimSuffix(r.Stdout, "\n"))
	if err != nil || u.Host != l.p.addr || u.User.Username() != "azegress" {
		t.Fatalf("proxy-url printed %q, want http://azegress:TOKEN@%s", r.Stdout, l.p.addr)
	}
	tok, _ := u.User.Password()
	c, err := l.tp.Emu.Verify(tok, time.Now())
	if err != nil || c.OID != l.emu.PrincipalID || c.TID != l.emu.TenantID {
		t.Fatalf("proxy-url's token: %v, claims %+v; want the emulator's for oid %s", err, c, l.emu.PrincipalID)
	}
	return u.String(), tok
}

// curl runs curl in the workload namespace with env (its proxy variables)
// added and the emulator's CA.
func (l *loopTopo) curl(t *testing.T, env []string, args ...string) azResult {
	t.Helper()
	return azRun(t, l.tp.Workload, append([]string{"PATH=/usr/bin:/bin"}, env...), thCmdLimit,
		append([]string{"curl", "-q", "-sS", "--max-time", "20", "--cacert", l.tp.CAFile}, args...)...)
}

// armVia gets loopARMURL through proxy (a proxy URL, with the token or
// the agent's) with the workload's ARM token, and fails the test unless
// the emulator's ARM answered it with the subscription.
func (l *loopTopo) armVia(t *testing.T, proxy string) {
	t.Helper()
	n := len(l.tp.Emu.Requests())
	r := l.curl(t, []string{"https_proxy=" + proxy}, "-H", "@"+l.armHeader, loopARMURL)
	if r.Code != 0 || !strings.Contains(r.Stdout, l.emu.SubscriptionID) {
		t.Fatalf("ARM through the proxy: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := l.services(n); got != "azure:arm:200" {
		t.Errorf("the emulator answered %q, want ARM's 200", got)
	}
}

// services is azServices of the emulator's requests after the first n,
// but for the proxy's signing-key fetches (GETs at Entra ID), which its
// refresher makes when it will.
func (l *loopTopo) services(n int) string {
	var reqs []azemu.Request
	for _, r := range l.tp.azRequestsSince(n) {
		if r.Service != azemu.ServiceEntra || r.Method != http.MethodGet {
			reqs = append(reqs, r)
		}
	}
	return azServices(reqs)
}

// wantRefusal checks the proxy's answer in r, curl's -D output: the
// status, X-Azegress-Reason, and a Basic challenge exactly when challenge
// is set. curl fails on a refused CONNECT and succeeds on a plain-HTTP
// refusal, so its exit status is not checked.
func (l *loopTopo) wantRefusal(t *testing.T, r azResult, status int, reason string, challenge bool) {
	t.Helper()
	head := strings.ReplaceAll(r.Stdout, "\r\n", "\n")
	if !strings.HasPrefix(head, fmt.Sprintf("HTTP/1.1 %d ", status)) || !strings.Contains(head, "\nX-Azegress-Reason: "+reason+"\n") {
		t.Errorf("curl got (exit %d, %s):\n%s\nwant %d with X-Azegress-Reason %s", r.Code, r.Stderr, r.Stdout, status, reason)
	}
	if got := strings.Contains(head, "\nProxy-Authenticate: Basic realm=\"azegress\"\n"); got != challenge {
		t.Errorf("Basic challenge %v, want %v:\n%s", got, challenge, r.Stdout)
	}
}

// record waits for a record of the loop's proxy after its first mark
// lines with every field of want.
func (l *loopTopo) record(t *testing.T, mark int, want map[string]any) map[string]any {
	t.Helper()
	return l.p.wantRecord(t, mark, want, "")
}

// wantRecord waits up to nhLimit for a record of p after its first mark
// lines with every field of want (compared as printed) and, unless empty,
// a line containing text.
func (p *azProxy) wantRecord(t *testing.T, mark int, want map[string]any, text string) map[string]any {
	t.Helper()
	deadline := time.NewTimer(nhLimit)
	defer deadline.Stop()
	for {
		lines := p.log.Lines()
		for _, line := range lines[mark:] {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) != nil || !strings.Contains(line, text) {
				continue
			}
			match := true
			for k, v := range want {
				match = match && fmt.Sprint(r[k]) == fmt.Sprint(v)
			}
			if match {
				return r
			}
		}
		select {
		case <-p.log.notify:
		case <-p.exited:
			t.Fatalf("the proxy exited; no record %v", want)
		case <-deadline.C:
			t.Fatalf("no proxy record with %v %q within %v; since the step began:\n%s", want, text, nhLimit, strings.Join(lines[mark:], "\n"))
		}
	}
}
