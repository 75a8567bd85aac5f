client "batch" {
  sources = ["10.0.4.0/24"]
  allow "partner" {
    addresses = ["20.1.2.0/24"]
  }
}
