# OpenBao's server configuration ([files.openbao-config] in ../foundation.toml).
# foundationd initialises and unseals it; the data lives in the vault-data volume.
# Integrated storage (raft), one node: the backup takes Vault's data through its
# snapshot API (docs/dr.md "Vault"), which "file" storage does not have.
storage "raft" {
  path    = "/openbao/file"
  node_id = "foundation"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true # bound to 127.0.0.1 on the host and the internal network only
}

api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "http://127.0.0.1:8201"
disable_mlock = false
ui            = false
