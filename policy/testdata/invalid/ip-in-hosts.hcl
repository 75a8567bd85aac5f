client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "vault" {
    hosts = ["10.20.0.4"]
  }
}
