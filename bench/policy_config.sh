# Sourced by bench/policy.sh and bench/policy_instructions.sh: the mxguard
# config both measure. Default settings (sender pools on,
# max_pending_writes 1024) except the listen address, the data directory,
# postgrey's 60 s delay, and an empty mynetworks (postgrey has none).
# Usage: policy_config FILE PORT DATA_DIR
policy_config() {
  cat > "$1" <<TOML
[milter]
enabled = false
[policy]
listen = "127.0.0.1:$2"
mynetworks = []
[greylist]
delay = 60
[store]
data_dir = "$3"
TOML
}
