package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// basePolicy allows NAME.example.com on the origin's port from loopback
// clients; the origins live on 127.0.0.1, which the guard refuses unless a
// rule lists it, so the rules list 127.0.0.0/8.
func basePolicy(port uint16, extra string) string {
	return fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "allowed" {
    hosts     = ["allowed.example.com"]
    ports     = [%[1]d]
    addresses = ["127.0.0.0/8"]
  }
  allow "wild" {
    hosts     = ["*.wild.example.com"]
    ports     = [%[1]d]
    addresses = ["127.0.0.0/8"]
  }
%[2]s
}
`, port, extra)
}

func loopbackNames(names ...string) *fakeResolver {
	m := map[string]string{}
	for _, n := range names {
		m[n] = "127.0.0.1"
	}
	return newResolver(m)
}

func TestConnectAllowAndDeny(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	res := loopbackNames("allowed.example.com", "denied.example.com", "a.wild.example.com", "x.y.wild.example.com", "wild.example.com")
	tp := startProxy(t, basePolicy(port, ""), res)
	c := tp.client("")

	for _, tt := range []struct {
		host  string
		allow bool
	}{
		{"allowed.example.com", true},
		{"ALLOWED.Example.COM", true},
		{"a.wild.example.com", true},
		{"x.y.wild.example.com", true}, // any depth below the wildcard
		{"wild.example.com", false},    // never the apex
		{"denied.example.com", false},
	} {
		t.Run(tt.host, func(t *testing.T) {
			resp, err := c.Get(fmt.Sprintf("https://%s:%d/path", tt.host, port))
			if tt.allow {
				if err != nil {
					t.Fatalf("GET through proxy: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := "hello from origin /path"; string(b) != want {
					t.Fatalf("body = %q, want %q", b, want)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s succeeded; want it refused", tt.host)
			}
			if !strings.Contains(err.Error(), "Forbidden") {
				t.Fatalf("error = %v, want a 403 from the proxy", err)
			}
		})
	}

	// The refusal body says what, who, why and how to fix it.
	resp, body := tp.connect("", fmt.Sprintf("denied.example.com:%d", port))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Azegress-Reason"); got != ReasonNoRule {
		t.Errorf("X-Azegress-Reason = %q, want no_rule", got)
	}
	for _, want := range []string{
		fmt.Sprintf("azegress denied CONNECT denied.example.com:%d", port),
		`client block "local"`,
		"no_rule",
		`allow "denied-example-com" {`,
		`hosts = ["denied.example.com"]`,
		fmt.Sprintf("ports = [%d]", port),
		"policy:  test.hcl",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("403 body lacks %q:\n%s", want, body)
		}
	}
	rec := tp.lastDeny()
	for k, want := range map[string]any{
		"reason": "no_rule", "host": "denied.example.com", "port": float64(port),
		"client_block": "local", "policy": "test.hcl", "kind": "connect", "level": "WARN",
	} {
		if rec[k] != want {
			t.Errorf("deny record %s = %v, want %v (record %v)", k, rec[k], want, rec)
		}
	}
	if _, ok := rec["client"]; !ok {
		t.Errorf("deny record has no client: %v", rec)
	}
}

func TestConnectHTTP10NoHostHeader(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	// What the Azure CLI sends: HTTP/1.0, no Host header.
	resp, _, _ := tp.raw("", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.0\r\n\r\n", port))
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.0" {
		t.Fatalf("got %s %d, want HTTP/1.0 200", resp.Proto, resp.StatusCode)
	}
	resp, _, _ = tp.raw("", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", port, port))
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("got %s %d, want HTTP/1.1 200", resp.Proto, resp.StatusCode)
	}
}

// TestConnectExactStatusLine pins the bytes of the 200 reply: goproxy's
// status line changed between releases and broke clients (see anchors.md).
func TestConnectExactStatusLine(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	for _, proto := range []string{"HTTP/1.0", "HTTP/1.1"} {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT allowed.example.com:%d %s\r\n\r\n", port, proto)
		want := proto + " 200 Connection established\r\n\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("reply = %q, want %q", got, want)
		}
		// Nothing else follows until the client speaks: the next bytes are the origin's.
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _ := c.Read(make([]byte, 1)); n != 0 {
			t.Errorf("extra bytes after the 200 reply")
		}
	}
}

func TestPorts(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	_, other := tlsOrigin(t, "other")
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	if resp, _ := tp.connect("", fmt.Sprintf("allowed.example.com:%d", port)); resp.StatusCode != 200 {
		t.Fatalf("listed port: status %d", resp.StatusCode)
	}
	resp, body := tp.connect("", fmt.Sprintf("allowed.example.com:%d", other))
	if resp.StatusCode != 403 || !strings.Contains(body, "no_rule") {
		t.Fatalf("unlisted port: status %d body %q", resp.StatusCode, body)
	}
	// The default is 443 only.
	tp2 := startProxy(t, `client "c" {
  sources = ["127.0.0.0/8"]
  allow "a" {
    hosts = ["allowed.example.com"]
    addresses = ["127.0.0.0/8"]
  }
}`, loopbackNames("allowed.example.com"))
	if resp, _ := tp2.connect("", fmt.Sprintf("allowed.example.com:%d", port)); resp.StatusCode != 403 {
		t.Fatalf("default ports: status %d for port %d, want 403", resp.StatusCode, port)
	}
}

func TestClientBlocksLongestPrefix(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	p := strconv.Itoa(int(port))
	tp := startProxy(t, `
client "wide" {
  sources = ["127.0.0.0/8"]
  allow "a" {
    hosts = ["a.example.com"]
    ports = [`+p+`]
    addresses = ["127.0.0.0/8"]
  }
}
client "narrow" {
  sources = ["127.0.0.2/31"]
  allow "b" {
    hosts = ["b.example.com"]
    ports = [`+p+`]
    addresses = ["127.0.0.0/8"]
  }
}
client "other" {
  sources = ["10.0.0.0/8"]
  allow "a" {
    hosts = ["a.example.com"]
  }
}`, loopbackNames("a.example.com", "b.example.com"))
	for _, tt := range []struct {
		src, host string
		status    int
		block     string
	}{
		{"127.0.0.1", "a.example.com", 200, "wide"},
		{"127.0.0.1", "b.example.com", 403, "wide"},
		{"127.0.0.2", "b.example.com", 200, "narrow"},
		{"127.0.0.3", "b.example.com", 200, "narrow"},
		{"127.0.0.3", "a.example.com", 403, "narrow"}, // the longest prefix wins; rules do not merge
		{"127.0.0.4", "a.example.com", 200, "wide"},
	} {
		resp, _ := tp.connect(tt.src, tt.host+":"+p)
		if resp.StatusCode != tt.status {
			t.Errorf("from %s to %s: status %d, want %d", tt.src, tt.host, resp.StatusCode, tt.status)
		}
		if tt.status == 403 {
			if got := tp.lastDeny()["client_block"]; got != tt.block {
				t.Errorf("from %s: deny logged for block %v, want %s", tt.src, got, tt.block)
			}
		}
	}
}

func TestClientUnknown(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	tp := startProxy(t, `
client "one" {
  sources = ["127.0.0.1/32"]
  allow "a" {
    hosts = ["allowed.example.com"]
    addresses = ["127.0.0.0/8"]
  }
}`, loopbackNames("allowed.example.com"))
	resp, body := tp.connect("127.0.0.9", fmt.Sprintf("allowed.example.com:%d", port))
	if resp.StatusCode != 403 || resp.Header.Get("X-Azegress-Reason") != ReasonClientUnknown {
		t.Fatalf("status %d reason %q", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"))
	}
	if !strings.Contains(body, `sources = ["127.0.0.9/32"]`) {
		t.Errorf("body does not show the fix:\n%s", body)
	}
	if rec := tp.lastDeny(); rec["reason"] != ReasonClientUnknown {
		t.Errorf("logged reason %v", rec["reason"])
	}
	tp.noDial()
}
