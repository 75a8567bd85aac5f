//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/azemu"
	"github.com/azegress/azegress/identity/identitytest"
)

// identityPolicy selects by managed identity: a token naming
// identitytest.ObjectID may reach ARM and the emulator's probe page; the
// workload's address, without credentials, only the version check (an
// address-keyed block beside identity blocks, like an AKS bootstrap
// block). authority is the test identity provider's.
const identityPolicyFormat = `cloud = "AzureCloud"

entra {
  tenant_id = %[1]q
  audiences = ["api://azegress", %[2]q]
  authority = %[3]q
}

client "bootstrap" {
  sources = ["%[4]s/32"]
  allow "version" {
    hosts = [%[5]q]
  }
}

client "mi" {
  identity {
    object_ids = [%[6]q]
  }
  allow "arm" {
    hosts = [%[7]q]
  }
  allow "probe" {
    hosts = [%[8]q]
  }
}
`

// probeBody is what the emulator's probe host answers.
const probeBody = "<!DOCTYPE html><title>azemu</title>\n"

// TestIdentityClients runs azegress serve with an entra block in the Azure
// CLI topology, its identity provider on the proxy namespace's loopback,
// and sends a managed identity's token through it with real clients from
// the workload namespace: curl, Go net/http and Python requests send Basic
// credentials from the proxy URL at once, the Azure CLI does through
// HTTPS_PROXY, a raw client sends them only after the 407 challenge (as
// .NET does), and Java's HTTP client does so too with Basic re-enabled for
// tunnels.
func TestIdentityClients(t *testing.T) {
	azNeedRoot(t)
	azNeedTool(t, "ip")
	tp := azNewTopo(t, azemu.Config{Vault: azVault, SubscriptionName: "azegress identity e2e"})
	ln, err := azListenIn(tp.Proxy, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp := identitytest.NewOn(t, ln)
	src := fmt.Sprintf(identityPolicyFormat, idp.TenantID, identitytest.ClientID, idp.Authority(), azWorkloadIP,
		azemu.VersionHost, identitytest.ObjectID, azemu.ARMHost, azemu.ProbeHost)
	p := tp.azStartProxy(t, "identity", src)
	token := idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(2 * time.Hour).Unix()}})
	proxyURL := "http://azegress:" + token + "@" + p.addr
	probe := "https://" + azemu.ProbeHost + "/"
	ca, err := os.ReadFile(tp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)

	t.Run("curl", func(t *testing.T) {
		azNeedTool(t, "curl")
		// The proxy URL comes from the environment, as HTTPS_PROXY does in
		// production, and the Bearer header from a file: no token in argv.
		curl := func(proxy string, args ...string) azResult {
			return azRun(t, tp.Workload, []string{"PATH=/usr/bin:/bin", "https_proxy=" + proxy}, time.Minute,
				append([]string{"curl", "-q", "-sS", "--max-time", "20", "--cacert", tp.CAFile}, append(args, probe)...)...)
		}
		if r := curl(proxyURL); r.Code != 0 || r.Stdout != probeBody {
			t.Errorf("curl with the token in the proxy URL: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		hdr := filepath.Join(t.TempDir(), "proxy-header")
		if err := os.WriteFile(hdr, []byte("Proxy-Authorization: Bearer "+token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := curl("http://"+p.addr, "--proxy-header", "@"+hdr); r.Code != 0 || r.Stdout != probeBody {
			t.Errorf("curl with a Bearer proxy header: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		if r := curl("http://" + p.addr); r.Code == 0 || !strings.Contains(r.Stderr, "407") {
			t.Errorf("curl without credentials: exit %d, %s; want the 407 challenge", r.Code, r.Stderr)
		}
		if r := curl("http://azegress:x.y.z@" + p.addr); r.Code == 0 || !strings.Contains(r.Stderr, "407") {
			t.Errorf("curl with a malformed token: exit %d, %s; want 407", r.Code, r.Stderr)
		}
	})

	t.Run("Go net/http", func(t *testing.T) {
		u, _ := url.Parse(proxyURL)
		c := identityClientIn(tp.Workload, u, roots)
		resp, err := c.Get(probe)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != probeBody {
			t.Errorf("Go client with userinfo in the proxy URL: %d %q", resp.StatusCode, b)
		}
		u.User = url.UserPassword("azegress", "not-a-token")
		if _, err := identityClientIn(tp.Workload, u, roots).Get(probe); err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
			t.Errorf("Go client with a bad token: %v, want a 407", err)
		}
	})

	t.Run("Python requests", func(t *testing.T) {
		azNeedTool(t, azPython)
		if exec.Command(azPython, "-c", "import requests").Run() != nil {
			azMissing(t, "needs python3-requests (make test installs it)")
		}
		const get = `import os, sys, requests
r = requests.get(sys.argv[1], proxies={"https": os.environ["PROXY_URL"]}, verify=sys.argv[2], timeout=20)
print(r.status_code)
sys.stdout.write(r.text)
`
		r := azRun(t, tp.Workload, []string{"PATH=/usr/bin:/bin", "PROXY_URL=" + proxyURL}, time.Minute, azPython, "-c", get, probe, tp.CAFile)
		if r.Code != 0 || r.Stdout != "200\n"+probeBody {
			t.Errorf("requests with the token in the proxy URL: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		// An empty user name: requests then sends no credentials at all
		// (README: use a non-empty user name), and the proxy challenges.
		r = azRun(t, tp.Workload, []string{"PATH=/usr/bin:/bin", "PROXY_URL=http://:" + token + "@" + p.addr}, time.Minute, azPython, "-c", get, probe, tp.CAFile)
		if r.Code == 0 || !strings.Contains(r.Stderr, "407") {
			t.Errorf("requests with an empty user name: exit %d, %q\n%s; want a 407", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("Azure CLI", func(t *testing.T) {
		azNeedTool(t, "az")
		dir := t.TempDir()
		env := tp.azEnv(dir, proxyURL, azIMDSOnly)
		r := azRun(t, tp.Workload, env, azCommandLimit, "az", "login", "--identity", "--output", "json")
		if r.Code != 0 || !strings.Contains(r.Stdout, tp.Emu.Config().SubscriptionID) {
			t.Fatalf("az login --identity through the proxy with a token: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		r = azRun(t, tp.Workload, env, azCommandLimit, "az", "rest", "--method", "get",
			"--url", "https://"+azemu.ARMHost+"/subscriptions?api-version=2022-12-01")
		if r.Code != 0 || !strings.Contains(r.Stdout, tp.Emu.Config().SubscriptionID) {
			t.Errorf("az rest through the proxy with a token: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("credentials after the challenge (.NET)", func(t *testing.T) {
		body, err := connectAfterChallenge(tp.Workload, p.addr, azemu.ProbeHost, token, roots)
		if err != nil {
			t.Fatal(err)
		}
		if body != probeBody {
			t.Errorf("body %q", body)
		}
	})

	t.Run("Java", func(t *testing.T) {
		java, err := exec.LookPath("java")
		if err != nil {
			t.Skip("java is not installed: Java's java.net.http client (credentials after a 407, Basic re-enabled for tunnels) is not tested")
		}
		dir := t.TempDir()
		prog := filepath.Join(dir, "ProxyAuth.java")
		if err := os.WriteFile(prog, []byte(javaProxyAuth), 0o644); err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(p.addr)
		env := []string{"PATH=/usr/bin:/bin", "PROXY_TOKEN=" + token, "HOME=" + dir}
		r := azRun(t, tp.Workload, env, 2*time.Minute, java, "-Djdk.http.auth.tunneling.disabledSchemes=", prog, host, port, probe, tp.CAFile)
		if r.Code != 0 || r.Stdout != "200 "+probeBody {
			t.Errorf("java.net.http: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
		}
		// By default the JDK does not answer a Basic challenge for a tunnel
		// (jdk.http.auth.tunneling.disabledSchemes=Basic): the client gets
		// the 407 itself, so the README's flag is needed.
		r = azRun(t, tp.Workload, env, 2*time.Minute, java, prog, host, port, probe, tp.CAFile)
		if !strings.HasPrefix(r.Stdout, "407 ") {
			t.Errorf("java.net.http without the flag: exit %d, %q\n%s; want the 407", r.Code, r.Stdout, r.Stderr)
		}
	})

	// The proxy's log names the identity, never the token.
	var tokenRecords int
	for _, rec := range p.log.Records() {
		if rec["identity_source"] == "token" && rec["oid"] == identitytest.ObjectID && rec["client_block"] == "mi" {
			tokenRecords++
		}
	}
	if tokenRecords == 0 {
		t.Error("no log record names the token's identity and its client block")
	}
	basicForm := base64.StdEncoding.EncodeToString([]byte("azegress:" + token))
	for _, line := range p.log.Lines() {
		if strings.Contains(line, token[strings.LastIndexByte(token, '.')+1:]) || strings.Contains(line, basicForm[len(basicForm)-40:]) {
			t.Fatalf("the proxy logged the token: %s", line)
		}
	}
}

// identityClientIn returns a Go client that dials from inside ns and goes
// through proxy (userinfo included), trusting roots.
func identityClientIn(ns string, proxy *url.URL, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(proxy),
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return azDialIn(ctx, ns, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: true,
	}}
}

// connectAfterChallenge is a client that, like .NET's HttpClient, sends
// proxy credentials only in answer to a 407 with a Basic challenge: a
// CONNECT without them, then (on a new connection, the 407 closed the first)
// with Basic credentials, then GET / over TLS. It returns the body.
func connectAfterChallenge(ns, proxy, host, token string, roots *x509.CertPool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(auth string) (*http.Response, net.Conn, *bufio.Reader, error) {
		c, err := azDialIn(ctx, ns, proxy)
		if err != nil {
			return nil, nil, nil, err
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n%s\r\n", host, host, auth)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			c.Close()
			return nil, nil, nil, err
		}
		return resp, c, br, nil
	}
	resp, c, _, err := connect("")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	c.Close()
	if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="azegress"` {
		return "", fmt.Errorf("CONNECT without credentials: %s, Proxy-Authenticate %q; want 407 with a Basic challenge", resp.Status, resp.Header.Get("Proxy-Authenticate"))
	}
	resp, c, br, err := connect("Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("azegress:"+token)) + "\r\n")
	if err != nil {
		return "", err
	}
	defer c.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("CONNECT with credentials after the challenge: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		return "", fmt.Errorf("bytes after the 200")
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: roots})
	if _, err := fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return "", err
	}
	got, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return "", err
	}
	defer got.Body.Close()
	b, err := io.ReadAll(got.Body)
	return string(b), err
}

// javaProxyAuth gets a URL through a proxy whose credentials it gives only
// when the proxy asks (a 407), as java.net.http does; the token comes from
// $PROXY_TOKEN, the test CA from a file. Args: proxy host, port, URL, CA.
const javaProxyAuth = `import java.io.FileInputStream;
import java.net.Authenticator;
import java.net.InetSocketAddress;
import java.net.PasswordAuthentication;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class ProxyAuth {
  public static void main(String[] args) throws Exception {
    KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
    ks.load(null, null);
    try (FileInputStream in = new FileInputStream(args[3])) {
      ks.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(ks);
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(null, tmf.getTrustManagers(), null);
    String token = System.getenv("PROXY_TOKEN");
    HttpClient client = HttpClient.newBuilder()
        .proxy(ProxySelector.of(new InetSocketAddress(args[0], Integer.parseInt(args[1]))))
        .authenticator(new Authenticator() {
          @Override
          protected PasswordAuthentication getPasswordAuthentication() {
            if (getRequestorType() != RequestorType.PROXY) {
              return null;
            }
            return new PasswordAuthentication("azegress", token.toCharArray());
          }
        })
        .sslContext(tls)
        .build();
    HttpResponse<String> resp = client.send(HttpRequest.newBuilder(URI.create(args[2])).build(), HttpResponse.BodyHandlers.ofString());
    System.out.print(resp.statusCode() + " " + resp.body());
  }
}
`
