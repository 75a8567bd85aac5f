package policy

import (
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Load parses, validates and compiles the HCL policy in src. filename is
// used in diagnostics and returned by Policy.Filename; it is not opened.
//
// Load reports every problem it finds in one pass, sorted by position. The
// returned policy is nil if any diagnostic is an error; warnings alone do
// not prevent loading. Every error diagnostic has a Subject range.
func Load(filename string, src []byte) (*Policy, hcl.Diagnostics) {
	return load(filename, src, true)
}

// load is Load, with fast false only to let tests compare the two parse
// paths (parse.go).
func load(filename string, src []byte, fast bool) (*Policy, hcl.Diagnostics) {
	var fs *fileSchema
	var diags hcl.Diagnostics
	ok := false
	if fast {
		fs, ok = parseFast(src, filename)
	}
	if !ok {
		fs, diags = parseSyntax(src, filename)
		if fs == nil {
			return nil, finishDiags(diags, nil, filename)
		}
	}

	c := &compiler{filename: filename}
	p := c.compile(fs)
	diags = append(diags, c.diags...)
	diags = finishDiags(diags, func() []hcl.Range { return blockRanges(fs) }, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	return p, diags
}

// LoadFile reads the policy file at path and calls Load. A read error is
// returned as a single error diagnostic, without a Subject, naming path.
func LoadFile(path string) (*Policy, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read policy file",
			Detail:   err.Error(),
		}}
	}
	return Load(path, src)
}

// blockRange returns the whole range of a block, from its definition to
// its closing brace.
func blockRange(def hcl.Range, body hcl.Body) hcl.Range {
	if b, ok := body.(*hclsyntax.Body); ok && b.SrcRange.Filename == def.Filename {
		return hcl.RangeBetween(def, b.SrcRange)
	}
	return def
}

// blockRanges returns the whole ranges of the blocks the compiler reads:
// the first entra block, every client, allow and deny block, and each
// client's first identity and limits blocks.
func blockRanges(fs *fileSchema) []hcl.Range {
	var rs []hcl.Range
	if len(fs.Entra) > 0 {
		rs = append(rs, fs.Entra[0].rng)
	}
	for _, cs := range fs.Clients {
		rs = append(rs, cs.rng)
		if len(cs.Identity) > 0 {
			rs = append(rs, cs.Identity[0].rng)
		}
		if len(cs.Limits) > 0 {
			rs = append(rs, cs.Limits[0].rng)
		}
		for _, as := range cs.Allows {
			rs = append(rs, as.rng)
		}
		for _, ds := range cs.Denies {
			rs = append(rs, ds.rng)
		}
	}
	return rs
}

// finishDiags gives each diagnostic without a Context the innermost block
// (of those blocks returns, called only if needed) that encloses its
// Subject, gives every error a Subject, and sorts the diagnostics by
// position so that output is stable and reads top to bottom.
func finishDiags(diags hcl.Diagnostics, blocksFunc func() []hcl.Range, filename string) hcl.Diagnostics {
	var blocks []hcl.Range
	for _, d := range diags {
		if d.Subject == nil && d.Severity == hcl.DiagError {
			if d.Context != nil {
				d.Subject = d.Context
			} else {
				d.Subject = &hcl.Range{
					Filename: filename,
					Start:    hcl.InitialPos,
					End:      hcl.InitialPos,
				}
			}
		}
		if d.Subject == nil || d.Context != nil {
			continue
		}
		if blocks == nil && blocksFunc != nil {
			blocks = blocksFunc()
		}
		var best *hcl.Range
		for i := range blocks {
			b := &blocks[i]
			if b.Filename != d.Subject.Filename || !b.ContainsOffset(d.Subject.Start.Byte) {
				continue
			}
			if best == nil || b.End.Byte-b.Start.Byte < best.End.Byte-best.Start.Byte {
				best = b
			}
		}
		if best != nil {
			ctx := *best
			d.Context = &ctx
		}
	}
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
	return diags
}
