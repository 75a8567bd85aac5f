package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// guardHosts is the proxy namespace's hosts file for TestGuardResolved: the
// topology's names, plus names that resolve to the proxy host itself.
const guardHosts = `127.0.0.1 localhost
198.51.100.10 allowed.example
198.51.100.20 denied.example
203.0.113.20 api.allowed.example
127.0.0.1 loop.allowed.example
169.254.169.254 imds.allowed.example
`

// TestGuardResolved is issue 11's first finding, end to end: an allowed
// name that resolves to the proxy host itself (loopback) or to IMDS never
// reaches it, whatever the rule's addresses say, by CONNECT or plain HTTP;
// and check refuses the lazy addresses = ["0.0.0.0/0"] that let it through
// before.
func TestGuardResolved(t *testing.T) {
	t.Parallel()
	const policy = `client "local" {
  sources = ["127.0.0.0/8"]

  # 64.0.0.0/2 covers loopback (127.0.0.0/8) without naming it.
  allow "wide" {
    hosts     = ["*.allowed.example"]
    ports     = [80, 443]
    addresses = ["64.0.0.0/2"]
  }
}
`
	tp := nhSetupWith(t, nhOptions{Policy: policy, ProxyEtc: map[string]string{"hosts": guardHosts}})

	// What would answer on the proxy host: a loopback web server, and IMDS
	// on its link-local address. Neither may see a connection.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tp.proxy.IP("addr", "add", "169.254.169.254/32", "dev", "lo"))
	reached := make(chan string, 16)
	for _, addr := range []string{"127.0.0.1:80", "127.0.0.1:443", "169.254.169.254:80", "169.254.169.254:443"} {
		ln, err := tp.proxy.Listen("tcp4", addr)
		must(err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				reached <- addr
				c.Close()
			}
		}()
	}

	for _, tt := range []struct {
		name, request, reason string
	}{
		{"CONNECT loopback", "CONNECT loop.allowed.example:443 HTTP/1.1\r\nHost: loop.allowed.example:443\r\n\r\n", "blocked_address"},
		{"GET loopback", "GET http://loop.allowed.example/ HTTP/1.1\r\nHost: loop.allowed.example\r\n\r\n", "blocked_address"},
		{"CONNECT IMDS", "CONNECT imds.allowed.example:443 HTTP/1.1\r\nHost: imds.allowed.example:443\r\n\r\n", "local_endpoint"},
		{"GET IMDS", "GET http://imds.allowed.example/metadata/identity/oauth2/token HTTP/1.1\r\nHost: imds.allowed.example\r\nMetadata: true\r\n\r\n", "local_endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := tp.explicitRequest(t, tt.request)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Azegress-Reason") != tt.reason {
				t.Errorf("%d %q, want 403 %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), tt.reason)
			}
		})
	}
	select {
	case addr := <-reached:
		t.Errorf("the proxy connected to %s", addr)
	default:
	}

	// The lazy prefix that covers IMDS: check refuses it (and so would a
	// reload, which keeps the serving policy).
	lazy := filepath.Join(tp.dir, "lazy.hcl")
	must(os.WriteFile(lazy, []byte(strings.Replace(policy, `"64.0.0.0/2"`, `"0.0.0.0/0"`, 1)), 0o644))
	out, err := exec.Command(azegressBin, "check", lazy).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lazy.hcl:8:18: Address range covers a local endpoint") {
		t.Errorf("azegress check of addresses = [\"0.0.0.0/0\"]: %v\n%s", err, out)
	}
}

// explicitRequest sends one raw request to the explicit listener from inside
// the proxy namespace (source 127.0.0.1) and reads the response head.
func (tp *nhTopo) explicitRequest(t *testing.T, raw string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	c, err := tp.proxy.Dial(ctx, "tcp4", tp.explicit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(nhLimit))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatalf("reading the proxy's answer: %v", err)
	}
	return resp
}

// TestGuardSearchList is issue 11's fourth finding: with a resolv.conf
// search list and ndots:5 (as in a Kubernetes pod), an allowed name must be
// resolved as the fully qualified name it is, never as
// name.<search-domain> first, which a DNS server here answers with another
// address.
func TestGuardSearchList(t *testing.T) {
	t.Parallel()
	tp := nhSetupWith(t, nhOptions{Policy: `client "local" {
  sources = ["127.0.0.0/8"]
  allow "allowed" {
    hosts = ["allowed.example"]
    ports = [80]
  }
}
`, ProxyEtc: map[string]string{
		// allowed.example only in DNS, so the search list applies to it.
		"hosts":       "127.0.0.1 localhost\n",
		"resolv.conf": "nameserver 127.0.0.53\nsearch corp.example\noptions ndots:5 timeout:1 attempts:2\n",
	}})
	pc, err := tp.proxy.ListenPacket("udp4", "127.0.0.53:53")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go serveDNS(pc, map[string]string{
		"allowed.example.":              "198.51.100.10", // served-by allowed.example
		"allowed.example.corp.example.": "198.51.100.20", // served-by denied.example
	})

	resp := tp.explicitRequest(t, "GET http://allowed.example/ HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "served-by allowed.example") {
		t.Fatalf("GET http://allowed.example/: %d %q, want the server of allowed.example", resp.StatusCode, body)
	}
}

// serveDNS answers A queries for the names in a (fully qualified, lower
// case) and an empty answer for every other question, until pc closes.
func serveDNS(pc net.PacketConn, a map[string]string) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess})
		b.EnableCompression()
		_ = b.StartQuestions()
		_ = b.Question(q)
		_ = b.StartAnswers()
		ip, ok := a[strings.ToLower(q.Name.String())]
		if ok && q.Type == dnsmessage.TypeA {
			addr := netip.MustParseAddr(ip).As4()
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr})
		}
		if !ok {
			b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeNameError})
			_ = b.StartQuestions()
			_ = b.Question(q)
		}
		msg, err := b.Finish()
		if err != nil {
			panic(fmt.Sprintf("serveDNS: %v", err))
		}
		_, _ = pc.WriteTo(msg, from)
	}
}
