client "app" {
  sources = ["10.0.1.0/24"]

  allow "vendor" {
    hosts   = ["support.vendor.example"]
    expires = "31/12/2026"
  }
  allow "typed" {
    hosts   = ["upload.vendor.example"]
    expires = 20261231
  }
  deny "freeze" {
    hosts   = ["management.azure.com"]
    expires = "2026-12-31 18:00"
  }
}
