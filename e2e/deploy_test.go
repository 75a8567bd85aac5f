package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Static checks of everything under deploy/ (deploy/README.md lists them).
// The next-hop ruleset is also loaded and exercised by TestNextHop.

var updateDeploy = flag.Bool("update-deploy", false,
	"rewrite the copies of deploy/ files embedded in deploy/cloud-init.yaml and deploy/azure/azegress.json")

const (
	depDir        = "../deploy"
	depNFT        = depDir + "/nftables/azegress.nft"
	depUnit       = depDir + "/systemd/azegress.service"
	depFWUnit     = depDir + "/systemd/azegress-firewall.service"
	depCloudInit  = depDir + "/cloud-init.yaml"
	depARM        = depDir + "/azure/azegress.json"
	depDockerfile = depDir + "/container/Dockerfile"
	depKube       = depDir + "/kubernetes"
)

// depMissing skips the test, or fails it in CI, where `make test` has
// installed everything.
func depMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// depTool returns the path of a tool the test drives, or skips (fails in CI).
func depTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		depMissing(t, "needs %s on PATH (make deps installs it)", name)
	}
	return p
}

func depRead(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// depPython finds a python3 that has the yaml module; Debian's first.
var depPython = sync.OnceValue(func() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import yaml").Run() == nil {
			return p
		}
	}
	return ""
})

// depYAML parses a YAML stream with python3's yaml module (PyYAML, Debian
// python3-yaml) and returns its documents as JSON values.
func depYAML(t *testing.T, src string) []any {
	t.Helper()
	const script = `import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)`
	py := depPython()
	if py == "" {
		depMissing(t, "needs python3 with the yaml module (Debian python3-yaml; make deps installs it)")
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("YAML does not parse: %v\n%s", err, stderr.String())
	}
	var docs []any
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// depDig walks JSON values by map keys (string) and slice indexes (int).
func depDig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k < 0 || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func depStr(v any, path ...any) string {
	s, _ := depDig(v, path...).(string)
	return s
}

func depList(v any, path ...any) []any {
	s, _ := depDig(v, path...).([]any)
	return s
}

// depServeFlags returns the flags `azegress serve -h` lists.
func depServeFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(azegressBin, "serve", "-h").CombinedOutput()
	return depHelpFlags(t, "azegress serve -h", out)
}

// depHelpFlags returns the flags a -h output lists.
func depHelpFlags(t *testing.T, what string, out []byte) map[string]bool {
	t.Helper()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	if !flags["policy"] {
		t.Fatalf("%s lists no -policy flag:\n%s", what, out)
	}
	return flags
}

// depCheckServeArgs checks that args (after "serve") name only flags that
// `azegress serve` has, and returns their values.
func depCheckServeArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	return depCheckArgs(t, where, depServeFlags(t), args)
}

// depCheckArgs checks that args name only flags in known, and returns their
// values.
func depCheckArgs(t *testing.T, where string, known map[string]bool, args []string) map[string]string {
	t.Helper()
	vals := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: unexpected argument %q", where, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: azegress serve has no flag -%s", where, name)
		}
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val = args[i+1]
			i++
		}
		vals[name] = val
	}
	return vals
}

// depPort returns the port of a host:port listen address.
func depPort(t *testing.T, where, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, addr, err)
	}
	return port
}

// depUnitFile parses a systemd unit: key -> values, continuation lines
// joined, comments dropped.
func depUnitFile(t *testing.T, file string) map[string][]string {
	t.Helper()
	src := strings.ReplaceAll(depRead(t, file), "\\\n", " ")
	keys := map[string][]string{}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", file, line)
		}
		keys[k] = append(keys[k], strings.Join(strings.Fields(v), " "))
	}
	return keys
}

// depUnitServeArgs returns the arguments after "serve" in the unit's ExecStart.
func depUnitServeArgs(t *testing.T) map[string]string {
	t.Helper()
	exec := depUnitFile(t, depUnit)["ExecStart"]
	if len(exec) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", depUnit, len(exec))
	}
	f := strings.Fields(exec[0])
	if len(f) < 2 || f[0] != "/usr/local/bin/azegress" || f[1] != "serve" {
		t.Fatalf("%s: ExecStart=%s, want /usr/local/bin/azegress serve ...", depUnit, exec[0])
	}
	return depCheckServeArgs(t, depUnit+" ExecStart", f[2:])
}

func TestNftablesRuleset(t *testing.T) {
	t.Parallel()
	nft := depTool(t, "nft")
	if os.Geteuid() != 0 {
		depMissing(t, "nft -c needs root (CAP_NET_ADMIN)")
	}
	out, err := exec.Command(nft, "-c", "-f", depNFT).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("nft -c -f %s: %v\n%s", depNFT, err, out)
	}
	// The unit's transparent listeners are where the ruleset redirects to.
	args := depUnitServeArgs(t)
	for flag, define := range map[string]string{"transparent-http": "transparent_http_port", "transparent-tls": "transparent_tls_port"} {
		if got, want := depPort(t, depUnit, args[flag]), nhDefine(t, define); got != want {
			t.Errorf("%s: -%s port %s, but %s redirects to %s", depUnit, flag, got, depNFT, want)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	sa := depTool(t, "systemd-analyze")
	dir := t.TempDir()
	// verify checks that ExecStart's binary exists: point it at the one built.
	var units []string
	for _, u := range []string{depUnit, depFWUnit} {
		src := strings.ReplaceAll(depRead(t, u), "/usr/local/bin/azegress", azegressBin)
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, dst)
	}
	// verify exits 0 on unknown keys and bad values; any output is a finding.
	out, err := exec.Command(sa, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	keys := depUnitFile(t, depUnit)
	for _, want := range []struct{ key, value string }{
		{"DynamicUser", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"Restart", "on-failure"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"LimitNOFILE", "65536"},
		{"ConfigurationDirectory", "azegress"},
		{"SystemCallFilter", "@system-service"},
		// net.InterfaceAddrs needs netlink; without it the guard cannot see
		// the host's own addresses.
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_NETLINK"},
	} {
		if !slices.Contains(keys[want.key], want.value) {
			t.Errorf("%s: want %s=%s, have %q", depUnit, want.key, want.value, keys[want.key])
		}
	}
	args := depUnitServeArgs(t)
	if got := args["policy"]; got != "/etc/azegress/policy.hcl" {
		t.Errorf("%s: -policy %q, want the ConfigurationDirectory's /etc/azegress/policy.hcl", depUnit, got)
	}
	for _, flag := range []string{"listen", "transparent-http", "transparent-tls", "metrics"} {
		if p, _ := strconv.Atoi(depPort(t, depUnit, args[flag])); p < 1024 {
			t.Errorf("%s: -%s %s is a privileged port, which needs CAP_NET_BIND_SERVICE", depUnit, flag, args[flag])
		}
	}

	// The exposure score, where this systemd has an offline security review.
	out, err = exec.Command(sa, "security", "--offline=true", units[0]).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Logf("no offline security review (systemd before 250?): %v", err)
		return
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: %s %s", m[1], m[2])
	if score > 2.0 {
		t.Errorf("systemd-analyze security rates %s %s %s, want at most 2.0:\n%s", depUnit, m[1], m[2], out)
	}
}

// depEmbedded maps the cloud-init's write_files paths that copy a deploy/
// file to that file.
var depEmbedded = map[string]string{
	"/etc/azegress/azegress.nft":                    depNFT,
	"/etc/systemd/system/azegress.service":          depUnit,
	"/etc/systemd/system/azegress-firewall.service": depFWUnit,
}

// depRewriteCloudInit replaces each embedded file's `content: |` block in
// the cloud-init text with the file's current content.
func depRewriteCloudInit(t *testing.T, src string) string {
	t.Helper()
	lines := strings.Split(src, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		_, p, ok := strings.Cut(lines[i], "- path: ")
		file, embedded := depEmbedded[strings.TrimSpace(p)]
		if !ok || !embedded {
			continue
		}
		for i+1 < len(lines) && !strings.Contains(lines[i+1], "- path: ") && strings.TrimSpace(lines[i+1]) != "content: |" {
			i++
			out = append(out, lines[i])
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "content: |" {
			t.Fatalf("%s: write_files %s has no `content: |` block", depCloudInit, p)
		}
		i++
		out = append(out, lines[i])
		keyIndent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > keyIndent) {
			i++
		}
		pad := strings.Repeat(" ", keyIndent+2)
		for _, l := range strings.Split(strings.TrimSuffix(depRead(t, file), "\n"), "\n") {
			if l == "" {
				out = append(out, "")
			} else {
				out = append(out, pad+l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// depWriteFiles returns the cloud-init's write_files entries by path.
func depWriteFiles(t *testing.T, cloudInit string) map[string]map[string]any {
	t.Helper()
	docs := depYAML(t, cloudInit)
	if len(docs) != 1 {
		t.Fatalf("cloud-init: %d YAML documents, want 1", len(docs))
	}
	files := map[string]map[string]any{}
	for _, f := range depList(docs[0], "write_files") {
		m, _ := f.(map[string]any)
		files[depStr(m, "path")] = m
	}
	return files
}

func TestCloudInit(t *testing.T) {
	if !*updateDeploy {
		t.Parallel() // -update-deploy rewrites files the other test reads
	}
	src := depRead(t, depCloudInit)
	if *updateDeploy {
		if next := depRewriteCloudInit(t, src); next != src {
			if err := os.WriteFile(depCloudInit, []byte(next), 0o644); err != nil {
				t.Fatal(err)
			}
			src = next
		}
	}
	if !strings.HasPrefix(src, "#cloud-config\n") {
		t.Fatalf("%s does not start with #cloud-config", depCloudInit)
	}
	doc := depYAML(t, src)[0]
	files := depWriteFiles(t, src)
	for at, file := range depEmbedded {
		if got, want := depStr(files[at], "content"), depRead(t, file); got != want {
			t.Errorf("%s: write_files %s differs from %s; run go test ./e2e -run 'TestCloudInit|TestARMTemplate' -update-deploy", depCloudInit, at, file)
		}
	}
	pol := files["/etc/azegress/policy.hcl"]
	if depStr(pol, "encoding") != "b64" || depStr(pol, "content") != "@@POLICY_B64@@" {
		t.Errorf("%s: /etc/azegress/policy.hcl must be encoding b64 with content @@POLICY_B64@@, have %v", depCloudInit, pol)
	}
	env := depStr(files["/etc/azegress/install.env"], "content")
	for _, ph := range []string{"@@AZEGRESS_URL@@", "@@AZEGRESS_SHA256@@"} {
		if !strings.Contains(env, ph) {
			t.Errorf("%s: install.env lacks %s", depCloudInit, ph)
		}
	}
	if !slices.Contains(depList(doc, "packages"), any("nftables")) {
		t.Errorf("%s: packages must include nftables", depCloudInit)
	}

	// The install script is valid shell, installs where the units look,
	// and checks the policy the unit loads.
	script := depStr(files["/usr/local/sbin/azegress-install"], "content")
	sh := filepath.Join(t.TempDir(), "azegress-install")
	if err := os.WriteFile(sh, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", sh).CombinedOutput(); err != nil {
		t.Errorf("install script: sh -n: %v\n%s", err, out)
	}
	for _, want := range []string{"bin=/usr/local/bin/azegress", `"$bin" check /etc/azegress/policy.hcl`, "sha256sum -c"} {
		if !strings.Contains(script, want) {
			t.Errorf("install script lacks %q", want)
		}
	}
	fw := depUnitFile(t, depFWUnit)
	if !slices.Contains(fw["ExecStart"], "/usr/sbin/nft -f /etc/azegress/azegress.nft") {
		t.Errorf("%s: ExecStart must load /etc/azegress/azegress.nft, where cloud-init writes the ruleset", depFWUnit)
	}
	if !slices.Contains(fw["ExecStart"], "/usr/sbin/sysctl -w net.ipv4.ip_forward=1") {
		t.Errorf("%s: must turn on IPv4 forwarding after loading the ruleset", depFWUnit)
	}

	var runcmd []string
	for _, c := range depList(doc, "runcmd") {
		var words []string
		for _, w := range depList(c) {
			words = append(words, fmt.Sprint(w))
		}
		runcmd = append(runcmd, strings.Join(words, " "))
	}
	for _, want := range []string{"/usr/local/sbin/azegress-install", "systemctl enable --now azegress-firewall.service azegress.service"} {
		if !slices.Contains(runcmd, want) {
			t.Errorf("%s: runcmd lacks %q; have %q", depCloudInit, want, runcmd)
		}
	}
	if i, j := slices.Index(runcmd, "/usr/local/sbin/azegress-install"), slices.Index(runcmd, "systemctl enable --now azegress-firewall.service azegress.service"); i > j {
		t.Errorf("%s: runcmd enables the services before installing the binary", depCloudInit)
	}
}

// depARMEval evaluates the ARM template expressions the template uses
// (parameters, variables, base64, replace, format, string, resourceId,
// resourceGroup().location) and fails on any other function, so a template
// change that the test cannot follow is noticed.
type depARMEval struct {
	t      *testing.T
	tmpl   map[string]any
	params map[string]any
}

func (e *depARMEval) value(v any) any {
	s, ok := v.(string)
	if !ok || !strings.HasPrefix(s, "[") || strings.HasPrefix(s, "[[") {
		return v
	}
	p := &depARMParser{src: strings.TrimSuffix(s[1:], "]")}
	out := e.expr(p)
	if p.skip(); p.pos != len(p.src) {
		e.t.Fatalf("ARM expression %q: unexpected %q", s, p.src[p.pos:])
	}
	return out
}

func (e *depARMEval) str(v any) string {
	switch x := e.value(v).(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		e.t.Fatalf("ARM value %v is %T, want a string", v, x)
		return ""
	}
}

type depARMParser struct {
	src string
	pos int
}

func (p *depARMParser) skip() {
	for p.pos < len(p.src) && p.src[p.pos] == ' ' {
		p.pos++
	}
}

func (p *depARMParser) peek() byte {
	p.skip()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (e *depARMEval) expr(p *depARMParser) any {
	var v any
	switch c := p.peek(); {
	case c == '\'':
		var b strings.Builder
		for p.pos++; ; p.pos++ {
			if p.pos >= len(p.src) {
				e.t.Fatalf("ARM expression %q: unterminated string", p.src)
			}
			if p.src[p.pos] == '\'' {
				if p.pos+1 < len(p.src) && p.src[p.pos+1] == '\'' {
					b.WriteByte('\'')
					p.pos++
					continue
				}
				p.pos++
				break
			}
			b.WriteByte(p.src[p.pos])
		}
		v = b.String()
	case c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		n, _ := strconv.Atoi(p.src[start:p.pos])
		v = float64(n)
	default:
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] >= 'a' && p.src[p.pos] <= 'z' || p.src[p.pos] >= 'A' && p.src[p.pos] <= 'Z' || p.src[p.pos] >= '0' && p.src[p.pos] <= '9') {
			p.pos++
		}
		name := p.src[start:p.pos]
		if p.peek() != '(' {
			e.t.Fatalf("ARM expression %q: want ( after %q", p.src, name)
		}
		p.pos++
		var args []any
		for p.peek() != ')' {
			args = append(args, e.expr(p))
			if p.peek() == ',' {
				p.pos++
			}
		}
		p.pos++
		v = e.call(name, args)
	}
	for p.peek() == '.' {
		p.pos++
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] >= 'a' && p.src[p.pos] <= 'z' || p.src[p.pos] >= 'A' && p.src[p.pos] <= 'Z') {
			p.pos++
		}
		v = depDig(v, p.src[start:p.pos])
	}
	return v
}

func (e *depARMEval) call(name string, args []any) any {
	str := func(i int) string { return e.str(args[i]) }
	switch name {
	case "parameters":
		if v, ok := e.params[str(0)]; ok {
			return v
		}
		def, ok := depDig(e.tmpl, "parameters", str(0)).(map[string]any)
		if !ok {
			e.t.Fatalf("ARM: no parameter %q", str(0))
		}
		if _, ok := def["defaultValue"]; !ok {
			e.t.Fatalf("ARM: parameter %q has no default and the test gives none", str(0))
		}
		return e.value(def["defaultValue"])
	case "variables":
		v, ok := depDig(e.tmpl, "variables").(map[string]any)[str(0)]
		if !ok {
			e.t.Fatalf("ARM: no variable %q", str(0))
		}
		return e.value(v)
	case "base64":
		return base64.StdEncoding.EncodeToString([]byte(str(0)))
	case "replace":
		return strings.ReplaceAll(str(0), str(1), str(2))
	case "string":
		return str(0)
	case "format":
		s := str(0)
		for i := 1; i < len(args); i++ {
			s = strings.ReplaceAll(s, "{"+strconv.Itoa(i-1)+"}", str(i))
		}
		return s
	case "resourceId":
		parts := make([]string, len(args))
		for i := range args {
			parts[i] = str(i)
		}
		return "resourceId(" + strings.Join(parts, "/") + ")"
	case "resourceGroup":
		return map[string]any{"location": "testregion"}
	}
	e.t.Fatalf("ARM: the test does not evaluate function %s()", name)
	return nil
}

// depResources returns the template's resources of one type.
func depResources(tmpl map[string]any, typ string) []map[string]any {
	var out []map[string]any
	for _, r := range depList(tmpl, "resources") {
		if depStr(r, "type") == typ {
			out = append(out, r.(map[string]any))
		}
	}
	return out
}

// depOne returns the single resource of a type.
func depOne(t *testing.T, tmpl map[string]any, typ string) map[string]any {
	t.Helper()
	rs := depResources(tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%s: %d resources of type %s, want 1", depARM, len(rs), typ)
	}
	return rs[0]
}

var depCloudInitLine = regexp.MustCompile(`(?m)^(\s*"cloudInit": ).*?(,?)$`)

func TestARMTemplate(t *testing.T) {
	if !*updateDeploy {
		t.Parallel() // -update-deploy rewrites files the other test reads
	}
	raw := depRead(t, depARM)
	cloudInit := depRead(t, depCloudInit)
	if *updateDeploy {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cloudInit); err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSpace(b.String())
		next := depCloudInitLine.ReplaceAllStringFunc(raw, func(line string) string {
			m := depCloudInitLine.FindStringSubmatch(line)
			return m[1] + lit + m[2]
		})
		if next != raw {
			if err := os.WriteFile(depARM, []byte(next), 0o644); err != nil {
				t.Fatal(err)
			}
			raw = next
		}
	}
	var tmpl map[string]any
	if err := json.Unmarshal([]byte(raw), &tmpl); err != nil {
		t.Fatalf("%s: %v", depARM, err)
	}
	if got := depStr(tmpl, "variables", "cloudInit"); got != cloudInit {
		t.Fatalf("%s: variables.cloudInit differs from %s; run go test ./e2e -run 'TestCloudInit|TestARMTemplate' -update-deploy", depARM, depCloudInit)
	}

	testPolicy := "# a policy with \"quotes\", 'apostrophes' and @@ signs\nclient \"w\" {\n  sources = [\"10.0.1.0/24\"]\n}\n"
	ev := &depARMEval{t: t, tmpl: tmpl, params: map[string]any{
		"adminSshPublicKey": "ssh-ed25519 AAAAtest",
		"azegressUrl":       "https://downloads.example/azegress",
		"azegressSha256":    strings.Repeat("ab", 32),
		"policy":            testPolicy,
	}}

	// The workload subnet's default route: VirtualAppliance at the load
	// balancer's frontend.
	rt := depOne(t, tmpl, "Microsoft.Network/routeTables")
	lb := depOne(t, tmpl, "Microsoft.Network/loadBalancers")
	frontends := depList(lb, "properties", "frontendIPConfigurations")
	if len(frontends) != 1 {
		t.Fatalf("load balancer: %d frontends, want 1", len(frontends))
	}
	fe := frontends[0]
	if depStr(lb, "sku", "name") != "Standard" {
		t.Errorf("load balancer SKU %q, want Standard (HA ports)", depStr(lb, "sku", "name"))
	}
	if depDig(fe, "properties", "publicIPAddress") != nil || depDig(fe, "properties", "subnet", "id") == nil {
		t.Errorf("load balancer frontend must be internal (a subnet, no public IP)")
	}
	feIP := ev.str(depDig(fe, "properties", "privateIPAddress"))
	if depStr(fe, "properties", "privateIPAllocationMethod") != "Static" || net.ParseIP(feIP) == nil {
		t.Errorf("load balancer frontend: want a static private IP, have %q (%s)", feIP, depStr(fe, "properties", "privateIPAllocationMethod"))
	}
	var defaultRoute any
	for _, r := range depList(rt, "properties", "routes") {
		if ev.str(depDig(r, "properties", "addressPrefix")) == "0.0.0.0/0" {
			defaultRoute = r
		}
	}
	if defaultRoute == nil {
		t.Fatalf("route table: no 0.0.0.0/0 route")
	}
	if got := depStr(defaultRoute, "properties", "nextHopType"); got != "VirtualAppliance" {
		t.Errorf("0.0.0.0/0 next hop type %q, want VirtualAppliance", got)
	}
	if got := ev.str(depDig(defaultRoute, "properties", "nextHopIpAddress")); got != feIP {
		t.Errorf("0.0.0.0/0 next hop %q, want the load balancer frontend %q", got, feIP)
	}
	if depDig(rt, "properties", "disableBgpRoutePropagation") != true {
		t.Errorf("route table: disableBgpRoutePropagation must be true, or a gateway's default route can bypass azegress")
	}

	// The route table is on the workload subnet only: on the proxies' own
	// subnet it would loop their egress back to themselves.
	rtID := "resourceId(Microsoft.Network/routeTables/" + ev.str(depDig(rt, "name")) + ")"
	vnet := depOne(t, tmpl, "Microsoft.Network/virtualNetworks")
	subnets := map[string]any{}
	for _, s := range depList(vnet, "properties", "subnets") {
		subnets[ev.str(depDig(s, "name"))] = s
	}
	workloadSubnet, proxySubnet := subnets[ev.str("[variables('workloadSubnetName')]")], subnets[ev.str("[variables('proxySubnetName')]")]
	if workloadSubnet == nil || proxySubnet == nil {
		t.Fatalf("virtual network: want subnets workload and proxy, have %v", slices.Collect(maps.Keys(subnets)))
	}
	if got := ev.str(depDig(workloadSubnet, "properties", "routeTable", "id")); got != rtID {
		t.Errorf("workload subnet route table %q, want %q", got, rtID)
	}
	if depDig(proxySubnet, "properties", "routeTable") != nil {
		t.Errorf("the proxy subnet must not use the workload route table")
	}
	if depDig(proxySubnet, "properties", "natGateway", "id") == nil {
		t.Errorf("proxy subnet: no NAT gateway; instances behind an internal load balancer have no other outbound path")
	}
	if depDig(proxySubnet, "properties", "networkSecurityGroup", "id") == nil || depDig(workloadSubnet, "properties", "networkSecurityGroup", "id") == nil {
		t.Errorf("both subnets need an NSG")
	}

	// Health probe: HTTP /readyz on the unit's metrics port; HA ports rule.
	metricsPort := depPort(t, depUnit, depUnitServeArgs(t)["metrics"])
	probes := depList(lb, "properties", "probes")
	if len(probes) != 1 {
		t.Fatalf("load balancer: %d probes, want 1", len(probes))
	}
	pr := probes[0]
	if got := depStr(pr, "properties", "protocol"); got != "Http" {
		t.Errorf("probe protocol %q, want Http", got)
	}
	if got := depStr(pr, "properties", "requestPath"); got != "/readyz" {
		t.Errorf("probe path %q, want /readyz", got)
	}
	if got := ev.str(depDig(pr, "properties", "port")); got != metricsPort {
		t.Errorf("probe port %s, want the unit's -metrics port %s", got, metricsPort)
	}
	probeID := ev.str("[variables('lbProbeId')]")
	if !strings.HasSuffix(probeID, "/"+depStr(pr, "name")+")") {
		t.Errorf("variables.lbProbeId %q does not name probe %q", probeID, depStr(pr, "name"))
	}
	rules := depList(lb, "properties", "loadBalancingRules")
	if len(rules) != 1 {
		t.Fatalf("load balancer: %d rules, want 1 HA ports rule", len(rules))
	}
	rp := depDig(rules[0], "properties")
	if depStr(rp, "protocol") != "All" || depDig(rp, "frontendPort") != 0.0 || depDig(rp, "backendPort") != 0.0 {
		t.Errorf("load balancing rule: protocol %v ports %v/%v, want HA ports (All, 0, 0)", depDig(rp, "protocol"), depDig(rp, "frontendPort"), depDig(rp, "backendPort"))
	}
	if ev.str(depDig(rp, "probe", "id")) != probeID {
		t.Errorf("HA ports rule does not use the /readyz probe")
	}

	// NSG: the probe may reach the metrics port.
	probeAllowed := false
	for _, nsg := range depResources(tmpl, "Microsoft.Network/networkSecurityGroups") {
		for _, r := range depList(nsg, "properties", "securityRules") {
			p := depDig(r, "properties")
			if depStr(p, "sourceAddressPrefix") == "AzureLoadBalancer" && depStr(p, "access") == "Allow" && ev.str(depDig(p, "destinationPortRange")) == metricsPort {
				probeAllowed = true
			}
		}
	}
	if !probeAllowed {
		t.Errorf("no NSG rule lets AzureLoadBalancer reach port %s", metricsPort)
	}

	// Scale set: IP forwarding on every NIC, in the backend pool; the
	// policy parameter reaches the VM through customData.
	vmss := depOne(t, tmpl, "Microsoft.Compute/virtualMachineScaleSets")
	vmp := depDig(vmss, "properties", "virtualMachineProfile")
	nics := depList(vmp, "networkProfile", "networkInterfaceConfigurations")
	if len(nics) == 0 {
		t.Fatal("scale set: no NICs")
	}
	for _, nic := range nics {
		if depDig(nic, "properties", "enableIPForwarding") != true {
			t.Errorf("scale set NIC %s: enableIPForwarding must be true, or Azure drops packets not addressed to the VM", depStr(nic, "name"))
		}
		for _, ipc := range depList(nic, "properties", "ipConfigurations") {
			pools := depList(ipc, "properties", "loadBalancerBackendAddressPools")
			if len(pools) != 1 || ev.str(depDig(pools[0], "id")) != ev.str("[variables('lbPoolId')]") {
				t.Errorf("scale set NIC %s: not in the load balancer's backend pool", depStr(nic, "name"))
			}
		}
	}
	custom, err := base64.StdEncoding.DecodeString(ev.str(depDig(vmp, "osProfile", "customData")))
	if err != nil {
		t.Fatalf("customData is not base64: %v", err)
	}
	if bytes.Contains(custom, []byte("@@AZEGRESS_")) || bytes.Contains(custom, []byte("@@POLICY_B64@@")) {
		t.Errorf("customData still has placeholders")
	}
	files := depWriteFiles(t, string(custom))
	gotPolicy, err := base64.StdEncoding.DecodeString(depStr(files["/etc/azegress/policy.hcl"], "content"))
	if err != nil || string(gotPolicy) != testPolicy {
		t.Errorf("customData's /etc/azegress/policy.hcl = %q (%v), want the policy parameter %q", gotPolicy, err, testPolicy)
	}
	env := depStr(files["/etc/azegress/install.env"], "content")
	for _, p := range []string{"azegressUrl", "azegressSha256"} {
		if !strings.Contains(env, ev.params[p].(string)) {
			t.Errorf("customData's install.env lacks parameter %s: %q", p, env)
		}
	}

	// The default policy validates and admits the default workload subnet.
	defPolicy := depStr(tmpl, "parameters", "policy", "defaultValue")
	if !strings.Contains(defPolicy, `"`+depStr(tmpl, "parameters", "workloadSubnetPrefix", "defaultValue")+`"`) {
		t.Errorf("the default policy's sources do not list the default workloadSubnetPrefix")
	}
	depCheckPolicy(t, "the policy parameter's default", defPolicy)
}

// depCheckPolicy runs `azegress check` on a policy text.
func depCheckPolicy(t *testing.T, what, src string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(azegressBin, "check", f).CombinedOutput(); err != nil {
		t.Errorf("azegress check %s: %v\n%s", what, err, out)
	}
}

// depDockerfile is a parsed Dockerfile: instructions with their arguments,
// continuation lines joined.
type depDockerInstr struct{ op, args string }

func depDockerfileInstrs(t *testing.T) []depDockerInstr {
	t.Helper()
	return depParseDockerfile(depRead(t, depDockerfile))
}

// depParseDockerfile is depDockerfileInstrs on a Dockerfile's text.
func depParseDockerfile(src string) []depDockerInstr {
	src = strings.ReplaceAll(src, "\\\n", " ")
	var out []depDockerInstr
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		op, args, _ := strings.Cut(line, " ")
		out = append(out, depDockerInstr{strings.ToUpper(op), strings.TrimSpace(args)})
	}
	return out
}

// depDockerUser returns the final stage's USER.
func depDockerUser(t *testing.T) string {
	t.Helper()
	user := ""
	for _, in := range depDockerfileInstrs(t) {
		switch in.op {
		case "FROM":
			user = ""
		case "USER":
			user = in.args
		}
	}
	return user
}

func TestContainerImage(t *testing.T) {
	t.Parallel()
	instrs := depDockerfileInstrs(t)
	var final, entry, cmd, copied string
	var exposed []string
	built := false
	var stageArgs []string // the current stage's ARG names
	for _, in := range instrs {
		switch in.op {
		case "FROM":
			final, stageArgs = strings.Fields(in.args)[0], nil
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			stageArgs = append(stageArgs, name)
		case "RUN":
			if strings.Contains(in.args, "go build") {
				built = true
				if !regexp.MustCompile(`\bCGO_ENABLED=0 go build\b.*\s\./cmd/azegress$`).MatchString(in.args) {
					t.Errorf("%s: the build is %q, want a static CGO_ENABLED=0 go build ... ./cmd/azegress", depDockerfile, in.args)
				}
				// The release, as scripts/deb.sh links it for the package.
				if m := regexp.MustCompile(`-X main\.version=\$\{?(\w+)\}?`).FindStringSubmatch(in.args); m == nil || !slices.Contains(stageArgs, m[1]) {
					t.Errorf("%s: the build is %q, want -ldflags \"-X main.version=${VERSION}\" from an ARG VERSION of its stage, so that the image's azegress version and azegress_build_info name the release",
						depDockerfile, in.args)
				}
			}
		case "COPY":
			f := strings.Fields(in.args)
			if strings.HasPrefix(f[0], "--from=") {
				copied = f[len(f)-1]
				continue
			}
			for _, src := range f[:len(f)-1] {
				if src == "." {
					continue
				}
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("%s: COPY %s: not in the build context (the repository root): %v", depDockerfile, src, err)
				}
			}
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			entry = in.args
		case "CMD":
			cmd = in.args
		}
	}
	if !built {
		t.Errorf("%s: no go build", depDockerfile)
	}
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("%s: final stage FROM %s, want distroless/static or scratch", depDockerfile, final)
	}
	uid, _, _ := strings.Cut(depDockerUser(t), ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("%s: final stage USER %q, want a numeric non-root UID (Kubernetes runAsNonRoot checks it)", depDockerfile, depDockerUser(t))
	}
	var ep, args []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil || len(ep) != 1 || ep[0] != copied {
		t.Errorf("%s: ENTRYPOINT %s, want [%q] (the copied binary) in exec form", depDockerfile, entry, copied)
	}
	if err := json.Unmarshal([]byte(cmd), &args); err != nil || len(args) == 0 || args[0] != "serve" {
		t.Fatalf("%s: CMD %s, want [\"serve\", ...] in exec form", depDockerfile, cmd)
	}
	vals := depCheckServeArgs(t, depDockerfile+" CMD", args[1:])
	for _, flag := range []string{"listen", "metrics"} {
		if p := depPort(t, depDockerfile, vals[flag]); !slices.Contains(exposed, p) {
			t.Errorf("%s: -%s port %s is not in EXPOSE %v", depDockerfile, flag, p, exposed)
		}
	}
}

// depImage is what the Deployment must agree with in the image: its
// entrypoint, command, user, exposed ports and the flags its serve has.
type depImage struct {
	what       string // "image TAG" or the Dockerfile
	entry, cmd []string
	user       string
	exposed    []string // port numbers
	serveFlags map[string]bool
}

// depImageFacts reads them from the image when make image-test has built it
// in this run, else from the Dockerfile's final stage and the serve of the
// binary under test. A leftover image of an earlier run is not used: it may
// predate the Dockerfile.
func depImageFacts(t *testing.T) depImage {
	t.Helper()
	if os.Getenv(imgGateEnv) != "" {
		tag := imgImage(t)
		c := imgInspect(t, tag)
		img := depImage{what: "image " + tag, entry: c.Entrypoint, cmd: c.Cmd, user: c.User, serveFlags: imgServeFlags(t, tag)}
		for p := range c.ExposedPorts {
			port, _, _ := strings.Cut(p, "/")
			img.exposed = append(img.exposed, port)
		}
		return img
	}
	img := depImage{what: depDockerfile, user: depDockerUser(t), serveFlags: depServeFlags(t)}
	for _, in := range depDockerfileInstrs(t) {
		switch in.op {
		case "FROM":
			img.entry, img.cmd, img.exposed = nil, nil, nil
		case "ENTRYPOINT":
			_ = json.Unmarshal([]byte(in.args), &img.entry) // TestContainerImage reports a shell form
		case "CMD":
			_ = json.Unmarshal([]byte(in.args), &img.cmd)
		case "EXPOSE":
			img.exposed = append(img.exposed, strings.Fields(in.args)...)
		}
	}
	return img
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	kust := depYAML(t, depRead(t, filepath.Join(depKube, "kustomization.yaml")))[0]
	var listed, present []string
	for _, r := range depList(kust, "resources") {
		listed = append(listed, fmt.Sprint(r))
	}
	matches, _ := filepath.Glob(filepath.Join(depKube, "*.yaml"))
	for _, m := range matches {
		if b := filepath.Base(m); b != "kustomization.yaml" {
			present = append(present, b)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, present) {
		t.Errorf("kustomization.yaml lists %v, the directory has %v", listed, present)
	}
	objs := map[string]map[string]any{} // by kind
	for _, f := range present {
		for _, d := range depYAML(t, depRead(t, filepath.Join(depKube, f))) {
			m, ok := d.(map[string]any)
			if !ok {
				t.Fatalf("%s: a document is not a mapping", f)
			}
			kind := depStr(m, "kind")
			if objs[kind] != nil {
				t.Fatalf("two %s objects; the test expects one of each", kind)
			}
			objs[kind] = m
		}
	}
	for _, kind := range []string{"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} {
		if objs[kind] == nil {
			t.Fatalf("no %s in %s", kind, depKube)
		}
	}
	for kind, m := range objs {
		if ns := depStr(objs["Namespace"], "metadata", "name"); kind != "Namespace" && depStr(m, "metadata", "namespace") != ns {
			t.Errorf("%s %s is in namespace %q, want %q", kind, depStr(m, "metadata", "name"), depStr(m, "metadata", "namespace"), ns)
		}
	}
	dep, cm, svc, pdb, np := objs["Deployment"], objs["ConfigMap"], objs["Service"], objs["PodDisruptionBudget"], objs["NetworkPolicy"]
	podLabels, _ := depDig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	sameLabels := func(what string, sel any) {
		t.Helper()
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s: selector %s=%v does not match the pods' labels %v", what, k, v, podLabels)
			}
		}
	}
	sameLabels("Deployment", depDig(dep, "spec", "selector", "matchLabels"))
	sameLabels("Service", depDig(svc, "spec", "selector"))
	sameLabels("PodDisruptionBudget", depDig(pdb, "spec", "selector", "matchLabels"))
	sameLabels("NetworkPolicy", depDig(np, "spec", "podSelector", "matchLabels"))

	containers := depList(dep, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(containers))
	}
	c := containers[0]
	var args []string
	for _, a := range depList(c, "args") {
		args = append(args, fmt.Sprint(a))
	}
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("Deployment: args %v, want serve ...", args)
	}
	// The container runs the image's entrypoint (no command of its own) with
	// args in place of the image's CMD: the same subcommand, flags the image's
	// serve has, ports the image exposes.
	img := depImageFacts(t)
	if cmd := depList(c, "command"); cmd != nil && fmt.Sprint(cmd) != fmt.Sprint(img.entry) {
		t.Errorf("Deployment: command %v, want none (the %s's ENTRYPOINT %v)", cmd, img.what, img.entry)
	}
	if len(img.entry) != 1 || len(img.cmd) == 0 || args[0] != img.cmd[0] {
		t.Errorf("Deployment: args %v with the %s's ENTRYPOINT %v and CMD %v: want the binary as the entrypoint and args that start as CMD does",
			args, img.what, img.entry, img.cmd)
	}
	vals := depCheckArgs(t, "Deployment args", img.serveFlags, args[1:])
	ports := map[string]string{} // name -> containerPort
	for _, p := range depList(c, "ports") {
		ports[depStr(p, "name")] = fmt.Sprint(depDig(p, "containerPort"))
	}
	if ports["proxy"] != depPort(t, "Deployment", vals["listen"]) || ports["metrics"] != depPort(t, "Deployment", vals["metrics"]) {
		t.Errorf("Deployment: ports %v do not match -listen %s and -metrics %s", ports, vals["listen"], vals["metrics"])
	}
	for _, name := range []string{"proxy", "metrics"} {
		if !slices.Contains(img.exposed, ports[name]) {
			t.Errorf("Deployment: port %s %s is not one the %s exposes (%v)", name, ports[name], img.what, img.exposed)
		}
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := depStr(c, probe, "httpGet", "path"); got != path {
			t.Errorf("Deployment: %s path %q, want %s", probe, got, path)
		}
		if got := fmt.Sprint(depDig(c, probe, "httpGet", "port")); got != "metrics" && got != ports["metrics"] {
			t.Errorf("Deployment: %s port %s, want the metrics port", probe, got)
		}
	}
	sc := depDig(c, "securityContext")
	podSC := depDig(dep, "spec", "template", "spec", "securityContext")
	for _, want := range []struct {
		key   string
		value any
	}{{"readOnlyRootFilesystem", true}, {"allowPrivilegeEscalation", false}} {
		if depDig(sc, want.key) != want.value {
			t.Errorf("Deployment: securityContext.%s = %v, want %v", want.key, depDig(sc, want.key), want.value)
		}
	}
	if depDig(sc, "runAsNonRoot") != true && depDig(podSC, "runAsNonRoot") != true {
		t.Errorf("Deployment: runAsNonRoot is not set")
	}
	if drop := depList(sc, "capabilities", "drop"); !slices.Contains(drop, any("ALL")) {
		t.Errorf("Deployment: capabilities.drop %v, want [ALL]", drop)
	}
	imgUID, _, _ := strings.Cut(img.user, ":")
	if got := fmt.Sprint(depDig(podSC, "runAsUser")); got != imgUID {
		t.Errorf("Deployment: runAsUser %s, want the %s's USER %s", got, img.what, imgUID)
	}
	for _, r := range []string{"requests/cpu", "requests/memory", "limits/memory"} {
		a, b, _ := strings.Cut(r, "/")
		if depDig(c, "resources", a, b) == nil {
			t.Errorf("Deployment: resources.%s.%s is not set", a, b)
		}
	}

	// The policy: a ConfigMap mounted as a directory (a subPath mount never
	// sees updates, so reloads would silently stop), holding -policy's file.
	policyDir, policyFile := path.Split(vals["policy"])
	var vol string
	for _, m := range depList(c, "volumeMounts") {
		if strings.TrimSuffix(depStr(m, "mountPath"), "/")+"/" == policyDir {
			vol = depStr(m, "name")
			if depDig(m, "subPath") != nil {
				t.Errorf("Deployment: the policy mount uses subPath; ConfigMap updates would never reach the pod")
			}
		}
	}
	var cmName string
	for _, v := range depList(dep, "spec", "template", "spec", "volumes") {
		if depStr(v, "name") == vol {
			cmName = depStr(v, "configMap", "name")
		}
	}
	if vol == "" || cmName != depStr(cm, "metadata", "name") {
		t.Fatalf("Deployment: %s is not a mount of ConfigMap %s", policyDir, depStr(cm, "metadata", "name"))
	}
	src := depStr(cm, "data", policyFile)
	if src == "" {
		t.Fatalf("ConfigMap: no key %s", policyFile)
	}
	depCheckPolicy(t, "the ConfigMap's policy", src)

	// Service and NetworkPolicy expose the proxy port; the pods may reach
	// public web ports and cluster DNS, nothing else.
	svcPorts := map[string]bool{}
	for _, p := range depList(svc, "spec", "ports") {
		svcPorts[fmt.Sprint(depDig(p, "targetPort"))] = true
	}
	if !svcPorts["proxy"] && !svcPorts[ports["proxy"]] {
		t.Errorf("Service does not target the proxy port")
	}
	ingressPorts := map[string]bool{}
	for _, r := range depList(np, "spec", "ingress") {
		for _, p := range depList(r, "ports") {
			ingressPorts[fmt.Sprint(depDig(p, "port"))] = true
		}
	}
	if !ingressPorts[ports["proxy"]] {
		t.Errorf("NetworkPolicy: no ingress to port %s", ports["proxy"])
	}
	egress := map[string]bool{}
	for _, r := range depList(np, "spec", "egress") {
		public := false
		for _, to := range depList(r, "to") {
			if depStr(to, "ipBlock", "cidr") == "0.0.0.0/0" {
				public = true
				if ex := depList(to, "ipBlock", "except"); !slices.Contains(ex, any("169.254.0.0/16")) || !slices.Contains(ex, any("10.0.0.0/8")) {
					t.Errorf("NetworkPolicy: 0.0.0.0/0 egress must except link-local (IMDS) and private ranges, has %v", ex)
				}
			}
		}
		for _, p := range depList(r, "ports") {
			key := depStr(p, "protocol") + "/" + fmt.Sprint(depDig(p, "port"))
			if public {
				key = "public " + key
			}
			egress[key] = true
		}
	}
	for _, want := range []string{"public TCP/443", "public TCP/80", "UDP/53", "TCP/53"} {
		if !egress[want] {
			t.Errorf("NetworkPolicy: no egress %s; have %v", want, egress)
		}
	}
	if depList(np, "spec", "policyTypes") == nil || len(depList(np, "spec", "policyTypes")) != 2 {
		t.Errorf("NetworkPolicy: policyTypes must list Ingress and Egress")
	}
	if min, _ := depDig(pdb, "spec", "minAvailable").(float64); min < 1 || min >= depDig(dep, "spec", "replicas").(float64) {
		t.Errorf("PodDisruptionBudget minAvailable %v with %v replicas: want at least 1 and fewer than the replicas", depDig(pdb, "spec", "minAvailable"), depDig(dep, "spec", "replicas"))
	}
}
