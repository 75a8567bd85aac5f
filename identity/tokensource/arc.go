package tokensource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const arcAPIVersion = "2020-06-01"

// arc asks Azure Arc's Hybrid Instance Metadata Service, whose first answer
// is a challenge: a key file only privileged local users can read.
type arc struct {
	endpoint string // without query
	query    url.Values
	keyDir   string
	client   *http.Client
}

func newArc(cfg Config, endpoint string) (*arc, error) {
	if cfg.ClientID != "" {
		return nil, errors.New("Azure Arc: Arc-enabled servers have only the system-assigned identity; drop -client-id")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("Azure Arc: IDENTITY_ENDPOINT %q: want http://HOST:PORT/PATH without a query", endpoint)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("Azure Arc: IDENTITY_ENDPOINT %q is not on this machine (Arc's HIMDS listens on localhost:%s); "+
			"the token helpers send HIMDS a local key file's content and will not send it elsewhere", endpoint, "40342")
	}
	keyDir := cfg.ArcKeyDir
	if keyDir == "" {
		keyDir = DefaultArcKeyDir
	}
	return &arc{
		endpoint: endpoint,
		query:    url.Values{"api-version": {arcAPIVersion}, "resource": {resourceOf(cfg)}},
		keyDir:   filepath.Clean(keyDir),
		client:   newClient(cfg, nil),
	}, nil
}

func (s *arc) Name() string { return "Azure Arc HIMDS" }

func (s *arc) Token(ctx context.Context) (Token, error) {
	fail := func(msg, hint string, temp bool) (Token, error) {
		return Token{}, &Error{Source: s.Name(), Endpoint: s.endpoint, Msg: msg, Hint: hint, Temp: temp}
	}
	req, err := getRequest(ctx, s.endpoint, s.query)
	if err != nil {
		return fail(err.Error(), "", false)
	}
	a, e := exchange(s.client, s.Name(), s.endpoint, req)
	if e != nil {
		e.Hint = "is Arc's agent running? `azcmagent show` says; its HIMDS listens on localhost:40342"
		return Token{}, e
	}
	if a.status != http.StatusUnauthorized {
		if _, e := parseToken(s.Name(), s.endpoint, time.Now(), a); e != nil {
			return Token{}, e
		}
		return fail(fmt.Sprintf("answered %d where HIMDS sends its 401 challenge", a.status),
			"something other than Arc's HIMDS answers on IDENTITY_ENDPOINT", false)
	}
	path, err := s.keyFile(a.header.Get("WWW-Authenticate"))
	if err != nil {
		return fail("the challenge: "+err.Error(), "something other than Arc's HIMDS may answer on IDENTITY_ENDPOINT", false)
	}
	secret, err := readKeyFile(path)
	if err != nil {
		hint := ""
		if errors.Is(err, fs.ErrPermission) {
			hint = "reading Arc's key files needs root or membership in the himds group"
		}
		return fail("the challenge's key file: "+err.Error(), hint, false)
	}

	req, err = getRequest(ctx, s.endpoint, s.query)
	if err != nil {
		return fail(err.Error(), "", false)
	}
	req.Header.Set("Authorization", "Basic "+secret)
	start := time.Now()
	if a, e = exchange(s.client, s.Name(), s.endpoint, req); e != nil {
		return Token{}, e
	}
	tok, e := parseToken(s.Name(), s.endpoint, start, a)
	if e != nil {
		if a.status == http.StatusUnauthorized {
			e.Msg, e.Hint, e.Temp = "HIMDS refused the key file's content", "the key file was replaced in between; asking again", true
		}
		return Token{}, e
	}
	return tok, nil
}

// keyFile returns the path a challenge's `Basic realm=PATH` names, if it
// is a *.key file directly in the key directory.
func (s *arc) keyFile(challenge string) (string, error) {
	scheme, params, _ := strings.Cut(strings.TrimSpace(challenge), " ")
	name, value, ok := strings.Cut(strings.TrimSpace(params), "=")
	if !strings.EqualFold(scheme, "Basic") || !ok || !strings.EqualFold(name, "realm") {
		return "", fmt.Errorf("WWW-Authenticate %q is not `Basic realm=FILE`", clean(challenge))
	}
	path := strings.Trim(value, `"`)
	switch {
	case !filepath.IsAbs(path) || filepath.Clean(path) != path:
		return "", fmt.Errorf("the realm %q is not a clean absolute path", clean(path))
	case filepath.Dir(path) != s.keyDir:
		return "", fmt.Errorf("the realm %q is not in %s, where Arc keeps its key files; refusing to read it", clean(path), s.keyDir)
	case filepath.Ext(path) != ".key":
		return "", fmt.Errorf("the realm %q is not a .key file; refusing to read it", clean(path))
	}
	return path, nil
}

// readKeyFile reads a key file: a regular file (not a link) of at most
// MaxArcKeyBytes whose content can be sent in a header.
func readKeyFile(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > MaxArcKeyBytes {
		return "", fmt.Errorf("%s is %d bytes, over %d", path, fi.Size(), MaxArcKeyBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if opened, err := f.Stat(); err != nil || !os.SameFile(fi, opened) {
		return "", fmt.Errorf("%s changed while it was opened", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxArcKeyBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxArcKeyBytes {
		return "", fmt.Errorf("%s is over %d bytes", path, MaxArcKeyBytes)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	for _, c := range b {
		if c < ' ' || c == 0x7f {
			return "", fmt.Errorf("%s holds a control character", path)
		}
	}
	return string(b), nil
}
