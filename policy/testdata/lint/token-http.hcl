client "app" {
  sources = ["10.0.1.0/24"]

  allow "entra" {
    hosts = ["login.microsoftonline.com", "crl.microsoft.com"]
    ports = [80, 443]
  }
  allow "regional" {
    hosts = ["westeurope.login.microsoft.com"]
    ports = [80]
  }
  allow "broad" {
    hosts = ["*.microsoftonline.com"]
    ports = [80]
  }
  allow "pki" {
    endpoints = ["azure.pki"] # port 80, no Entra host: fine
  }
}
