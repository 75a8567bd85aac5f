cloud = "AzureCloud"

client "workloads" {
  sources = ["10.0.1.0/24"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
  allow "key-vault" {
    hosts = ["kv-prod-01.vault.azure.net"]
  }
}
