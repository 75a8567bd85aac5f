package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/azegress/azegress/identity/tokensource"
	"github.com/azegress/azegress/internal/agent"
)

// agentCommand is `azegress agent`: a loopback forwarder that adds this
// machine's managed-identity token to every request it sends upstream, and
// keeps the token fresh. It runs until SIGTERM or SIGINT; it returns 2 for
// a bad command line and 1 when it cannot start or its listener fails.
func agentCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf tokenFlags
	tf.register(fs, "-upstream")
	listen := fs.String("listen", "127.0.0.1:3128", "loopback `address` local clients use as their proxy")
	upstream := fs.String("upstream", "", "the egress proxy, `http://HOST:PORT` or https://HOST:PORT (required)")
	drain := fs.Duration("drain", 10*time.Second, "on SIGTERM, how long open tunnels may finish before they are closed")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress agent [-listen 127.0.0.1:3128] -upstream http://HOST:PORT [-resource api://azegress] [flags]\n\n"+
			"A loopback proxy for local clients that cannot send or refresh proxy credentials (.NET, Java,\n"+
			"long-running services): it forwards CONNECT and plain HTTP to -upstream with this machine's\n"+
			"managed-identity token, refreshed before it expires. IMDS, WireServer, Arc and loopback are\n"+
			"refused: list them in NO_PROXY.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azegress agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "azegress agent: -log-level: %v\n", err)
		return 2
	}
	up, err := parseProxyFlag("-upstream", *upstream)
	if err != nil {
		fmt.Fprintf(stderr, "azegress agent: %v\n", err)
		return 2
	}
	if err := checkLoopback(*listen); err != nil {
		fmt.Fprintf(stderr, "azegress agent: -listen %s: %v\n", *listen, err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	src, err := tf.source(up)
	if err != nil {
		fmt.Fprintf(stderr, "azegress agent: %v\n", err)
		return 1
	}
	roots, err := tf.roots()
	if err != nil {
		fmt.Fprintf(stderr, "azegress agent: %v\n", err)
		return 2
	}
	tokens := tokensource.NewCache(src, tokensource.CacheConfig{Logger: log})
	fwd, err := agent.New(agent.Config{
		Upstream:  up,
		Token:     tokens.Token,
		TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Logger:    log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "azegress agent: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "azegress agent: %v\n", err)
		return 1
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() { // "localhost" resolved elsewhere
		ln.Close()
		fmt.Fprintf(stderr, "azegress agent: -listen %s: bound %s, not a loopback address\n", *listen, ln.Addr())
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	refresh, cancelRefresh := context.WithCancel(context.Background())
	refreshed := make(chan struct{})
	go func() { tokens.Run(refresh); close(refreshed) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- fwd.Serve(ln) }()
	log.Info("azegress agent listening", "listen", ln.Addr().String(), "upstream", up.String(),
		"source", src.Name(), "resource", tf.resource)

	code := 0
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		log.Error("listener failed", "error", err.Error())
		code = 1
	}
	log.Info("shutting down; draining open tunnels", "grace", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := fwd.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "error", err.Error())
	}
	cancelRefresh()
	<-refreshed
	log.Info("stopped")
	return code
}

// checkLoopback refuses a listen address that is not loopback: the agent
// lends this machine's identity to whoever can reach it, so only local
// processes may.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("the agent adds this machine's identity to whatever it forwards, so it listens on loopback only " +
			"(127.0.0.1, ::1 or localhost); a pod's sidecar shares the pod's loopback")
	}
	return nil
}
