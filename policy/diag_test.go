package policy

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestFormatDiagnostics(t *testing.T) {
	t.Parallel()
	rng := &hcl.Range{
		Filename: "p.hcl",
		Start:    hcl.Pos{Line: 5, Column: 14, Byte: 80},
		End:      hcl.Pos{Line: 5, Column: 17, Byte: 83},
	}
	for _, tt := range []struct {
		name string
		diag *hcl.Diagnostic
		want string
	}{
		{
			name: "error",
			diag: &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port", Detail: "Port 0 is out of range.", Subject: rng},
			want: "p.hcl:5:14: Invalid port; Port 0 is out of range.\n",
		},
		{
			name: "warning",
			diag: &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Ignored burst", Detail: "No rate.", Subject: rng},
			want: "p.hcl:5:14: warning: Ignored burst; No rate.\n",
		},
		{
			name: "no detail",
			diag: &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Bad", Subject: rng},
			want: "p.hcl:5:14: Bad\n",
		},
		{
			name: "multi-line detail",
			diag: &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Bad", Detail: "One.\n  Two.", Subject: rng},
			want: "p.hcl:5:14: Bad; One. Two.\n",
		},
		{
			name: "no subject, context file",
			diag: &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Bad", Detail: "Why.", Context: rng},
			want: "p.hcl: Bad; Why.\n",
		},
		{
			name: "no file",
			diag: &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read policy file", Detail: "open x: no such file or directory"},
			want: "policy: Cannot read policy file; open x: no such file or directory\n",
		},
		{
			name: "subject without file name",
			diag: &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Bad", Subject: &hcl.Range{Start: hcl.InitialPos}},
			want: "policy:1:1: warning: Bad\n",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatDiagnostics(hcl.Diagnostics{tt.diag}); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := FormatDiagnostics(nil); got != "" {
		t.Errorf("FormatDiagnostics(nil) = %q, want empty", got)
	}
}
