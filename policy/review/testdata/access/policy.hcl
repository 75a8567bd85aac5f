entra {
  tenant_id = "11111111-2222-3333-4444-555555555555"
  audiences = ["api://azegress"]
}

client "app" {
  sources = ["10.0.1.0/24"]

  allow "arm" {
    endpoints = ["azure.arm", "azure.entra"]
  }
  allow "vaults" {
    keyvaults = ["kv-prod-01"]
    addresses = ["10.20.0.0/24"]
  }
  allow "vendor" {
    hosts   = ["*.vendor.example.com"]
    ports   = [443, 8443]
    expires = "2026-12-31"
  }
  allow "legacy" {
    hosts   = ["old.example.com"]
    expires = "2026-01-31"
  }
  deny "vendor-admin" {
    hosts = ["admin.vendor.example.com"]
    ports = [443]
  }
}

client "kv-reader" {
  sources = ["10.0.2.0/24"]
  mode    = "learn"
  identity {
    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  }
  allow "kv" {
    storage_accounts = ["stprod01.queue"]
  }
}

client "empty" {
  sources = ["10.0.3.0/24"]
}
