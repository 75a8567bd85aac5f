package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// Every guarded range, and the spellings that smuggle one in, is refused
// with 403 blocked_address at once, without a dial, when the rule does not
// list it; the same address is reachable once the rule lists it.
func TestGuardedAddressesRefused(t *testing.T) {
	t.Parallel()
	cases := []struct{ addr, what string }{
		{"169.254.169.254", "Instance Metadata Service"},
		{"169.254.1.1", "link-local"},
		{"168.63.129.16", "WireServer"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.1.2.3", "RFC 1918"},
		{"172.16.0.1", "RFC 1918"},
		{"172.31.255.255", "RFC 1918"},
		{"192.168.1.1", "RFC 1918"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"fe80::1", "link-local"},
		{"fd00:ec2::254", "unique local"},
		{"fc00::1", "unique local"},
		{"ff02::1", "multicast"},
		{"::ffff:169.254.169.254", "IMDS"}, // IPv4-mapped
		{"::ffff:10.0.0.1", "RFC 1918"},
		{"::a9fe:a9fe", "IPv4-compatible"}, // ::169.254.169.254
		{"64:ff9b::a9fe:a9fe", "NAT64"},    // NAT64 of IMDS
		{"2002:a9fe:a9fe::1", "6to4"},      // 6to4 of IMDS
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
	}
	res := newResolver(nil)
	var names []string
	for i, c := range cases {
		name := fmt.Sprintf("h%d.example.com", i)
		res.set(name, c.addr)
		names = append(names, name)
	}
	tp := startProxy(t, `
client "local" {
  sources = ["127.0.0.0/8"]
  allow "all-test-names" {
    hosts = ["*.example.com"]
  }
}`, res)
	for i, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			resp, body := tp.connect("", names[i]+":443")
			want := ReasonBlockedAddress
			if _, ok := localEndpointOf(netip.MustParseAddr(c.addr).Unmap(), 443); ok {
				want = ReasonLocalEndpoint // IMDS, WireServer, in any form: whatever the rules say
			}
			if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != want {
				t.Fatalf("status %d reason %q, want 403 %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), want)
			}
			if !strings.Contains(body, c.what) {
				t.Errorf("body does not name the range (%s):\n%s", c.what, body)
			}
		})
	}
	tp.noDial()
	// A name that resolves to IMDS gets DNS advice, not a policy change.
	_, body := tp.connect("", names[0]+":443")
	if !strings.Contains(body, "check the DNS records of h0.example.com") || strings.Contains(body, "addresses =") {
		t.Errorf("IMDS refusal lacks DNS advice, or offers a rule:\n%s", body)
	}
	if got := len(tp.logs.records("deny")); got != len(cases)+1 {
		t.Errorf("%d deny records, want %d", got, len(cases)+1)
	}
}

// IP-literal destinations, in every spelling, are normalised first and are
// allowed only by a rule's addresses.
func TestIPLiteralSpellings(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	tp := startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "loopback-origin" {
    addresses = ["127.0.0.1/32"]
    ports     = [%d]
  }
  allow "names" {
    hosts = ["*.example.com"]
    ports = [%d]
  }
}`, port, port), nil)
	for _, tt := range []struct {
		host   string
		status int
		reason string
	}{
		{"127.0.0.1", 200, ""},
		{"2130706433", 200, ""}, // decimal
		{"0x7f000001", 200, ""}, // hex
		{"0177.0.0.1", 200, ""}, // octal
		{"0x7f.0.0.1", 200, ""}, // hex part
		{"127.1", 200, ""},      // short form
		{"[::ffff:127.0.0.1]", 200, ""},
		{"[::ffff:7f00:1]", 200, ""},
		{"127.0.0.2", 403, ReasonNoRule},         // not in the rule's addresses
		{"2852039166", 403, ReasonLocalEndpoint}, // 169.254.169.254 in decimal
		{"0xa9fea9fe", 403, ReasonLocalEndpoint}, // ... in hex
		{"[::ffff:a9fe:a9fe]", 403, ReasonLocalEndpoint},
		{"0251.0376.0251.0376", 403, ReasonLocalEndpoint}, // IMDS in octal
		{"168.63.129.16", 403, ReasonLocalEndpoint},       // WireServer
		{"20.1.2.3", 403, ReasonNoRule},                   // a public IP literal needs an addresses rule
		{"1.2.3.999", 400, ReasonBadRequest},              // not an address, and not a name either
		{"0x1g.0.0.1", 400, ReasonBadRequest},
	} {
		t.Run(tt.host, func(t *testing.T) {
			resp, _ := tp.connect("", fmt.Sprintf("%s:%d", tt.host, port))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 {
				if a := <-tp.dials; a != fmt.Sprintf("127.0.0.1:%d", port) {
					t.Fatalf("dialed %s, want the normalised 127.0.0.1", a)
				}
				return
			}
			if got := resp.Header.Get("X-Azegress-Reason"); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
		})
	}
	tp.noDial()
}

// A name that resolves to a public address and later to a private one:
// the proxy dials exactly the address it checked, resolves once per request,
// and refuses the private answer.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "origin")
	res := newResolver(nil)
	res.set("rebind.example.com", "203.0.113.10", "10.0.0.5")
	res.set("mixed.example.com", "10.0.0.6, 203.0.113.11")
	var tp *testProxy
	tp = startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "names" {
    hosts = ["rebind.example.com", "mixed.example.com"]
    ports = [%d]
  }
}`, port), res, redirectDials(&tp, origin.Listener.Addr().String()))

	resp, body := tp.connect("", fmt.Sprintf("rebind.example.com:%d", port))
	if resp.StatusCode != 200 {
		t.Fatalf("first CONNECT: %d %s", resp.StatusCode, body)
	}
	if a := <-tp.dials; a != fmt.Sprintf("203.0.113.10:%d", port) {
		t.Fatalf("dialed %s, want the checked 203.0.113.10", a)
	}
	if n := res.lookups("rebind.example.com"); n != 1 {
		t.Fatalf("%d lookups for one CONNECT, want 1", n)
	}
	resp, body = tp.connect("", fmt.Sprintf("rebind.example.com:%d", port))
	if resp.StatusCode != 403 || !strings.Contains(body, "resolves to 10.0.0.5") {
		t.Fatalf("rebound CONNECT: %d %s", resp.StatusCode, body)
	}
	// A mixed answer: the guarded address is dropped, the public one dialed.
	resp, _ = tp.connect("", fmt.Sprintf("mixed.example.com:%d", port))
	if resp.StatusCode != 200 {
		t.Fatalf("mixed answer: %d", resp.StatusCode)
	}
	if a := <-tp.dials; a != fmt.Sprintf("203.0.113.11:%d", port) {
		t.Fatalf("dialed %s, want 203.0.113.11", a)
	}
	tp.noDial()
}

// A rule's addresses open a guarded range for that rule's hosts only.
func TestPrivateEndpointAddresses(t *testing.T) {
	t.Parallel()
	origin, port := tlsOrigin(t, "origin")
	res := newResolver(map[string]string{"kv-int.example.com": "10.20.0.7", "other.example.com": "10.20.0.8"})
	var tp *testProxy
	tp = startProxy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "private-vault" {
    hosts     = ["kv-int.example.com"]
    addresses = ["10.20.0.0/24"]
    ports     = [%[1]d]
  }
  allow "other" {
    hosts = ["other.example.com"]
    ports = [%[1]d]
  }
}`, port), res, redirectDials(&tp, origin.Listener.Addr().String()))
	if resp, body := tp.connect("", fmt.Sprintf("kv-int.example.com:%d", port)); resp.StatusCode != 200 {
		t.Fatalf("private endpoint: %d %s", resp.StatusCode, body)
	}
	<-tp.dials
	resp, body := tp.connect("", fmt.Sprintf("other.example.com:%d", port))
	if resp.StatusCode != 403 || !strings.Contains(body, `addresses = ["10.20.0.8/32"]`) {
		t.Fatalf("other private name: %d %s", resp.StatusCode, body)
	}
	tp.noDial()
}

// The proxy never connects to its own listeners, whatever the policy says.
func TestOwnListenerUnreachable(t *testing.T) {
	t.Parallel()
	metricsAddr := netip.MustParseAddrPort("127.0.0.1:9464")
	tp := startProxy(t, `client "local" {
  sources = ["127.0.0.0/8"]
}`, nil, func(c *Config) { c.OwnAddrs = []netip.AddrPort{metricsAddr} })
	own := netip.MustParseAddrPort(tp.addr)
	// The listener's port is known only now: allow it, and the metrics port, explicitly.
	tp.SetPolicy(loadPolicy(t, fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "self" {
    hosts     = ["self.example.com"]
    addresses = ["127.0.0.0/8", "0.0.0.0/32"]
    ports     = [%d, %d]
  }
}`, own.Port(), metricsAddr.Port())))
	tp.res.set("self.example.com", "127.0.0.1")
	for _, target := range []string{
		tp.addr,
		fmt.Sprintf("self.example.com:%d", own.Port()),
		fmt.Sprintf("0.0.0.0:%d", own.Port()),
		metricsAddr.String(),
	} {
		resp, body := tp.connect("", target)
		if resp.StatusCode != 403 || !strings.Contains(body, "listener of this proxy") {
			t.Errorf("CONNECT %s: %d %s", target, resp.StatusCode, body)
		}
	}
	tp.noDial()
}

// IMDS, WireServer and Arc's HIMDS sent to the proxy are refused at once as
// local_endpoint, whatever the client's block, with NO_PROXY advice. (No
// rule can list them: Load refuses addresses that cover them.)
func TestLocalEndpoints(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, `
client "local" {
  sources = ["127.0.0.1/32"]
  allow "loopback" {
    addresses = ["127.0.0.0/8"]
    ports     = [80, 443]
  }
}`, nil)
	for _, tt := range []struct{ src, target, label string }{
		{"127.0.0.1", "169.254.169.254:80", "Instance Metadata"},
		{"127.0.0.1", "168.63.129.16:80", "WireServer"},
		{"127.0.0.1", "localhost:40342", "Arc"},
		{"127.0.0.1", "127.0.0.1:40342", "Arc"},
		{"127.0.0.9", "169.254.169.254:80", "Instance Metadata"}, // no client block: still this reason
	} {
		resp, body := tp.connect(tt.src, tt.target)
		if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != ReasonLocalEndpoint {
			t.Errorf("%s from %s: %d %q", tt.target, tt.src, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"))
			continue
		}
		if !strings.Contains(body, "NO_PROXY=169.254.169.254") || !strings.Contains(body, tt.label) {
			t.Errorf("%s: body lacks the label %q or NO_PROXY advice:\n%s", tt.target, tt.label, body)
		}
		if rec := tp.lastDeny(); rec["reason"] != ReasonLocalEndpoint {
			t.Errorf("%s: logged %v", tt.target, rec)
		}
	}
	// Plain HTTP to IMDS, as az sends it when NO_PROXY misses it.
	resp, _, _ := tp.raw("", "GET http://169.254.169.254/metadata/identity/oauth2/token?resource=x HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n")
	if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != ReasonLocalEndpoint {
		t.Errorf("plain-HTTP IMDS: %d %q", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"))
	}
	tp.noDial()
}

// A name that resolves to a VM-local endpoint is refused as local_endpoint
// whatever the rules say, also in the IPv6 forms that carry its IPv4
// address through a NAT64 or 6to4 gateway or a Teredo relay, and even when
// a rule names the transition range. Nothing is dialed.
func TestLocalEndpointsResolved(t *testing.T) {
	t.Parallel()
	res := newResolver(map[string]string{
		"imds.example.com":      "169.254.169.254",
		"wire.example.com":      "168.63.129.16",
		"nat64.example.com":     "64:ff9b::a9fe:a9fe",
		"nat64l.example.com":    "64:ff9b:1::a9fe:a9fe",
		"sixtofour.example.com": "2002:a83f:8110::1",
		"teredo.example.com":    "2001:0:a9fe:a9fe::1",
		"teredoc.example.com":   "2001:0:4136:e378:8000:63bf:5601:5601", // client ^ 0xff.. = 169.254.169.254
	})
	tp := startProxy(t, `
client "local" {
  sources = ["127.0.0.0/8"]
  allow "transition-ranges" {
    hosts     = ["*.example.com"]
    ports     = [80, 443]
    addresses = ["64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"]
  }
}`, res)
	for _, name := range []string{"imds", "wire", "nat64", "nat64l", "sixtofour", "teredo", "teredoc"} {
		resp, body := tp.connect("", name+".example.com:80")
		if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != ReasonLocalEndpoint {
			t.Errorf("%s: %d %q\n%s", name, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
		}
	}
	tp.noDial()
}

// answerResolver answers every name with itself.
type answerResolver []netip.Addr

func (a answerResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return a, nil
}

// A name that resolves to no address the proxy can dial is a dial failure,
// never a dial, and explain says so too.
func TestNoUsableAddresses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		answer answerResolver
	}{
		{"no addresses", answerResolver{}},
		{"an invalid address", answerResolver{netip.Addr{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := basePolicy(443, "")
			tp := startProxy(t, src, nil, func(c *Config) { c.Resolver = tt.answer })
			resp, body := tp.connect("", "allowed.example.com:443")
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Azegress-Reason") != ReasonDialFailed || !strings.Contains(body, "allowed.example.com has no addresses") {
				t.Errorf("CONNECT: %d %q: %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
			}
			tp.noDial()

			e, err := Explain(context.Background(), loadPolicy(t, src), netip.MustParseAddr("127.0.0.1"), "allowed.example.com", tt.answer)
			if err != nil {
				t.Fatal(err)
			}
			if e.Decision != "allow" || !strings.HasSuffix(e.Detail, "; but allowed.example.com has no addresses") {
				t.Errorf("explain: %s: %s", e.Decision, e.Detail)
			}
			for _, a := range e.Addresses {
				if a.Allowed {
					t.Errorf("explain allows %v", a)
				}
			}
		})
	}
}
