cloud = "AzureUSGovernment"

client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "mtls" {
    endpoints = ["azure.entra", "azure.entra.mtls"]
  }
}
