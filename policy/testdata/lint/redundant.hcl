# Hosts that never change a decision.
client "app" {
  sources = ["10.0.1.0/24"]

  allow "wild" {
    hosts = ["*.example.com"]
    ports = [443, 8443]
  }
  allow "api" {
    hosts = ["api.example.com"] # covered by *.example.com on 443 and 8443
  }
  allow "api-80" {
    hosts = ["api.example.com"] # not covered: port 80 is its own
    ports = [80]
  }
  allow "deep" {
    hosts = ["*.eu.example.com", "a.example.org", "b.example.org"]
  }
  allow "org" {
    hosts = ["a.example.org", "b.example.org"] # same hosts, same ports, later
  }
  allow "temporary" {
    hosts   = ["*.example.net"]
    expires = "2026-12-31"
  }
  allow "lasting" {
    hosts = ["api.example.net"] # outlives the wildcard: not redundant
  }
  allow "private" {
    hosts     = ["kv.example.com"]
    addresses = ["10.20.0.0/24"] # the wildcard does not list it: not redundant
  }
  allow "login" {
    hosts = ["login.example.io", "legacy.example.io"]
    ports = [443]
  }

  deny "no-legacy" {
    hosts = ["legacy.example.io"]
  }
  deny "no-legacy-again" {
    hosts = ["legacy.example.io"]
  }
}
