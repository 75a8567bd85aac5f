# Reformatted, commented, rules renamed, split, merged and reordered:
# no decision changes.
client "app" {
  sources = [
    "10.0.1.0/24", # the app subnet
  ]

  deny "refused" { hosts = ["BAD.api.example.com."] }

  allow "example-api" {
    hosts = ["api.example.com", "*.api.example.com"]
    ports = [8443, 443]
  }
  allow "vaults" {
    hosts = ["kv2.vault.azure.net"]
  }
  allow "management" {
    hosts = ["Management.Azure.com"]
  }
  allow "vault-1" {
    keyvaults = ["kv1"]
  }
}
