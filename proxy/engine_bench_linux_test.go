package proxy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/identity/identitytest"
	"github.com/azegress/azegress/proxy/internal/dnscache"
	"github.com/azegress/azegress/proxy/internal/dnscache/dnstest"
	"github.com/azegress/azegress/proxy/internal/evloop"
)

// BenchmarkEngineHead is the engine handler's share of one tunnel of
// BenchmarkEngineConnectSetup ("cidr", and "token": the CONNECT carries a
// token the validator has cached), without sockets or loops: Accepted,
// Head for the CONNECT (parse, flow, target, decision, tunnel, cache, guard,
// the dial's addresses), Dialed and Closed, on a Conn of no loop. Its
// allocations and, under callgrind, its instructions are the handler's
// alone, repeatable whatever else the machine runs: build the test binary
// with CGO_ENABLED=0 and run it under valgrind --tool=callgrind with
// GODEBUG=asyncpreemptoff=1 (callgrind aborts on Go's preemption signal),
// GOGC=off and GOMAXPROCS=1 (no collector or idle workers), at two
// -test.benchtime counts (2000x, 12000x): the difference of their totals
// over 10000 is one tunnel's, to 0.2 %; callgrind_annotate --tree=calling
// gives each callee's inclusive share.
func BenchmarkEngineHead(b *testing.B) {
	for _, name := range []string{"cidr", "token"} {
		b.Run(name, func(b *testing.B) {
			dns := dnstest.New(b)
			dns.Set("allowed.example.com", dnstest.Answer{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, TTL: 300})
			const port = 7001
			src := basePolicy(port, benchRules(998))
			var idp *identitytest.IdP
			if name == "token" {
				idp = identitytest.New(b)
				src = benchIdentityPolicy(idp, port)
			}
			_, s := benchServe(b, src, func(c *Config) {
				c.Engine, c.Resolver, c.DNSDial = true, nil, dns.Dial
			})
			if s.engine == nil {
				b.Skip("no event-loop engine on this platform")
			}
			cache := s.cfg.Resolver.(origDstResolver).Resolver.(*dnscache.Cache)
			if _, err := cache.LookupNetIP(b.Context(), "ip", "allowed.example.com."); err != nil {
				b.Fatal(err)
			}
			h := &engineHandler{s: s, cache: cache}
			head := []byte(fmt.Sprintf("CONNECT allowed.example.com:%[1]d HTTP/1.1\r\nHost: allowed.example.com:%[1]d\r\n\r\n", port))
			var v *identity.Validator
			if idp != nil {
				head, v = benchIdentityRequest(b, s, idp, port) // verified once: the loop finds it cached
			}
			remote := netip.MustParseAddrPort("127.0.0.1:40000")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c := evloop.NewConnForTest(remote)
				h.Accepted(c)
				h.Head(c, head, evloop.EventNone)
				ec := c.Data().(*engineConn)
				if !ec.last.IsValid() {
					b.Fatal("the CONNECT was not dialed on the loop")
				}
				h.Dialed(c)
				h.Closed(c, evloop.End{})
			}
			if v != nil {
				if st := v.Stats(); st.Misses != 1 {
					b.Fatalf("token verified %d times; the benchmark measures cache hits", st.Misses)
				}
			}
		})
	}
}
