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
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/azegress/azegress/policies"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
	"github.com/azegress/azegress/proxy"
)

const usage = `azegress: an egress-filtering forward proxy for Azure managed-identity workloads.

Usage:
  azegress serve   [-policy FILE] [-listen ADDR] [-metrics ADDR] [flags]
  azegress check   [-lint] FILE|DIR...
  azegress explain [-policy FILE] [-client IP] [-no-dns] HOST[:PORT]
  azegress report  [-policy BASELINE.hcl] [-format hcl|markdown|json] OBSERVATIONS...
  azegress record  [-cloud NAME] [-minimize] -- COMMAND ARGS...
  azegress test    [-v] POLICY.hcl CASES.hcl
  azegress catalog [-cloud NAME] [-format table|json]
  azegress import-azfw [-cloud NAME] FILE.json...
  azegress export-azfw [-group NAME] [-priority N] POLICY.hcl

Run "azegress COMMAND -h" for a command's flags.
`

// run is the whole program; it returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "explain":
		return explain(args[1:], stdout, stderr)
	case "report":
		return report(args[1:], stdout, stderr)
	case "record":
		return record(args[1:], stdout, stderr)
	case "test":
		return testPolicy(args[1:], stdout, stderr)
	case "catalog":
		return catalogCommand(args[1:], stdout, stderr)
	case "import-azfw":
		return importAzfw(args[1:], stdout, stderr)
	case "export-azfw":
		return exportAzfw(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "azegress: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// loader returns how to (re)load the policy: from path, or the embedded
// default when path is empty. Loads run one at a time (SIGHUP and the file
// watcher may ask at once) under lazyGC.
func loader(path string) proxy.Loader {
	load := func() (*policy.Policy, hcl.Diagnostics) { return policy.LoadFile(path) }
	if path == "" {
		load = func() (*policy.Policy, hcl.Diagnostics) { return policy.Load(policies.DefaultName, policies.Default) }
	}
	var mu sync.Mutex
	return func() (*policy.Policy, hcl.Diagnostics) {
		mu.Lock()
		defer mu.Unlock()
		defer lazyGC()()
		return load()
	}
}

// lazyGC raises GOGC to at least loadGOGC until the returned func runs.
// Loading a policy allocates about 2.4 KB per rule that is garbage a moment
// later (237 MB for 100,000 rules); collecting it at the default pace took a
// quarter of a large reload's CPU time, which on a busy proxy is the reload's
// wall time too. The heap may grow by that much while a load runs;
// GOMEMLIMIT, if set, still bounds it. GOGC=off stays off.
func lazyGC() (restore func()) {
	old := debug.SetGCPercent(loadGOGC)
	if old < 0 || old >= loadGOGC {
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

const loadGOGC = 400

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		policyPath    = fs.String("policy", "", "policy `file` (default: the embedded policies/default.hcl)")
		listen        = fs.String("listen", "127.0.0.1:3128", "proxy listen `address`")
		metricsAddr   = fs.String("metrics", "127.0.0.1:9464", "`address` for /metrics, /healthz and /readyz (empty: off)")
		dialTimeout   = fs.Duration("dial-timeout", 10*time.Second, "timeout for resolving and connecting to a destination")
		headerTimeout = fs.Duration("header-timeout", 10*time.Second, "time a client has to send a request head")
		idleTimeout   = fs.Duration("idle-timeout", time.Hour, "close a tunnel after this long with no traffic either way (0: never)")
		clientIdle    = fs.Duration("client-idle-timeout", 2*time.Minute, "close a kept-alive client connection idle this long")
		maxConns      = fs.Int("max-conns", 0, "cap on concurrent client connections (0: derived from the file descriptor limit)")
		drain         = fs.Duration("drain", 30*time.Second, "on SIGTERM, how long open tunnels may finish before they are closed")
		quietAllowed  = fs.Bool("quiet-allowed", false, "do not log allowed tunnels and requests (denials are always logged)")
		watch         = fs.Duration("watch-interval", 2*time.Second, "how often to check the policy file for changes (0: only on SIGHUP)")
		logLevel      = fs.String("log-level", "info", "debug, info, warn or error")
		transpTLS     = fs.String("transparent-tls", "", "also accept TLS connections redirected here (nftables REDIRECT/TPROXY) on this `address`, decided on their SNI (empty: off)")
		transpHTTP    = fs.String("transparent-http", "", "also accept plain-HTTP connections redirected here on this `address`, decided on each request's Host (empty: off)")
		pprofOn       = fs.Bool("pprof", false, "also serve Go's /debug/pprof/ on the -metrics address, to profile a live proxy (keep that address private)")
		observations  = fs.String("observations", "", "append what the proxy sees (destinations per client block, with counts and decisions) to this `file`, for `azegress report`")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azegress serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "azegress serve: -log-level: %v\n", err)
		return 2
	}
	// Records are written in batches; denials and errors at once.
	lw := proxy.NewLogWriter(stderr, 0)
	defer lw.Close()
	log := slog.New(lw.Handler(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level})))

	load := loader(*policyPath)
	pol, diags := load()
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		fmt.Fprintln(stderr, "azegress serve: the policy has errors; nothing was started")
		return 1
	}

	nofile := proxy.RaiseFileLimit()
	if *maxConns == 0 && nofile > 0 {
		// Each client connection may hold an upstream socket too.
		*maxConns = int(max(64, (nofile-128)/2))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ln, err := proxy.Listen(context.Background(), *listen)
	if err != nil {
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return 1
	}
	var own []netip.AddrPort
	var mln net.Listener
	if *metricsAddr != "" {
		if mln, err = net.Listen("tcp", *metricsAddr); err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "azegress serve: metrics listener: %v\n", err)
			return 1
		}
		if ap, err := netip.ParseAddrPort(mln.Addr().String()); err == nil {
			own = append(own, ap)
		}
	}
	// Transparent (next-hop) listeners; the proxy adds their addresses to
	// its own when it serves them.
	var tlsLn, httpLn net.Listener
	for _, t := range []struct {
		flag, addr string
		ln         *net.Listener
	}{{"-transparent-tls", *transpTLS, &tlsLn}, {"-transparent-http", *transpHTTP, &httpLn}} {
		if t.addr == "" {
			continue
		}
		if *t.ln, err = proxy.Listen(context.Background(), t.addr); err != nil {
			for _, l := range []net.Listener{ln, mln, tlsLn} {
				if l != nil {
					l.Close()
				}
			}
			fmt.Fprintf(stderr, "azegress serve: %s: %v\n", t.flag, err)
			return 1
		}
	}

	var rec *learn.Recorder
	if *observations != "" {
		f, err := os.OpenFile(*observations, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "azegress serve: -observations: %v\n", err)
			return 1
		}
		defer f.Close()
		rec = learn.NewRecorder(f)
	}
	var observer proxy.Observer
	if rec != nil {
		observer = rec
	}
	srv, err := proxy.New(proxy.Config{
		Observer:          observer,
		Policy:            pol,
		Logger:            log,
		Registerer:        reg,
		DialTimeout:       *dialTimeout,
		ReadHeaderTimeout: *headerTimeout,
		ClientIdleTimeout: *clientIdle,
		TunnelIdleTimeout: *idleTimeout,
		MaxConnections:    *maxConns,
		QuietAllowed:      *quietAllowed,
		OwnAddrs:          own,
	})
	if err != nil {
		fmt.Fprintf(stderr, "azegress serve: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var admin *http.Server
	if mln != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !srv.Ready() {
				http.Error(w, "draining", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		if *pprofOn {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := admin.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "error", err.Error())
			}
		}()
	}

	serveErr := make(chan error, 3)
	go func() { serveErr <- srv.Serve(ln) }()
	transparentAddr := func(l net.Listener) string {
		if l == nil {
			return ""
		}
		return l.Addr().String()
	}
	if tlsLn != nil {
		go func() { serveErr <- srv.ServeTransparentTLS(tlsLn) }()
	}
	if httpLn != nil {
		go func() { serveErr <- srv.ServeTransparentHTTP(httpLn) }()
	}
	policyName := pol.Filename()
	log.Info("azegress listening", "listen", ln.Addr().String(), "metrics", *metricsAddr,
		"transparent_tls", transparentAddr(tlsLn), "transparent_http", transparentAddr(httpLn),
		"policy", policyName, "rules", pol.RuleCount(), "client_blocks", len(pol.Clients()),
		"max_conns", *maxConns, "nofile", nofile)

	if rec != nil {
		go func() {
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
		}()
	}
	if *policyPath != "" && *watch > 0 {
		go srv.WatchFile(ctx, *policyPath, *watch, load)
	}

wait:
	for {
		select {
		case <-hup:
			srv.Reload(load)
		case err := <-serveErr:
			log.Error("proxy listener failed", "error", err.Error())
			return 1
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("shutting down; draining open tunnels", "grace", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
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
	return 0
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lint := fs.Bool("lint", false, "also warn about risky or dead rules (multi-tenant wildcards, shadowed hosts, unused blocks, port 80 to token endpoints, local endpoints, expiry); warnings never change the exit status")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress check [-lint] FILE|DIR...\n\nValidates policies; prints file:line:col: message for each problem; exit 1 on error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var files []string
	for _, a := range fs.Args() {
		if fi, err := os.Stat(a); err == nil && fi.IsDir() {
			m, _ := filepath.Glob(filepath.Join(a, "*.hcl"))
			sort.Strings(m)
			files = append(files, m...)
			continue
		}
		files = append(files, a)
	}
	code := 0
	for _, f := range files {
		p, diags := policy.LoadFile(f)
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		if diags.HasErrors() || p == nil {
			code = 1
			continue
		}
		if *lint {
			fmt.Fprint(stderr, policy.FormatDiagnostics(policy.Lint(p, time.Now())))
		}
		fmt.Fprintf(stdout, "%s: ok (%d client blocks, %d rules)\n", f, len(p.Clients()), p.RuleCount())
	}
	return code
}

func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy `file` (default: the embedded policies/default.hcl)")
	client := fs.String("client", "127.0.0.1", "client `IP` asking")
	noDNS := fs.Bool("no-dns", false, "skip resolving the name and the destination guard check")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress explain [-policy FILE] [-client IP] [-no-dns] HOST[:PORT]\n\nPrints what the proxy would decide. Exit 0 if allowed, 1 if denied.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	ip, err := netip.ParseAddr(*client)
	if err != nil {
		fmt.Fprintf(stderr, "azegress explain: -client: %v\n", err)
		return 2
	}
	pol, diags := loader(*policyPath)()
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 2
	}
	var r proxy.Resolver = net.DefaultResolver
	if *noDNS {
		r = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := proxy.Explain(ctx, pol, ip, fs.Arg(0), r)
	if err != nil {
		fmt.Fprintf(stderr, "azegress explain: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "decision: %s\n", e.Decision)
	fmt.Fprintf(stdout, "target:   %s\n", net.JoinHostPort(e.Host.String(), fmt.Sprint(e.Port)))
	if e.Block != nil {
		fmt.Fprintf(stdout, "client:   %s (client block %q, mode %s)\n", e.Client, e.Block.Name, e.Block.Mode)
	} else {
		fmt.Fprintf(stdout, "client:   %s (no client block)\n", e.Client)
	}
	if e.Rule != nil {
		fmt.Fprintf(stdout, "rule:     %q at %s:%d:%d\n", e.Rule.Name, e.Rule.Range.Filename, e.Rule.Range.Start.Line, e.Rule.Range.Start.Column)
	} else {
		fmt.Fprintf(stdout, "reason:   %s\n", e.Reason)
	}
	fmt.Fprintf(stdout, "why:      %s\n", e.Detail)
	for _, a := range e.Addresses {
		verdict := "ok"
		if a.What != "" {
			verdict = "guarded: " + a.What
			if a.Allowed {
				verdict += " (listed in the rule's addresses)"
			} else {
				verdict += " (refused)"
			}
		}
		fmt.Fprintf(stdout, "address:  %s %s\n", a.IP, verdict)
	}
	if e.Fix != "" {
		fmt.Fprintf(stdout, "\n%s", strings.TrimRight(e.Fix, "\n")+"\n")
	}
	if e.Decision == policy.VerdictDeny {
		return 1
	}
	return 0
}
