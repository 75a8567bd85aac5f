# A Key Vault-only workload (az network firewall policy rule-collection-group show).
case "its vault" {
  client = "10.1.2.5"
  target = "kv-prod-01.vault.azure.net:443"
  expect = "allow"
  rule   = "vault.kv-prod-01"
}
case "another vault" {
  client = "10.1.2.5"
  target = "kv-other.vault.azure.net"
  expect = "deny"
  reason = "no_rule"
}
case "its vault on port 80" {
  client = "10.1.2.5"
  target = "kv-prod-01.vault.azure.net:80"
  expect = "deny"
  reason = "no_rule"
}
case "jump host: its own rule beats the subnet's (exact first)" {
  client = "10.1.2.10"
  target = "kv-prod-01.vault.azure.net"
  expect = "allow"
  rule   = "vault.kv-prod-01"
}
case "jump host: any vault, as *vault.azure.net did" {
  client = "10.1.2.10"
  target = "kv-other.vault.azure.net"
  expect = "allow"
  rule   = "vault.jump-any-vault"
}
case "jump host: the apex, as *vault.azure.net did" {
  client = "10.1.2.10"
  target = "vault.azure.net"
  expect = "allow"
  rule   = "vault.jump-any-vault"
}
case "jump host: a look-alike Azure matched no longer does" {
  client = "10.1.2.10"
  target = "evilvault.azure.net"
  expect = "deny"
  reason = "no_rule"
}
