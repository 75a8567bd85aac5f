client "build" {
  sources = ["10.0.5.0/24"]
  allow "example" {
    hosts = ["*.example.com"]
    ports = [443, 80]
  }
  allow "telemetry" {
    endpoints = ["azure.azcli.side"]
  }
}
