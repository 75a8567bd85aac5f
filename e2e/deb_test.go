package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Debian package (issue 16, part 1): lintian, then the package installed
// into a Debian bookworm root booted with systemd-nspawn. `make deb-test`
// builds both and passes them in; without them the test skips.

var (
	debFile = flag.String("deb", "", "the Debian package under test (make deb-test)")
	debRoot = flag.String("deb-root", "", "a Debian bookworm root with systemd, curl and procps that the test boots (scripts/deb-root.sh; left unchanged)")
)

const debBootLimit = 90 * time.Second // failure bound for the boot, never a pass condition

func TestDebPackage(t *testing.T) {
	if *debFile == "" || *debRoot == "" {
		t.Skip("needs -deb and -deb-root: make deb-test builds the package and a bookworm root and runs this test")
	}
	deb, err := filepath.Abs(*debFile)
	if err != nil {
		t.Fatal(err)
	}
	pkg := debExtract(t, deb)

	t.Run("chroot", func(t *testing.T) {
		debChroot(t, deb)
	})

	// lintian and the boot take the longest: they run side by side.
	t.Run("lintian", func(t *testing.T) {
		t.Parallel()
		lintian := depTool(t, "lintian")
		out, err := exec.Command(lintian, "--pedantic", "--display-info", deb).CombinedOutput()
		var tags []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && l != "running with root privileges is not recommended!" {
				tags = append(tags, l)
			}
		}
		if err != nil || len(tags) > 0 {
			t.Errorf("lintian %s: %v; fix each tag or justify an override in deploy/debian/lintian-overrides:\n%s", deb, err, strings.Join(tags, "\n"))
		}
	})

	t.Run("contents", func(t *testing.T) {
		// One unit: deploy/systemd's, with the package's binary path.
		want := strings.ReplaceAll(depRead(t, depUnit), "/usr/local/bin/azegress", "/usr/bin/azegress")
		if got := debRead(t, pkg, "/lib/systemd/system/azegress.service"); got != want {
			t.Errorf("the package's azegress.service is not %s with /usr/bin/azegress", depUnit)
		}
		if got, want := debRead(t, pkg, "/etc/azegress/policy.hcl"), depRead(t, "../policies/default.hcl"); got != want {
			t.Errorf("/etc/azegress/policy.hcl is not policies/default.hcl")
		}
		if got := debField(t, deb, "Conffiles"); !strings.Contains(got, "/etc/azegress/policy.hcl") {
			t.Errorf("conffiles %q, want /etc/azegress/policy.hcl", got)
		}
		for _, f := range []string{"/usr/bin/azegress", "/usr/share/man/man1/azegress.1.gz", "/usr/share/azegress/nftables/azegress.nft",
			"/usr/share/azegress/policies/example.hcl", "/usr/share/doc/azegress/copyright", "/usr/share/doc/azegress/changelog.Debian.gz"} {
			if _, err := os.Stat(filepath.Join(pkg, f)); err != nil {
				t.Errorf("package lacks %s: %v", f, err)
			}
		}
	})

	t.Run("depends", func(t *testing.T) {
		// Every program the unit runs besides azegress comes from a package
		// the .deb depends on, or an essential one: a minimal system has no
		// procps, so no /bin/kill for `systemctl reload`.
		depends := debField(t, deb, "Depends")
		admin := filepath.Join(*debRoot, "var/lib/dpkg")
		keys := depUnitFile(t, filepath.Join(pkg, "lib/systemd/system/azegress.service"))
		for _, k := range []string{"ExecStartPre", "ExecStart", "ExecReload", "ExecStop", "ExecStartPost"} {
			for _, v := range keys[k] {
				prog := strings.TrimLeft(strings.Fields(v)[0], "-+!@:")
				if prog == "/usr/bin/azegress" {
					continue
				}
				out, err := exec.Command("dpkg", "--admindir="+admin, "-S", prog).Output()
				if err != nil {
					t.Errorf("%s=%s: no package in %s has %s: %v", k, v, *debRoot, prog, err)
					continue
				}
				owner, _, _ := strings.Cut(strings.TrimSpace(string(out)), ":")
				ess, _ := exec.Command("dpkg-query", "--admindir="+admin, "-W", "-f=${Essential}", owner).Output()
				if string(ess) != "yes" && !slices.Contains(debDepNames(depends), owner) {
					t.Errorf("%s=%s runs %s from %s, which is not essential and not in the package's Depends (%q)", k, v, prog, owner, depends)
				}
			}
		}
	})

	t.Run("boot", func(t *testing.T) {
		t.Parallel()
		debBoot(t, deb)
	})
}

// debBoot boots the root with systemd-nspawn (a throwaway copy of it, no
// network but loopback), installs the package with apt, and checks it as
// an operator would.
func debBoot(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		depMissing(t, "booting a root with systemd-nspawn needs root")
	}
	nspawn := depTool(t, "systemd-nspawn")
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		depMissing(t, "systemd-nspawn -b needs a cgroup file system at /sys/fs/cgroup: %v", err)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	// --keep-unit and --register=no: the host's PID 1 need not be systemd
	// (it is not on the machines the tests run on), nspawn asks it nothing.
	var console strings.Builder
	cmd := exec.CommandContext(ctx, nspawn, "--quiet", "--boot", "--ephemeral", "--register=no", "--keep-unit", "--private-network",
		"--machine=azegress-debtest-"+strconv.Itoa(os.Getpid()), "--directory="+*debRoot, "--bind-ro="+deb+":/root/azegress.deb")
	cmd.Stdout, cmd.Stderr = &console, &console
	exited := startDaemon(t, "systemd-nspawn", cmd, cancel, console.String)
	leader := debLeader(t, cmd.Process.Pid, exited)
	in := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), debBootLimit)
		defer cancel()
		c := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(leader), "-a", "--", "env", "DEBIAN_FRONTEND=noninteractive"}, args...)...)
		out, err := c.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := in(args...)
		if err != nil {
			t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// Until systemd has set up /run/systemd, systemctl says "offline".
	var state string
	for end := time.Now().Add(debBootLimit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if state, _ = in("systemctl", "is-system-running", "--wait"); state == "running" || state == "degraded" {
			break
		}
	}
	t.Logf("booted in %s: %s", time.Since(start).Round(100*time.Millisecond), state)
	if state != "running" {
		failed, _ := in("systemctl", "--failed", "--no-pager")
		t.Skipf("systemd-nspawn could not boot %s here (the chroot subtest ran the install and purge scripts instead): systemctl is-system-running says %q:\n%s\nsystemd-nspawn:\n%s",
			*debRoot, state, failed, console.String())
	}
	defer func() {
		in("systemctl", "poweroff")
		select {
		case err := <-exited:
			exited <- err
		case <-time.After(debBootLimit):
			t.Errorf("the container did not power off in %s", debBootLimit)
		}
	}()

	must("apt-get", "install", "-y", "/root/azegress.deb")
	if got, _ := in("systemctl", "is-active", "azegress"); got != "active" {
		status, _ := in("systemctl", "status", "--no-pager", "azegress")
		t.Fatalf("after apt install, azegress.service is %q, want active:\n%s", got, status)
	}
	if got, _ := in("systemctl", "is-enabled", "azegress"); got != "enabled" {
		t.Errorf("azegress.service is %q after install, want enabled", got)
	}
	pid := must("systemctl", "show", "--property=MainPID", "--value", "azegress")
	user := must("ps", "-o", "user=", "-p", pid)
	t.Logf("active, enabled, main PID %s runs as %s (%s); %s", pid, user, must("getent", "passwd", "azegress"), must("azegress", "version"))
	if user != "azegress" {
		t.Errorf("the service runs as %q, want the package's system user azegress", user)
	}

	// A client on the proxy's host asks for what the default policy does not allow.
	deny := func(when string) {
		t.Helper()
		var out string
		for end := time.Now().Add(nhLimit); ; {
			out, _ = in("curl", "-s", "-i", "-x", "http://127.0.0.1:3128", "http://example.com/")
			if strings.HasPrefix(out, "HTTP/1.1 403") || time.Now().After(end) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, want := range []string{"HTTP/1.1 403 Forbidden", "X-Azegress-Reason: no_rule",
			`To allow it, add this rule to client "local" in /etc/azegress/policy.hcl`, `hosts = ["example.com"]`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: curl -x http://127.0.0.1:3128 http://example.com/ lacks %q:\n%s", when, want, out)
				return
			}
		}
		t.Logf("%s: %s", when, strings.SplitN(out, "\n", 2)[0])
	}
	deny("after install")

	// systemctl reload with a broken policy: the old one keeps serving and
	// the journal says why. (serve also reloads when the file changes:
	// count the rejections before and after the reload.)
	rejected := func() int {
		j, _ := in("journalctl", "-u", "azegress", "-o", "cat", "--no-pager")
		return strings.Count(j, "policy reload rejected; the previous policy keeps serving")
	}
	good := must("cat", "/etc/azegress/policy.hcl")
	must("sh", "-c", "printf 'client \"local\" {\\n  sources = [\"127.0.0.0/8\"\\n' > /etc/azegress/policy.hcl")
	before := debWait(t, rejected, func(n int) bool { return n > 0 })
	if out, err := in("systemctl", "reload", "azegress"); err != nil {
		t.Errorf("systemctl reload azegress: %v\n%s", err, out)
	}
	debWait(t, rejected, func(n int) bool { return n > before })
	if got, _ := in("systemctl", "is-active", "azegress"); got != "active" {
		t.Errorf("after a reload with a broken policy the unit is %q, want active", got)
	}
	if got := must("systemctl", "show", "--property=MainPID", "--value", "azegress"); got != pid {
		t.Errorf("after the reload the main PID is %s, want %s: the service restarted", got, pid)
	}
	journal := must("journalctl", "-u", "azegress", "-o", "cat", "--no-pager")
	why := regexp.MustCompile(`"msg":"policy reload rejected; the previous policy keeps serving".*"error":"/etc/azegress/policy\.hcl:\d+:\d+: [^"]+`).FindString(journal)
	if why == "" || !strings.Contains(journal, "Reloaded azegress.service") {
		t.Errorf("the journal lacks systemd's reload and the rejection with file:line:col:\n%s", journal)
	} else {
		t.Logf("systemctl reload with a broken policy: %d rejections logged (file watcher and SIGHUP), %s", rejected(), why[strings.Index(why, `"error"`):])
	}
	deny("after the rejected reload")
	must("sh", "-c", "cat > /etc/azegress/policy.hcl <<'EOF'\n"+good+"\nEOF")

	// apt purge: no process, no user, no configuration, no state.
	must("apt-get", "purge", "-y", "azegress")
	if out, err := in("pgrep", "-a", "azegress"); err == nil {
		t.Errorf("after apt purge azegress still runs:\n%s", out)
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := in("getent", db, "azegress"); err == nil {
			t.Errorf("after apt purge the %s database still has %s", db, out)
		}
	}
	for _, dir := range []string{"/etc/azegress", "/var/lib/azegress", "/var/lib/private/azegress"} {
		if out, err := in("ls", "-d", dir); err == nil {
			t.Errorf("after apt purge %s is still there", out)
		}
	}
	t.Logf("apt purge: no azegress process, user, group, /etc/azegress or /var/lib/azegress; boot test took %s", time.Since(start).Round(100*time.Millisecond))
}

// debChroot installs and purges the package in a copy of the root without
// booting it, as an image build would: no systemd runs, so postinst creates
// the user and enables the unit but starts nothing.
func debChroot(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		depMissing(t, "chroot needs root")
	}
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", "--reflink=auto", *debRoot, root).CombinedOutput(); err != nil {
		t.Fatalf("copying the root: %v\n%s", err, out)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "root/azegress.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	in := func(args ...string) (string, error) {
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := in("dpkg", "-i", "/root/azegress.deb"); err != nil {
		t.Fatalf("chroot dpkg -i: %v\n%s", err, out)
	}
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/azegress.service")
	if _, err := os.Lstat(wants); err != nil {
		t.Errorf("after dpkg -i the unit is not enabled: %v", err)
	}
	if out, err := in("getent", "passwd", "azegress"); err != nil {
		t.Errorf("after dpkg -i there is no user azegress: %v %s", err, out)
	}
	if out, err := in("dpkg", "--purge", "azegress"); err != nil {
		t.Fatalf("chroot dpkg --purge: %v\n%s", err, out)
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := in("getent", db, "azegress"); err == nil {
			t.Errorf("after dpkg --purge the %s database still has %s", db, out)
		}
	}
	for _, f := range []string{wants, filepath.Join(root, "etc/azegress")} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("after dpkg --purge %s is still there", f)
		}
	}
}

// debLeader returns the PID of the container's init, nspawn's child.
func debLeader(t *testing.T, nspawn int, exited chan error) int {
	t.Helper()
	for end := time.Now().Add(debBootLimit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Skipf("systemd-nspawn could not boot %s here, it exited: %v (the chroot subtest ran the install and purge scripts instead)", *debRoot, err)
		default:
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawn, nspawn))
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
				return pid
			}
		}
	}
	t.Fatalf("systemd-nspawn started no systemd in %s", debBootLimit) // running but stuck: a failure, not a skip
	return 0
}

// debWait polls count until ok, and returns the count.
func debWait(t *testing.T, count func() int, ok func(int) bool) int {
	t.Helper()
	n := count()
	for end := time.Now().Add(nhLimit); !ok(n); n = count() {
		if time.Now().After(end) {
			t.Fatalf("after %s: %d policy reload rejections in the journal", nhLimit, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return n
}

// debExtract unpacks the package's files into a temporary directory.
func debExtract(t *testing.T, deb string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	return dir
}

func debRead(t *testing.T, pkg, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pkg, file))
	if err != nil {
		t.Fatalf("package: %v", err)
	}
	return string(b)
}

// debField returns a control field of the package, or for "Conffiles" the
// conffiles list.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	args := []string{"-f", deb, field}
	if field == "Conffiles" {
		args = []string{"-I", deb, "conffiles"}
	}
	out, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// debDepNames returns the package names of a Depends field.
func debDepNames(depends string) []string {
	var names []string
	for _, alt := range strings.FieldsFunc(depends, func(r rune) bool { return r == ',' || r == '|' }) {
		if f := strings.Fields(alt); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
