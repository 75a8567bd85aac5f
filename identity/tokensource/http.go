package tokensource

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	maxBodyBytes   = 256 << 10
	maxDescription = 600
)

// client is an HTTP client for one source: no proxy unless proxy is set,
// no redirects, no kept-alive connections (tokens are asked for rarely,
// and a stale connection must not outlive a token service's restart).
func newClient(cfg Config, proxy *url.URL) *http.Client {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
		tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			return &proxyRefusal{status: resp.StatusCode, reason: resp.Header.Get("X-Azegress-Reason")}
		}
	}
	if cfg.Dial != nil {
		tr.DialContext = cfg.Dial
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// proxyRefusal is the proxy's answer to a CONNECT other than 200: the
// proxy's decision, not a network failure (net/http would report only the
// status text). reason is azegress's X-Azegress-Reason, if any.
type proxyRefusal struct {
	status int
	reason string
}

func (p *proxyRefusal) Error() string {
	s := fmt.Sprintf("the proxy refused the CONNECT with %d %s", p.status, http.StatusText(p.status))
	if p.reason != "" {
		s += " (" + p.reason + ")"
	}
	return s
}

// answer is a token service's response, its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// exchange sends req and reads at most maxBodyBytes of the answer. A
// request that got no answer is a temporary *Error.
func exchange(c *http.Client, source, endpoint string, req *http.Request) (answer, *Error) {
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in Endpoint; its query says nothing new
		}
		e := &Error{Source: source, Endpoint: endpoint, Msg: "no answer: " + err.Error(), Temp: req.Context().Err() == nil}
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			e.Temp, e.Hint = false, "the service's certificate is not trusted: is something intercepting TLS, or is SSL_CERT_FILE set?"
		}
		if pr, ok := errors.AsType[*proxyRefusal](err); ok {
			e.Msg, e.Temp = pr.Error(), temporaryStatus(pr.status)
			e.Hint = "the egress proxy's deny record for this CONNECT says why"
			if pr.status == http.StatusForbidden || pr.status == http.StatusProxyAuthRequired {
				e.Hint = `the egress proxy must let this machine reach the Entra authority without credentials: ` +
					`a client block for its address with endpoints = ["azure.entra"]`
			}
		}
		return answer{}, e
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return answer{}, &Error{Source: source, Endpoint: endpoint, Status: resp.StatusCode,
			Msg: "reading the answer: " + err.Error(), Temp: true}
	}
	if len(body) > maxBodyBytes {
		return answer{}, &Error{Source: source, Endpoint: endpoint, Status: resp.StatusCode,
			Msg: fmt.Sprintf("the answer is over %d bytes", maxBodyBytes)}
	}
	return answer{resp.StatusCode, resp.Header, body}, nil
}

// tokenJSON is a token response, or an error response, of IMDS, HIMDS and
// Entra. IMDS and HIMDS give numbers as strings, Entra as numbers.
type tokenJSON struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   flexInt `json:"expires_in"`
	ExpiresOn   flexInt `json:"expires_on"`
	Error       string  `json:"error"`
	Description string  `json:"error_description"`
	Message     string  `json:"message"` // some IMDS errors
}

// flexInt is a JSON number or a string holding one; anything else (App
// Service's date in expires_on) reads as 0.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = flexInt(v)
	}
	return nil
}

// parseToken turns a token service's answer into a Token. start is when
// the request was sent: the expiry is start plus expires_in, so that a
// skewed local clock does not matter. An error answer becomes an *Error
// with the generic hints; the caller adds its own.
func parseToken(source, endpoint string, start time.Time, a answer) (Token, *Error) {
	var tj tokenJSON
	jsonErr := json.Unmarshal(a.body, &tj)
	if a.status != http.StatusOK {
		e := &Error{Source: source, Endpoint: endpoint, Status: a.status, Code: clean(tj.Error),
			Msg: clean(tj.Description), Temp: temporaryStatus(a.status)}
		if e.Msg == "" {
			e.Msg = clean(tj.Message)
		}
		if e.Msg == "" {
			e.Msg = http.StatusText(a.status)
		}
		genericHint(e)
		return Token{}, e
	}
	fail := func(msg string) (Token, *Error) {
		return Token{}, &Error{Source: source, Endpoint: endpoint, Status: a.status, Msg: msg}
	}
	if jsonErr != nil {
		return fail("the answer is not a token response (not JSON)")
	}
	if err := checkToken(tj.AccessToken); err != "" {
		return fail(err)
	}
	var exp time.Time
	switch {
	case tj.ExpiresIn > 0:
		exp = start.Add(time.Duration(tj.ExpiresIn) * time.Second)
	case tj.ExpiresOn > 0:
		exp = time.Unix(int64(tj.ExpiresOn), 0)
	default:
		return fail("the token response has neither expires_in nor expires_on")
	}
	if !exp.After(time.Now()) {
		return fail("the token has already expired (expires " + exp.UTC().Format(time.RFC3339) + "); is this machine's clock right?")
	}
	return Token{Value: tj.AccessToken, Expires: exp}, nil
}

// checkToken says what is wrong with a token value that cannot be sent in a
// header or a URL, or "".
func checkToken(v string) string {
	switch {
	case v == "":
		return "the answer has no access_token"
	case len(v) > MaxTokenBytes:
		return fmt.Sprintf("the token is %d bytes, over the proxy's %d", len(v), MaxTokenBytes)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return "the token holds a character that is not printable ASCII"
		}
	}
	return ""
}

// temporaryStatus reports whether a token service's status may clear by
// itself: IMDS answers 404 and 410 while a VM starts, 429 when throttled.
func temporaryStatus(status int) bool {
	switch status {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusGone, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// genericHint says what to check for failures every source can meet.
func genericHint(e *Error) {
	switch {
	case strings.Contains(e.Msg, "AADSTS500011") || strings.Contains(e.Msg, "AADSTS50001") || e.Code == "invalid_resource":
		e.Hint = "no app registration in the tenant has this identifier URI or client ID: create the proxy's app registration (README, Entra setup) or correct -resource"
	case strings.Contains(e.Msg, "AADSTS50105") || strings.Contains(e.Msg, "AADSTS501051"):
		e.Hint = "the proxy's app registration requires an app role assignment and this identity has none: assign it the app role (README, Entra setup)"
	case e.Status == http.StatusTooManyRequests:
		e.Hint = "the token service is throttling (IMDS allows 20 token requests per second per VM); retry later"
	}
}

// clean makes a service's message safe for one log line: control
// characters become spaces, runs of spaces one, and it is cut short.
func clean(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == ' ' }), " ")
	if len(s) > maxDescription {
		s = strings.ToValidUTF8(s[:maxDescription], "") + "..."
	}
	return s
}

// getRequest is a GET of endpoint with query, with the Metadata header
// IMDS and HIMDS require.
func getRequest(ctx context.Context, endpoint string, query url.Values) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+query.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Metadata", "true")
	return req, nil
}

// isLoopbackHost reports whether host (no port) is localhost or a loopback
// address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// endpointOf is u without query or fragment, for errors.
func endpointOf(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}
