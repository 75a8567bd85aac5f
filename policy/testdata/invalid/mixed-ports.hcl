client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "mixed" {
    hosts     = ["api.example.com"]
    endpoints = ["azure.arm", "azure.pki"]
  }
  allow "helpers" {
    endpoints = ["azure.pki"]
    keyvaults = ["kv-prod-01"]
  }
  allow "fine" {
    endpoints = ["azure.pki"]
    keyvaults = ["kv-prod-01"]
    ports     = [80, 443]
  }
}
