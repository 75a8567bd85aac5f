# Wildcards written in hosts over data planes every tenant shares.
client "app" {
  sources = ["10.0.1.0/24"]

  allow "vaults" {
    hosts = ["*.vault.azure.net", "kv-prod-01.vault.azure.net"]
  }
  allow "storage" {
    hosts = ["*.core.windows.net"]
  }
  allow "own-account" {
    hosts = ["*.stprod01.blob.core.windows.net"] # inside one account: fine
  }
  allow "bus" {
    hosts = ["*.servicebus.windows.net"]
    ports = [443, 5671]
  }
}
