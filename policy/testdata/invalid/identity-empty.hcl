entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}

client "nobody" {
  identity {
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}

client "empty-lists" {
  identity {
    object_ids = []
    client_ids = []
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}

client "two" {
  sources = []
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  identity {
    object_ids = ["bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
