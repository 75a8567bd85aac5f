client "workloads" {
  sources = ["10.0.1.0/33", "10.0.2.300", "fd00::/129"]
  allow "arm" {
    hosts = ["management.azure.com"]
  }
}
