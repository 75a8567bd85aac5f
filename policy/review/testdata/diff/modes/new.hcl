client "build" {
  sources            = ["10.0.5.0/24"]
  mode               = "learn"
  allow_sni_mismatch = true
  allow "example" {
    hosts = ["*.example.com"]
    ports = [443, 80]
  }
  deny "exfil" {
    hosts = ["paste.example.com"]
    ports = [443, 80]
  }
}
