client "workloads" {
  allow "arm" {
    hosts = ["management.azure.com"]
  }
}

client "empty" {
  sources = []
}
