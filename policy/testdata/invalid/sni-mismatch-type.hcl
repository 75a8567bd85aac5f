client "a" {
  sources            = ["10.0.0.0/8"]
  allow_sni_mismatch = "yes"
}
