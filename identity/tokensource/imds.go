package tokensource

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const imdsAPIVersion = "2018-02-01"

// imds asks Azure's Instance Metadata Service.
type imds struct {
	endpoint string // without query
	query    url.Values
	client   *http.Client
}

func newIMDS(cfg Config) (*imds, error) {
	endpoint := cfg.IMDSEndpoint
	if endpoint == "" {
		endpoint = DefaultIMDSEndpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("IMDS endpoint %q: want http://HOST/PATH without a query", endpoint)
	}
	q := url.Values{"api-version": {imdsAPIVersion}, "resource": {resourceOf(cfg)}}
	if cfg.ClientID != "" {
		q.Set("client_id", cfg.ClientID)
	}
	return &imds{endpoint: endpoint, query: q, client: newClient(cfg, nil)}, nil
}

func (s *imds) Name() string { return "IMDS" }

func (s *imds) Token(ctx context.Context) (Token, error) {
	req, err := getRequest(ctx, s.endpoint, s.query)
	if err != nil {
		return Token{}, &Error{Source: s.Name(), Endpoint: s.endpoint, Msg: err.Error()}
	}
	start := time.Now()
	a, e := exchange(s.client, s.Name(), s.endpoint, req)
	if e != nil {
		// A VM's IMDS always takes connections (it answers 410 while the
		// VM starts): no answer means no IMDS, not worth waiting for.
		e.Temp = false
		e.Hint = "IMDS answers only on an Azure VM or scale-set instance, to the VM itself; elsewhere, run where Azure Arc " +
			"(IDENTITY_ENDPOINT, IMDS_ENDPOINT) or AKS workload identity (AZURE_FEDERATED_TOKEN_FILE) is set up"
		return Token{}, e
	}
	tok, e := parseToken(s.Name(), s.endpoint, start, a)
	if e != nil {
		if e.Hint == "" && strings.Contains(e.Msg, "Identity not found") {
			if s.query.Has("client_id") {
				e.Hint = "-client-id must be the client ID of a user-assigned identity assigned to this VM"
			} else {
				e.Hint = "the VM has no system-assigned identity: enable it, or give -client-id of a user-assigned identity assigned to the VM"
			}
		}
		return Token{}, e
	}
	return tok, nil
}
