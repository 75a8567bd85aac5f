entra {
  tenant_id = "contoso.onmicrosoft.com"
  audiences = ["api://azegress"]
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee", "{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}"]
    client_ids = ["ffffffff1111222233334444444444444444", "gggggggg-1111-2222-3333-444444444444"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
