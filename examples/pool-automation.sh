#!/bin/bash
# Use case: libvirt storage pools for a set of iSCSI targets on a hypervisor (a NAS or a
# storage box that already serves them): what people script with pool-define, pool-start
# and pool-autostart, here with CHAP and autostart, one `virt-iscsi pool create` per target.
# It can run again: what is in place is left alone. "undo" deletes the pools (and the
# CHAP secrets made for them); the targets are not touched.
#
#   TARGETS="iqn.2004-04.com.example:nas.vol1 iqn.2004-04.com.example:nas.vol2" \
#   PORTAL=192.0.2.10 INITIATOR=iqn.2024-01.com.example:kvm1 \
#   CHAP_USER=kvm1 CHAP_SECRET_FILE=/root/nas-chap.secret ./examples/pool-automation.sh
#   ... ./examples/pool-automation.sh undo
#
# Settings (environment), besides HYPERVISOR, VIRT_ISCSI and the SSH ones in examples/common.sh:
#   TARGETS           target IQNs, separated by spaces (required)
#   PORTAL            HOST[:PORT] that serves them (required)
#   TYPE              iscsi-direct (default: libvirt logs in itself) or iscsi (the host's
#                     open-iscsi logs in; needs the iscsi_tcp kernel module)
#   INITIATOR         the initiator IQN to log in as (required for iscsi-direct)
#   CHAP_USER, CHAP_SECRET_FILE   CHAP login (the secret goes into a libvirt secret, never argv)
#   POOL_PREFIX       pool name prefix (default "iscsi-"); the rest is the IQN after its ':'
#   AUTOSTART=0       do not start the pools with libvirtd
# The same as a stack file: examples/pool-automation.yaml (templates/pool-automation.yaml;
# virt-iscsi init --template pool-automation writes a copy).
set -euo pipefail
. "$(dirname "$0")/common.sh"

: "${TARGETS:?set TARGETS to the target IQNs}" "${PORTAL:?set PORTAL to the portal that serves them}"
TYPE=${TYPE:-iscsi-direct}
POOL_PREFIX=${POOL_PREFIX:-iscsi-}

pool_name() { printf '%s%s' "$POOL_PREFIX" "${1#*:}" | tr -c 'A-Za-z0-9_.+-' '-'; }
hv=(--hypervisor "$HYPERVISOR" "${ssh_flags[@]}")

for iqn in $TARGETS; do
  pool=$(pool_name "$iqn")
  if [ "${1:-}" = undo ]; then
    say "delete pool $pool"
    virt-iscsi pool delete "$pool" "${hv[@]}"
    continue
  fi
  flags=(--portal "$PORTAL" --target "$iqn" --type "$TYPE")
  [ -n "${INITIATOR:-}" ] && flags+=(--initiator "$INITIATOR")
  [ -n "${CHAP_USER:-}" ] && flags+=(--chap "$CHAP_USER" --chap-secret-file "${CHAP_SECRET_FILE:?CHAP_USER needs CHAP_SECRET_FILE}")
  [ "${AUTOSTART:-1}" = 0 ] && flags+=(--no-autostart)
  say "pool $pool for $iqn at $PORTAL"
  virt-iscsi pool create "$pool" "${flags[@]}" "${hv[@]}"
done

if [ "${1:-}" != undo ]; then
  say "the pools libvirt has now"
  virt-iscsi pool list "${hv[@]}"
fi
