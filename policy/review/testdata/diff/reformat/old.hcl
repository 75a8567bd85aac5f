client "app" {
  sources = ["10.0.1.0/24"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
  allow "kv" {
    keyvaults = ["kv1", "kv2"]
  }
  allow "api" {
    hosts = ["*.api.example.com", "api.example.com"]
    ports = [443, 8443]
  }
  deny "bad" {
    hosts = ["bad.api.example.com"]
  }
}
