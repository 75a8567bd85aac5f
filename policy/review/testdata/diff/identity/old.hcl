entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}

client "vms" {
  sources = ["10.0.0.0/16"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
