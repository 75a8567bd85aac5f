# Preset: `az login --identity` on an Azure VM or scale set.
#
# When to use it: scripts on a VM run the Azure CLI with the VM's managed
# identity (`az login --identity`, then ARM commands such as `az resource list`).
#
# What it allows and why, measured: `azegress record -minimize -- az login
# --identity` with Debian's real azure-cli 2.45.0 (e2e/azcli_test.go) keeps
# exactly management.azure.com:443, as the CLI's source says: azure-cli 2.45 (azure/cli/core/_profile.py, login_with_managed_identity)
# takes an ARM token from IMDS, decodes its tenant locally, then makes one call,
# GET https://management.azure.com/subscriptions (SubscriptionFinder). The
# managed-identity path never contacts Entra ID, so login.microsoftonline.com is
# not needed. The CLI's telemetry (dc.services.visualstudio.com) and first-run
# version check (raw.githubusercontent.com) are not needed either: set
# AZURE_CORE_COLLECT_TELEMETRY=false and let them be denied.
#
# IMDS (169.254.169.254) must not go through any proxy: keep it in NO_PROXY,
#   NO_PROXY=169.254.169.254,168.63.129.16,localhost,127.0.0.1
#
# Other clouds: change only `cloud`; azure.arm then means
# management.usgovcloudapi.net or management.chinacloudapi.cn.
cloud = "AzureCloud"

client "local" {
  # Programs on the proxy's machine. For a proxy that serves a subnet, list the
  # subnet instead, like ["10.0.1.0/24"].
  sources = ["127.0.0.0/8", "::1/128"]

  allow "arm" {
    endpoints = ["azure.arm"] # Azure Resource Manager: the subscription list
  }
}
