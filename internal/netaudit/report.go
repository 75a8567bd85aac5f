package netaudit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Report is the result of Audit, in the form the package documentation
// gives for its JSON.
type Report struct {
	Scope    Scope          `json:"scope"`
	Policy   string         `json:"policy"`
	ProxyIPs []string       `json:"proxy_ips"`
	Subnets  []SubnetResult `json:"subnets"`
	Findings []Finding      `json:"findings"`
	Notes    []string       `json:"notes"`
}

// SubnetResult is what the audit made of one subnet.
type SubnetResult struct {
	ID       string   `json:"id"`
	Prefixes []string `json:"prefixes"`
	Clients  []string `json:"clients,omitempty"`
	Status   string   `json:"status"`
	Findings int      `json:"findings"`
}

// Finding is one way traffic can get past the proxy, or be refused by
// it: the resource to change, what is wrong and the command that fixes
// it.
type Finding struct {
	Check    string   `json:"check"`
	Resource string   `json:"resource"`
	Subnets  []string `json:"subnets"`
	Clients  []string `json:"clients,omitempty"`
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix"`
	// Command is the Azure CLI to run, one command a line; empty when the
	// fix is in the policy or needs a choice.
	Command string `json:"command,omitempty"`
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (r *Report) scopeText() string {
	s := "subscription " + r.Scope.Subscription
	if r.Scope.ResourceGroup != "" {
		s += ", resource group " + r.Scope.ResourceGroup
	}
	return s
}

// counts summarises the subnets by status, in a fixed order.
func (r *Report) counts() string {
	var parts []string
	for _, st := range []string{StatusChecked, StatusUncovered, StatusProxy, StatusNoWorkloads, StatusInfrastructure} {
		n := 0
		for _, s := range r.Subnets {
			if s.Status == st {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(parts) == 0 {
		return "no subnets"
	}
	return plural(len(r.Subnets), "subnet") + ": " + strings.Join(parts, ", ")
}

func (r *Report) verdict() string {
	if len(r.Findings) == 0 {
		return "No findings: every covered subnet sends its internet traffic through the proxy."
	}
	return plural(len(r.Findings), "finding") + ": traffic can get past the proxy, or the proxy refuses workloads."
}

// Text renders the report for a terminal.
func (r *Report) Text() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "azegress audit-network: %s; proxy %s; policy %s\n", r.scopeText(), strings.Join(r.ProxyIPs, ", "), r.Policy)
	fmt.Fprintf(&b, "%s\n", r.counts())
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n%s: %s\n", f.Check, f.Resource)
		if len(f.Subnets) > 1 || len(f.Subnets) == 1 && f.Subnets[0] != f.Resource {
			fmt.Fprintf(&b, "  subnet:  %s\n", strings.Join(f.Subnets, ", "))
		}
		if len(f.Clients) > 0 {
			fmt.Fprintf(&b, "  clients: %s\n", quoteAll(f.Clients))
		}
		fmt.Fprintf(&b, "  problem: %s\n", f.Problem)
		fmt.Fprintf(&b, "  fix:     %s\n", f.Fix)
		for _, c := range strings.Split(f.Command, "\n") {
			if c != "" {
				fmt.Fprintf(&b, "    $ %s\n", c)
			}
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "note: %s\n", n)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.verdict())
	return b.Bytes()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Markdown renders the report as a review document.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "## Network audit: %s\n\n", md(r.scopeText()))
	fmt.Fprintf(&b, "Proxy `%s`, policy `%s`. %s.\n\n", strings.Join(r.ProxyIPs, "`, `"), r.Policy, md(r.counts()))
	b.WriteString("| subnet | prefixes | client blocks | status | findings |\n|---|---|---|---|---|\n")
	for _, s := range r.Subnets {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %d |\n", s.ID, strings.Join(s.Prefixes, ", "), md(strings.Join(s.Clients, ", ")), s.Status, s.Findings)
	}
	fmt.Fprintf(&b, "\n**%s**\n", md(r.verdict()))
	for i, f := range r.Findings {
		fmt.Fprintf(&b, "\n### %d. `%s`: `%s`\n\n", i+1, f.Check, f.Resource)
		var head []string
		if len(f.Subnets) > 1 || len(f.Subnets) == 1 && f.Subnets[0] != f.Resource {
			head = append(head, "Subnets: `"+strings.Join(f.Subnets, "`, `")+"`")
		}
		if len(f.Clients) > 0 {
			head = append(head, "Client blocks: "+md(quoteAll(f.Clients)))
		}
		if len(head) > 0 {
			b.WriteString(strings.Join(head, "  \n") + "\n\n")
		}
		fmt.Fprintf(&b, "%s\n\n**Fix:** %s\n", md(f.Problem), md(f.Fix))
		if f.Command != "" {
			fmt.Fprintf(&b, "\n```sh\n%s\n```\n", f.Command)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n### Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", md(n))
		}
	}
	return b.Bytes()
}

// md escapes the characters Markdown would read as formatting or a table
// cell's end.
func md(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "<", "&lt;", "`", "\\`").Replace(s)
}
