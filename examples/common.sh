# Shared by the example scripts (sourced, not run): the virt-iscsi command and the flags
# every command of an example takes, from the environment.
#
#   VIRT_ISCSI        how to run virt-iscsi (default: virt-iscsi; e.g. "node bin/virt-iscsi.js")
#   STORAGE           storage host URI: local (default) or ssh://[user@]host[:port]
#   HYPERVISOR        hypervisor URI: local (default) or ssh://...
#   SSH_IDENTITY, SSH_KNOWN_HOSTS   key and known_hosts file for ssh:// hosts (default: ~/.ssh)
# A tgtd of its own beside the system one (what the tests use):
#   TGT_CONTROL_PORT  its control port (tgtadm -C)       PORTAL  IP:PORT it listens on
#   TGT_CONF_DIR      where target records go             HOST_RECORDS  where export records go
read -r -a virt_iscsi <<<"${VIRT_ISCSI:-virt-iscsi}"
STORAGE=${STORAGE:-local}
HYPERVISOR=${HYPERVISOR:-local}

ssh_flags=()
[ -n "${SSH_IDENTITY:-}" ] && ssh_flags+=(--identity "$SSH_IDENTITY")
[ -n "${SSH_KNOWN_HOSTS:-}" ] && ssh_flags+=(--known-hosts "$SSH_KNOWN_HOSTS")

# Flags for commands on the storage host's target (export, target create/delete).
tgt_flags=()
[ -n "${TGT_CONTROL_PORT:-}" ] && tgt_flags+=(--control-port "$TGT_CONTROL_PORT")
[ -n "${TGT_CONF_DIR:-}" ] && tgt_flags+=(--conf-dir "$TGT_CONF_DIR")
# Where export records are kept on the storage host (export, unexport, status).
record_flags=()
[ -n "${HOST_RECORDS:-}" ] && record_flags+=(--host-records "$HOST_RECORDS")

# `command`: VIRT_ISCSI may be plain "virt-iscsi", which is also the name of this function.
virt-iscsi() { command "${virt_iscsi[@]}" "$@"; }
say() { printf '\n== %s\n' "$*"; }
