client "app" {
  sources = ["10.0.1.0/24"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
  deny "arm" {
    hosts = ["management.azure.com"]
  }
  deny "vaults" {
    endpoints = ["azure.keyvault"]
  }
  deny "nothing" {
    ports = [443]
  }
  deny "bad-host" {
    hosts     = ["*", "*evil.example"]
    addresses = ["10.0.0.1/8"]
  }
}
