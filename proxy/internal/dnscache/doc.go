// Package dnscache keeps the answers of the proxy's name lookups for as
// long as their DNS TTLs allow, so that a tunnel to a name looked up a
// moment ago costs a map lookup instead of a round trip to the DNS server
// (in Azure, a pair of UDP queries to 168.63.129.16 per tunnel).
//
// Go's resolver (PreferGo) still does all the resolving: the hosts file,
// resolv.conf, retries, TCP after a truncated answer. It does not report
// TTLs, so the Cache gives it a Dial hook whose connections read the DNS
// messages going by (record.go) and note the lowest TTL of the answer, or
// for "no such host" the negative TTL of the SOA (RFC 2308 §5). The Cache
// owns what is kept and for how long: at most Config.Size names (when full,
// of a few sampled entries the one that expires soonest goes), positive
// answers for at most Config.MaxTTL, "no such host" for at most
// Config.NegativeTTL, an answer no DNS message was seen for (the hosts
// file) for HostsTTL, and never a failure (timeout, SERVFAIL, refused) or
// an answer with a TTL of 0. Concurrent misses of one name share one lookup.
//
// Caching does not weaken the proxy's DNS-rebinding defence: the proxy
// checks every address a lookup returns before it dials one (proxy/dial.go,
// guardAddrs), whether the answer came from the server or from here, and
// dials only an address it checked. The cache stores only what the resolver
// returned, and a rebinding attacker's short TTLs make it keep their
// answers for less time, not more.
//
// It imports nothing of the module; the proxy exports its Stats as metrics.
// TestDeps enforces that.
package dnscache
