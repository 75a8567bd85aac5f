client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "token" {
    endpoints = ["azure.arm", "imds", "wireserver", "arc.himds"]
  }
}
