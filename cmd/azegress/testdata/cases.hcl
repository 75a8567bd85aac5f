# Cases for testdata/policy.hcl, run by `azegress test`.
case "arm from workloads" {
  client = "10.0.1.5"
  target = "management.azure.com"
  expect = "allow"
  rule   = "arm"
}

case "the named vault" {
  client = "10.0.1.5"
  target = "KV-PROD-01.vault.azure.net.:443"
  expect = "allow"
}

case "another tenant's vault" {
  client = "10.0.1.5"
  target = "kv-exfil.vault.azure.net:443"
  expect = "deny"
  reason = "no_rule"
}

case "unknown client" {
  client = "192.0.2.1"
  target = "management.azure.com:443"
  expect = "deny"
  reason = "client_unknown"
}
