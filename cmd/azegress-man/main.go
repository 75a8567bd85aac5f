// Command azegress-man writes azegress(1), the man page of the Debian
// package, from a built azegress binary's help: `azegress -h` and each
// command's -h. `make deb` runs it; the rendering is in internal/manpage.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/azegress/azegress/internal/manpage"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azegress-man", flag.ContinueOnError)
	fs.SetOutput(stderr)
	date := fs.String("date", "", "the page's date, YYYY-MM-DD (required: the commit's date keeps the package reproducible)")
	version := fs.String("version", "", "the release named in the page's footer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress-man -date YYYY-MM-DD [-version V] AZEGRESS-BINARY > azegress.1")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *date == "" {
		fs.Usage()
		return 2
	}
	bin := fs.Arg(0)
	usage, err := help(bin, "-h")
	if err != nil {
		fmt.Fprintf(stderr, "azegress-man: %v\n", err)
		return 1
	}
	p := manpage.Page{
		Name: "azegress", Section: "1", Date: *date, Source: "azegress " + *version, Manual: "User Commands",
		Usage:   usage,
		SeeAlso: []string{"systemctl(1)", "journalctl(1)", "nft(8)"},
	}
	for _, c := range manpage.Synopsis("azegress", usage) {
		h, err := help(bin, c, "-h")
		if err != nil {
			fmt.Fprintf(stderr, "azegress-man: %v\n", err)
			return 1
		}
		p.Commands = append(p.Commands, manpage.Command{Name: c, Help: h})
	}
	if err := manpage.Render(stdout, p); err != nil {
		fmt.Fprintf(stderr, "azegress-man: %v\n", err)
		return 1
	}
	return 0
}

// help returns what `bin args...` prints: -h writes to stdout or stderr
// and exits 0 or 2 depending on the command, so both streams count and
// only a failure to run at all is an error.
func help(bin string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		return "", fmt.Errorf("%s %v: %v", bin, args, err)
	}
	if out.Len() == 0 {
		return "", fmt.Errorf("%s %v printed no help", bin, args)
	}
	return out.String(), nil
}
