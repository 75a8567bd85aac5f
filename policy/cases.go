package policy

import (
	"net/netip"
	"os"

	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Case is one offline assertion about a policy, from a cases file:
//
//	case "arm from workloads" {
//	  client = "10.0.1.5"
//	  target = "management.azure.com:443" # port 443 if absent
//	  expect = "allow"                    # allow | deny | would_deny
//	  rule   = "arm"                      # optional: the rule that must allow it
//	  reason = "no_rule"                  # optional: the reason it must be denied for
//	}
type Case struct {
	Name   string
	Client netip.Addr
	Target string
	Expect Verdict
	Rule   string
	Reason string
	Range  hcl.Range // the case block, for failure reports
}

type casesFile struct {
	Cases []*caseSchema `hcl:"case,block"`
}

type caseSchema struct {
	Name     string    `hcl:"name,label"`
	Client   string    `hcl:"client"`
	Target   string    `hcl:"target"`
	Expect   string    `hcl:"expect"`
	Rule     *string   `hcl:"rule,optional"`
	Reason   *string   `hcl:"reason,optional"`
	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}

// LoadCasesFile reads a cases file. Every problem is a diagnostic with its
// position.
func LoadCasesFile(path string) ([]Case, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read cases file", Detail: err.Error()}}
	}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, diags
	}
	var cf casesFile
	if diags := gohcl.DecodeBody(f.Body, nil, &cf); diags.HasErrors() {
		return nil, diags
	}
	var out []Case
	seen := map[string]hcl.Range{}
	for _, cs := range cf.Cases {
		ctx := cs.DefRange.Ptr()
		attrs, _ := cs.Body.JustAttributes()
		at := func(name string) *hcl.Range {
			if a, ok := attrs[name]; ok {
				return a.Expr.Range().Ptr()
			}
			return ctx
		}
		c := Case{Name: cs.Name, Target: cs.Target, Expect: Verdict(cs.Expect), Range: cs.DefRange}
		if prev, dup := seen[cs.Name]; dup {
			diags = append(diags, errorf(ctx, ctx, "Duplicate case", "A case named %q is already defined; previous definition at %s.", cs.Name, text.Pos(prev)))
		}
		seen[cs.Name] = cs.DefRange
		ip, err := netip.ParseAddr(cs.Client)
		if err != nil {
			diags = append(diags, errorf(at("client"), ctx, "Invalid client", "%q is not an IP address; write the client's address, like client = \"10.0.1.5\".", cs.Client))
		}
		c.Client = ip
		switch c.Expect {
		case VerdictAllow, VerdictDeny, VerdictWouldDeny:
		default:
			diags = append(diags, errorf(at("expect"), ctx, "Invalid expect", "%q is not a decision; use \"allow\", \"deny\" or \"would_deny\".", cs.Expect))
		}
		if cs.Rule != nil {
			c.Rule = *cs.Rule
			if c.Expect != VerdictAllow {
				diags = append(diags, errorf(at("rule"), ctx, "Rule without allow", "rule names the rule that allows the target, so it needs expect = \"allow\"."))
			}
		}
		if cs.Reason != nil {
			c.Reason = *cs.Reason
			if c.Expect == VerdictAllow {
				diags = append(diags, errorf(at("reason"), ctx, "Reason with allow", "reason says why the target is denied, so it needs expect = \"deny\" or \"would_deny\"."))
			}
		}
		out = append(out, c)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return out, diags
}
