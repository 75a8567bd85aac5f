# The policy of the audit fixture (testdata/arm): three client blocks
# whose sources are subnets of vnet-spoke. 10.1.4.0/24 (jobs) is covered
# only in part; legacy, appsvc and vnet-app's tools are not covered.
cloud = "AzureCloud"

client "web" {
  sources = ["10.1.1.0/24"]

  allow "arm" {
    hosts = ["management.azure.com"]
  }
}

client "api" {
  sources = ["10.1.2.0/24"]

  allow "vault" {
    hosts = ["kv-prod-01.vault.azure.net"]
  }
}

client "batch" {
  sources = ["10.1.3.0/24", "10.1.4.0/25"]

  allow "storage" {
    hosts = ["stprod01.blob.core.windows.net"]
  }
}
