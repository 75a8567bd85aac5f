cloud = "AzureCloud"

client "workloads" {
  sources = ["10.0.1.0/24"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
  allow "vaults" {
    hosts = ["*.vault.azure.net"]
  }
  allow "graph" {
    hosts = ["graph.microsoft.com"]
  }
}

client "batch" {
  sources = ["10.0.2.0/24"]
  mode    = "learn"

  allow "storage" {
    hosts = ["*.blob.core.windows.net"]
    ports = [443]
  }
}
