# How Azure Firewall decides the AKS egress rules (azure-endpoints.md 5 and 6.1).
case "tag: MCR" {
  client = "10.42.1.10"
  target = "mcr.microsoft.com:443"
  expect = "allow"
  rule   = "aksfwar.fqdn"
}
case "tag: MCR layers, any depth" {
  client = "10.42.1.10"
  target = "westeurope.data.mcr.microsoft.com:443"
  expect = "allow"
  rule   = "aksfwar.fqdn"
}
case "tag: binaries mirror on port 80" {
  client = "10.42.1.10"
  target = "acs-mirror.azureedge.net:80"
  expect = "allow"
  rule   = "aksfwar.fqdn"
}
case "tag: ARM" {
  client = "10.42.1.10"
  target = "management.azure.com"
  expect = "allow"
}
case "API server of this cluster" {
  client = "10.42.1.10"
  target = "aks-prod-abc123.hcp.westeurope.azmk8s.io:443"
  expect = "allow"
  rule   = "aksfwar.apiserver"
}
case "wildcard never matches its apex" {
  client = "10.42.1.10"
  target = "hcp.westeurope.azmk8s.io:443"
  expect = "deny"
  reason = "no_rule"
}
case "API server in another region" {
  client = "10.42.1.10"
  target = "aks-prod-abc123.hcp.northeurope.azmk8s.io:443"
  expect = "deny"
  reason = "no_rule"
}
case "Ubuntu updates over HTTP" {
  client = "10.42.1.10"
  target = "security.ubuntu.com:80"
  expect = "allow"
  rule   = "aks-optional.ubuntu-updates"
}
case "Ubuntu updates: no HTTPS rule" {
  client = "10.42.1.10"
  target = "security.ubuntu.com:443"
  expect = "deny"
  reason = "no_rule"
}
case "the cluster's vault" {
  client = "10.42.1.10"
  target = "kv-aks-prod.vault.azure.net"
  expect = "allow"
  rule   = "aks-optional.csi-secret-store"
}
case "another tenant's vault" {
  client = "10.42.1.10"
  target = "kv-someone-else.vault.azure.net"
  expect = "deny"
  reason = "no_rule"
}
case "outside the AKS subnet" {
  client = "10.42.2.10"
  target = "mcr.microsoft.com"
  expect = "deny"
  reason = "client_unknown"
}
