# Preset: AKS pods that use Microsoft Entra Workload ID.
#
# When to use it: pods labelled azure.workload.identity/use: "true" get
# AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_TENANT_ID and a projected service
# account token. The Azure SDK exchanges that token for an Entra ID token at
# {AZURE_AUTHORITY_HOST}{tenant}/oauth2/v2.0/token: the pod itself talks to
# Entra ID (login.microsoftonline.com; MSAL may also read the tenant's OpenID
# metadata there, or use a regional <region>.login.microsoft.com). Then it calls
# its targets, here one Key Vault: replace kv-prod-01 with your vault, and add
# rules for other targets by name (storage_accounts, registries, hosts).
#
# This covers the pods' own traffic. Node egress (image pulls, the API server,
# packages) is the cluster's; see the catalog's azure.aks group.
#
# Other clouds: change only `cloud`; azure.entra then means
# login.microsoftonline.us or login.chinacloudapi.cn.
cloud = "AzureCloud"

client "workload-pods" {
  # The pod CIDR whose pods use workload identity (AKS's default overlay pod
  # CIDR shown). Narrow it to the pods' addresses where you can.
  sources = ["10.244.0.0/16"]

  allow "entra" {
    endpoints = ["azure.entra"] # Entra ID token endpoint, federated token exchange
  }

  allow "vault" {
    keyvaults = ["kv-prod-01"] # Key Vault data plane: vault kv-prod-01
  }
}
