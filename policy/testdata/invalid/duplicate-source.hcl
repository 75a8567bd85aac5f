client "web" {
  sources = ["10.0.1.0/24", "fd00::/64"]
}

client "batch" {
  sources = ["10.0.2.0/24", "10.0.1.0/24"]
}
