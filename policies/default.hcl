# azegress default policy, embedded in the binary and used when `serve` gets no -policy.
#
# When to use it: trying azegress on one machine. Programs on this machine
# (loopback clients) may reach the managed-identity baseline of the Azure public
# cloud, Microsoft Entra ID (token issuance) and Azure Resource Manager (what
# `az login --identity` calls after taking its token from IMDS), and nothing else.
# IMDS itself (169.254.169.254) must not go through any proxy: keep it in NO_PROXY.
cloud = "AzureCloud"

client "local" {
  sources = ["127.0.0.0/8", "::1/128"]

  allow "entra" {
    hosts = ["login.microsoftonline.com"]
  }

  allow "arm" {
    hosts = ["management.azure.com"]
  }
}
