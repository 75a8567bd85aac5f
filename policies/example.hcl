# Reference policy for azegress. `azegress check -policy policies/` must
# accept it; policy/load_test.go loads every file in this directory.

# The Azure cloud this policy is written for: AzureCloud (default),
# AzureUSGovernment or AzureChinaCloud.
cloud = "AzureCloud"

# Default mode for client blocks. "enforce" refuses connections that no
# rule allows; "learn" lets them through and reports them as denied.
mode = "enforce"

# A client block applies to connections whose source address falls in
# sources. When blocks overlap, the longest matching prefix wins.
client "workloads" {
  sources = ["10.0.1.0/24"] # CIDRs or bare IPs, IPv4 or IPv6
  mode    = "enforce"       # overrides the top-level mode

  # Exact host names win over wildcards; ports default to [443].
  allow "arm" {
    hosts = ["management.azure.com"]
    ports = [443]
  }

  # A private endpoint: the name resolves into a private (guarded) range,
  # which addresses explicitly permits for this rule's hosts.
  allow "private-vault" {
    hosts     = ["kv-int.vault.azure.net"]
    addresses = ["10.20.0.0/24"]
  }

  # IP-literal destinations are only reachable through addresses.
  allow "ip-only" {
    addresses = ["20.1.2.3"]
    ports     = [443, 8443]
  }

  # Optional per-client limits; absent attributes mean unlimited.
  limits {
    connections_per_second = 50  # new connections per second (token bucket)
    burst                  = 100 # bucket size; default ceil(connections_per_second)
    max_tunnels            = 500 # concurrent tunnels
  }
}
