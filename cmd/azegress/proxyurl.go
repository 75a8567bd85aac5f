package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/azegress/azegress/identity/tokensource"
	"github.com/azegress/azegress/internal/agent"
)

// proxyURL is `azegress proxy-url`: it prints the proxy URL with a fresh
// token of this machine's managed identity as the password, for
// HTTPS_PROXY in a shell or a cron job.
func proxyURL(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy-url", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf tokenFlags
	tf.register(fs, "-proxy")
	proxy := fs.String("proxy", "", "the egress proxy, `http://HOST:PORT` or https://HOST:PORT (required)")
	timeout := fs.Duration("timeout", time.Minute, "how long to keep asking a token service that answers with a temporary error (IMDS while a VM starts)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress proxy-url [-resource api://azegress] [-client-id ID] -proxy http://HOST:PORT\n\n"+
			"Prints http://azegress:<token>@HOST:PORT, the token fresh from this machine's managed identity\n"+
			"(AKS workload identity, Azure Arc or IMDS, whichever the environment has). Tokens expire, in\n"+
			"about an hour (workload identity) to 24 hours: long-running processes want `azegress agent`.\n\n"+
			"  export HTTPS_PROXY=\"$(azegress proxy-url -proxy http://10.0.0.4:3128)\"")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azegress proxy-url: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	pu, err := parseProxyFlag("-proxy", *proxy)
	if err != nil {
		fmt.Fprintf(stderr, "azegress proxy-url: %v\n", err)
		return 2
	}
	src, err := tf.source(pu)
	if err != nil {
		fmt.Fprintf(stderr, "azegress proxy-url: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tok, err := tokensource.Fetch(ctx, src)
	if err != nil {
		fmt.Fprintf(stderr, "azegress proxy-url: %v\n", err)
		return 1
	}
	out := url.URL{Scheme: pu.Scheme, User: url.UserPassword(agent.DefaultUser, tok.Value), Host: pu.Host}
	fmt.Fprintln(stdout, out.String())
	return 0
}

// tokenFlags are the token helpers' flags that say which token to get and
// how to reach the token service.
type tokenFlags struct {
	resource, clientID string
	entraViaProxy      bool
	caFile             string
}

// register adds the flags; proxyFlag names the command's proxy flag in
// their help.
func (tf *tokenFlags) register(fs *flag.FlagSet, proxyFlag string) {
	fs.StringVar(&tf.resource, "resource", tokensource.DefaultResource, "the proxy's audience: its app registration's App ID URI or client ID")
	fs.StringVar(&tf.clientID, "client-id", "", "client `ID` of a user-assigned identity (IMDS), or in place of AZURE_CLIENT_ID (workload identity); Arc has only the system-assigned one")
	fs.BoolVar(&tf.entraViaProxy, "entra-via-proxy", false, "workload identity only: reach the Entra authority through "+proxyFlag+", without credentials (for pods with no other way out; the proxy must allow Entra to them)")
	fs.StringVar(&tf.caFile, "ca", "", "PEM `file` of CA certificates trusted, besides the system's, for an https:// "+proxyFlag)
}

// source is the token source the environment has. proxy is the egress
// proxy, used for Entra only with -entra-via-proxy.
func (tf *tokenFlags) source(proxy *url.URL) (tokensource.Source, error) {
	roots, err := tf.roots()
	if err != nil {
		return nil, err
	}
	cfg := tokensource.Config{Resource: tf.resource, ClientID: tf.clientID}
	if tf.entraViaProxy {
		cfg.EntraProxy = proxy
		cfg.RootCAs = roots // one transport verifies the proxy and Entra
	}
	return tokensource.FromEnvironment(cfg)
}

// roots is the system's CA pool plus -ca's certificates, or nil (the
// system's) without -ca.
func (tf *tokenFlags) roots() (*x509.CertPool, error) {
	if tf.caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(tf.caFile)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca: %s holds no PEM certificate", tf.caFile)
	}
	return pool, nil
}

// parseProxyFlag reads a proxy URL flag: http:// or https://, a host and a
// port, nothing else.
func parseProxyFlag(name, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%s is required: the egress proxy, http://HOST:PORT", name)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s %q: %v", name, raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s %q: want http://HOST:PORT or https://HOST:PORT", name, raw)
	case u.Hostname() == "" || u.Port() == "":
		return nil, fmt.Errorf("%s %q: name the host and the port, as in http://10.0.0.4:3128", name, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%s %q: leave the credentials out; the token is added", name, raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%s %q: a proxy URL has no path or query", name, raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}
