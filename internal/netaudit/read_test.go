package netaudit_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azegress/azegress/internal/netaudit"
	"github.com/azegress/azegress/internal/netaudit/netaudittest"
	"github.com/azegress/azegress/policy"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const (
	fixture = "testdata/arm"
	sub     = "a3f5c9e2-7d41-4b8e-9c06-2e5b8d71f4a0"
	armBase = "/subscriptions/" + sub
)

// fakeReader returns a Reader of the fake's subscription built the way
// audit-network builds one: the cloud from a -cloud-config file, the CA
// from a -ca-file, through ClientOptions; the credential is the SDK's
// client secret credential against the fake's authority, with the same
// options. Retries wait little unless ARM says how long (Retry-After).
func fakeReader(t *testing.T, srv *netaudittest.Server) *netaudit.Reader {
	t.Helper()
	return fakeReaderWith(t, srv, netaudittest.ClientSecret)
}

func fakeReaderWith(t *testing.T, srv *netaudittest.Server, secret string) *netaudit.Reader {
	t.Helper()
	cloudFile, caFile := srv.Files(t)
	c, err := netaudit.LoadCloud(cloudFile)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := netaudit.ClientOptions(c, caFile)
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry = azpolicy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Second}
	cred, err := azidentity.NewClientSecretCredential(netaudittest.Tenant, netaudittest.ClientID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts.ClientOptions, DisableInstanceDiscovery: c.DisableInstanceDiscovery})
	if err != nil {
		t.Fatal(err)
	}
	r, err := netaudit.NewReader(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Poll = time.Second
	return r
}

func fixtureConfig(t *testing.T, rg string) netaudit.Config {
	t.Helper()
	pol, diags := policy.LoadFile("testdata/policy.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return netaudit.Config{
		Policy:     pol,
		PolicyName: "testdata/policy.hcl",
		ProxyIPs:   []netip.Addr{netip.MustParseAddr("10.0.0.4")},
		Scope:      netaudit.Scope{Subscription: sub, ResourceGroup: rg},
	}
}

// TestReadFakeARM reads the fixture subscription from the fake ARM through
// the Azure SDK: every list takes more than one page, the first list is
// throttled once and retried no sooner than Retry-After says, effective
// routes come through the long-running operation, and the report matches
// the golden files in every format.
func TestReadFakeARM(t *testing.T) {
	t.Parallel()
	srv := netaudittest.New(t, fixture)
	vnets := armBase + "/providers/Microsoft.Network/virtualNetworks"
	srv.Throttle = []string{vnets}
	r := fakeReader(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := r.Network(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fixtureConfig(t, "")
	r.ReadEffective(ctx, netaudit.Covered(n, cfg), 30*time.Second)
	rep := netaudit.Audit(n, cfg)

	reqs := srv.Requests()
	var throttledAt time.Time
	retried := false
	pages := map[string]int{}
	for _, q := range reqs {
		if q.Method != "GET" || !strings.HasPrefix(q.Path, armBase) {
			continue
		}
		if q.Path == vnets && q.Status == 429 {
			throttledAt = q.At
		}
		if q.Path == vnets && q.Status == 200 && q.Query.Get("$skipToken") == "" {
			retried = !throttledAt.IsZero() && q.At.Sub(throttledAt) >= time.Second
		}
		if q.Status == 200 {
			pages[q.Path]++
		}
	}
	if throttledAt.IsZero() || !retried {
		t.Errorf("want a 429 on %s, then the retry no sooner than Retry-After (1s); requests:\n%s", vnets, dump(reqs))
	}
	for _, typ := range []string{"virtualNetworks", "routeTables", "networkSecurityGroups"} {
		if p := pages[armBase+"/providers/Microsoft.Network/"+typ]; p < 2 {
			t.Errorf("%s: %d pages read, want every page (at least 2)\n%s", typ, p, dump(reqs))
		}
	}
	golden(t, "testdata/audit", rep)
}

// TestReadFakeARMResourceGroup reads one resource group: the VNet of
// another group is not read, but the route table a subnet uses there is,
// by ID.
func TestReadFakeARMResourceGroup(t *testing.T) {
	t.Parallel()
	srv := netaudittest.New(t, fixture)
	srv.PageSize = 1
	r := fakeReader(t, srv)
	n, err := r.Network(context.Background(), "rg-net")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range n.Subnets {
		ids = append(ids, s.ID)
		if strings.Contains(s.ID, "/vnet-app/") {
			t.Errorf("subnet %s of rg-app read", s.ID)
		}
		if s.Name == "api" && (s.RouteTable == nil || !strings.HasSuffix(s.RouteTable.ID, "/resourceGroups/rg-app/providers/Microsoft.Network/routeTables/rt-api")) {
			t.Errorf("subnet api: route table %+v, want rt-api of rg-app", s.RouteTable)
		}
	}
	if len(ids) != 9 {
		t.Errorf("read %d subnets, want the 9 of rg-net's VNets:\n%s", len(ids), strings.Join(ids, "\n"))
	}
	rep := netaudit.Audit(n, fixtureConfig(t, "rg-net"))
	if len(rep.Findings) == 0 {
		t.Error("no findings")
	}
	got := false
	for _, q := range srv.Requests() {
		got = got || (q.Method == "GET" && q.Path == armBase+"/resourceGroups/rg-app/providers/Microsoft.Network/routeTables/rt-api" && q.Status == 200)
	}
	if !got {
		t.Errorf("rt-api was not read by ID:\n%s", dump(srv.Requests()))
	}
}

// TestReadFakeARMErrors: a credential Entra ID refuses and a resource
// group that does not exist are errors that say what happened.
func TestReadFakeARMErrors(t *testing.T) {
	t.Parallel()
	srv := netaudittest.New(t, fixture)
	_, err := fakeReader(t, srv).Network(context.Background(), "rg-none")
	if err == nil || !strings.Contains(err.Error(), "404 ResourceGroupNotFound: Resource group 'rg-none' could not be found") {
		t.Errorf("missing resource group: %v", err)
	}
	r := fakeReaderWith(t, srv, "not-the-secret")
	_, err = r.Network(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("refused credential: %v", err)
	}
}

func dump(reqs []netaudittest.Request) string {
	var b strings.Builder
	for _, q := range reqs {
		fmt.Fprintf(&b, "%s %s %s?%s %d\n", q.At.Format("15:04:05.000"), q.Method, q.Path, q.Query.Encode(), q.Status)
	}
	return b.String()
}

// golden compares the report in every format with base.{txt,md,json};
// -update rewrites them.
func golden(t *testing.T, base string, rep *netaudit.Report) {
	t.Helper()
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for ext, got := range map[string][]byte{".txt": rep.Text(), ".md": rep.Markdown(), ".json": js} {
		path := base + ext
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs (go test ./internal/netaudit -update rewrites it); got:\n%s", path, got)
		}
	}
}
