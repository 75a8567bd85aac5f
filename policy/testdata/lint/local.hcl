client "app" {
  sources = ["10.0.1.0/24"]

  allow "himds" {
    hosts = ["localhost"]
    ports = [40342]
  }
  allow "loopback-other-port" {
    addresses = ["127.0.0.1"]
    ports     = [8080] # not the HIMDS port
  }
  allow "wide" {
    hosts     = ["api.example.com"]
    addresses = ["64.0.0.0/2"] # covers loopback and CGNAT without naming them
  }
  allow "wide-v6" {
    hosts     = ["api.example.com"]
    addresses = ["::/0"]
  }
}
