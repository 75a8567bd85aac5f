# Allow-rule addresses that cover a VM-local endpoint are refused: the proxy
# never connects to IMDS, WireServer or Arc's HIMDS, so each of these would
# say something the proxy does not do.
client "app" {
  sources = ["10.0.1.0/24"]

  allow "lazy" {
    hosts     = ["api.example.com"]
    addresses = ["0.0.0.0/0"]
  }
  allow "metadata" {
    addresses = ["169.254.0.0/16"]
    ports     = [80]
  }
  allow "wireserver" {
    addresses = ["168.63.129.16"]
    ports     = [80, 32526]
  }
  allow "himds" {
    addresses = ["127.0.0.0/8"]
    ports     = [40342]
  }
  allow "loopback-other-port" {
    addresses = ["127.0.0.1"]
    ports     = [8080] # not an Arc port: loads
  }
  deny "no-imds" {
    addresses = ["169.254.0.0/16"] # deny rules may cover anything
    ports     = [80]
  }
}
