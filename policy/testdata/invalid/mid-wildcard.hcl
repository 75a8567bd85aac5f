client "workloads" {
  sources = ["10.0.1.0/24"]
  allow "blob" {
    hosts = ["login.microsoftonline.com", "a.*.core.windows.net"]
  }
}
