# Linted at 2026-06-01T00:00:00Z.
client "app" {
  sources = ["10.0.1.0/24"]

  allow "vendor-old" {
    hosts   = ["support.vendor.example"]
    expires = "2026-05-15"
  }
  allow "vendor-soon" {
    hosts   = ["upload.vendor.example"]
    expires = "2026-06-03T12:00:00Z"
  }
  allow "break-glass" {
    hosts   = ["portal.azure.com"]
    expires = "2026-06-01T05:30:00+02:00"
  }
  allow "later" {
    hosts   = ["docs.vendor.example"]
    expires = "2026-12-31"
  }
  deny "freeze" {
    hosts   = ["management.azure.com"]
    expires = "2026-06-07"
  }
}
