client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "typo" {
    hosts = ["10.0.0.256", "storage.123"]
  }
}
