client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "accounts" {
    storage_accounts = [
      "stprod01",
      "StProd01",
      "st",
      "st-prod",
      "stprod01.blobs",
      "stprod01.web",
      "stprod01.queue.core.windows.net",
      "",
    ]
  }
}
