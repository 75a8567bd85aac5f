// Package azfw converts Azure Firewall application rules to an azegress
// policy (Import) and an azegress policy to an Azure Firewall rule
// collection group (Export). The JSON shapes are those of
// shared/azure-endpoints.md section 6: firewall policy rule collection
// groups (ARM resources, whole ARM templates, REST GET and list responses,
// and the Azure CLI's flattened output) and the classic
// Microsoft.Network/azureFirewalls rule collections.
//
// Semantics that differ, and how the conversion handles them:
//
//   - Azure Firewall applies every rule whose sources contain the client;
//     azegress picks one client block by longest source prefix. The
//     importer gives each distinct source prefix the rules of every Azure
//     rule whose sources contain it, and merges prefixes with the same
//     rules into one client block, so each client gets the same rules.
//   - Azure evaluates collections by priority, first match wins; azegress
//     evaluates deny rules before allow rules. They agree when Deny
//     collections come first; where a lower-priority Deny overlaps a
//     higher-priority Allow, the importer warns.
//   - "*contoso.com" (no dot) also matches contoso.com and look-alikes
//     such as evilcontoso.com in Azure; it becomes contoso.com and
//     *.contoso.com, with a warning.
//   - Protocols become ports: azegress does not tell HTTP from HTTPS on a
//     port.
//   - Azure Firewall cannot select by identity: Export leaves identity
//     blocks out, with a warning.
//
// Files: import.go reads the firewall's JSON and writes the policy,
// armeval.go evaluates the ARM template expressions in it, export.go
// writes a policy as an ARM template. The package uses the policy core's
// exported API only (policy.NormalizeHostPattern, catalog.Expand); of the
// module it imports policy and the packages below it (TestDeps).
package azfw
