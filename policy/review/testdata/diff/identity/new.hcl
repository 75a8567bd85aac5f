entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = ["api://azegress", "99999999-2222-3333-4444-555555555555"]
  clock_skew = "2m"
}

client "kv-reader" {
  sources = ["10.0.1.0/24"]
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"]
    client_ids = ["12345678-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01", "kv-prod-02"]
  }
}

client "vms" {
  sources = ["10.0.0.0/16"]
  allow "arm" {
    endpoints = ["azure.arm"]
  }
}
