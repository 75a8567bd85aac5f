client "workloads" {
  sources = [var.subnet]
}
