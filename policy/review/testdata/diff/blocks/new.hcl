client "subnet" {
  sources = ["10.0.0.0/16"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}

client "jump" {
  sources = ["10.0.7.5"]
  allow "ssh-gw" {
    hosts = ["gw.example.net"]
    ports = [22]
  }
  allow "telemetry" {
    hosts = ["dc.services.visualstudio.com"]
  }
}
