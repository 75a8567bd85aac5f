# Preset: an application on an Azure VM reads Key Vault secrets with the VM's
# managed identity.
#
# When to use it: an app (Azure SDK DefaultAzureCredential or
# ManagedIdentityCredential, or `az rest --resource https://vault.azure.net`)
# takes its token from IMDS and reads secrets, keys or certificates from one
# vault. Nothing else is needed: the token comes from IMDS, not from Entra ID,
# and the SDK's 401 challenge comes from the vault itself. Replace kv-prod-01
# with your vault's name; keyvaults adds the cloud's suffix (.vault.azure.net).
#
# Never allow *.vault.azure.net: every tenant's vaults are under it, so a
# compromised workload could copy secrets to a vault its attacker owns.
#
# A private endpoint needs no extra rule: when the vault's name resolves to a
# private address through privatelink.vaultcore.azure.net, the proxy accepts it.
#
# IMDS (169.254.169.254) must not go through any proxy: keep it in NO_PROXY.
#
# Other clouds: change only `cloud`; the vault becomes kv-prod-01.vault.usgovcloudapi.net
# or kv-prod-01.vault.azure.cn.
cloud = "AzureCloud"

client "local" {
  # Programs on the proxy's machine. For a proxy that serves a subnet, list the
  # subnet instead, like ["10.0.1.0/24"].
  sources = ["127.0.0.0/8", "::1/128"]

  allow "vault" {
    keyvaults = ["kv-prod-01"] # Key Vault data plane: vault kv-prod-01
  }
}
