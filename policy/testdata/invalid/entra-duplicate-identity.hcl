entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"]
    client_ids = ["ffffffff-1111-2222-3333-444444444444"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}

client "blob-writer" {
  identity {
    object_ids = ["ffffffff-1111-2222-3333-444444444444"]
    client_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "blob" {
    storage_accounts = ["stprod01"]
  }
}
