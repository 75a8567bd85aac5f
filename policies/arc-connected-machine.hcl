# Preset: the Azure Arc Connected Machine agent's own required endpoints.
#
# When to use it: an on-premises or other-cloud server runs azcmagent and
# reaches Azure through this proxy (azcmagent config set proxy.url
# "http://PROXY:3128"). Source: learn.microsoft.com/azure/azure-arc/servers/network-requirements.
#
# What it allows:
#   - azure.arc: the hybrid identity service (*.his.arc.azure.com, including
#     gbl.his.arc.azure.com), extension management and guest configuration
#     (*.guestconfiguration.azure.com), the notification service
#     (guestnotificationservice.azure.com), and the groups the agent always
#     needs with it: azure.entra, azure.entra.pas (pas.windows.net) and
#     azure.arm (connect and disconnect).
#   - azure.arc.install: agent installation and automatic upgrades
#     (download.microsoft.com, packages.microsoft.com).
#
# What it deliberately leaves out: the agent also needs its region's
# notification Service Bus namespace (azgn*.servicebus.windows.net) and, without
# private endpoints, extension downloads from Microsoft storage accounts under
# *.blob.core.windows.net. Both wildcards cover every tenant's resources, so
# list the exact names instead: the namespaces from
#   GET https://guestnotificationservice.azure.com/urls/allowlist?api-version=2020-01-01&location=REGION
# and the storage accounts from a learning-mode run (mode = "learn", then
# `azegress report`). Add them as hosts in a rule of their own.
#
# HIMDS (localhost:40342) and the Arc Proxy (localhost:40343) are local to the
# machine: keep localhost in the agent's proxy bypass and in NO_PROXY.
#
# Other clouds: change only `cloud`; AzureUSGovernment uses *.his.arc.azure.us
# and *.guestconfiguration.azure.us, AzureChinaCloud the .cn names.
cloud = "AzureCloud"

client "arc-agent" {
  # The agent on the proxy's machine. For a proxy that serves servers on a
  # network, list their addresses instead, like ["192.168.10.0/24"].
  sources = ["127.0.0.0/8", "::1/128"]

  allow "arc" {
    endpoints = ["azure.arc"]
  }

  allow "arc-install" {
    endpoints = ["azure.arc.install"]
  }
}
