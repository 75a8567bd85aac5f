client "workloads" {
  sources = ["10.0.1.0/24"]
}

client "workloads" {
  sources = ["10.0.2.0/24"]
}
