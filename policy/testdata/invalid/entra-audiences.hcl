entra {
  tenant_id  = "11111111-2222-3333-4444-555555555555"
  audiences  = ["azegress", "api://azegress", "api://azegress/", "99999999-8888-7777-6666-55555555555", 42]
  clock_skew = "-1s"
  authority  = "http://login.example.com"
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
