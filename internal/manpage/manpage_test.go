package manpage

import (
	"strings"
	"testing"
)

const usage = `tool: does things.

Usage:
  tool serve [-listen ADDR]
  tool check FILE...

Run "tool COMMAND -h" for a command's flags.
`

func TestSynopsis(t *testing.T) {
	if got := strings.Join(Synopsis("tool", usage), " "); got != "serve check" {
		t.Errorf("Synopsis = %q, want %q", got, "serve check")
	}
}

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
		want []string // lines of the output, in order
		not  []string // substrings that must not appear
	}{
		{
			name: "go flag defaults",
			cmd:  Command{Name: "serve", Help: "Usage of serve:\n  -listen address\n    \tproxy listen address (default \"127.0.0.1:3128\")\n  -v\tverbose\n"},
			want: []string{".SS serve", `.B tool serve [\-listen ADDR]`, ".TP", `.B \-listen address`,
				`proxy listen address (default "127.0.0.1:3128")`, ".TP", `.B \-v`, "verbose"},
			not: []string{"Usage of"},
		},
		{
			name: "usage line, prose, an indented example",
			cmd:  Command{Name: "check", Help: "usage: tool check FILE...\n\nChecks files.\n.dot starts a line\n  tool check a.hcl\n  -lint\n    \talso lint\n"},
			want: []string{".SS check", `.B tool check FILE...`, ".PP", "Checks files.", `\&.dot starts a line`,
				".nf", "  tool check a.hcl", ".fi", ".TP", `.B \-lint`, "also lint"},
		},
		{
			name: "backslashes are printed",
			cmd:  Command{Name: "check", Help: `usage: tool check C:\dir`},
			want: []string{`.B tool check C:\edir`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			p := Page{Name: "tool", Section: "1", Date: "2026-01-02", Source: "tool 1.0", Manual: "User Commands",
				Usage: usage, Commands: []Command{tc.cmd}, SeeAlso: []string{"systemctl(1)", "nft(8)"}}
			if err := Render(&b, p); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			head := []string{`.TH "TOOL" 1 "2026\-01\-02" "tool 1.0" "User Commands"`, ".SH NAME", `tool \- does things`,
				".SH SYNOPSIS", ".B tool", `serve [\-listen ADDR]`, ".br", ".B tool", "check FILE...",
				".SH DESCRIPTION", `Run "tool COMMAND \-h" for a command's flags.`, ".SH COMMANDS"}
			tail := []string{".SH SEE ALSO", ".BR systemctl (1),", ".BR nft (8)"}
			lines := strings.Split(out, "\n")
			i := 0
			for _, w := range append(append(head, tc.want...), tail...) {
				for i < len(lines) && lines[i] != w {
					i++
				}
				if i == len(lines) {
					t.Fatalf("no line %q in order; got:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}
