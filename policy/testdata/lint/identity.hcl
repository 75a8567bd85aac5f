# The entra block is used; an identity block without allow rules refuses
# everything its identities ask for.
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

client "retired" {
  identity {
    client_ids = ["ffffffff-1111-2222-3333-444444444444"]
  }
}
