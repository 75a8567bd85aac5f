package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/azegress/azegress/policy/internal/text"
	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostics renders diags in the short one-line form that editors
// and CI annotations understand:
//
//	file:line:col: Summary; Detail
//	file:line:col: warning: Summary; Detail
//
// "; Detail" is omitted when the detail is empty, and newlines inside a
// detail become spaces. A diagnostic without a subject range prints
// "file: Summary; Detail", where file is "policy" if the file is unknown.
// Every line ends in "\n". For a rendering with source snippets, use
// hcl.NewDiagnosticTextWriter.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		if d == nil {
			continue
		}
		switch {
		case d.Subject != nil:
			b.WriteString(text.File(d.Subject.Filename))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Subject.Start.Line))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Subject.Start.Column))
		case d.Context != nil:
			b.WriteString(text.File(d.Context.Filename))
		default:
			b.WriteString("policy")
		}
		b.WriteString(": ")
		if d.Severity == hcl.DiagWarning {
			b.WriteString("warning: ")
		}
		b.WriteString(text.OneLine(d.Summary))
		if d.Detail != "" {
			b.WriteString("; ")
			b.WriteString(text.OneLine(d.Detail))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// errorf returns an error diagnostic. subject and context may be nil.
func errorf(subject, context *hcl.Range, summary, detailFormat string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detailFormat, args...),
		Subject:  subject,
		Context:  context,
	}
}

// warnf returns a warning diagnostic.
func warnf(subject, context *hcl.Range, summary, detailFormat string, args ...any) *hcl.Diagnostic {
	d := errorf(subject, context, summary, detailFormat, args...)
	d.Severity = hcl.DiagWarning
	return d
}
