# The classic firewall of azure-endpoints.md 6.7 (AzureFirewallPut.json), with an Allow collection after the Deny.
case "Deny collection 110 comes before Allow 200" {
  client = "10.0.0.7"
  target = "www.test.com:443"
  expect = "deny"
  reason = "deny_rule"
}
case "the deny is HTTPS only" {
  client = "10.0.0.7"
  target = "www.test.com:80"
  expect = "allow"
  rule   = "allow-web.test-sites"
}
case "other test.com names" {
  client = "10.0.0.7"
  target = "api.test.com"
  expect = "allow"
  rule   = "allow-web.test-sites"
}
case "test.com apex is listed" {
  client = "10.0.0.7"
  target = "test.com"
  expect = "allow"
}
case "the deny's other source has no allow rules" {
  client = "216.58.216.164"
  target = "api.test.com"
  expect = "deny"
  reason = "no_rule"
}
case "the deny's other source" {
  client = "216.58.216.164"
  target = "www.test.com"
  expect = "deny"
  reason = "deny_rule"
}
case "Mssql was not carried" {
  client = "10.0.0.7"
  target = "sql-prod.database.windows.net:1433"
  expect = "deny"
  reason = "no_rule"
}
case "TCP network rule to an IP address" {
  client = "10.0.0.7"
  target = "20.1.2.3:444"
  expect = "allow"
  rule   = "netrulecoll.partner-api"
}
case "network rule ports only" {
  client = "10.0.0.7"
  target = "20.1.2.3:8443"
  expect = "deny"
  reason = "no_rule"
}
