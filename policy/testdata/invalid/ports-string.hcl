client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "arm" {
    hosts = ["management.azure.com"]
    ports = "443"
  }
  allow "graph" {
    hosts = ["graph.microsoft.com"]
    ports = ["443"]
  }
}
