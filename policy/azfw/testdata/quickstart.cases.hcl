case "workload IP Group (default value) reaches www.microsoft.com" {
  client = "10.30.0.4"
  target = "www.microsoft.com"
  expect = "allow"
  rule   = "Global-rules-arc.global-rule-01"
}
case "www.microsoft.com apex is a different name" {
  client = "10.30.0.4"
  target = "microsoft.com"
  expect = "deny"
  reason = "no_rule"
}
case "infra IP Group (uniqueString name) could not be resolved" {
  client = "10.40.0.4"
  target = "www.microsoft.com"
  expect = "deny"
  reason = "client_unknown"
}
