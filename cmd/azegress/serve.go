package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
	"github.com/azegress/azegress/proxy"
)

// serve is `azegress serve`: it loads the policy, opens the listeners,
// starts the proxy and the admin endpoints, and runs until SIGTERM or
// SIGINT. It returns 2 for a bad command line and 1 when it cannot start or
// a proxy listener fails.
func serve(args []string, stdout, stderr io.Writer) int {
	f, ok := parseServeFlags(args, stderr)
	if !ok {
		return 2
	}
	logOut := stderr
	var lf *logFile
	if f.logFile != "" {
		var err error
		if lf, err = openLogFile(f.logFile); err != nil {
			fmt.Fprintf(stderr, "azegress serve: %v\n", err)
			return 1
		}
		defer lf.Close()
		logOut = lf
	}
	// Records are written in batches; denials and errors at once.
	lw := proxy.NewLogWriter(logOut, 0)
	defer lw.Close()
	log := slog.New(logHandler(f.logFormat, lw, f.logLevel))

	load := loader(f.policy)
	pol, diags := load()
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		fmt.Fprintln(stderr, "azegress serve: the policy has errors; nothing was started")
		return 1
	}
	nofile := proxy.RaiseFileLimit()
	f.maxConns = connCap(f.maxConns, nofile)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge())

	ls, err := openListeners(f)
	if err != nil {
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return 1
	}
	rec, closeRec, err := openObservations(f.observations)
	if err != nil {
		ls.close()
		fmt.Fprintf(stderr, "azegress serve: -observations: %v\n", err)
		return 1
	}
	defer closeRec()
	srv, err := proxy.New(f.proxyConfig(pol, log, reg, rec, ls.ownAddrs()))
	if err != nil {
		ls.close()
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	admin := serveAdmin(ls.metrics, adminMux(reg, srv, f.pprof), log)
	serveErr := ls.serve(srv)
	log.Info("azegress listening", "listen", ls.explicit.Addr().String(), "listen_tls", addrOf(ls.explicitTLS), "metrics", f.metrics,
		"transparent_tls", addrOf(ls.tls), "transparent_http", addrOf(ls.http),
		"policy", pol.Filename(), "policy_sha256", pol.SHA256(), "rules", pol.RuleCount(), "client_blocks", len(pol.Clients()),
		"max_conns", f.maxConns, "nofile", nofile, "version", readBuildInfo().Version)
	if e := pol.Entra(); e != nil {
		log.Info("identity-keyed selection on: tokens of the entra block's tenant select identity blocks; /readyz waits for its signing keys",
			"tenant_id", e.TenantID, "authority", e.Authority)
	}
	if rec != nil {
		go flushObservations(ctx, rec, log)
	}
	reload := func() { srv.Reload(load) } // the embedded policy: nothing to wait for
	if f.policy != "" {
		// SIGHUP asks the watch, which loads the file once it holds still,
		// as it does a change it sees itself.
		asked := make(chan struct{}, 1)
		go srv.WatchFile(ctx, f.policy, settleTime(f.watch), f.watch > 0, asked, load)
		reload = func() {
			select {
			case asked <- struct{}{}:
			default: // one already waits; it reads the file after this SIGHUP anyway
			}
		}
	}

	if err := waitForStop(ctx, hup, serveErr, reload, reopener(lf, lw, log)); err != nil {
		log.Error("proxy listener failed", "error", err.Error())
		return 1
	}
	shutdown(srv, admin, rec, f.drain, log)
	return 0
}

// defaultWatch is -watch-interval's default.
const defaultWatch = 2 * time.Second

// settleTime is how long the policy file must stay the same before a reload
// loads it: -watch-interval, or its default when the watch is off.
func settleTime(watch time.Duration) time.Duration {
	if watch > 0 {
		return watch
	}
	return defaultWatch
}

// connCap is -max-conns, or when that is 0 a cap derived from the file
// descriptor limit nofile (0 if unknown: no cap).
func connCap(maxConns int, nofile uint64) int {
	if maxConns == 0 && nofile > 0 {
		// Each client connection may hold an upstream socket too.
		return int(max(64, (nofile-128)/2))
	}
	return maxConns
}

// serveFlags is serve's command line.
type serveFlags struct {
	policy, listen, metrics         string
	listenTLS, tlsCert, tlsKey      string
	transparentTLS, transparentHTTP string
	observations                    string
	dialTimeout, headerTimeout      time.Duration
	idleTimeout, clientIdle         time.Duration
	drain, watch                    time.Duration
	maxConns                        int
	dnsCacheSize                    int
	dnsMaxTTL, dnsNegativeTTL       time.Duration
	quietAllowed, pprof             bool
	eventLoop                       bool
	logLevel                        slog.Level
	logFormat, logFile              string
}

// parseServeFlags reads serve's flags into a FlagSet of its own. When ok is
// false it has told stderr why, and serve exits 2.
func parseServeFlags(args []string, stderr io.Writer) (f serveFlags, ok bool) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.policy, "policy", "", "policy `file` (default: the embedded policies/default.hcl)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:3128", "proxy listen `address`")
	fs.StringVar(&f.listenTLS, "listen-tls", "", "also serve the proxy over TLS on this `address`, so that credentials never cross the network in clear text; needs -tls-cert and -tls-key (empty: off)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain, leaf first, that -listen-tls presents; loaded again on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of -tls-cert; loaded again on SIGHUP")
	fs.StringVar(&f.metrics, "metrics", "127.0.0.1:9464", "`address` for /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 10*time.Second, "timeout for resolving and connecting to a destination")
	fs.DurationVar(&f.headerTimeout, "header-timeout", 10*time.Second, "time a client has to send a request head (on -listen-tls, the TLS handshake included)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", time.Hour, "close a tunnel after this long with no traffic either way (0: never)")
	fs.DurationVar(&f.clientIdle, "client-idle-timeout", 2*time.Minute, "close a kept-alive client connection idle this long")
	fs.BoolVar(&f.eventLoop, "event-loop", true, "answer plain CONNECTs on -listen from one event loop per core (Linux), with no goroutine per connection: about a third less CPU per tunnel; everything else is served as without it (-event-loop=false: goroutines for all)")
	fs.IntVar(&f.maxConns, "max-conns", 0, "cap on concurrent client connections (0: derived from the file descriptor limit)")
	fs.IntVar(&f.dnsCacheSize, "dns-cache-size", 10000, "keep the DNS answers of this many destination names for their TTL (0: no cache, every tunnel asks the DNS server)")
	fs.DurationVar(&f.dnsMaxTTL, "dns-max-ttl", time.Hour, "keep a DNS answer at most this long, whatever its TTL")
	fs.DurationVar(&f.dnsNegativeTTL, "dns-negative-ttl", time.Minute, "keep a DNS \"no such host\" at most this long, within its SOA's negative TTL (0: not kept)")
	fs.DurationVar(&f.drain, "drain", 30*time.Second, "on SIGTERM, how long open tunnels may finish before they are closed")
	fs.BoolVar(&f.quietAllowed, "quiet-allowed", false, "do not log allowed tunnels and requests (denials are always logged)")
	fs.DurationVar(&f.watch, "watch-interval", defaultWatch, "how often to check the policy file for changes, and how long a change, or a file modified that recently at a SIGHUP, must stay the same before it is loaded (0: no checks for changes; SIGHUP then uses "+defaultWatch.String()+")")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", logFormatJSON, "json, or asim: each decision in Microsoft Sentinel's ASIM Web Session schema (0.2.6) for the ASimWebSessionLogs table, other records as json")
	fs.StringVar(&f.logFile, "log-file", "", "append the log to this `file` instead of stderr, and open it again on SIGHUP (after logrotate moved it)")
	fs.StringVar(&f.transparentTLS, "transparent-tls", "", "also accept TLS connections redirected here (nftables REDIRECT/TPROXY) on this `address`, decided on their SNI (empty: off)")
	fs.StringVar(&f.transparentHTTP, "transparent-http", "", "also accept plain-HTTP connections redirected here on this `address`, decided on each request's Host (empty: off)")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve Go's /debug/pprof/ on the -metrics address, to profile a live proxy (keep that address private)")
	fs.StringVar(&f.observations, "observations", "", "append what the proxy sees (destinations per client block, with counts and decisions) to this `file`, for `azegress report`")
	if err := fs.Parse(args); err != nil {
		return f, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azegress serve: unexpected argument %q\n", fs.Arg(0))
		return f, false
	}
	if err := f.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "azegress serve: -log-level: %v\n", err)
		return f, false
	}
	if f.logFormat != logFormatJSON && f.logFormat != logFormatASIM {
		fmt.Fprintf(stderr, "azegress serve: -log-format %q: want json (the default) or asim (Microsoft Sentinel's ASIM Web Session schema)\n", f.logFormat)
		return f, false
	}
	if err := f.checkTLS(); err != nil {
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return f, false
	}
	if err := f.checkDNS(); err != nil {
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return f, false
	}
	return f, true
}

// checkDNS checks the DNS cache's bounds.
func (f serveFlags) checkDNS() error {
	switch {
	case f.dnsCacheSize < 0:
		return fmt.Errorf("-dns-cache-size %d: want a number of names, or 0 for no cache", f.dnsCacheSize)
	case f.dnsMaxTTL <= 0:
		return fmt.Errorf("-dns-max-ttl %v: want a positive duration (to keep no answer, -dns-cache-size 0)", f.dnsMaxTTL)
	case f.dnsNegativeTTL < 0:
		return fmt.Errorf("-dns-negative-ttl %v: want a duration, or 0 to keep no \"no such host\"", f.dnsNegativeTTL)
	}
	return nil
}

// checkTLS checks that -listen-tls, -tls-cert and -tls-key come together.
func (f serveFlags) checkTLS() error {
	switch {
	case f.listenTLS != "" && (f.tlsCert == "" || f.tlsKey == ""):
		return errors.New("-listen-tls needs -tls-cert and -tls-key: the certificate (chain) and private key the TLS listener presents, in PEM")
	case f.listenTLS == "" && (f.tlsCert != "" || f.tlsKey != ""):
		return errors.New("-tls-cert and -tls-key are for -listen-tls; give it an address, or drop them")
	}
	return nil
}

// proxyConfig is the proxy's configuration from the flags and what serve
// built for it.
func (f serveFlags) proxyConfig(pol *policy.Policy, log *slog.Logger, reg prometheus.Registerer, rec *learn.Recorder, own []netip.AddrPort) proxy.Config {
	var observer proxy.Observer
	if rec != nil { // not a typed nil in the interface
		observer = rec
	}
	// The flags' 0 is "off"; the Config's is "the default".
	dnsSize, dnsNeg := f.dnsCacheSize, f.dnsNegativeTTL
	if dnsSize == 0 {
		dnsSize = -1
	}
	if dnsNeg == 0 {
		dnsNeg = -1
	}
	return proxy.Config{
		Observer:            observer,
		Policy:              pol,
		Logger:              log,
		Registerer:          reg,
		DialTimeout:         f.dialTimeout,
		ReadHeaderTimeout:   f.headerTimeout,
		ClientIdleTimeout:   f.clientIdle,
		TunnelIdleTimeout:   f.idleTimeout,
		MaxConnections:      f.maxConns,
		DNSCacheSize:        dnsSize,
		DNSCacheMaxTTL:      f.dnsMaxTTL,
		DNSCacheNegativeTTL: dnsNeg,
		QuietAllowed:        f.quietAllowed,
		Engine:              f.eventLoop,
		TLSCertFile:         f.tlsCert,
		TLSKeyFile:          f.tlsKey,
		OwnAddrs:            own,
	}
}

// listeners are serve's sockets. explicit is always open; each other one is
// nil when its flag is empty. tls and http are the transparent listeners,
// explicitTLS the proxy over TLS.
type listeners struct {
	explicit, explicitTLS, metrics, tls, http net.Listener
}

// openListeners opens every listener the flags ask for, or none: on an error
// it closes those it had opened.
func openListeners(f serveFlags) (*listeners, error) {
	ls := &listeners{}
	var err error
	if ls.explicit, err = proxy.Listen(context.Background(), f.listen); err != nil {
		return nil, err
	}
	if f.listenTLS != "" {
		if ls.explicitTLS, err = proxy.Listen(context.Background(), f.listenTLS); err != nil {
			ls.close()
			return nil, fmt.Errorf("-listen-tls: %w", err)
		}
	}
	if f.metrics != "" {
		if ls.metrics, err = net.Listen("tcp", f.metrics); err != nil {
			ls.close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	// Transparent (next-hop) listeners; the proxy adds their addresses to
	// its own when it serves them.
	for _, t := range []struct {
		flag, addr string
		ln         *net.Listener
	}{{"-transparent-tls", f.transparentTLS, &ls.tls}, {"-transparent-http", f.transparentHTTP, &ls.http}} {
		if t.addr == "" {
			continue
		}
		if *t.ln, err = proxy.Listen(context.Background(), t.addr); err != nil {
			ls.close()
			return nil, fmt.Errorf("%s: %w", t.flag, err)
		}
	}
	return ls, nil
}

func (ls *listeners) close() {
	for _, l := range []net.Listener{ls.explicit, ls.explicitTLS, ls.metrics, ls.tls, ls.http} {
		if l != nil {
			l.Close()
		}
	}
}

// ownAddrs are the addresses the proxy must refuse to reach that it does not
// learn from Serve: the metrics listener's.
func (ls *listeners) ownAddrs() []netip.AddrPort {
	if ls.metrics == nil {
		return nil
	}
	if ap, err := netip.ParseAddrPort(ls.metrics.Addr().String()); err == nil {
		return []netip.AddrPort{ap}
	}
	return nil
}

// serve runs the proxy on each open proxy listener; the channel gets the
// error of any that stops.
func (ls *listeners) serve(srv *proxy.Server) <-chan error {
	serveErr := make(chan error, 4)
	go func() { serveErr <- srv.Serve(ls.explicit) }()
	if ls.explicitTLS != nil {
		go func() { serveErr <- srv.ServeTLS(ls.explicitTLS) }()
	}
	if ls.tls != nil {
		go func() { serveErr <- srv.ServeTransparentTLS(ls.tls) }()
	}
	if ls.http != nil {
		go func() { serveErr <- srv.ServeTransparentHTTP(ls.http) }()
	}
	return serveErr
}

// addrOf is l's address for the log, or "" if l is not open.
func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// openObservations opens the -observations file for appending; rec is nil
// when path is empty. closeFile closes the file, after the last Flush.
func openObservations(path string) (rec *learn.Recorder, closeFile func(), err error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, err
	}
	return learn.NewRecorder(f), func() { f.Close() }, nil
}

// flushObservations writes what rec has gathered once a second until ctx
// ends or a write fails.
func flushObservations(ctx context.Context, rec *learn.Recorder, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := rec.Flush(); err != nil {
			log.Error("observations", "error", err.Error())
			return
		}
	}
}

// adminMux serves /metrics, /healthz, /readyz (503 once the proxy drains,
// and until the signing keys of the policy's entra block have loaded) and,
// with -pprof, Go's /debug/pprof/.
func adminMux(reg *prometheus.Registry, srv *proxy.Server, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := srv.Readiness()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, why)
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serveAdmin serves mux on ln in the background; it returns nil, and serves
// nothing, when ln is nil (-metrics "").
func serveAdmin(ln net.Listener, mux http.Handler, log *slog.Logger) *http.Server {
	if ln == nil {
		return nil
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "error", err.Error())
		}
	}()
	return admin
}

// waitForStop is serve's signal loop: SIGHUP reopens the log file and
// reloads the policy and the TLS listener's certificate (reload), SIGTERM
// or SIGINT (ctx done) returns nil, and a proxy listener that stops returns
// its error.
func waitForStop(ctx context.Context, hup <-chan os.Signal, serveErr <-chan error, reload, reopenLog func()) error {
	for {
		select {
		case <-hup:
			reopenLog()
			reload()
		case err := <-serveErr:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// shutdown stops serve after SIGTERM or SIGINT. In order:
//  1. log that the drain begins;
//  2. srv.Shutdown: stop accepting, turn /readyz to 503, let open tunnels
//     finish for up to drain, then close them;
//  3. close the admin server (metrics and /readyz answer until then);
//  4. flush the last observations, now that no tunnel can add to them;
//  5. log "stopped".
//
// serve's defers then close the observations file and flush the log.
func shutdown(srv *proxy.Server, admin *http.Server, rec *learn.Recorder, drain time.Duration, log *slog.Logger) {
	log.Info("shutting down; draining open tunnels", "grace", drain.String())
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "error", err.Error())
	}
	if admin != nil {
		_ = admin.Close()
	}
	if rec != nil {
		if err := rec.Flush(); err != nil {
			log.Error("observations", "error", err.Error())
		}
	}
	log.Info("stopped")
}
