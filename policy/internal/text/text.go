package text

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// File is the file name diagnostics show: name, or "policy" if it is
// unknown.
func File(name string) string {
	if name == "" {
		return "policy"
	}
	return name
}

// Pos formats the start of r as file:line:col, the form diagnostics use
// for "previous definition at".
func Pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", File(r.Filename), r.Start.Line, r.Start.Column)
}

// OneLine joins the lines of s with single spaces.
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// QuoteList quotes each of ss and joins them with ", ", as an HCL list's
// elements: "a", "b".
func QuoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Plural is n and what, with an "s" unless n is 1: "1 day", "3 days".
func Plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Prefix is pfx as a policy writes it: its address alone for a single
// address.
func Prefix(pfx netip.Prefix) string {
	if pfx.IsSingleIP() {
		return pfx.Addr().String()
	}
	return pfx.String()
}
