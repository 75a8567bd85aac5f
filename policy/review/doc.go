// Package review is the security-review kit: what a policy change does
// (Diff), whether it would break recorded traffic (Replay), and who may
// reach what (Access). The commands "azegress diff", "replay" and
// "access" print its reports.
//
// It has no interpreter of its own. Every answer is a decision of the
// policy core on the compiled policy the proxy serves:
// policy.Client.DecideAt, AddressAllowedAt and Verdict, policy.Client and
// ClientForIdentity to select blocks, and policy.Lint for warnings. What
// the kit adds is where to ask: the destinations that the rules of the
// blocks compared could treat differently, one probe per class (an exact
// name, a name standing for a wildcard, a port, an address of each
// prefix, each instant a rule expires), so that a few decisions cover
// every destination. Of the module it imports policy and the packages
// below it (TestDeps).
//
// # Diff
//
// Diff matches client blocks by name, else as renamed when they have the
// same sources and identities, and decides every class on both sides at
// the instant given and at each later expiry. A destination whose verdict
// changes is a widening (it passes now and did not), a narrowing, or
// "changed" (both at different times, or allow against learn mode's
// would_deny). Sources, identities, mode, allow_sni_mismatch and the
// entra block are compared too; a rename and limits change no access.
// Formatting, comments, rule names and rule order change no decision and
// so appear nowhere.
//
// Widenings carry flags: a wildcard over a multi-tenant data plane, a
// name on one (exfiltration-capable: a vault, a storage account, an
// ingestion endpoint any tenant can own), an IP-literal destination (raw
// address), and every policy.Lint warning about the granting rule and
// host that the new policy brings. The JSON form (DiffReport.JSON) is
// stable: fields are added, never renamed or removed.
//
//	{
//	  "old": "old.hcl", "new": "new.hcl",       // as loaded (REV:PATH for git)
//	  "old_sha256": "…", "new_sha256": "…",      // policy.Policy.SHA256 of each
//	  "at": "2026-06-01T00:00:00Z",             // the instant decided at
//	  "changed": true,                          // access changes: exit 1
//	  "summary": {"widenings": 1, "narrowings": 1, "changed": 0, "other": 0},
//	  "entra": [ValueChange...],                // entra block attributes
//	  "clients": [{
//	    "name": "app", "old_name": "web",       // old_name only when renamed
//	    "status": "changed",                    // added, removed, renamed, changed
//	    "sources": [{"change": "widening", "prefix": "10.0.2.0/24", "added": true,
//	                 "note": "was in no client block"}],
//	    "identities": [{"change": "widening", "kind": "object_id", "id": "…", "added": true}],
//	    "settings": [{"change": "widening", "field": "mode", "old": "enforce", "new": "learn"}],
//	    "destinations": [{
//	      "change": "narrowing",                // widening, narrowing, changed
//	      "destination": "*.vault.azure.net",   // host pattern, or address prefix
//	      "resolves_to": "10.20.0.0/24",        // only for the guard: may the name resolve there
//	      "ports": [443],
//	      "label": "Key Vault data plane",      // the catalog's
//	      "old": [Period...], "new": [Period...],
//	      "within": ["kv1.vault.azure.net:443"],// under a wildcard, allowed on both sides
//	      "flags": [{"check": "multi_tenant_wildcard", "detail": "…", "pos": "new.hcl:4:14"}]
//	    }]
//	  }],
//	  "lint": [Flag...]                         // Lint warnings brought, on no destination
//	}
//
// A Period is {"verdict": "allow"|"deny"|"would_deny", "reason":
// "no_rule"|"deny_rule"|"blocked_address"|"client_unknown", "rule": NAME,
// "pos": "file:line:col", "until": TIME}, where until, if present, is when
// an expiry ends it and the next period begins. A ValueChange is {"change",
// "field", "old", "new"}. Flag checks: multi_tenant_wildcard,
// exfiltration_capable, raw_address, and the policy.Lint* checks.
//
// # Replay
//
// Replay reads observation files (package learn's JSON lines) and the
// proxy's JSON log (its "deny" and "would deny" records, and the "tunnel
// closed" and "request" records of allowed traffic, which name the
// rule) and keeps one entry per recorded (client block, host, port), so
// that memory follows the number of destinations, not the length of the
// log; lines are scanned without reflection (BenchmarkReplay). Each entry
// is decided under the new policy by the block of the same name, as the
// proxy would at the instant given (for an IP literal, with the
// destination guard; a name's resolved addresses are not in the records).
// It breaks when traffic that passed (allow, or would_deny in learn mode)
// is now denied. A corrupt line is counted and skipped; the first few are
// named by file and line. ReplayReport.JSON:
//
//	{
//	  "policy": "new.hcl", "policy_sha256": "…", "at": "2026-06-01T00:00:00Z",
//	  "stats": {"files": 2, "lines": 21, "decision_records": 8, "observation_lines": 6,
//	            "other_records": 3, "corrupt_lines": 4},
//	  "warnings": ["proxy.log:10: skipped: invalid JSON at byte 100"],
//	  "destinations": [{
//	    "client_block": "app", "host": "kv-other.vault.azure.net", "port": 443,
//	    "count": 1,
//	    "then": [{"verdict": "allow", "count": 1, "rule": "kv"}],  // reason for deny, would_deny
//	    "now": Period,                                           // as in Diff, without until
//	    "breaks": true
//	  }],
//	  "breaks": 1, "broken_connections": 1,
//	  "unused": [{"client_block": "app", "rule": "private-vault", "pos": "new.hcl:21:3",
//	              "destination": "10.20.0.0/24", "ports": [443], "label": ""}]
//	}
//
// Unused are the destinations of allow rules (host patterns and
// prefixes), on the ports where the policy lets them through, under which
// no recorded destination that the policy allows falls.
//
// # Access
//
// Access lists every destination of one client block's rules, allow
// rules then deny rules in file order, for an access review; the block is
// chosen by name (ClientByName), by the address a connection comes from
// (ClientBySource: policy.Policy.Client) or by a managed identity's
// object or client ID (ClientByIdentity: policy.Policy.ClientForIdentity).
// Each destination's status is the policy's decision at the instant
// given: reachable, refused by a deny rule, expired. AccessReport.JSON:
//
//	{
//	  "policy": "policy.hcl", "policy_sha256": "…", "at": "2026-06-01T00:00:00Z",
//	  "client_block": "app", "pos": "policy.hcl:6:1", "selected_by": "source 10.0.1.9",
//	  "mode": "enforce", "sources": ["10.0.1.0/24"],
//	  "identity": {"object_ids": [], "client_ids": []},   // only with an identity block
//	  "destinations": [{
//	    "kind": "allow",                                   // or deny
//	    "destination": "kv-prod-01.vault.azure.net",       // host pattern, or address prefix
//	    "ports": [443],
//	    "resolves_to": ["10.20.0.0/24"],                   // guarded ranges the host may resolve to
//	    "rule": "vaults", "pos": "policy.hcl:12:3",
//	    "group": "azure.keyvault",                         // catalog group it comes from or falls under
//	    "label": "Key Vault data plane: vault kv-prod-01",
//	    "source": "azure-cli 2.45 …",                      // where the catalog entry comes from
//	    "expires": "2027-01-01T00:00:00Z",                 // the instant it stops matching
//	    "status": "reachable"
//	  }]
//	}
//
// The CSV form has one row per destination with the same fields and
// the policy's hash.
//
// Every report names the policy it decided with by its hash
// (policy.Policy.SHA256), the policy_sha256 of the proxy's records, so
// that a review ties to the exact policy that served the traffic.
package review
