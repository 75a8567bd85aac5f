client "subnet" {
  sources = ["10.0.0.0/16"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}

client "db-hosts" {
  sources = ["10.0.9.0/24"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
  allow "storage" {
    storage_accounts = ["stbackup01"]
  }
}
