# Every audience below belongs to Microsoft, not to the proxy.
entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = [
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net/",
    "https://management.usgovcloudapi.net/",
    "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    "https://graph.microsoft.com",
    "https://graph.windows.net/",
    "https://vault.azure.net",
    "https://storage.azure.com/",
    "https://ossrdbms-aad.database.windows.net",
    "api://azegress",
  ]
}

client "kv-reader" {
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    keyvaults = ["kv-prod-01"]
  }
}
