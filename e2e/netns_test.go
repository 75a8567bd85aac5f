package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azegress/azegress/e2e/netns"
)

// The next-hop topology (README.md, "Deploying as a subnet's next hop"):
//
//	workload eth0 10.77.1.2 (+ 10.77.1.3, in no client block)
//	   │  default route via 10.77.1.1
//	proxy    eth0 10.77.1.1 │ eth1 192.0.2.1, default route via 192.0.2.2
//	   │  ip_forward=1, deploy/nftables/azegress.nft, azegress serve
//	internet eth0 192.0.2.2, route back to 10.77.1.0/24 (so a leak would get through)
//	         lo: a TLS and an HTTP server per name, and listeners for non-web traffic
//
// The interfaces are named as on a one-NIC Azure VM, so the ruleset loads
// unchanged: its lan_ifs define is { "eth0" }.
const (
	nhPrefix     = "azegress-nh-"
	nhWorkloadIP = "10.77.1.2"
	nhStrangerIP = "10.77.1.3" // a workload source outside every client block
	nhProxyLANIP = "10.77.1.1"
	nhOtherIP    = "203.0.113.10" // non-web listeners in the internet namespace
	nhNFT        = "../deploy/nftables/azegress.nft"
	nhLimit      = 15 * time.Second // failure bound for one step, never a pass condition
)

// nhNames are the internet namespace's servers, by name. Both the proxy and
// the workload resolve them through their /etc/netns hosts files.
var nhNames = map[string]string{
	"allowed.example":     "198.51.100.10",
	"denied.example":      "198.51.100.20",
	"api.allowed.example": "203.0.113.20",
}

const nhPolicy = `# e2e/netns_test.go: the workload may reach allowed.example (HTTPS and HTTP)
# and any name under it (HTTPS).
client "workload" {
  sources = ["` + nhWorkloadIP + `/32"]

  allow "allowed" {
    hosts = ["allowed.example"]
    ports = [80, 443]
  }

  allow "below-allowed" {
    hosts = ["*.allowed.example"]
  }
}
`

// nhLeakRuleset is loaded in the internet namespace; see nhTopo.leaked.
const nhLeakRuleset = `table inet leak {
	counter from_workload {}
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip saddr 10.77.1.0/24 counter name from_workload
	}
}
`

// TestNextHop runs azegress as the next hop of a workload namespace with the
// deploy/ nftables ruleset, and checks what reaches the internet namespace.
func TestNextHop(t *testing.T) {
	t.Parallel()
	tp := nhSetup(t)

	t.Run("allowed HTTPS", func(t *testing.T) {
		before := tp.counter(t, "redirected_tls")
		out, err := tp.curl(t, "https://allowed.example/")
		if err != nil {
			t.Fatal(err)
		}
		nhServedBy(t, out, "allowed.example")
		if after := tp.counter(t, "redirected_tls"); after <= before {
			t.Errorf("counter redirected_tls = %d after the request, was %d: the connection did not go through the redirect", after, before)
		}
	})

	t.Run("wildcard HTTPS", func(t *testing.T) {
		out, err := tp.curl(t, "https://api.allowed.example/")
		if err != nil {
			t.Fatal(err)
		}
		nhServedBy(t, out, "api.allowed.example")
	})

	t.Run("allowed HTTP", func(t *testing.T) {
		before := tp.counter(t, "redirected_http")
		out, err := tp.curl(t, "http://allowed.example/")
		if err != nil {
			t.Fatal(err)
		}
		nhServedBy(t, out, "allowed.example")
		if after := tp.counter(t, "redirected_http"); after <= before {
			t.Errorf("counter redirected_http = %d after the request, was %d", after, before)
		}
	})

	t.Run("denied HTTPS", func(t *testing.T) {
		mark := tp.log.mark()
		out, err := tp.curl(t, "https://denied.example/")
		if err == nil {
			t.Fatalf("curl https://denied.example/ succeeded: %q", out)
		}
		tp.log.wait(t, mark, "deny of denied.example with reason no_rule", func(r nhRecord) bool {
			return r.str("reason") == "no_rule" && r.str("host") == "denied.example"
		})
	})

	t.Run("denied HTTP", func(t *testing.T) {
		mark := tp.log.mark()
		out, _ := tp.curl(t, "http://denied.example/")
		if strings.Contains(out, "served-by") {
			t.Fatalf("http://denied.example/ reached a server: %q", out)
		}
		tp.log.wait(t, mark, "deny of denied.example:80 with reason no_rule", func(r nhRecord) bool {
			return r.str("reason") == "no_rule" && r.str("host") == "denied.example" && r.num("port") == 80
		})
	})

	// A TLS client that sends the allowed SNI to the denied server's address
	// (domain fronting's cousin) reaches the allowed server: the proxy dials
	// the name, never the packet's destination.
	t.Run("forged SNI to a denied address", func(t *testing.T) {
		out, err := tp.curl(t, "--resolve", "allowed.example:443:"+nhNames["denied.example"], "https://allowed.example/")
		if err != nil {
			t.Fatal(err)
		}
		nhServedBy(t, out, "allowed.example")
	})

	// The same with plain HTTP: Squid's default intercept mode forwards this
	// request to the packet's destination.
	t.Run("forged Host to a denied address", func(t *testing.T) {
		out, err := tp.curl(t, "-H", "Host: allowed.example", "http://"+nhNames["denied.example"]+"/")
		if err != nil {
			t.Fatal(err)
		}
		nhServedBy(t, out, "allowed.example")
	})

	t.Run("source outside every client block", func(t *testing.T) {
		mark := tp.log.mark()
		out, err := tp.curl(t, "--interface", nhStrangerIP, "https://allowed.example/")
		if err == nil {
			t.Fatalf("curl from %s succeeded: %q", nhStrangerIP, out)
		}
		tp.log.wait(t, mark, "client_unknown for "+nhStrangerIP, func(r nhRecord) bool {
			return r.str("reason") == "client_unknown" && strings.HasPrefix(r.str("client"), nhStrangerIP+":")
		})
	})

	t.Run("other TCP dropped", func(t *testing.T) {
		ln, err := tp.inet.Listen("tcp4", nhOtherIP+":5432")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
				accepted <- struct{}{}
			}
		}()
		defer ln.Close()
		tp.expectDrop(t, "forward_drop_tcp", true, func(ctx context.Context) error {
			c, err := tp.workload.Dial(ctx, "tcp4", nhOtherIP+":5432")
			if err == nil {
				c.Close()
			}
			return err
		})
		select {
		case <-accepted:
			t.Error("the internet namespace accepted a connection to port 5432")
		default:
		}
	})

	t.Run("UDP dropped", func(t *testing.T) {
		tp.expectDrop(t, "forward_drop_udp", false, func(ctx context.Context) error {
			c, err := tp.workload.Dial(ctx, "udp4", nhOtherIP+":53")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("not a DNS query"))
			return err
		})
	})

	// Connecting to a transparent listener itself (not redirected) gives it
	// no original destination; the ruleset's input chain refuses it.
	t.Run("direct connection to a transparent listener", func(t *testing.T) {
		tp.expectDrop(t, "direct_listener_drop", true, func(ctx context.Context) error {
			c, err := tp.workload.Dial(ctx, "tcp4", net.JoinHostPort(nhProxyLANIP, tp.tlsPort))
			if err == nil {
				c.Close()
			}
			return err
		})
	})
}

// nhTopo is the running topology of TestNextHop.
type nhTopo struct {
	workload, proxy, inet *netns.NS
	dir, caFile           string
	httpPort, tlsPort     string // the ruleset's transparent listener ports
	explicit              string // the explicit listener, in the proxy namespace
	log                   *nhLog
	opts                  nhOptions
}

// nhOptions vary the topology for tests other than TestNextHop.
type nhOptions struct {
	// Policy replaces nhPolicy when set.
	Policy string
	// Listen is the explicit listener's address in the proxy namespace
	// (default 127.0.0.1:0). 10.77.1.1:3128 lets the workload use it.
	Listen string
	// ProxyEtc are extra files for the proxy namespace's /etc (e.g. a
	// resolv.conf with a search list), written after hosts and resolv.conf.
	ProxyEtc map[string]string
	// Args are extra azegress serve flags.
	Args []string
	// TrustCA starts azegress with SSL_CERT_FILE naming the CA of the
	// internet namespace's TLS servers, so that it verifies them.
	TrustCA bool
}

// nhSeq tells apart the topologies of one test process.
var nhSeq atomic.Int32

// nhSetup builds the three namespaces, loads the ruleset, starts the
// servers and azegress, and registers the cleanup of all of it.
func nhSetup(t *testing.T) *nhTopo { return nhSetupWith(t, nhOptions{}) }

// nhSetupWith is nhSetup with options. Topologies of one process get names
// of their own, so tests that build one may run in parallel.
func nhSetupWith(t *testing.T, o nhOptions) *nhTopo {
	t.Helper()
	if os.Geteuid() != 0 {
		depMissing(t, "needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "nft", "curl"} {
		depTool(t, tool)
	}
	for _, name := range netns.SweepStale(nhPrefix) {
		t.Logf("removed namespace %s left by an earlier run", name)
	}
	tp := &nhTopo{dir: t.TempDir(), log: &nhLog{changed: make(chan struct{})}, opts: o}
	tp.httpPort = nhDefine(t, "transparent_http_port")
	tp.tlsPort = nhDefine(t, "transparent_tls_port")

	id := fmt.Sprintf("%s%d", nhPrefix, os.Getpid())
	if n := nhSeq.Add(1); n > 1 {
		id += fmt.Sprintf("x%d", n) // SweepStale reads the PID up to the x
	}
	mk := func(suffix string) *netns.NS {
		ns, err := netns.New(id + suffix)
		if err != nil {
			depMissing(t, "cannot create a network namespace: %v", err)
		}
		t.Cleanup(func() {
			if err := ns.Delete(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		return ns
	}
	tp.workload, tp.proxy, tp.inet = mk("-w"), mk("-p"), mk("-i")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w, p, in := tp.workload, tp.proxy, tp.inet
	must(p.IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", w.Name))
	must(p.IP("link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", in.Name))
	for _, a := range []struct {
		ns         *netns.NS
		dev, addr  string
		bringUpDev bool
	}{
		{w, "eth0", nhWorkloadIP + "/24", true},
		{w, "eth0", nhStrangerIP + "/24", false},
		{p, "eth0", nhProxyLANIP + "/24", true},
		{p, "eth1", "192.0.2.1/24", true},
		{in, "eth0", "192.0.2.2/24", true},
		{in, "lo", nhOtherIP + "/32", false},
	} {
		must(a.ns.IP("addr", "add", a.addr, "dev", a.dev))
		if a.bringUpDev {
			must(a.ns.IP("link", "set", a.dev, "up"))
		}
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for name, ip := range nhNames {
		must(in.IP("addr", "add", ip+"/32", "dev", "lo"))
		fmt.Fprintf(&hosts, "%s %s\n", ip, name)
	}
	must(w.IP("route", "add", "default", "via", nhProxyLANIP))
	must(p.IP("route", "add", "default", "via", "192.0.2.2"))
	must(in.IP("route", "add", "10.77.1.0/24", "via", "192.0.2.1"))
	for _, ns := range []*netns.NS{w, p} {
		must(ns.WriteEtc("hosts", []byte(hosts.String())))
		must(ns.WriteEtc("resolv.conf", []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")))
	}
	for file, data := range o.ProxyEtc {
		must(p.WriteEtc(file, []byte(data)))
	}

	// The proxy host: forwarding on, the deploy/ ruleset loaded unchanged.
	must(p.Sysctl("net.ipv4.ip_forward", "1"))
	tp.run(t, p, "nft", "-f", nhNFT)
	// The internet side counts every packet that arrives with a workload
	// source address: azegress dials from the proxy's own address, so any
	// such packet went through the proxy host unfiltered.
	leak := filepath.Join(tp.dir, "leak.nft")
	must(os.WriteFile(leak, []byte(nhLeakRuleset), 0o644))
	tp.run(t, in, "nft", "-f", leak)
	t.Cleanup(func() {
		if n := tp.leaked(t); n != 0 {
			t.Errorf("%d packets from the workload reached the internet namespace without going through azegress", n)
		}
	})

	tp.startServers(t)
	tp.startProxy(t)
	return tp
}

// run runs a command inside ns and fails the test if it fails.
func (tp *nhTopo) run(t *testing.T, ns *netns.NS, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	if out, err := ns.Command(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns.Name, name, strings.Join(args, " "), err, out)
	}
}

// startServers starts, in the internet namespace, a TLS server (certificate
// from a CA made here) and an HTTP server on each name's address. Each
// answers "served-by NAME".
func (tp *nhTopo) startServers(t *testing.T) {
	t.Helper()
	ca, caKey := nhCA(t)
	tp.caFile = filepath.Join(tp.dir, "ca.pem")
	if err := os.WriteFile(tp.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs after every srv.Close below
	for name, ip := range nhNames {
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "served-by %s\n", name)
		})
		cert := nhLeaf(t, ca, caKey, name)
		for _, port := range []string{"80", "443"} {
			ln, err := tp.inet.Listen("tcp4", net.JoinHostPort(ip, port))
			if err != nil {
				t.Fatal(err)
			}
			if port == "443" {
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
			}
			srv := &http.Server{Handler: handler, ReadHeaderTimeout: nhLimit}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = srv.Serve(ln)
			}()
			t.Cleanup(func() { srv.Close() })
		}
	}
}

// startProxy runs azegress in the proxy namespace with the transparent
// listeners on the ruleset's ports, and waits for its startup record.
func (tp *nhTopo) startProxy(t *testing.T) {
	t.Helper()
	pol := filepath.Join(tp.dir, "policy.hcl")
	text, listen := nhPolicy, "127.0.0.1:0"
	if tp.opts.Policy != "" {
		text = tp.opts.Policy
	}
	if tp.opts.Listen != "" {
		listen = tp.opts.Listen
	}
	if err := os.WriteFile(pol, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"serve", "-policy", pol,
		"-listen", listen, "-metrics", "",
		"-transparent-http", "0.0.0.0:" + tp.httpPort,
		"-transparent-tls", "0.0.0.0:" + tp.tlsPort}, tp.opts.Args...)
	cmd := tp.proxy.Command(ctx, azegressBin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if tp.opts.TrustCA {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+tp.caFile)
	}
	cmd.Stderr = tp.log
	exited := startDaemon(t, "azegress serve", cmd, cancel, tp.log.text)
	deadline := time.NewTimer(nhLimit)
	defer deadline.Stop()
	for {
		if r, ok := tp.log.find(0, func(r nhRecord) bool { return r.str("msg") == "azegress listening" }); ok {
			if !strings.HasSuffix(r.str("transparent_tls"), ":"+tp.tlsPort) || !strings.HasSuffix(r.str("transparent_http"), ":"+tp.httpPort) {
				t.Fatalf("startup record: transparent_tls %q, transparent_http %q; want ports %s and %s",
					r.str("transparent_tls"), r.str("transparent_http"), tp.tlsPort, tp.httpPort)
			}
			tp.explicit = r.str("listen")
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("azegress serve exited before listening: %v\n%s", err, tp.log.text())
		case <-tp.log.changedCh():
		case <-deadline.C:
			t.Fatalf("no startup record from azegress serve within %v\n%s", nhLimit, tp.log.text())
		}
	}
}

// curl runs curl in the workload namespace with no proxy settings and the
// test CA, and returns what it wrote to stdout.
func (tp *nhTopo) curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	cmd := tp.workload.Command(ctx, "curl", append([]string{"-q", "-sS", "--max-time", "10", "--cacert", tp.caFile}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no HTTP_PROXY, HTTPS_PROXY, ALL_PROXY
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("curl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// counter reads a named counter of the ruleset in the proxy namespace.
func (tp *nhTopo) counter(t *testing.T, name string) int64 {
	t.Helper()
	return nhCounter(t, tp.proxy, "azegress", name)
}

// leaked returns how many packets with a workload source address reached
// the internet namespace.
func (tp *nhTopo) leaked(t *testing.T) int64 {
	t.Helper()
	return nhCounter(t, tp.inet, "leak", "from_workload")
}

// nhCounter reads the packets of a named counter in table inet TABLE.
func nhCounter(t *testing.T, ns *netns.NS, table, name string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	out, err := ns.Command(ctx, "nft", "-j", "list", "counter", "inet", table, name).Output()
	if err != nil {
		t.Fatalf("nft list counter %s: %v", name, err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Packets int64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft list counter %s: %v\n%s", name, err, out)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets
		}
	}
	t.Fatalf("nft list counter %s: no counter in %s", name, out)
	return 0
}

// expectDrop runs send and waits until the named drop counter has counted
// its packet. With refused set, send must fail: a TCP connection that got
// through is a leak. send is canceled once the drop is seen, so a dropped
// SYN costs no retransmission timeout.
func (tp *nhTopo) expectDrop(t *testing.T, counter string, refused bool, send func(context.Context) error) {
	t.Helper()
	before, leakedBefore := tp.counter(t, counter), tp.leaked(t)
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- send(ctx) }()
	var sendErr error
	finished, pending := false, done
	for tp.counter(t, counter) <= before {
		select {
		case sendErr = <-pending:
			finished, pending = true, nil
			if sendErr == nil && refused {
				t.Fatalf("the connection succeeded; counter %s stayed at %d", counter, before)
			}
		case <-ctx.Done():
			t.Fatalf("counter %s stayed at %d for %v (send: %v)", counter, before, nhLimit, sendErr)
		case <-time.After(20 * time.Millisecond): // polling interval, not a readiness wait
		}
	}
	cancel()
	if !finished {
		sendErr = <-done
	}
	if sendErr == nil && refused {
		t.Errorf("the connection succeeded although %s counted a drop", counter)
	}
	if n := tp.leaked(t) - leakedBefore; n != 0 {
		t.Errorf("%d packets from the workload reached the internet namespace", n)
	}
}

// nhServedBy fails the test unless body came from the server for name.
func nhServedBy(t *testing.T, body, name string) {
	t.Helper()
	if got, want := strings.TrimSpace(body), "served-by "+name; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

// nhDefine returns the value of a define in the deploy/ ruleset.
func nhDefine(t *testing.T, name string) string {
	t.Helper()
	src, err := os.ReadFile(nhNFT)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^define ` + regexp.QuoteMeta(name) + ` = (.+)$`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no define %s", nhNFT, name)
	}
	return strings.TrimSpace(string(m[1]))
}

// nhCA makes a test certificate authority.
func nhCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "azegress e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// nhLeaf makes a server certificate for name, signed by ca.
func nhLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// nhRecord is one JSON log record.
type nhRecord map[string]any

func (r nhRecord) str(key string) string {
	s, _ := r[key].(string)
	return s
}

func (r nhRecord) num(key string) float64 {
	n, _ := r[key].(float64)
	return n
}

// nhLog collects azegress's JSON log lines.
type nhLog struct {
	mu      sync.Mutex
	buf     []byte
	records []nhRecord
	raw     []string
	changed chan struct{} // closed and replaced on every new record
}

func (l *nhLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	consumed := 0
	added := false
	for {
		i := bytes.IndexByte(l.buf[consumed:], '\n')
		if i < 0 {
			break
		}
		line := l.buf[consumed : consumed+i]
		consumed += i + 1
		l.raw = append(l.raw, string(line))
		var r nhRecord
		if json.Unmarshal(line, &r) != nil {
			r = nhRecord{"msg": "NOT JSON: " + string(line)}
		}
		l.records = append(l.records, r)
		added = true
	}
	l.buf = append(l.buf[:0], l.buf[consumed:]...)
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

func (l *nhLog) changedCh() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// mark returns the number of records so far; wait looks only after it.
func (l *nhLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

func (l *nhLog) find(from int, match func(nhRecord) bool) (nhRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records[from:] {
		if match(r) {
			return r, true
		}
	}
	return nil, false
}

func (l *nhLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw, "\n")
}

// wait fails the test unless a record after mark matches within nhLimit.
func (l *nhLog) wait(t *testing.T, mark int, what string, match func(nhRecord) bool) nhRecord {
	t.Helper()
	deadline := time.NewTimer(nhLimit)
	defer deadline.Stop()
	for {
		ch := l.changedCh()
		if r, ok := l.find(mark, match); ok {
			return r
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no log record: %s\nlog since the step began:\n%s", what, l.textSince(mark))
		}
	}
}

func (l *nhLog) textSince(mark int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw[mark:], "\n")
}
