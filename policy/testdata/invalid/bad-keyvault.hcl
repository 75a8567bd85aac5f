client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "vaults" {
    keyvaults = [
      "kv-prod-01",
      "kv",
      "1kv-prod",
      "kv--prod",
      "kv-prod-",
      "kv_prod",
      "kv-prod-01.vault.azure.net",
      "kv-prod-with-a-very-long-name",
      42,
    ]
  }
}
