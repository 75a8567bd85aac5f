client "workloads" {
  sources = ["10.0.1.0/24"]
  limits {
    max_tunnels = 10
  }
  limits {
    max_tunnels = 20
  }
}
