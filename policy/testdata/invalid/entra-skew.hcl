entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = ["api://azegress"]
  clock_skew = "a minute"
  authority  = "ftp://login.microsoftonline.com"
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
