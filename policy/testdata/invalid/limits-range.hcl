client "workloads" {
  sources = ["10.0.1.0/24"]
  limits {
    connections_per_second = 0
    burst                  = 2.5
    max_tunnels            = 2000000
  }
}
