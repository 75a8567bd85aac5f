// Package manpage turns a command's help texts (its -h output and each
// subcommand's) into a man(7) page, so that the Debian package's azegress(1)
// says what the binary says and cannot drift from it.
package manpage

import (
	"fmt"
	"io"
	"strings"
)

// Page is what the man page is made of.
type Page struct {
	Name    string // the command: "azegress"
	Section string // "1"
	Date    string // the page's date, YYYY-MM-DD (the build's commit date, for a reproducible package)
	Source  string // the footer's source: "azegress 1.2.3"
	Manual  string // the header's manual: "User Commands"

	// Usage is the top-level help: a one-line summary, then "Usage:" and
	// one indented synopsis line per command, then prose.
	Usage    string
	Commands []Command // in the order of Usage's synopsis
	SeeAlso  []string  // "systemctl(1)"
}

// Command is one subcommand's help as its -h prints it: Go's flag package
// defaults ("  -name type" then "    \tdescription"), optionally after a
// "usage: ..." line and prose.
type Command struct {
	Name string
	Help string
}

// Synopsis returns the command names of a top-level usage text, in order:
// the second word of each indented "NAME COMMAND ..." line after "Usage:".
func Synopsis(name, usage string) []string {
	var cmds []string
	for _, l := range synopsisLines(usage) {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == name {
			cmds = append(cmds, f[1])
		}
	}
	return cmds
}

func synopsisLines(usage string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(usage, "\n") {
		switch {
		case strings.TrimSpace(l) == "Usage:":
			in = true
		case in && strings.HasPrefix(l, "  "):
			out = append(out, strings.TrimSpace(l))
		case in:
			return out
		}
	}
	return out
}

// Render writes p as man(7) source.
func Render(w io.Writer, p Page) error {
	var b strings.Builder
	summary, _, _ := strings.Cut(strings.TrimSpace(p.Usage), "\n")
	summary = strings.TrimSuffix(strings.TrimPrefix(summary, p.Name+":"), ".")
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(p.Name)), p.Section, quote(p.Date), quote(p.Source), quote(p.Manual))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", esc(p.Name), esc(strings.TrimSpace(summary)))

	b.WriteString(".SH SYNOPSIS\n")
	synopsis := map[string]string{}
	for i, l := range synopsisLines(p.Usage) {
		if i > 0 {
			b.WriteString(".br\n")
		}
		f := strings.Fields(l)
		if len(f) > 1 {
			synopsis[f[1]] = strings.Join(f, " ")
		}
		fmt.Fprintf(&b, ".B %s\n", esc(f[0]))
		if rest := strings.TrimSpace(strings.TrimPrefix(l, f[0])); rest != "" {
			b.WriteString(esc(rest) + "\n")
		}
	}

	b.WriteString(".SH DESCRIPTION\n")
	for _, l := range afterSynopsis(p.Usage) {
		b.WriteString(line(l))
	}

	b.WriteString(".SH COMMANDS\n")
	for _, c := range p.Commands {
		fmt.Fprintf(&b, ".SS %s\n", esc(c.Name))
		renderHelp(&b, c, synopsis[c.Name])
	}

	if len(p.SeeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range p.SeeAlso {
			ref, sec, ok := strings.Cut(s, "(")
			if !ok {
				return fmt.Errorf("manpage: see-also %q is not NAME(SECTION)", s)
			}
			sep := ","
			if i == len(p.SeeAlso)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, ".BR %s (%s)%s\n", esc(ref), strings.TrimSuffix(sec, ")"), sep)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// afterSynopsis returns the usage text's lines after the synopsis block,
// without leading and trailing blank lines.
func afterSynopsis(usage string) []string {
	lines := strings.Split(usage, "\n")
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i]) != "Usage:" {
		i++
	}
	for i++; i < len(lines) && strings.HasPrefix(lines[i], "  "); i++ {
	}
	return trimBlank(lines[i:])
}

// renderHelp writes one command's help: its usage line in bold, prose as
// paragraphs, indented prose as literal text, and each flag as a tagged
// paragraph.
func renderHelp(b *strings.Builder, c Command, synopsis string) {
	lines := trimBlank(strings.Split(c.Help, "\n"))
	if len(lines) > 0 && strings.HasPrefix(lines[0], "Usage of ") {
		// Go's default usage line says nothing the synopsis does not.
		lines = lines[1:]
		if synopsis != "" {
			fmt.Fprintf(b, ".B %s\n", esc(synopsis))
			b.WriteString(".PP\n")
		}
	}
	inFlags := false
	for _, l := range lines {
		switch {
		case strings.HasPrefix(strings.ToLower(l), "usage: "):
			fmt.Fprintf(b, ".B %s\n.PP\n", esc(strings.TrimSpace(l[len("usage: "):])))
		case strings.HasPrefix(l, "  -"):
			head, desc, _ := strings.Cut(strings.TrimSpace(l), "\t")
			fmt.Fprintf(b, ".TP\n.B %s\n", esc(head))
			if desc != "" {
				b.WriteString(esc(desc) + "\n")
			}
			inFlags = true
		case inFlags && strings.HasPrefix(l, "    \t"):
			b.WriteString(esc(strings.TrimPrefix(l, "    \t")) + "\n")
		default:
			if inFlags {
				b.WriteString(".PP\n")
				inFlags = false
			}
			b.WriteString(line(l))
		}
	}
}

// line renders one prose line: blank lines end a paragraph, indented lines
// (examples, commands to type) stay as they are.
func line(l string) string {
	switch {
	case strings.TrimSpace(l) == "":
		return ".PP\n"
	case strings.HasPrefix(l, " "):
		return ".nf\n" + esc(l) + "\n.fi\n"
	default:
		return esc(l) + "\n"
	}
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// esc makes text safe as troff input: backslashes are printed, a line that
// would start with a control character does not, and hyphens are the
// minus signs options are typed with.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	s = strings.ReplaceAll(s, "\t", " ")
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// quote is a .TH argument: in double quotes, which troff arguments cannot escape.
func quote(s string) string {
	return `"` + strings.ReplaceAll(esc(s), `"`, `''`) + `"`
}
