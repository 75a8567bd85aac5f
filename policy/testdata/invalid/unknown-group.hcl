client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "typos" {
    endpoints = ["azure.keyvalt", "keyvault", "azure.storage.blobs", "Azure.ARM", "azure.nothing"]
  }
  allow "broad" {
    endpoints = ["azure.keyvault", "azure.arm"]
  }
}
