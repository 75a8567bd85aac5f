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
	"github.com/azegress/azegress/internal/testcert"
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
// tunnels. Each client goes through the plain listener (http://) and the
// TLS listener (https://, its certificate issued by a CA the clients are
// given), except Java, which cannot speak TLS to a proxy.
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
	proxyCA := testcert.NewCA(t)
	pair := proxyCA.Issue(t, tp.Dir, "proxy", time.Now().Add(24*time.Hour), azProxyIP)
	p := tp.azStartProxy(t, "identity", src, "-listen-tls", azProxyIP+":0", "-tls-cert", pair.CertFile, "-tls-key", pair.KeyFile)
	if p.tlsAddr == "" {
		t.Fatal("the startup record names no listen_tls")
	}
	token := idp.Mint(t, identitytest.Token{Claims: map[string]any{"exp": time.Now().Add(2 * time.Hour).Unix()}})
	probe := "https://" + azemu.ProbeHost + "/"
	emuCA, err := os.ReadFile(tp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	emuRoots := x509.NewCertPool()
	emuRoots.AppendCertsFromPEM(emuCA)
	// Go, requests and az take one set of roots for the proxy and the
	// destinations: they get both CAs.
	proxyCAFile, bundle := filepath.Join(tp.Dir, "proxy-ca.pem"), filepath.Join(tp.Dir, "bundle.pem")
	testcert.WriteFile(t, proxyCAFile, proxyCA.PEM)
	testcert.WriteFile(t, bundle, append(append([]byte(nil), emuCA...), proxyCA.PEM...))
	roots := emuRoots.Clone()
	roots.AppendCertsFromPEM(proxyCA.PEM)

	for _, l := range []identityListener{
		{name: "http", addr: p.addr},
		{name: "https", addr: p.tlsAddr, caFile: proxyCAFile, ca: proxyCA.Pool},
	} {
		t.Run(l.name, func(t *testing.T) {
			proxyURL := l.url("azegress:" + token)

			t.Run("curl", func(t *testing.T) {
				azNeedTool(t, "curl")
				// The proxy URL comes from the environment, as HTTPS_PROXY
				// does in production, and the Bearer header from a file:
				// no token in argv. --proxy-cacert trusts the TLS
				// listener's CA for the proxy alone.
				curl := func(proxy string, args ...string) azResult {
					args = append([]string{"curl", "-q", "-sS", "--max-time", "20", "--cacert", tp.CAFile}, append(args, probe)...)
					if l.caFile != "" {
						args = append(args[:1], append([]string{"--proxy-cacert", l.caFile}, args[1:]...)...)
					}
					return azRun(t, tp.Workload, []string{"PATH=/usr/bin:/bin", "https_proxy=" + proxy}, time.Minute, args...)
				}
				if r := curl(proxyURL); r.Code != 0 || r.Stdout != probeBody {
					t.Errorf("curl with the token in the proxy URL: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
				}
				hdr := filepath.Join(t.TempDir(), "proxy-header")
				if err := os.WriteFile(hdr, []byte("Proxy-Authorization: Bearer "+token+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if r := curl(l.url(""), "--proxy-header", "@"+hdr); r.Code != 0 || r.Stdout != probeBody {
					t.Errorf("curl with a Bearer proxy header: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
				}
				if r := curl(l.url("")); r.Code == 0 || !strings.Contains(r.Stderr, "407") {
					t.Errorf("curl without credentials: exit %d, %s; want the 407 challenge", r.Code, r.Stderr)
				}
				if r := curl(l.url("azegress:x.y.z")); r.Code == 0 || !strings.Contains(r.Stderr, "407") {
					t.Errorf("curl with a malformed token: exit %d, %s; want 407", r.Code, r.Stderr)
				}
			})

			t.Run("Go net/http", func(t *testing.T) {
				u, _ := url.Parse(proxyURL)
				resp, err := identityClientIn(tp.Workload, u, roots).Get(probe)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != probeBody {
					t.Errorf("Go client with userinfo in the proxy URL: %d %q", resp.StatusCode, b)
				}
				if l.ca != nil {
					// The proxy's certificate is checked against the same
					// roots as the destination's: without its CA, no request.
					if _, err := identityClientIn(tp.Workload, u, emuRoots).Get(probe); err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
						t.Errorf("Go client without the proxy's CA: %v; want the certificate refused", err)
					}
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
proxy = os.environ["PROXY_URL"]
r = requests.get(sys.argv[1], proxies={"https": proxy, "http": proxy}, verify=sys.argv[2], timeout=20)
print(r.status_code)
sys.stdout.write(r.text)
`
				run := func(proxy, url, roots string) azResult {
					return azRun(t, tp.Workload, []string{"PATH=/usr/bin:/bin", "PYTHONWARNINGS=ignore", "PROXY_URL=" + proxy}, time.Minute, azPython, "-c", get, url, roots)
				}
				if r := run(proxyURL, probe, bundle); r.Code != 0 || r.Stdout != "200\n"+probeBody {
					t.Errorf("requests with the token in the proxy URL: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
				}
				// An empty user name: requests then sends no credentials at
				// all (README: use a non-empty user name), and the proxy
				// challenges.
				if r := run(l.url(":"+token), probe, bundle); r.Code == 0 || !strings.Contains(r.Stderr, "407") {
					t.Errorf("requests with an empty user name: exit %d, %q\n%s; want a 407", r.Code, r.Stdout, r.Stderr)
				}
				if l.ca == nil {
					return
				}
				// For an https:// URL requests checks the proxy's
				// certificate against verify, as the destination's...
				if r := run(proxyURL, probe, tp.CAFile); r.Code == 0 || !strings.Contains(r.Stderr, "CERTIFICATE_VERIFY_FAILED") {
					t.Errorf("requests without the proxy's CA, https:// URL: exit %d, %q\n%s; want the proxy's certificate refused", r.Code, r.Stdout, r.Stderr)
				}
				// ...but for an http:// URL it checks nothing: requests'
				// HTTPAdapter.cert_verify sets CERT_NONE on the pool of a
				// non-https URL, and urllib3 1.26 (Debian 12's) makes that
				// pool the TLS connection to the proxy. The token reaches
				// a proxy whose certificate nobody checked, here the
				// proxy's 403 for port 80. The README says so.
				if r := run(proxyURL, "http://"+azemu.ProbeHost+"/", tp.CAFile); r.Code != 0 || !strings.HasPrefix(r.Stdout, "403\n") {
					t.Errorf("requests without the proxy's CA, http:// URL: exit %d, %q\n%s; the README says requests sends an http:// URL's request to an https:// proxy it does not verify: update it", r.Code, r.Stdout, r.Stderr)
				}
			})

			t.Run("Azure CLI", func(t *testing.T) {
				azNeedTool(t, "az")
				dir := t.TempDir()
				// Later entries win: requests (and so az, MSAL) and the
				// telemetry uploader trust the proxy's CA too.
				env := append(tp.azEnv(dir, proxyURL, azIMDSOnly), "REQUESTS_CA_BUNDLE="+bundle, "SSL_CERT_FILE="+bundle)
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
				dial := func(ctx context.Context) (net.Conn, error) { return l.dial(ctx, tp.Workload) }
				body, err := connectAfterChallenge(dial, azemu.ProbeHost, token, emuRoots)
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
				host, port, _ := net.SplitHostPort(l.addr)
				env := []string{"PATH=/usr/bin:/bin", "PROXY_TOKEN=" + token, "HOME=" + dir}
				if l.ca != nil {
					// java.net.http has no https:// proxy: a ProxySelector
					// gives an address, and the client sends its CONNECT
					// in clear text (before any credentials: it waits for
					// the 407). The TLS listener answers that with a 400
					// and counts it as not_tls.
					notTLS := func() (n int) {
						for _, rec := range p.log.Records() {
							if rec["msg"] == "TLS handshake failed" && rec["reason"] == "not_tls" {
								n++
							}
						}
						return n
					}
					before := notTLS()
					r := azRun(t, tp.Workload, env, 2*time.Minute, java, "-Djdk.http.auth.tunneling.disabledSchemes=", prog, host, port, probe, tp.CAFile)
					if r.Code == 0 || !strings.Contains(r.Stderr, "Tunnel failed, got: 400") || notTLS() != before+1 {
						t.Errorf("java.net.http at the TLS listener: exit %d, %q, %d not_tls records (want one more than %d)\n%s", r.Code, r.Stdout, notTLS(), before, r.Stderr)
					}
					t.Skip("java.net.http cannot use an https:// proxy: HttpClient.Builder.proxy takes a ProxySelector, which yields host and port only (java.net.Proxy types HTTP and SOCKS), and the JDK's PlainTunnelingConnection sends its CONNECT in clear text: the TLS listener refused it as not_tls, the client failed with \"Tunnel failed, got: 400\"")
				}
				r := azRun(t, tp.Workload, env, 2*time.Minute, java, "-Djdk.http.auth.tunneling.disabledSchemes=", prog, host, port, probe, tp.CAFile)
				if r.Code != 0 || r.Stdout != "200 "+probeBody {
					t.Errorf("java.net.http: exit %d, %q\n%s", r.Code, r.Stdout, r.Stderr)
				}
				// By default the JDK does not answer a Basic challenge for a
				// tunnel (jdk.http.auth.tunneling.disabledSchemes=Basic):
				// the client gets the 407 itself, so the README's flag is
				// needed.
				r = azRun(t, tp.Workload, env, 2*time.Minute, java, prog, host, port, probe, tp.CAFile)
				if !strings.HasPrefix(r.Stdout, "407 ") {
					t.Errorf("java.net.http without the flag: exit %d, %q\n%s; want the 407", r.Code, r.Stdout, r.Stderr)
				}
			})
		})
	}

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

// identityListener is one of the proxy's listeners as its clients see it.
type identityListener struct {
	name   string // of the subtest
	addr   string
	caFile string         // the CA of the TLS listener's certificate, PEM; "" for the plain listener
	ca     *x509.CertPool // the same CA
}

// url is the proxy URL, with userinfo (user:password) unless it is empty.
func (l identityListener) url(userinfo string) string {
	u := url.URL{Scheme: "http", Host: l.addr}
	if l.ca != nil {
		u.Scheme = "https"
	}
	if user, password, ok := strings.Cut(userinfo, ":"); ok {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// dial connects to the proxy from inside ns; to the TLS listener with a
// handshake that checks its certificate.
func (l identityListener) dial(ctx context.Context, ns string) (net.Conn, error) {
	c, err := azDialIn(ctx, ns, l.addr)
	if err != nil || l.ca == nil {
		return c, err
	}
	host, _, _ := net.SplitHostPort(l.addr)
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: l.ca})
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake with the proxy: %w", err)
	}
	return tc, nil
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
// with Basic credentials, then GET / over TLS. dial connects to the proxy.
// It returns the body.
func connectAfterChallenge(dial func(context.Context) (net.Conn, error), host, token string, roots *x509.CertPool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(auth string) (*http.Response, net.Conn, *bufio.Reader, error) {
		c, err := dial(ctx)
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
