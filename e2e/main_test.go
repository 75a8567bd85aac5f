package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// azegressBin is the azegress binary under test, built once for the package.
var azegressBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azegress-e2e-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	azegressBin = filepath.Join(dir, "azegress")
	out, err := exec.Command("go", "build", "-o", azegressBin, "github.com/azegress/azegress/cmd/azegress").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building azegress: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
