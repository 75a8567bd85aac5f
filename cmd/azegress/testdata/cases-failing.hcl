case "wrong expectation" {
  client = "10.0.1.5"
  target = "management.azure.com:80"
  expect = "allow"
}

case "wrong rule" {
  client = "10.0.1.5"
  target = "management.azure.com:443"
  expect = "allow"
  rule   = "key-vault"
}
