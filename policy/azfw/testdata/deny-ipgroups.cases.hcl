# Deny collections and IP Groups (azure-endpoints.md 6.3: group priority, then collection priority; first match wins).
case "guardrail deny (priority 150/100) beats every allow" {
  client = "10.1.0.20"
  target = "pastebin.com:443"
  expect = "deny"
  reason = "deny_rule"
}
case "guardrail deny on a subdomain, plain HTTP" {
  client = "10.2.0.7"
  target = "raw.pastebin.com:80"
  expect = "deny"
  reason = "deny_rule"
}
case "*ngrok.io became ngrok.io and *.ngrok.io" {
  client = "10.2.0.7"
  target = "abc.ngrok.io"
  expect = "deny"
  reason = "deny_rule"
}
case "payments (IP Group from a parameter): its vault" {
  client = "10.1.1.9"
  target = "kv-payments.vault.azure.net"
  expect = "allow"
  rule   = "app-payments.azure"
}
case "payments: revocation over HTTP from source *" {
  client = "10.1.1.9"
  target = "crl.microsoft.com:80"
  expect = "allow"
  rule   = "common.revocation"
}
case "payments: nothing else" {
  client = "10.1.1.9"
  target = "github.com"
  expect = "deny"
  reason = "no_rule"
}
case "web: github apex" {
  client = "10.2.0.7"
  target = "github.com"
  expect = "allow"
  rule   = "app-web.github"
}
case "web: gist (Azure allows: app-web 300 comes before deny-gists 400; azegress denies first)" {
  client = "10.2.0.7"
  target = "gist.github.com"
  expect = "deny"
  reason = "deny_rule"
}
case "web: target URL rule was not carried" {
  client = "10.2.0.7"
  target = "learn.microsoft.com"
  expect = "deny"
  reason = "no_rule"
}
case "another spoke: only the guardrails and revocation" {
  client = "10.9.9.9"
  target = "crl.microsoft.com:80"
  expect = "allow"
  rule   = "common.revocation"
}
case "another spoke: no github" {
  client = "10.9.9.9"
  target = "github.com"
  expect = "deny"
  reason = "no_rule"
}
case "outside every spoke: revocation from source *" {
  client = "172.16.0.1"
  target = "ocsp.digicert.com:80"
  expect = "allow"
}
case "outside every spoke: the guardrail does not apply, nothing else is allowed" {
  client = "172.16.0.1"
  target = "pastebin.com:443"
  expect = "deny"
  reason = "no_rule"
}
