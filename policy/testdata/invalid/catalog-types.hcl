client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "types" {
    endpoints        = "azure.arm"
    keyvaults        = [true]
    storage_accounts = {}
    registries       = [null]
  }
  allow "empty" {
    endpoints = []
  }
}
