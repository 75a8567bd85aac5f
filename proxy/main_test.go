package proxy

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/azegress/azegress/policy/catalog"
)

// TestMain holds the loopback ports of the machine-local endpoints (Arc's
// HIMDS and proxy, 40342 and 40343) for the whole run, so that the kernel
// gives no test origin one of them: a test policy allowing 127.0.0.0/8 on
// that origin's port would be refused ("Address range covers a local
// endpoint"), about once in 14,000 origins. A port some other process
// holds is left to it.
func TestMain(m *testing.M) {
	var held []net.Listener
	for _, e := range catalog.LocalEndpoints() {
		if a, err := netip.ParseAddr(e.Host); err != nil || !a.IsLoopback() || !a.Is4() {
			continue
		}
		for _, p := range e.Ports {
			if ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr(e.Host), p).String()); err == nil {
				held = append(held, ln)
			}
		}
	}
	code := m.Run()
	for _, ln := range held {
		ln.Close()
	}
	os.Exit(code)
}

// No test origin can be given a local endpoint's port (TestMain).
func TestLocalEndpointPortsHeld(t *testing.T) {
	for _, p := range []string{"40342", "40343"} {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+p); err == nil {
			ln.Close()
			t.Errorf("127.0.0.1:%s is free: a test origin could be given it", p)
		}
	}
}
