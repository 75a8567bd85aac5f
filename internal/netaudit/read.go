package netaudit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v6"
)

// Reader reads a subscription's network from Azure Resource Manager. Its
// clients retry throttled (429) and failed (5xx) requests as the SDK's
// retry policy does, honouring Retry-After.
type Reader struct {
	sub  string
	vnet *armnetwork.VirtualNetworksClient
	rt   *armnetwork.RouteTablesClient
	nsg  *armnetwork.SecurityGroupsClient
	nic  *armnetwork.InterfacesClient
	// Poll is how often a long-running operation is polled when ARM does
	// not say (Retry-After); zero means every 5 seconds.
	Poll time.Duration
}

// NewReader returns a Reader of subscription sub. opts come from
// ClientOptions (and may set retries).
func NewReader(sub string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Reader, error) {
	f, err := armnetwork.NewClientFactory(sub, cred, opts)
	if err != nil {
		return nil, err
	}
	return &Reader{
		sub:  sub,
		vnet: f.NewVirtualNetworksClient(),
		rt:   f.NewRouteTablesClient(),
		nsg:  f.NewSecurityGroupsClient(),
		nic:  f.NewInterfacesClient(),
	}, nil
}

// Network reads the virtual networks of the subscription, or of one
// resource group if rg is not empty, with the route tables and NSGs in
// the same scope, and any other one a subnet refers to.
func (r *Reader) Network(ctx context.Context, rg string) (*Network, error) {
	var vnets []*armnetwork.VirtualNetwork
	var tables []*armnetwork.RouteTable
	var nsgs []*armnetwork.SecurityGroup
	var err error
	where := "subscription " + r.sub
	if rg == "" {
		vnets, err = collect(ctx, "virtual networks", r.vnet.NewListAllPager(nil), func(p armnetwork.VirtualNetworksClientListAllResponse) []*armnetwork.VirtualNetwork { return p.Value })
		if err == nil {
			tables, err = collect(ctx, "route tables", r.rt.NewListAllPager(nil), func(p armnetwork.RouteTablesClientListAllResponse) []*armnetwork.RouteTable { return p.Value })
		}
		if err == nil {
			nsgs, err = collect(ctx, "network security groups", r.nsg.NewListAllPager(nil), func(p armnetwork.SecurityGroupsClientListAllResponse) []*armnetwork.SecurityGroup { return p.Value })
		}
	} else {
		where = "resource group " + rg + " of " + where
		vnets, err = collect(ctx, "virtual networks", r.vnet.NewListPager(rg, nil), func(p armnetwork.VirtualNetworksClientListResponse) []*armnetwork.VirtualNetwork { return p.Value })
		if err == nil {
			tables, err = collect(ctx, "route tables", r.rt.NewListPager(rg, nil), func(p armnetwork.RouteTablesClientListResponse) []*armnetwork.RouteTable { return p.Value })
		}
		if err == nil {
			nsgs, err = collect(ctx, "network security groups", r.nsg.NewListPager(rg, nil), func(p armnetwork.SecurityGroupsClientListResponse) []*armnetwork.SecurityGroup { return p.Value })
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	// A subnet may use a route table or NSG of another resource group.
	have := map[string]bool{}
	for _, t := range tables {
		have[key(str(t.ID))] = true
	}
	for _, g := range nsgs {
		have[key(str(g.ID))] = true
	}
	for _, v := range vnets {
		if v.Properties == nil {
			continue
		}
		for _, s := range v.Properties.Subnets {
			if s.Properties == nil {
				continue
			}
			if ref := s.Properties.RouteTable; ref != nil && !have[key(str(ref.ID))] {
				t, err := r.routeTable(ctx, str(ref.ID))
				if err != nil {
					return nil, fmt.Errorf("subnet %s: %w", str(s.ID), err)
				}
				tables, have[key(str(ref.ID))] = append(tables, t), true
			}
			if ref := s.Properties.NetworkSecurityGroup; ref != nil && !have[key(str(ref.ID))] {
				g, err := r.securityGroup(ctx, str(ref.ID))
				if err != nil {
					return nil, fmt.Errorf("subnet %s: %w", str(s.ID), err)
				}
				nsgs, have[key(str(ref.ID))] = append(nsgs, g), true
			}
		}
	}
	return FromARM(vnets, tables, nsgs)
}

// collect reads every page of a pager of what.
func collect[P, T any](ctx context.Context, what string, pager *runtime.Pager[P], items func(P) []*T) ([]*T, error) {
	var out []*T
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, describe(err))
		}
		out = append(out, items(page)...)
	}
	return out, nil
}

func (r *Reader) routeTable(ctx context.Context, id string) (*armnetwork.RouteTable, error) {
	rg, name, err := r.childOf(id, "Microsoft.Network/routeTables")
	if err != nil {
		return nil, err
	}
	resp, err := r.rt.Get(ctx, rg, name, nil)
	if err != nil {
		return nil, fmt.Errorf("reading route table %s: %w", id, describe(err))
	}
	return &resp.RouteTable, nil
}

func (r *Reader) securityGroup(ctx context.Context, id string) (*armnetwork.SecurityGroup, error) {
	rg, name, err := r.childOf(id, "Microsoft.Network/networkSecurityGroups")
	if err != nil {
		return nil, err
	}
	resp, err := r.nsg.Get(ctx, rg, name, nil)
	if err != nil {
		return nil, fmt.Errorf("reading network security group %s: %w", id, describe(err))
	}
	return &resp.SecurityGroup, nil
}

// childOf returns the resource group and name of id, a resource of type
// typ directly in a resource group of the Reader's subscription; anything
// else would make a Get address another resource than id.
func (r *Reader) childOf(id, typ string) (rg, name string, err error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return "", "", fmt.Errorf("resource ID %q: %w", id, err)
	}
	if !strings.EqualFold(rid.ResourceType.String(), typ) || !strings.EqualFold(rid.SubscriptionID, r.sub) || rid.Parent == nil || rid.Parent.ResourceType.String() != arm.ResourceGroupResourceType.String() {
		return "", "", fmt.Errorf("resource ID %q is not a %s of subscription %s", id, typ, r.sub)
	}
	return rid.ResourceGroupName, rid.Name, nil
}

// ReadEffective reads the effective route table of one network interface
// per subnet into the subnet, a few at a time, each within timeout (the
// operation needs the interface's VM running, and takes seconds to
// minutes). A failure is kept in the subnet's Effective.Err, not
// returned: the route table checks do not need it.
func (r *Reader) ReadEffective(ctx context.Context, subnets []*Subnet, timeout time.Duration) {
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, s := range subnets {
		nic := effectiveNIC(s)
		if nic == "" {
			if len(s.NICs) > 0 {
				s.Effective = &Effective{NIC: s.NICs[0], Err: "only scale set instances' interfaces, whose effective routes this audit does not read"}
			}
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			routes, err := r.effectiveRoutes(ctx, nic)
			if err != nil {
				s.Effective = &Effective{NIC: nic, Err: err.Error()}
				return
			}
			s.Effective = EffectiveFromARM(nic, routes)
		})
	}
	wg.Wait()
}

// effectiveNIC is the first standalone network interface of s (the API
// has no effective routes for scale set instances' interfaces).
func effectiveNIC(s *Subnet) string {
	for _, n := range s.NICs {
		if !strings.Contains(strings.ToLower(n), "/virtualmachinescalesets/") {
			return n
		}
	}
	return ""
}

func (r *Reader) effectiveRoutes(ctx context.Context, nic string) ([]*armnetwork.EffectiveRoute, error) {
	rg, name, err := r.childOf(nic, "Microsoft.Network/networkInterfaces")
	if err != nil {
		return nil, err
	}
	poller, err := r.nic.BeginGetEffectiveRouteTable(ctx, rg, name, nil)
	if err != nil {
		return nil, describe(err)
	}
	freq := r.Poll
	if freq == 0 {
		freq = 5 * time.Second
	}
	resp, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: freq})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, errors.New("timed out: raise -effective-routes-timeout, or check the VM is running")
		}
		return nil, describe(err)
	}
	if resp.NextLink != nil && *resp.NextLink != "" {
		return nil, errors.New("the effective route table has more than one page, and this audit reads only whole tables")
	}
	return resp.Value, nil
}

// describe shortens an ARM error to its status, code and message (the
// SDK's own text adds the URL and the whole body), and says what to do
// about the usual ones.
func describe(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	msg := ""
	if re.RawResponse != nil {
		var body struct {
			Error struct{ Message string } `json:"error"`
		}
		if b, rerr := runtime.Payload(re.RawResponse); rerr == nil && json.Unmarshal(b, &body) == nil {
			msg = body.Error.Message
		}
	}
	out := fmt.Sprintf("%d %s", re.StatusCode, re.ErrorCode)
	if re.StatusCode < 300 {
		out = "failed: " + re.ErrorCode // a long-running operation's status
	}
	if msg != "" {
		out += ": " + msg
	}
	switch re.StatusCode {
	case http.StatusUnauthorized:
		out += " (the credential's token was refused: check the cloud and tenant)"
	case http.StatusForbidden:
		out += " (give the identity the Reader role, or Network Reader permissions, on the scope; -effective-routes also needs Microsoft.Network/networkInterfaces/effectiveRouteTable/action)"
	}
	return errors.New(out)
}
