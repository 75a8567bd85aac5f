cloud = "AzureChinaCloud"

client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "registries" {
    registries = [
      "acrprod",
      "acr",
      "acr-prod",
      "acrprod.ChinaNorth3",
      "acrprod.azurecr.cn",
      "acrprod.chinanorth3.data.azurecr.cn",
    ]
  }
}
