case "bad" {
  client = "not-an-ip"
  target = "management.azure.com"
  expect = "maybe"
}
