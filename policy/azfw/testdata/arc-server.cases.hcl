# How Azure Firewall decides an Arc server's required endpoints (azure-endpoints.md 3.1, 6.1).
case "Entra ID" {
  client = "192.168.10.5"
  target = "login.microsoftonline.com:443"
  expect = "allow"
  rule   = "arc-agent.entra"
}
case "regional Entra ID" {
  client = "192.168.20.15"
  target = "westeurope.login.microsoft.com"
  expect = "allow"
  rule   = "arc-agent.entra"
}
case "apex of *.login.microsoft.com is not listed" {
  client = "192.168.10.5"
  target = "login.microsoft.com"
  expect = "deny"
  reason = "no_rule"
}
case "global hybrid identity service" {
  client = "192.168.10.5"
  target = "gbl.his.arc.azure.com"
  expect = "allow"
  rule   = "arc-agent.arc-services"
}
case "notification service apex and below" {
  client = "192.168.10.5"
  target = "guestnotificationservice.azure.com"
  expect = "allow"
  rule   = "arc-agent.arc-services"
}
case "extension storage (any account, as in Azure)" {
  client = "192.168.10.5"
  target = "someaccount.blob.core.windows.net"
  expect = "allow"
  rule   = "arc-agent.extensions"
}
case "azgn* namespace was not carried over" {
  client = "192.168.10.5"
  target = "azgnweu01.servicebus.windows.net"
  expect = "deny"
  reason = "no_rule"
}
case "range 192.168.20.10-20 gets the agent rules" {
  client = "192.168.20.20"
  target = "pas.windows.net"
  expect = "allow"
}
case "range 192.168.20.10-20 has no install rules" {
  client = "192.168.20.20"
  target = "packages.microsoft.com"
  expect = "deny"
  reason = "no_rule"
}
case "outside the range" {
  client = "192.168.20.21"
  target = "pas.windows.net"
  expect = "deny"
  reason = "client_unknown"
}
case "ESU certificates over HTTP" {
  client = "192.168.10.5"
  target = "www.microsoft.com:80"
  expect = "allow"
  rule   = "arc-install.esu-certs"
}
case "ARM on port 80: only Https was allowed" {
  client = "192.168.10.5"
  target = "management.azure.com:80"
  expect = "deny"
  reason = "no_rule"
}
