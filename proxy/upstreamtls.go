package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// upstreamTLSConfig is the TLS client configuration of every https://
// request the proxy forwards, on the origin pool and on http.Transport
// alike (as Squid forwards an absolute-form https:// request: over TLS,
// verified). roots nil means the system roots, which on Linux honour
// SSL_CERT_FILE and SSL_CERT_DIR. An IP-literal serverName is not sent as
// SNI; crypto/tls verifies it against the certificate's IP addresses.
func upstreamTLSConfig(roots *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		ServerName: serverName,
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}, // the proxy forwards HTTP/1.1 only
	}
}

// dialUpstreamTLS is dialUpstream followed by a verified TLS handshake with
// fl's host, bounded by the dial timeout. A handshake that fails comes back
// as a *dialDenial with reason upstream_tls.
func (s *Server) dialUpstreamTLS(ctx context.Context, fl *flow) (net.Conn, error) {
	c, err := s.dialUpstream(ctx, fl)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, upstreamTLSConfig(s.cfg.UpstreamRootCAs, fl.host.String()))
	hctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err() // the client left; nothing to tell it
		}
		var ip netip.Addr
		if ap, perr := netip.ParseAddrPort(c.RemoteAddr().String()); perr == nil {
			ip = ap.Addr().Unmap()
		}
		return nil, &dialDenial{upstreamTLSFailed(fl, ip, err, s.cfg.DialTimeout)}
	}
	return tc, nil
}

// upstreamTLSFailed explains a failed TLS handshake with fl's destination
// at ip: the cause in words, never Go's error text.
func upstreamTLSFailed(fl *flow, ip netip.Addr, err error, timeout time.Duration) *denial {
	d := &denial{status: http.StatusBadGateway, reason: ReasonUpstreamTLS, dstIP: ip}
	name, at := fl.host.String(), fl.target()
	if ip.IsValid() {
		at = fmt.Sprintf("%s (%s)", at, ip)
	}
	const trustFix = "If the destination's certificate comes from a private CA, install that CA on the proxy host's system trust store (update-ca-certificates), or in the bundle named by SSL_CERT_FILE (or a directory in SSL_CERT_DIR) in azegress's environment, which replace the system roots; then restart azegress."
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		remote   *net.OpError
		alert    tls.AlertError
		notTLS   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		d.proxyError = psTLSCertificate
		d.detail = fmt.Sprintf("certificate for %s is not trusted: signed by unknown authority", name)
		if unknown.Cert != nil && unknown.Cert.Issuer.CommonName != "" {
			d.detail += fmt.Sprintf(" %q", unknown.Cert.Issuer.CommonName)
		}
		d.fix = trustFix
	case errors.As(err, &hostname):
		d.proxyError = psTLSCertificate
		d.detail = fmt.Sprintf("certificate for %s does not name it: it is for %s", name, certNames(hostname.Certificate))
		d.fix = fmt.Sprintf("Check that %s resolves, on the proxy host, to the server that holds its certificate (DNS, /etc/hosts, the private DNS zone of a private endpoint).", name)
	case errors.As(err, &invalid):
		d.proxyError = psTLSCertificate
		d.detail = fmt.Sprintf("certificate for %s is not valid: %s", name, certInvalidWhy(invalid))
		d.fix = "The destination's owner must fix its certificate; the proxy verifies it as any client would. " + trustFix
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		d.status, d.proxyError = http.StatusGatewayTimeout, psConnTimeout
		d.detail = fmt.Sprintf("the TLS handshake with %s did not complete within %s", at, timeout)
		d.fix = "Check that the destination serves TLS on this port, or raise -dial-timeout."
	case errors.As(err, &remote) && remote.Op == "remote error":
		d.proxyError = psTLSAlert
		d.detail = fmt.Sprintf("%s refused the TLS handshake: %s", at, strings.TrimPrefix(remote.Err.Error(), "tls: "))
		d.fix = "The proxy offers TLS 1.2 or later and HTTP/1.1; check what the destination accepts."
	case errors.As(err, &notTLS):
		d.detail = fmt.Sprintf("%s did not answer with TLS", at)
		d.fix = "The URL says https, but the server on this port does not speak TLS: use http:// if it serves plain HTTP."
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		d.proxyError = psConnTerminated
		d.detail = fmt.Sprintf("%s closed the connection during the TLS handshake", at)
		d.fix = "Check that the destination serves TLS on this port."
	case errors.As(err, &alert):
		d.detail = fmt.Sprintf("the TLS handshake with %s failed: %s", at, strings.TrimPrefix(alert.Error(), "tls: "))
	default:
		d.detail = fmt.Sprintf("the TLS handshake with %s failed", at)
	}
	return d
}

// certNames lists the names and addresses a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no name"
	}
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

func certInvalidWhy(e x509.CertificateInvalidError) string {
	switch e.Reason {
	case x509.Expired:
		if e.Cert != nil {
			return fmt.Sprintf("it is valid only from %s to %s", e.Cert.NotBefore.UTC().Format(time.RFC3339), e.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		return "it has expired or is not yet valid"
	case x509.NotAuthorizedToSign:
		return "it was signed by a certificate that is not a CA"
	case x509.IncompatibleUsage:
		return "it is not for TLS servers"
	case x509.NameConstraintsWithoutSANs, x509.CANotAuthorizedForThisName, x509.CANotAuthorizedForExtKeyUsage:
		return "its CA may not issue it (name or usage constraints)"
	case x509.TooManyIntermediates, x509.TooManyConstraints:
		return "its chain is too long"
	}
	return "its chain does not verify"
}
