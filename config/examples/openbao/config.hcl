# OpenBao's server configuration ([files.openbao-config] in ../foundation.toml).
# foundationd initialises and unseals it; the data lives in the vault-data volume.
storage "file" {
  path = "/openbao/file"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true # bound to 127.0.0.1 on the host and the internal network only
}

api_addr      = "http://127.0.0.1:8200"
disable_mlock = false
ui            = false
