package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/azegress/azegress/identity/tokensource"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
)

// DefaultUser is the user name of the Basic credentials sent upstream. The
// proxy ignores it; Python's requests sends nothing with an empty one.
const DefaultUser = "azegress"

// Limits.
const (
	maxHeaderBytes   = 64 << 10
	maxRefusalBody   = 64 << 10 // of an upstream's non-200 answer to CONNECT
	defaultTimeout   = 10 * time.Second
	upstreamIdleConn = 90 * time.Second
)

// Config configures an Agent. Upstream and Token are required.
type Config struct {
	// Upstream is the egress proxy: http://HOST:PORT or https://HOST:PORT.
	Upstream *url.URL
	// Token returns the token to send upstream, or why there is none
	// (tokensource.Cache.Token). It is called once per request and tunnel
	// and must not block.
	Token func() (tokensource.Token, error)
	// User, if empty, is DefaultUser.
	User string
	// TLSConfig verifies an https:// upstream (RootCAs); nil means the
	// system's roots. Its ServerName is the upstream's host.
	TLSConfig *tls.Config
	// Logger gets one record per request and tunnel. If nil, nothing is
	// logged.
	Logger *slog.Logger
	// Dial connects to the upstream. If nil, a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds connecting to the upstream and reading its answer
	// to a CONNECT. If zero, 10 s.
	DialTimeout time.Duration
	// ReadHeaderTimeout is the time a client has to send a request head.
	// If zero, 10 s.
	ReadHeaderTimeout time.Duration
}

// Agent is the forwarder. Create it with New; it serves on listeners the
// caller opens.
type Agent struct {
	upstream   *url.URL
	token      func() (tokensource.Token, error)
	user       string
	tlsConfig  *tls.Config // nil for an http:// upstream
	log        *slog.Logger
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout    time.Duration
	srv        *http.Server
	forward    *httputil.ReverseProxy
	transport  *http.Transport
	tunnelsMu  sync.Mutex
	tunnels    map[net.Conn]struct{} // client sides of open tunnels
	tunnelsWG  sync.WaitGroup
	shutdownCh chan struct{} // closed by Shutdown
	closeOnce  sync.Once
}

// New checks cfg and returns an Agent.
func New(cfg Config) (*Agent, error) {
	u := cfg.Upstream
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("the upstream must be http://HOST:PORT or https://HOST:PORT, without credentials or a path")
	}
	if cfg.Token == nil {
		return nil, errors.New("agent: Config.Token is required")
	}
	up := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if up.Port() == "" {
		up.Host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	a := &Agent{
		upstream:   up,
		token:      cfg.Token,
		user:       cfg.User,
		log:        cfg.Logger,
		dial:       cfg.Dial,
		timeout:    cfg.DialTimeout,
		tunnels:    map[net.Conn]struct{}{},
		shutdownCh: make(chan struct{}),
	}
	if a.user == "" {
		a.user = DefaultUser
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.dial == nil {
		a.dial = (&net.Dialer{}).DialContext
	}
	if a.timeout <= 0 {
		a.timeout = defaultTimeout
	}
	if up.Scheme == "https" {
		a.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSConfig != nil {
			a.tlsConfig = cfg.TLSConfig.Clone()
		}
		a.tlsConfig.ServerName = up.Hostname()
		a.tlsConfig.NextProtos = nil // HTTP/1.1 to the proxy
	}
	a.transport = &http.Transport{
		Proxy:                  http.ProxyURL(up),
		DialContext:            a.dialWithTimeout,
		TLSClientConfig:        a.tlsConfig,
		TLSHandshakeTimeout:    a.timeout,
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        upstreamIdleConn,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	a.forward = &httputil.ReverseProxy{
		Rewrite:        a.rewrite,
		ModifyResponse: answered,
		Transport:      a.transport,
		ErrorHandler:   a.forwardError,
		ErrorLog:       slogLogger(a.log),
	}
	rht := cfg.ReadHeaderTimeout
	if rht <= 0 {
		rht = defaultTimeout
	}
	a.srv = &http.Server{
		Handler:           a,
		ReadHeaderTimeout: rht,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slogLogger(a.log),
	}
	return a, nil
}

// Serve accepts local clients on ln until Shutdown; it then returns
// http.ErrServerClosed.
func (a *Agent) Serve(ln net.Listener) error { return a.srv.Serve(ln) }

// Shutdown stops accepting, lets requests and tunnels in flight finish
// until ctx ends, then closes what is left.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.tunnelsMu.Lock() // after this, track adds no tunnel
		close(a.shutdownCh)
		a.tunnelsMu.Unlock()
	})
	err := a.srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { a.tunnelsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.tunnelsMu.Lock()
		for c := range a.tunnels {
			c.Close()
		}
		a.tunnelsMu.Unlock()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	a.transport.CloseIdleConnections()
	return err
}

// ServeHTTP answers one request of a local client.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		a.connect(w, r)
	case r.URL.IsAbs():
		a.plain(w, r)
	default:
		a.refuse(w, r, "http", "", 0, http.StatusBadRequest, "not_proxy_request",
			"this is azegress agent, a forward proxy: send CONNECT host:port or an absolute-form request (GET http://host/path)")
	}
}

// refusal is a request the agent answers itself.
type refusal struct {
	status int
	reason string
	detail string
}

// checkTarget refuses what must not go upstream: malformed targets and
// destinations on this machine.
func checkTarget(hostname string, port uint16) *refusal {
	h, err := host.Parse(hostname)
	if err != nil {
		return &refusal{http.StatusBadRequest, "bad_target", fmt.Sprintf("the destination host %q: %v", hostname, err)}
	}
	if label, ok := catalog.LocalEndpoint(h, port); ok {
		return &refusal{http.StatusForbidden, "local_endpoint", fmt.Sprintf(
			"%s (%s) is on this machine and must be reached directly, never through a proxy: add %s to NO_PROXY "+
				"(NO_PROXY=169.254.169.254,168.63.129.16,localhost,127.0.0.1)", h, label, h)}
	}
	if h.IP.Unmap().IsLoopback() || h.Name == "localhost" || strings.HasSuffix(h.Name, ".localhost") {
		return &refusal{http.StatusForbidden, "loopback", fmt.Sprintf(
			"%s is this machine; through the upstream proxy it would be the proxy's own: add %s to NO_PROXY", h, h)}
	}
	return nil
}

// splitTarget splits a host:port; port must be given.
func splitTarget(hostport string) (string, uint16, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("port %q is not a port number", p)
	}
	return h, uint16(n), nil
}

// credentials is the Proxy-Authorization value for tok.
func (a *Agent) credentials(tok string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+tok))
}

// connect relays a CONNECT to the upstream with credentials, then the
// tunnel's bytes.
func (a *Agent) connect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	hostname, port, err := splitTarget(r.Host)
	if err != nil {
		a.refuse(w, r, "connect", r.Host, 0, http.StatusBadRequest, "bad_target",
			fmt.Sprintf("CONNECT needs host:port: %v", err))
		return
	}
	if ref := checkTarget(hostname, port); ref != nil {
		a.refuse(w, r, "connect", hostname, port, ref.status, ref.reason, ref.detail)
		return
	}
	tok, err := a.token()
	if err != nil {
		a.refuse(w, r, "connect", hostname, port, http.StatusServiceUnavailable, "no_token",
			"no token for the upstream proxy: "+err.Error())
		return
	}
	target := net.JoinHostPort(hostname, strconv.Itoa(int(port)))
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	up, br, resp, err := a.upstreamConnect(ctx, target, a.credentials(tok.Value))
	cancel()
	if err != nil {
		a.refuse(w, r, "connect", hostname, port, http.StatusBadGateway, "upstream_unreachable",
			fmt.Sprintf("the upstream proxy %s: %v", a.upstream.Host, err))
		return
	}
	attrs := []any{"kind", "connect", "client", r.RemoteAddr, "host", hostname, "port", port, "token_fp", tok.Fingerprint()}
	if resp.StatusCode != http.StatusOK {
		// The upstream's refusal, passed on as it is, then the end.
		defer up.Close()
		copyEndHeaders(w.Header(), resp.Header)
		w.Header().Set("Connection", "close")
		w.WriteHeader(resp.StatusCode)
		n, _ := io.Copy(w, io.LimitReader(resp.Body, maxRefusalBody))
		resp.Body.Close()
		a.log.Warn("upstream refused", append(attrs, "status", resp.StatusCode,
			"upstream_reason", resp.Header.Get("X-Azegress-Reason"), "bytes_down", n,
			"duration_ms", time.Since(start).Milliseconds())...)
		return
	}
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		a.log.Error("tunnel", append(attrs, "error", "hijacking the client connection: "+err.Error())...)
		return
	}
	if !a.track(client) {
		client.Close()
		up.Close()
		return
	}
	defer a.untrack(client)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		client.Close()
		up.Close()
		return
	}
	upBytes, downBytes := relay(client, cbuf.Reader, up, br)
	a.log.Info("tunnel closed", append(attrs, "status", http.StatusOK, "bytes_up", upBytes, "bytes_down", downBytes,
		"duration_ms", time.Since(start).Milliseconds())...)
}

// upstreamConnect dials the upstream, sends CONNECT target with auth and
// reads the answer's head. On a 200 the caller owns conn and br (which may
// hold the first bytes from the far end).
func (a *Agent) upstreamConnect(ctx context.Context, target, auth string) (net.Conn, *bufio.Reader, *http.Response, error) {
	conn, err := a.dialUpstream(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	if d, has := ctx.Deadline(); has {
		conn.SetDeadline(d)
	}
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nProxy-Authorization: " + auth + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, nil, nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading its answer to CONNECT: %w", err)
	}
	conn.SetDeadline(time.Time{})
	ok = true
	return conn, br, resp, nil
}

// dialUpstream connects to the upstream, with TLS for an https:// one.
func (a *Agent) dialUpstream(ctx context.Context) (net.Conn, error) {
	conn, err := a.dial(ctx, "tcp", a.upstream.Host)
	if err != nil {
		return nil, err
	}
	if a.tlsConfig == nil {
		return conn, nil
	}
	tc := tls.Client(conn, a.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return tc, nil
}

func (a *Agent) dialWithTimeout(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	return a.dial(ctx, network, addr)
}

// endHeaders are not passed on from an upstream's refusal of a CONNECT:
// hop-by-hop headers, the framing the agent redoes, and the challenge,
// which only the agent could answer.
var endHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Proxy-Authenticate": true,
}

func copyEndHeaders(dst, src http.Header) {
	for k, vs := range src {
		if !endHeaders[http.CanonicalHeaderKey(k)] {
			dst[k] = append([]string(nil), vs...)
		}
	}
}

// ctxKey carries a plain request's *forwarding from plain to the
// ReverseProxy's hooks.
type ctxKey struct{}

// forwarding is one plain request on its way: the token to send and what
// the upstream answered.
type forwarding struct {
	token  tokensource.Token
	status int    // the upstream's status, or 502 when it could not be reached
	reason string // the upstream's X-Azegress-Reason
}

// plain forwards an absolute-form http:// request upstream.
func (a *Agent) plain(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.URL.Scheme != "http" {
		a.refuse(w, r, "http", r.URL.Hostname(), 0, http.StatusBadRequest, "not_http",
			fmt.Sprintf("%s:// in an absolute-form request is not forwarded: send CONNECT host:port and speak TLS in the tunnel", r.URL.Scheme))
		return
	}
	hostport := r.URL.Host
	if r.URL.Port() == "" {
		hostport = net.JoinHostPort(r.URL.Hostname(), "80")
	}
	hostname, port, err := splitTarget(hostport)
	if err != nil {
		a.refuse(w, r, "http", r.URL.Host, 0, http.StatusBadRequest, "bad_target", err.Error())
		return
	}
	if ref := checkTarget(hostname, port); ref != nil {
		a.refuse(w, r, "http", hostname, port, ref.status, ref.reason, ref.detail)
		return
	}
	tok, err := a.token()
	if err != nil {
		a.refuse(w, r, "http", hostname, port, http.StatusServiceUnavailable, "no_token",
			"no token for the upstream proxy: "+err.Error())
		return
	}
	f := &forwarding{token: tok}
	a.forward.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, f)))
	level := slog.LevelInfo
	if f.status >= 400 || f.status == 0 {
		level = slog.LevelWarn
	}
	a.log.Log(r.Context(), level, "request", "kind", "http", "client", r.RemoteAddr, "method", r.Method,
		"host", hostname, "port", port, "status", f.status, "upstream_reason", f.reason,
		"token_fp", tok.Fingerprint(), "duration_ms", time.Since(start).Milliseconds())
}

// rewrite adds the credentials to the upstream request, a copy of the
// client's (absolute URL, Host) from which ReverseProxy has removed the
// hop-by-hop headers, the client's Proxy-Authorization among them, and
// any X-Forwarded-*. The transport sends it to the upstream proxy.
func (a *Agent) rewrite(pr *httputil.ProxyRequest) {
	f := pr.In.Context().Value(ctxKey{}).(*forwarding)
	pr.Out.Header.Set("Proxy-Authorization", a.credentials(f.token.Value))
}

// answered notes the upstream's answer for the log.
func answered(resp *http.Response) error {
	if f, ok := resp.Request.Context().Value(ctxKey{}).(*forwarding); ok {
		f.status, f.reason = resp.StatusCode, resp.Header.Get("X-Azegress-Reason")
	}
	return nil
}

func (a *Agent) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	if f, ok := r.Context().Value(ctxKey{}).(*forwarding); ok {
		f.status = http.StatusBadGateway
	}
	msg := fmt.Sprintf("azegress agent: forwarding to the upstream proxy %s: %v", a.upstream.Host, err)
	if errors.Is(err, context.Canceled) {
		msg = "azegress agent: the request was canceled"
	}
	w.Header().Set("X-Azegress-Agent-Reason", "upstream_unreachable")
	http.Error(w, msg, http.StatusBadGateway)
}

// refuse answers a request the agent does not send upstream, and logs it.
func (a *Agent) refuse(w http.ResponseWriter, r *http.Request, kind, hostname string, port uint16, status int, reason, detail string) {
	w.Header().Set("X-Azegress-Agent-Reason", reason)
	w.Header().Set("Connection", "close")
	http.Error(w, "azegress agent: "+detail, status)
	a.log.Warn("refused", "kind", kind, "client", r.RemoteAddr, "host", hostname, "port", port,
		"status", status, "reason", reason, "detail", detail)
}

// track registers an open tunnel; false once Shutdown has begun.
func (a *Agent) track(c net.Conn) bool {
	a.tunnelsMu.Lock()
	defer a.tunnelsMu.Unlock()
	select {
	case <-a.shutdownCh:
		return false
	default:
	}
	a.tunnels[c] = struct{}{}
	a.tunnelsWG.Add(1)
	return true
}

func (a *Agent) untrack(c net.Conn) {
	a.tunnelsMu.Lock()
	delete(a.tunnels, c)
	a.tunnelsMu.Unlock()
	a.tunnelsWG.Done()
}

// relay copies bytes both ways until both directions end, passing on a
// half-close, and returns the bytes sent up and down. clientBuf and upBuf
// hold what was read ahead on each side.
func relay(client net.Conn, clientBuf *bufio.Reader, up net.Conn, upBuf *bufio.Reader) (upBytes, downBytes int64) {
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(up, clientBuf) // clientBuf reads through to client
		closeWrite(up)
		done <- n
	}()
	downBytes, _ = io.Copy(client, upBuf)
	closeWrite(client)
	upBytes = <-done // the client's half-close, or Shutdown's close
	client.Close()
	up.Close()
	return upBytes, downBytes
}

// closeWrite half-closes c if it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// slogLogger is a log.Logger for net/http's own errors, at Debug.
func slogLogger(l *slog.Logger) *log.Logger { return slog.NewLogLogger(l.Handler(), slog.LevelDebug) }
