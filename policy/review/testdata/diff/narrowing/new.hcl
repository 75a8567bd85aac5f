client "app" {
  sources = ["10.0.1.0/24", "10.0.2.0/24"]

  allow "management" {
    endpoints = ["azure.arm"]
  }
  allow "vaults" {
    keyvaults = ["kv1"]
  }
  allow "blobs" {
    hosts = ["*.blob.core.windows.net"]
  }
  allow "partner" {
    addresses = ["20.1.2.3"]
    ports     = [8443]
  }
  allow "legacy" {
    hosts   = ["old.example.com"]
    expires = "2027-06-30"
  }
  allow "private-vault" {
    hosts     = ["kv1.vault.azure.net"]
    addresses = ["10.20.0.0/24"]
  }
}
