package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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

// startDaemon starts cmd, made by exec.CommandContext with a context that
// cancel ends: cancel sends SIGTERM, and SIGKILL nhLimit later. The channel
// receives cmd's exit; a reader that does not own it puts it back. Cleanup
// stops cmd, reports an exit that was not clean, and logs logText if the
// test failed.
func startDaemon(t *testing.T, name string, cmd *exec.Cmd, cancel context.CancelFunc, logText func() string) chan error {
	t.Helper()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = nhLimit
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		if err := <-exited; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, logText())
		}
	})
	return exited
}
