# Preset: the Key Vault VM extension (KeyVaultForLinux, KeyVaultForWindows)
# keeping certificates from a vault installed on a VM.
#
# When to use it: the VM runs the Key Vault extension, whose
# observedCertificates are https://<vault>.vault.azure.net/secrets/<name> URLs.
# The extension takes its token from IMDS (on Arc-enabled servers: HIMDS,
# localhost:40342), then polls the vault. Replace kv-prod-01 with the vault of
# each observed certificate.
#
# Certificate revocation: Key Vault clients may fetch CRLs and OCSP answers over
# plain HTTP (port 80) from the CAs of Azure's TLS chains. The "revocation" rule
# allows exactly the catalog's azure.pki hosts (crl.microsoft.com,
# ocsp.digicert.com, ...), on port 80 only.
#
# IMDS (169.254.169.254) must not go through any proxy: keep it in NO_PROXY
# (and localhost on Arc-enabled servers).
#
# Other clouds: change only `cloud`.
cloud = "AzureCloud"

client "local" {
  # The extension on the proxy's machine. For a proxy that serves a subnet,
  # list the subnet instead, like ["10.0.1.0/24"].
  sources = ["127.0.0.0/8", "::1/128"]

  allow "vault" {
    keyvaults = ["kv-prod-01"] # Key Vault data plane: vault kv-prod-01
  }

  allow "revocation" {
    endpoints = ["azure.pki"] # CRL, OCSP and CA certificates, port 80
  }
}
