client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "arm" {
    hosts = ["a-label-that-is-far-too-long-to-be-a-dns-label-because-it-exceeds-63.example.com"]
  }
}
