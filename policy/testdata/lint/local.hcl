client "app" {
  sources = ["10.0.1.0/24"]

  allow "metadata" {
    addresses = ["169.254.0.0/16"]
    ports     = [80]
  }
  allow "wireserver" {
    addresses = ["168.63.129.16"]
    ports     = [80, 32526]
  }
  allow "himds" {
    hosts = ["localhost"]
    ports = [40342]
  }
  allow "loopback-other-port" {
    addresses = ["127.0.0.1"]
    ports     = [8080] # not the HIMDS port
  }
}
