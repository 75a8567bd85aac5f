package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// The TLS proxy listener (ServeTLS): the explicit proxy over TLS, so that
// credentials never cross the network in clear text. TLS ends where the
// connection is accepted: the accept loop counts the connection against the
// global cap and wraps it in a *tls.Conn, and serveFront completes the
// handshake before it reads the first head. From there on the decrypted conn
// takes the path of a connection accepted by Serve: the same front door,
// net/http and goproxy, decisions, limits, logs and metrics. A tunnel's client
// side is then a *tls.Conn, not a *net.TCPConn, so the relay copies it
// through a buffer instead of splice(2), and an idle tunnel keeps its two
// goroutines.

// tlsListener is what ServeTLS listeners share: the TLS configuration, the
// certificate pair it presents and their metrics.
type tlsListener struct {
	certFile, keyFile string
	config            *tls.Config
	cert              atomic.Pointer[tls.Certificate]
	m                 *tlsMetrics
	warn              *rate.Limiter // handshake failures logged at Warn; the rest at Debug
}

// newTLSListener loads the pair certFile/keyFile. It fails, naming the files
// and the reason, on a pair that does not load.
func newTLSListener(certFile, keyFile string, reg prometheus.Registerer) (*tlsListener, error) {
	cert, err := loadCertPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	t := &tlsListener{
		certFile: certFile,
		keyFile:  keyFile,
		m:        newTLSMetrics(reg),
		warn:     rate.NewLimiter(rate.Every(time.Second), 10),
	}
	t.setCert(cert)
	t.config = &tls.Config{
		// Read at each handshake, so a reload reaches new connections.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cert.Load(), nil },
		MinVersion:     tls.VersionTLS12,
		// The proxy speaks HTTP/1.1. A client that offers only h2 is
		// refused with no_application_protocol; one that offers no ALPN
		// at all is served.
		NextProtos: []string{"http/1.1"},
	}
	return t, nil
}

func (t *tlsListener) setCert(c *tls.Certificate) {
	t.cert.Store(c)
	t.m.certExpiry.Set(float64(c.Leaf.NotAfter.Unix()))
}

// loadCertPair reads a PEM certificate chain (leaf first) and its PEM private
// key. A pair that does not parse, a key that is not the certificate's, and a
// certificate that has expired by now are refused with the files named.
func loadCertPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s: %w", certFile, pathless(err))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS key %s: %w", keyFile, pathless(err))
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w; give a PEM certificate chain, leaf first, and the PEM private key of its leaf", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired at %s; renew it", certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// pathless is err without the path an *os.PathError repeats.
func pathless(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// reload loads the pair again and swaps it in for new handshakes; a pair
// that fails to load keeps the one being served. Connections already made
// keep the certificate they were made with.
func (t *tlsListener) reload(log *slog.Logger) {
	cert, err := loadCertPair(t.certFile, t.keyFile, time.Now())
	if err != nil {
		t.m.certReloads.WithLabelValues("failure").Inc()
		log.LogAttrs(context.Background(), slog.LevelError, "TLS certificate reload rejected; the previous certificate keeps serving",
			slog.String(keyTLSCert, t.certFile),
			slog.String(keyTLSKey, t.keyFile),
			slog.String(keyError, err.Error()))
		return
	}
	t.setCert(cert)
	t.m.certReloads.WithLabelValues("success").Inc()
	log.LogAttrs(context.Background(), slog.LevelInfo, "TLS certificate reloaded",
		slog.String(keyTLSCert, t.certFile),
		slog.String(keyTLSKey, t.keyFile),
		slog.String(keyExpires, cert.Leaf.NotAfter.UTC().Format(time.RFC3339)))
}

// ServeTLS accepts proxy clients over TLS on ln until Shutdown, presenting
// Config.TLSCertFile, and serves them exactly as Serve does. It returns nil
// after a Shutdown and the listener's error otherwise.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.tls == nil {
		_ = ln.Close()
		return errors.New("proxy: ServeTLS needs Config.TLSCertFile and Config.TLSKeyFile")
	}
	return s.serve(ln, s.tls)
}

// handshakeTLS completes the TLS handshake of a connection accepted by
// ServeTLS, within the header timeout: serveFront's read deadline bounds the
// handshake and the first head together, and a write deadline as long bounds
// the server's flight. It reports false, having logged and counted why, when
// the handshake failed; the caller closes cc. Other connections pass at once.
func (s *Server) handshakeTLS(cc *clientConn) bool {
	tc, ok := cc.Unwrap().(*tls.Conn)
	if !ok {
		return true
	}
	_ = tc.SetWriteDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	err := tc.Handshake()
	_ = tc.SetWriteDeadline(time.Time{})
	if err == nil {
		return true
	}
	reason, fix := handshakeFailure(err)
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader) {
		// A client with an http:// proxy URL: tell it in its language.
		_ = rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = rhe.Conn.Write(plainOnTLSResponse)
		fix = "the client sent plain HTTP to the TLS listener: " + fix
	}
	s.tls.m.handshakeFailures.WithLabelValues(reason).Inc()
	level := slog.LevelWarn
	if reason == tlsClosed || !s.tls.warn.Allow() {
		// Health checks and port scans connect and close; a flood of
		// failures is counted in full and logged at Warn in part.
		level = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), level) {
		return false
	}
	attrs := []slog.Attr{slog.String(keyReason, reason), slog.String(keyDetail, err.Error()), slog.String(keyFix, fix)}
	if ap, perr := netip.ParseAddrPort(cc.RemoteAddr().String()); perr == nil {
		attrs = append(attrs, slog.String(keyClient, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()))
	}
	s.log.LogAttrs(context.Background(), level, "TLS handshake failed", attrs...)
	return false
}

// Why a TLS handshake on the proxy's TLS listener failed, in the log's reason
// and the label of azegress_tls_handshake_failures_total.
const (
	tlsClosed      = "closed"       // the client went away (or Shutdown closed it) before the handshake completed
	tlsTimeout     = "timeout"      // not complete within the header timeout
	tlsNotTLS      = "not_tls"      // the first bytes are no TLS handshake record
	tlsClientAlert = "client_alert" // the client refused the handshake, most often the certificate
	tlsProtocol    = "protocol"     // no shared version, cipher suite or ALPN protocol; a malformed handshake
)

// handshakeFailure classifies a failed handshake and says what to do.
func handshakeFailure(err error) (reason, fix string) {
	var rhe tls.RecordHeaderError
	var oe *net.OpError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return tlsTimeout, "the client did not complete the TLS handshake within -header-timeout"
	case errors.As(err, &rhe):
		return tlsNotTLS, "give the client an https:// proxy URL for this listener, or an http:// one for the plain listener"
	case errors.As(err, &oe) && (oe.Op == "remote error" || oe.Op == "local error" && oe.Err.Error() == "tls: bad record MAC"):
		// An OpenSSL client (curl, Python) that refuses the certificate of
		// a TLS 1.3 server sends its alert unencrypted, before it switches
		// to the handshake keys; the server then fails to decrypt it.
		return tlsClientAlert, "the client refused the handshake, most often because it does not trust the certificate: give it the issuing CA (curl --proxy-cacert, SSL_CERT_FILE, REQUESTS_CA_BUNDLE) and make the certificate name the host in its proxy URL"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return tlsClosed, "nothing to do if this is a health check or a port scan; otherwise see the client's error"
	default:
		return tlsProtocol, "the proxy takes TLS 1.2 or 1.3, Go's default cipher suites, and ALPN http/1.1 only (no h2): configure the client for HTTP/1.1"
	}
}

// looksLikeHTTP reports whether a record header that is no TLS is the start
// of an HTTP request line: a method (CONNECT, GET, ...) in capitals.
func looksLikeHTTP(hdr [5]byte) bool {
	i := 0
	for i < len(hdr) && 'A' <= hdr[i] && hdr[i] <= 'Z' {
		i++
	}
	return i > 0 && (i == len(hdr) || hdr[i] == ' ')
}

// plainOnTLSResponse answers a plain-HTTP request sent to the TLS listener.
var plainOnTLSResponse = func() []byte {
	const body = "azegress: this port takes TLS; use an https:// proxy URL for it (curl --proxy https://HOST:PORT, HTTPS_PROXY=https://HOST:PORT), or the proxy's plain-HTTP port\n"
	return fmt.Appendf(nil, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Azegress-Reason: %s\r\nProxy-Status: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		ReasonBadRequest, proxyStatus(proxyErrors[ReasonBadRequest], ReasonBadRequest), len(body), body)
}()
