// Package catalog is the Azure endpoint catalog, as data: the Azure clouds
// and, per cloud, the hosts that Azure workloads with managed identities
// talk to, grouped ("azure.arm", "azure.keyvault") and labelled, each
// with the public source it was taken from. It is the one source of truth
// for the policy language's endpoints attribute and resource helpers
// (keyvaults, storage_accounts, registries), host labels in logs and
// reports, the local endpoints that must bypass the proxy, and the
// private-link zones the proxy's destination guard accepts for private
// endpoints. The policy compiler turns it into rule hosts; this package
// knows nothing of policies.
//
// The data comes from the project's research notes (shared/catalog.md and
// shared/azure-endpoints.md). Wildcards follow Azure Firewall:
// "*.example.com" covers any name below example.com and never example.com
// itself.
//
// It imports only policy/host of the module (TestDeps).
package catalog
