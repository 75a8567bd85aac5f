package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policies"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy"
)

const usage = `azegress: an egress-filtering forward proxy for Azure managed-identity workloads.

Usage:
  azegress serve   [-policy FILE] [-listen ADDR] [-metrics ADDR] [flags]
  azegress check   [-lint] FILE|DIR...
  azegress explain [-policy FILE] [-client IP] [-no-dns] [-identity OID [-client-id ID] | -token FILE -jwks FILE] HOST[:PORT]
  azegress report  [-policy BASELINE.hcl] [-format hcl|markdown|json] OBSERVATIONS...
  azegress record  [-cloud NAME] [-minimize] -- COMMAND ARGS...
  azegress test    [-v] POLICY.hcl CASES.hcl
  azegress diff    [-format text|markdown|json] OLD NEW
  azegress replay  -policy NEW [-format text|markdown|json] FILE...
  azegress access  [-policy FILE] (-client NAME | -identity GUID | -source IP) [-format text|markdown|csv|json]
  azegress audit-network -policy FILE -subscription ID [-resource-group RG] -proxy-ip IP [-format text|markdown|json]
  azegress catalog [-cloud NAME] [-format table|json]
  azegress import-azfw [-cloud NAME] FILE.json...
  azegress export-azfw [-group NAME] [-priority N] POLICY.hcl
  azegress proxy-url [-resource api://azegress] [-client-id ID] -proxy http://HOST:PORT
  azegress agent   [-listen 127.0.0.1:3128] -upstream URL [-resource api://azegress]
  azegress version

Run "azegress COMMAND -h" for a command's flags.
`

// run is the whole program; it returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "explain":
		return explain(args[1:], stdout, stderr)
	case "report":
		return report(args[1:], stdout, stderr)
	case "record":
		return record(args[1:], stdout, stderr)
	case "test":
		return testPolicy(args[1:], stdout, stderr)
	case "diff":
		return diffCommand(args[1:], stdout, stderr)
	case "replay":
		return replayCommand(args[1:], stdout, stderr)
	case "access":
		return accessCommand(args[1:], stdout, stderr)
	case "audit-network":
		return auditNetwork(args[1:], stdout, stderr)
	case "catalog":
		return catalogCommand(args[1:], stdout, stderr)
	case "import-azfw":
		return importAzfw(args[1:], stdout, stderr)
	case "export-azfw":
		return exportAzfw(args[1:], stdout, stderr)
	case "proxy-url":
		return proxyURL(args[1:], stdout, stderr)
	case "agent":
		return agentCommand(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		return versionCommand(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "azegress: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// loader returns how to (re)load the policy: from path, or the embedded
// default when path is empty. Loads run one at a time (SIGHUP and the file
// watcher may ask at once) under lazyGC.
func loader(path string) proxy.Loader {
	load := func() (*policy.Policy, hcl.Diagnostics) { return policy.LoadFile(path) }
	if path == "" {
		load = func() (*policy.Policy, hcl.Diagnostics) { return policy.Load(policies.DefaultName, policies.Default) }
	}
	var mu sync.Mutex
	return func() (*policy.Policy, hcl.Diagnostics) {
		mu.Lock()
		defer mu.Unlock()
		defer lazyGC()()
		return load()
	}
}

// lazyGC raises GOGC to at least loadGOGC until the returned func runs.
// Loading a policy allocates about 2.4 KB per rule that is garbage a moment
// later (237 MB for 100,000 rules); collecting it at the default pace took a
// quarter of a large reload's CPU time, which on a busy proxy is the reload's
// wall time too. The heap may grow by that much while a load runs;
// GOMEMLIMIT, if set, still bounds it. GOGC=off stays off.
func lazyGC() (restore func()) {
	old := debug.SetGCPercent(loadGOGC)
	if old < 0 || old >= loadGOGC {
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

const loadGOGC = 400

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lint := fs.Bool("lint", false, "also warn about risky or dead rules (multi-tenant wildcards, shadowed hosts, unused blocks, port 80 to token endpoints, local endpoints, expiry); warnings never change the exit status")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress check [-lint] FILE|DIR...\n\nValidates policies; prints file:line:col: message for each problem, and for each valid\n"+
			"policy its SHA-256 (the policy_sha256 of the proxy's records); exit 1 on error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var files []string
	for _, a := range fs.Args() {
		if fi, err := os.Stat(a); err == nil && fi.IsDir() {
			m, _ := filepath.Glob(filepath.Join(a, "*.hcl"))
			sort.Strings(m)
			files = append(files, m...)
			continue
		}
		files = append(files, a)
	}
	code := 0
	for _, f := range files {
		p, diags := policy.LoadFile(f)
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		if diags.HasErrors() || p == nil {
			code = 1
			continue
		}
		if *lint {
			fmt.Fprint(stderr, policy.FormatDiagnostics(policy.Lint(p, time.Now())))
		}
		fmt.Fprintf(stdout, "%s: ok (%d client blocks, %d rules) sha256:%s\n", f, len(p.Clients()), p.RuleCount(), p.SHA256())
	}
	return code
}

func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	policyPath := fs.String("policy", "", "policy `file` (default: the embedded policies/default.hcl)")
	client := fs.String("client", "127.0.0.1", "client `IP` asking")
	noDNS := fs.Bool("no-dns", false, "skip resolving the name and the destination guard check")
	var cf credFlags
	fs.StringVar(&cf.oid, "identity", "", "decide for a request with a valid token of the managed identity with this object `ID` (its principalId)")
	fs.StringVar(&cf.clientID, "client-id", "", "with -identity: the identity's client (application) `ID`, for blocks that list client_ids")
	fs.StringVar(&cf.tokenFile, "token", "", "decide for a request carrying the access token in this `file`, validated offline as the proxy validates it (needs -jwks)")
	fs.StringVar(&cf.jwksFile, "jwks", "", "with -token: the tenant's signing keys, a JWKS `file` saved from its jwks_uri (curl {authority}/{tenant}/discovery/v2.0/keys)")
	fs.StringVar(&cf.issuerV1, "issuer-v1", "", "with -token: the tenant's v1 token issuer (default https://sts.windows.net/{tenant}/, the public cloud's; see {authority}/{tenant}/.well-known/openid-configuration)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: azegress explain [-policy FILE] [-client IP] [-no-dns] [-identity OID [-client-id ID] | -token FILE -jwks FILE] HOST[:PORT]\n\n"+
			"Prints what the proxy would decide for a request from the client address, without credentials, with a managed identity's\n"+
			"valid token (-identity), or with a token checked offline (-token). Exit 0 if allowed, 1 if denied.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	ip, err := netip.ParseAddr(*client)
	if err != nil {
		fmt.Fprintf(stderr, "azegress explain: -client: %v\n", err)
		return 2
	}
	pol, diags := loader(*policyPath)()
	if diags.HasErrors() {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
		return 2
	}
	cred, err := cf.credential(pol)
	if err != nil {
		fmt.Fprintf(stderr, "azegress explain: %v\n", err)
		return 2
	}
	var r proxy.Resolver = net.DefaultResolver
	if *noDNS {
		r = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := proxy.ExplainAs(ctx, pol, cred, ip, fs.Arg(0), r)
	if err != nil {
		fmt.Fprintf(stderr, "azegress explain: %v\n", err)
		return 2
	}
	printExplanation(stdout, e)
	if e.Decision == policy.VerdictDeny {
		return 1
	}
	return 0
}

// printExplanation writes explain's report of e.
func printExplanation(stdout io.Writer, e *proxy.Explanation) {
	fmt.Fprintf(stdout, "decision: %s\n", e.Decision)
	fmt.Fprintf(stdout, "target:   %s\n", net.JoinHostPort(e.Host.String(), fmt.Sprint(e.Port)))
	if e.Block != nil {
		fmt.Fprintf(stdout, "client:   %s (client block %q, mode %s)\n", e.Client, e.Block.Name, e.Block.Mode)
	} else {
		fmt.Fprintf(stdout, "client:   %s (no client block)\n", e.Client)
	}
	if id := e.Identity; id != nil {
		fmt.Fprintf(stdout, "identity: object ID %s", id.ObjectID)
		if id.AppID != "" {
			fmt.Fprintf(stdout, ", client ID %s", id.AppID)
		}
		if !id.Expiry.IsZero() {
			fmt.Fprintf(stdout, ", token expires %s", id.Expiry.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(stdout)
	}
	if e.AuthResult != "" {
		fmt.Fprintf(stdout, "auth:     %s", e.AuthResult)
		if e.AuthReason != "" {
			fmt.Fprintf(stdout, " (%s)", e.AuthReason)
		}
		fmt.Fprintln(stdout)
	}
	if e.Decision == policy.VerdictDeny {
		challenge := ""
		if e.Challenge {
			challenge = ", with Proxy-Authenticate: Basic (asks for credentials)"
		}
		fmt.Fprintf(stdout, "status:   %d%s\n", e.Status, challenge)
	}
	if e.Rule != nil {
		fmt.Fprintf(stdout, "rule:     %q at %s:%d:%d\n", e.Rule.Name, e.Rule.Range.Filename, e.Rule.Range.Start.Line, e.Rule.Range.Start.Column)
	} else {
		fmt.Fprintf(stdout, "reason:   %s\n", e.Reason)
	}
	fmt.Fprintf(stdout, "why:      %s\n", e.Detail)
	for _, a := range e.Addresses {
		verdict := "ok"
		if a.What != "" {
			verdict = "guarded: " + a.What
			if a.Allowed {
				verdict += " (listed in the rule's addresses)"
			} else {
				verdict += " (refused)"
			}
		}
		fmt.Fprintf(stdout, "address:  %s %s\n", a.IP, verdict)
	}
	if e.Fix != "" {
		fmt.Fprintf(stdout, "\n%s", strings.TrimRight(e.Fix, "\n")+"\n")
	}
}

// credFlags are explain's credential flags.
type credFlags struct {
	oid, clientID       string
	tokenFile, jwksFile string
	issuerV1            string
}

// credential is the credential the flags describe, under pol's entra
// block; a token is validated offline against the key set file.
func (cf credFlags) credential(pol *policy.Policy) (proxy.Credential, error) {
	var cred proxy.Credential
	switch {
	case cf.oid != "" && cf.tokenFile != "":
		return cred, errors.New("-identity and -token exclude each other")
	case cf.clientID != "" && cf.oid == "":
		return cred, errors.New("-client-id needs -identity")
	case cf.tokenFile != "" && cf.jwksFile == "", cf.jwksFile != "" && cf.tokenFile == "":
		return cred, errors.New("-token and -jwks go together: the token is checked against the key set")
	case cf.issuerV1 != "" && cf.tokenFile == "":
		return cred, errors.New("-issuer-v1 needs -token")
	case cf.oid == "" && cf.tokenFile == "":
		return cred, nil
	}
	e := pol.Entra()
	if e == nil {
		return cred, fmt.Errorf("the policy (%s) has no entra block, so no credential selects a client block", pol.Filename())
	}
	if cf.oid != "" {
		cred.Identity = &identity.Identity{ObjectID: strings.ToLower(cf.oid), AppID: strings.ToLower(cf.clientID), TenantID: e.TenantID}
		return cred, nil
	}
	token, err := os.ReadFile(cf.tokenFile)
	if err != nil {
		return cred, fmt.Errorf("-token: %w", err)
	}
	jwks, err := os.ReadFile(cf.jwksFile)
	if err != nil {
		return cred, fmt.Errorf("-jwks: %w", err)
	}
	issuerV1 := cf.issuerV1
	if issuerV1 == "" {
		issuerV1 = "https://sts.windows.net/" + e.TenantID + "/"
	}
	keys, err := identity.NewStaticKeys(e.TenantID, e.Authority+"/"+e.TenantID+"/v2.0", issuerV1, jwks, nil)
	if err != nil {
		return cred, fmt.Errorf("-jwks %s: %w", cf.jwksFile, err)
	}
	v, err := proxy.NewValidator(e, keys)
	if err != nil {
		return cred, err
	}
	cred.Token, cred.Validator = strings.TrimSpace(string(token)), v
	return cred, nil
}
