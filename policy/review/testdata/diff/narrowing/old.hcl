# The workloads' policy before the change.
client "app" {
  sources = ["10.0.1.0/24"]

  allow "kv" {
    hosts = ["*.vault.azure.net"]
  }
  allow "arm" {
    endpoints = ["azure.arm"]
  }
  allow "legacy" {
    hosts   = ["old.example.com"]
    expires = "2026-12-31"
  }
}
