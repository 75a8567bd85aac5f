client "app" {
  sources = ["10.0.0.0/16"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
}

# Carves a subnet out of "app"; no rules, so it is refused everything.
client "quarantine" {
  sources = ["10.0.9.0/24"]
}

client "deny-only" {
  sources = ["10.0.8.0/24"]

  deny "arm" {
    hosts = ["management.azure.com"]
  }
}
