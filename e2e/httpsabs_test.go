package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// nhSniffName resolves, for the proxy only, to a plain TCP listener on
// port 443 in the internet namespace that records what it hears first.
const nhSniffName = "sniff.example"

const nhHTTPSAbsPolicy = `client "workload" {
  sources = ["` + nhWorkloadIP + `/32"]

  allow "tls" {
    hosts = ["allowed.example", "` + nhSniffName + `"]
  }
}
`

// An absolute-form https:// request sent to the explicit proxy leaves it
// over verified TLS, whatever path it takes inside (issue 11: a bodiless
// one went out in cleartext, Authorization header and all).
func TestNextHopHTTPSAbsoluteForm(t *testing.T) {
	t.Parallel()
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for name, ip := range nhNames {
		fmt.Fprintf(&hosts, "%s %s\n", ip, name)
	}
	fmt.Fprintf(&hosts, "%s %s\n", nhOtherIP, nhSniffName)
	tp := nhSetupWith(t, nhOptions{
		Policy:   nhHTTPSAbsPolicy,
		Listen:   nhProxyLANIP + ":3128",
		ProxyEtc: map[string]string{"hosts": hosts.String()},
		TrustCA:  true,
	})

	// allowed.example:443 speaks only TLS: a cleartext request gets Go's
	// "400 Client sent an HTTP request to an HTTPS server", not its body.
	for _, tt := range []struct{ name, method, body string }{
		{"bodiless GET", "GET", ""},
		{"POST with a body", "POST", "payload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tp.absoluteForm(t, tt.method, "allowed.example", tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s https://allowed.example/: %d %q", tt.method, resp.StatusCode, body)
			}
			nhServedBy(t, body, "allowed.example")
		})
	}

	t.Run("the first bytes on the wire are a TLS handshake", func(t *testing.T) {
		ln, err := tp.inet.Listen("tcp4", nhOtherIP+":443")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		heard := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(nhLimit))
			b := make([]byte, 64)
			n, _ := io.ReadAtLeast(c, b, 3)
			heard <- b[:n]
		}()
		mark := tp.log.mark()
		resp, body := tp.absoluteForm(t, "GET", nhSniffName, "")
		var first []byte
		select {
		case first = <-heard:
		case <-time.After(nhLimit):
			t.Fatal("the listener on " + nhSniffName + ":443 heard nothing")
		}
		if len(first) == 0 || first[0] != 0x16 || strings.HasPrefix(string(first), "GET") {
			t.Fatalf("%s:443 received %q first; want a TLS handshake record (0x16), never the request", nhSniffName, first)
		}
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Azegress-Reason") != "upstream_tls" {
			t.Errorf("answer %d %s %q, want 502 upstream_tls", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
		}
		tp.log.wait(t, mark, "deny of "+nhSniffName+" with reason upstream_tls", func(r nhRecord) bool {
			return r.str("reason") == "upstream_tls" && r.str("host") == nhSniffName
		})
	})
}

// absoluteForm sends METHOD https://host/ in absolute form, with an
// Authorization header, from the workload to the explicit listener, and
// returns the answer and its body.
func (tp *nhTopo) absoluteForm(t *testing.T, method, host, body string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nhLimit)
	defer cancel()
	c, err := tp.workload.Dial(ctx, "tcp4", tp.explicit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(nhLimit))
	req := fmt.Sprintf("%s https://%s/ HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer secret\r\n", method, host, host)
	if body != "" {
		req += fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %s https://%s/: %v", method, host, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}
