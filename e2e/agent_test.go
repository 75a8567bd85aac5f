//go:build linux

package e2e

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/azemu"
	"github.com/azegress/azegress/e2e/netns"
)

// The token helpers' topology: one network namespace, the machine, with
// its token services served by the emulator from this process: IMDS on
// 169.254.169.254:80, Arc's HIMDS on 127.0.0.1:40342 and Entra on
// login.microsoftonline.com (203.0.113.40:443, by the namespace's hosts
// file). A stand-in for the egress proxy (thUpstream) listens on its
// loopback and relays CONNECTs to a TLS origin there. azegress runs in the
// namespace with the environment of one token source; for Arc, in a mount
// namespace of its own where the emulator's key directory is mounted on
// Arc's real /var/opt/azcmagent/tokens, the only place it reads key files
// from.
const (
	thPrefix     = "azth-"
	thEntraIP    = "203.0.113.40"
	thArcKeyDir  = "/var/opt/azcmagent/tokens"
	thAppURI     = "api://azegress"
	thCmdLimit   = time.Minute
	thAssertion  = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImUyZSJ9.eyJpc3MiOiJodHRwczovL29pZGMuZTJlLmV4YW1wbGUiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3b3JrbG9hZCIsImF1ZCI6ImFwaTovL0F6dXJlQURUb2tlbkV4Y2hhbmdlIn0.c2lnbmF0dXJl"
	thBasePath   = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	thArcWrapper = `mount -t tmpfs -o size=64k,mode=0755 azegress-e2e /var/opt && mkdir -p ` + thArcKeyDir +
		` && mount --bind "$TH_KEY_DIR" ` + thArcKeyDir + ` && exec "$@"`
)

var thSeq atomic.Int64

// thTopo is the namespace with the emulator serving in it.
type thTopo struct {
	ns      *netns.NS
	emu     *azemu.Emulator
	dir     string
	caFile  string // the emulator's CA: SSL_CERT_FILE for Entra
	keyDir  string // HIMDS's key files, as this process sees them
	fedFile string // the projected service-account token
}

// thNewTopo builds the namespace and serves the emulator in it, issuing
// tokens valid for lifetime (0: 24h).
func thNewTopo(t *testing.T, lifetime time.Duration) *thTopo {
	t.Helper()
	recNeed(t, "ip", "curl", "unshare", "mount")
	if fi, err := os.Stat("/var/opt"); err != nil || !fi.IsDir() {
		azMissing(t, "needs /var/opt to mount Arc's key directory under")
	}
	for _, name := range netns.SweepStale(thPrefix) {
		t.Logf("removed namespace %s left by an earlier run", name)
	}
	ns, err := netns.New(fmt.Sprintf("%s%dx%d", thPrefix, os.Getpid(), thSeq.Add(1)))
	if err != nil {
		azMissing(t, "cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, addr := range []string{azemu.IMDSAddr, thEntraIP} {
		if err := ns.IP("addr", "add", addr+"/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	for file, content := range map[string]string{
		"hosts":       "127.0.0.1 localhost\n" + thEntraIP + " " + azemu.EntraHost + "\n",
		"resolv.conf": azResolvConf,
	} {
		if err := ns.WriteEtc(file, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}

	tp := &thTopo{ns: ns, dir: t.TempDir()}
	if tp.keyDir, tp.fedFile, err = azemu.MachineFiles(tp.dir, thAssertion); err != nil {
		t.Fatal(err)
	}
	if tp.emu, err = azemu.New(azemu.Config{
		TokenLifetime:      lifetime,
		Apps:               []azemu.App{{IdentifierURI: thAppURI}},
		ArcKeyDir:          tp.keyDir,
		ArcRealmDir:        thArcKeyDir,
		FederatedTokenFile: tp.fedFile,
	}); err != nil {
		t.Fatal(err)
	}
	tp.caFile = filepath.Join(tp.dir, "azemu-ca.pem")
	if err := os.WriteFile(tp.caFile, tp.emu.CACertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	var serving sync.WaitGroup
	t.Cleanup(func() { tp.emu.Close(); serving.Wait() })
	for _, l := range []struct {
		addr  string
		serve func(net.Listener, string) error
	}{
		{azemu.IMDSAddr + ":80", tp.emu.ServeIMDS},
		{fmt.Sprintf("127.0.0.1:%d", azemu.HIMDSPort), tp.emu.ServeHIMDS},
		{thEntraIP + ":443", tp.emu.ServeTLS},
	} {
		ln, err := ns.Listen("tcp4", l.addr)
		if err != nil {
			t.Fatal(err)
		}
		serving.Go(func() { l.serve(ln, "machine") })
	}
	return tp
}

// env is azegress's environment on a machine whose token source is
// source: "imds", "arc" or "workload".
func (tp *thTopo) env(source string) []string {
	env := []string{thBasePath, "SSL_CERT_FILE=" + tp.caFile}
	switch source {
	case "arc":
		himds := fmt.Sprintf("http://127.0.0.1:%d", azemu.HIMDSPort)
		env = append(env, "IDENTITY_ENDPOINT="+himds+"/metadata/identity/oauth2/token", "IMDS_ENDPOINT="+himds,
			"TH_KEY_DIR="+tp.keyDir)
	case "workload":
		cfg := tp.emu.Config()
		env = append(env, "AZURE_FEDERATED_TOKEN_FILE="+tp.fedFile, "AZURE_CLIENT_ID="+cfg.ClientID,
			"AZURE_TENANT_ID="+cfg.TenantID, "AZURE_AUTHORITY_HOST=https://"+azemu.EntraHost+"/")
	}
	return env
}

// argv runs azegress with args on a machine whose token source is source.
func (tp *thTopo) argv(source string, args ...string) []string {
	argv := append([]string{azegressBin}, args...)
	if source == "arc" {
		argv = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", thArcWrapper, "sh"}, argv...)
	}
	return argv
}

// checkToken checks that tok is the emulator's token for the proxy's app
// and returns it.
func (tp *thTopo) checkToken(t *testing.T, tok string) string {
	t.Helper()
	c, err := tp.emu.Verify(tok, time.Now())
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	cfg := tp.emu.Config()
	if c.Aud != cfg.Apps[0].ClientID || c.Iss != tp.emu.IssuerV2() || c.IdTyp != "app" || c.OID != cfg.PrincipalID {
		t.Errorf("claims %+v: want aud %s, the v2 issuer, idtyp app, oid %s", c, cfg.Apps[0].ClientID, cfg.PrincipalID)
	}
	return tok
}

// services is the emulator's requests after the first n, as service/status.
func (tp *thTopo) services(n int) string {
	var out []string
	for _, r := range tp.emu.Requests()[n:] {
		out = append(out, fmt.Sprintf("%s/%d", r.Service, r.Status))
	}
	return strings.Join(out, " ")
}

// TestProxyURL runs `azegress proxy-url` on a machine of each kind: IMDS,
// Arc (the 401 challenge and its key file) and AKS workload identity (the
// service-account token as a client assertion at Entra).
func TestProxyURL(t *testing.T) {
	tp := thNewTopo(t, 0)
	for _, tt := range []struct {
		source, services string
	}{
		{"imds", "imds/200"},
		{"arc", "himds/401 himds/200"},
		{"workload", "entra/200"},
	} {
		t.Run(tt.source, func(t *testing.T) {
			n := len(tp.emu.Requests())
			r := azRun(t, tp.ns.Name, tp.env(tt.source), thCmdLimit, tp.argv(tt.source, "proxy-url", "-proxy", "http://10.0.0.4:3128")...)
			if r.Code != 0 {
				t.Fatalf("exit %d\nstderr: %s", r.Code, r.Stderr)
			}
			u, err := url.Parse(strings.TrimSuffix(r.Stdout, "\n"))
			if err != nil || u.Scheme != "http" || u.Host != "10.0.0.4:3128" || u.User.Username() != "azegress" || strings.Count(r.Stdout, "\n") != 1 {
				t.Fatalf("printed %q, want http://azegress:TOKEN@10.0.0.4:3128 and a newline", r.Stdout)
			}
			pw, _ := u.User.Password()
			tp.checkToken(t, pw)
			if got := tp.services(n); got != tt.services {
				t.Errorf("the emulator answered %q, want %q", got, tt.services)
			}
			if r := tp.emu.Requests(); r[len(r)-1].Resource != thAppURI {
				t.Errorf("the token was asked for %q, want %s", r[len(r)-1].Resource, thAppURI)
			}
		})
	}

	// Failures say which source failed and what to check.
	other := filepath.Join(tp.dir, "other-token")
	if err := os.WriteFile(other, []byte("eyJ.not-federated.x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, source string
		env          []string
		args         []string
		want         []string
	}{
		{"IMDS, unknown identity", "imds", nil, []string{"-client-id", "11111111-2222-3333-4444-555555555555"},
			[]string{"IMDS (http://169.254.169.254/metadata/identity/oauth2/token): 400 invalid_request: Identity not found", "-client-id must be"}},
		{"IMDS, no app registration", "imds", nil, []string{"-resource", "api://not-registered"},
			[]string{"AADSTS500011", "create the proxy's app registration"}},
		{"workload identity, no federated credential", "workload", []string{"AZURE_FEDERATED_TOKEN_FILE=" + other}, nil,
			[]string{"workload identity (https://login.microsoftonline.com/", "AADSTS70021", "system:serviceaccount:NAMESPACE:NAME"}},
		{"Arc, user-assigned", "arc", nil, []string{"-client-id", "11111111-2222-3333-4444-555555555555"},
			[]string{"only the system-assigned identity"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"proxy-url"}, tt.args...), "-proxy", "http://10.0.0.4:3128")
			r := azRun(t, tp.ns.Name, append(tp.env(tt.source), tt.env...), thCmdLimit, tp.argv(tt.source, args...)...)
			if r.Code != 1 || r.Stdout != "" {
				t.Fatalf("exit %d, stdout %q: want 1 and nothing printed\nstderr: %s", r.Code, r.Stdout, r.Stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
		})
	}
}

// thUpstream stands in for the egress proxy (the real one does not take
// credentials yet): it records the token of each request's
// Proxy-Authorization, answers CONNECT with 200 and relays the tunnel to a
// TLS origin on the namespace's loopback, and answers plain HTTP itself.
type thUpstream struct {
	addr     string
	originCA string // PEM file of the origin's certificate, for curl
	mu       sync.Mutex
	seen     []thSeen
}

// thSeen is one request the upstream got.
type thSeen struct {
	method, target, user, token string
}

func thStartUpstream(t *testing.T, tp *thTopo) *thUpstream {
	t.Helper()
	u := &thUpstream{originCA: filepath.Join(tp.dir, "origin-ca.pem")}
	originLn, err := tp.ns.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "origin: %s %s", r.Method, r.URL.Path)
	}))
	origin.Listener.Close()
	origin.Listener = originLn
	origin.StartTLS() // its certificate names example.com
	t.Cleanup(origin.Close)
	if err := os.WriteFile(u.originCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	ln, err := tp.ns.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := thSeen{method: r.Method, target: r.Host}
		if r.Method != http.MethodConnect {
			s.target = r.URL.String()
		}
		if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.Header.Get("Proxy-Authorization"), "Basic ")); err == nil {
			s.user, s.token, _ = strings.Cut(string(b), ":")
		}
		u.mu.Lock()
		u.seen = append(u.seen, s)
		u.mu.Unlock()
		if r.Method != http.MethodConnect {
			fmt.Fprintf(w, "upstream: %s %s", r.Method, r.URL)
			return
		}
		o, err := tp.ns.Dial(r.Context(), "tcp", originLn.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer o.Close()
		w.WriteHeader(http.StatusOK)
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		go func() { io.Copy(o, buf); o.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, o)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return u
}

// since returns the requests after the first n.
func (u *thUpstream) since(n int) []thSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]thSeen(nil), u.seen[n:]...)
}

func (u *thUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// thAgent is an `azegress agent` running in a namespace; tp and up are
// set by thStartAgent, for curl and tunnel.
type thAgent struct {
	tp     *thTopo
	up     *thUpstream
	cmd    *exec.Cmd
	log    *azLog
	addr   string
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// thStartAgent runs the agent in front of up on a machine whose token
// source is source (startAgentIn).
func thStartAgent(t *testing.T, tp *thTopo, up *thUpstream, source string) *thAgent {
	t.Helper()
	a := startAgentIn(t, tp.ns.Name, tp.env(source), tp.argv(source, "agent", "-listen", "127.0.0.1:0",
		"-upstream", "http://"+up.addr, "-drain", "2s")...)
	a.tp, a.up = tp, up
	return a
}

// startAgentIn runs argv, an `azegress agent` command line (which may
// exec it), in the network namespace ns with env, and waits until it
// listens and has its first token. When the test ends it sends SIGTERM and
// checks that the agent stops cleanly.
func startAgentIn(t *testing.T, ns string, env []string, argv ...string) *thAgent {
	t.Helper()
	a := &thAgent{log: newAzLog(), exited: make(chan struct{})}
	a.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	waited, err := startPinned(a.cmd)
	if err != nil {
		t.Fatal(err)
	}
	go func() { a.err = <-waited; close(a.exited) }()
	t.Cleanup(func() {
		// ip netns exec, unshare and sh exec: the PID is the agent's.
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
			if a.err != nil {
				t.Errorf("the agent ended with %v after SIGTERM", a.err)
			}
			if _, ok := a.find(func(r map[string]any) bool { return r["msg"] == "stopped" }); !ok {
				t.Errorf("the agent did not log that it stopped")
			}
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.exited
			t.Errorf("the agent did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", strings.Join(a.log.Lines(), "\n"))
		}
	})
	r := a.wait(t, "its listening record", func(r map[string]any) bool { return r["msg"] == "azegress agent listening" })
	a.addr, _ = r["listen"].(string)
	a.waitRecords(t, "token refreshed", 1)
	return a
}

func (a *thAgent) find(match func(map[string]any) bool) (map[string]any, bool) {
	for _, r := range a.log.Records() {
		if match(r) {
			return r, true
		}
	}
	return nil, false
}

// wait returns the first record that matches, waiting up to a minute.
func (a *thAgent) wait(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		if r, ok := a.find(match); ok {
			return r
		}
		select {
		case <-a.log.notify:
		case <-a.exited:
			t.Fatalf("the agent exited (%v) before %s:\n%s", a.err, what, strings.Join(a.log.Lines(), "\n"))
		case <-deadline.C:
			t.Fatalf("the agent did not log %s within a minute:\n%s", what, strings.Join(a.log.Lines(), "\n"))
		}
	}
}

// waitRecords waits until the agent has logged msg n times.
func (a *thAgent) waitRecords(t *testing.T, msg string, n int) {
	t.Helper()
	a.wait(t, fmt.Sprintf("%q %d times", msg, n), func(map[string]any) bool {
		c := 0
		for _, r := range a.log.Records() {
			if r["msg"] == msg {
				c++
			}
		}
		return c >= n
	})
}

// curl fetches u through the agent and returns the status and body.
func (a *thAgent) curl(t *testing.T, u string, extra ...string) (int, string) {
	t.Helper()
	args := append([]string{"curl", "-sS", "--max-time", "20", "-x", "http://" + a.addr, "--cacert", a.up.originCA,
		"-w", "\n%{http_code}"}, extra...)
	r := azRun(t, a.tp.ns.Name, []string{thBasePath}, thCmdLimit, append(args, u)...)
	if r.Code != 0 {
		t.Fatalf("curl %s: exit %d\n%s", u, r.Code, r.Stderr)
	}
	i := strings.LastIndex(r.Stdout, "\n")
	status := 0
	fmt.Sscan(r.Stdout[i+1:], &status)
	return status, r.Stdout[:i]
}

// tunnel fetches https://example.com/PATH through the agent and returns
// the token the upstream got with the CONNECT.
func (a *thAgent) tunnel(t *testing.T, path string) string {
	t.Helper()
	n := a.up.count()
	if status, body := a.curl(t, "https://example.com/"+path); status != 200 || body != "origin: GET /"+path {
		t.Fatalf("https://example.com/%s through the agent: %d %q", path, status, body)
	}
	return a.up.since(n)[0].token
}

// TestAgent runs `azegress agent` in front of a stand-in egress proxy with
// curl as its client, on a machine of each kind: HTTPS and plain HTTP go
// upstream with the identity's token (the client's own proxy credentials
// replaced), and IMDS is refused by the agent, never sent upstream.
func TestAgent(t *testing.T) {
	tp := thNewTopo(t, 0)
	for _, source := range []string{"imds", "arc", "workload"} {
		t.Run(source, func(t *testing.T) {
			up := thStartUpstream(t, tp)
			a := thStartAgent(t, tp, up, source)

			status, body := a.curl(t, "https://example.com/hello", "--proxy-user", "client:its-own")
			if status != 200 || body != "origin: GET /hello" {
				t.Fatalf("HTTPS through the agent: %d %q", status, body)
			}
			status, body = a.curl(t, "http://plain.example/hi")
			if status != 200 || body != "upstream: GET http://plain.example/hi" {
				t.Fatalf("plain HTTP through the agent: %d %q", status, body)
			}
			seen := up.since(0)
			if len(seen) != 2 || seen[0].method != "CONNECT" || seen[0].target != "example.com:443" ||
				seen[1].method != "GET" || seen[1].target != "http://plain.example/hi" {
				t.Fatalf("the upstream saw %+v, want the CONNECT and the GET", seen)
			}
			for _, s := range seen {
				if s.user != "azegress" || s.token != seen[0].token {
					t.Errorf("%s %s: user %q, want azegress and the one token", s.method, s.target, s.user)
				}
			}
			tp.checkToken(t, seen[0].token)

			// IMDS through the agent: refused there, with the fix.
			n := len(tp.emu.Requests())
			status, body = a.curl(t, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource="+thAppURI,
				"-H", "Metadata: true")
			if status != 403 || !strings.Contains(body, "IMDS") || !strings.Contains(body, "NO_PROXY") {
				t.Errorf("IMDS through the agent: %d %q, want 403 naming IMDS and NO_PROXY", status, body)
			}
			if up.count() != 2 || len(tp.emu.Requests()) != n {
				t.Errorf("the IMDS request went on: the upstream saw %d requests, the emulator %q", up.count(), tp.services(n))
			}
			if _, ok := a.find(func(r map[string]any) bool { return r["reason"] == "local_endpoint" && r["host"] == azemu.IMDSAddr }); !ok {
				t.Errorf("no local_endpoint record for the IMDS request")
			}
			for _, line := range a.log.Lines() {
				if strings.Contains(line, seen[0].token) || strings.Contains(line, "its-own") || strings.Contains(line, "/hello") {
					t.Errorf("the agent logged a token, a credential or a path: %s", line)
				}
			}
		})
	}
}

// TestAgentRefresh: with short-lived tokens the agent asks again before
// expiry, and the next tunnel carries the new token.
func TestAgentRefresh(t *testing.T) {
	tp := thNewTopo(t, 4*time.Second)
	up := thStartUpstream(t, tp)
	a := thStartAgent(t, tp, up, "workload")
	first := tp.checkToken(t, a.tunnel(t, "1"))
	a.waitRecords(t, "token refreshed", 2)
	second := a.tunnel(t, "2")
	if second == first {
		t.Fatalf("the second tunnel carried the first token")
	}
	tp.checkToken(t, second)
	if got := tp.services(0); !strings.HasPrefix(got, "entra/200 entra/200") {
		t.Errorf("the emulator answered %q, want two exchanges", got)
	}
}

// TestAgentSourceFailing: while the token service is down the agent keeps
// sending the last token; once that expires it refuses with 503 and says
// why; when the service is back, so is the agent.
func TestAgentSourceFailing(t *testing.T) {
	tp := thNewTopo(t, 20*time.Second)
	up := thStartUpstream(t, tp)
	a := thStartAgent(t, tp, up, "imds")
	first := tp.checkToken(t, a.tunnel(t, "1"))

	tp.emu.SetOutage(azemu.ServiceIMDS, http.StatusServiceUnavailable)
	a.waitRecords(t, "token refresh failed; keeping the last token", 1) // at 80 % of the lifetime
	if got := a.tunnel(t, "2"); got != first {
		t.Errorf("while IMDS is down the agent sent another token")
	}

	a.waitRecords(t, "no token: the token source fails", 1) // at expiry
	n := up.count()
	status, body := a.curl(t, "http://plain.example/3") // curl shows no body of a refused CONNECT
	if status != 503 || !strings.Contains(body, "IMDS (http://169.254.169.254") || !strings.Contains(body, "503") {
		t.Errorf("after expiry: %d %q, want 503 naming IMDS and its status", status, body)
	}
	if up.count() != n {
		t.Errorf("a request went upstream without a valid token")
	}

	tp.emu.SetOutage(azemu.ServiceIMDS, 0)
	a.waitRecords(t, "token refreshed", 2)
	if got := tp.checkToken(t, a.tunnel(t, "4")); got == first {
		t.Errorf("after IMDS is back the agent sent the expired token")
	}
}
