# An entra block, but every client block is chosen by address.
entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}

client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
