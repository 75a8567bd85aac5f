client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "arm" {
    host = ["management.azure.com"]
  }
}
