entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = []
  clock_skew = "10m"
  authority  = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
