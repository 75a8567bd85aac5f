package proxy

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

// With Config.Engine the explicit listener's CONNECTs go through the
// event-loop engine, whatever AZEGRESS_TEST_ENGINE says: the tunnel works,
// is refused and logged as on the goroutine path, and the engine dialed it
// (the goroutine path never asks engineDial). Plain HTTP on the same
// listener is handed to net/http.
func TestEngineServesConnect(t *testing.T) {
	t.Parallel()
	_, port := tlsOrigin(t, "origin")
	res := loopbackNames("allowed.example.com", "denied.example.com")
	var engineDials atomic.Int32
	tp := startProxy(t, basePolicy(port, ""), res, func(c *Config) {
		c.Engine = true
		c.engineDial = func(ap netip.AddrPort) netip.AddrPort { engineDials.Add(1); return ap }
	})
	if tp.engine == nil {
		t.Fatal("Config.Engine set, but the server has no engine")
	}
	c := tp.client("")
	resp, err := c.Get(fmt.Sprintf("https://allowed.example.com:%d/path", port))
	if err != nil {
		t.Fatalf("GET through the engine: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from origin /path"; string(b) != want {
		t.Fatalf("body = %q, want %q", b, want)
	}
	if n := engineDials.Load(); n != 1 {
		t.Errorf("the engine dialed %d times; want 1 (the CONNECT took the goroutine path?)", n)
	}
	if _, err := c.Get(fmt.Sprintf("https://denied.example.com:%d/path", port)); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("denied.example.com: %v; want the proxy's 403", err)
	}
	c.CloseIdleConnections()
	waitFor(t, func() bool { return len(tp.logs.records("tunnel closed")) == 1 }, "the tunnel's closed record")
	checkRecord(t, tp.lastRecord("tunnel closed"), map[string]any{"host": "allowed.example.com", "close_reason": "eof"})
	if rec := tp.lastRecord("deny"); rec["reason"] != ReasonNoRule {
		t.Errorf("deny record %v; want reason %s", rec, ReasonNoRule)
	}
	// Plain HTTP is handed to net/http, which refuses this one by the rules.
	hr, err := c.Get(fmt.Sprintf("http://denied.example.com:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 403 {
		t.Errorf("plain GET: %d; want 403", hr.StatusCode)
	}
}
