cloud = "AzureCloud"

entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = ["api://azegress"]
  clock_skew = "2m"
}

client "bootstrap" {
  sources = ["10.0.0.0/16"]
  allow "entra" {
    endpoints = ["azure.entra"]
  }
}

client "kv-reader" {
  mode = "learn"
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "dddddddd-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
