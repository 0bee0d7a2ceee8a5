#!/bin/bash
# N exports done the way people script them: bench/raw-export.sh once per export (tgtadm
# target, LUN and ACL, a target file, an iscsi-direct pool, virsh attach-device), in a
# loop; unexport is the reverse; status is what a person runs to look (the targets, the
# pools, each domain's disks). The scale benchmark (bench/scale.ts) runs it beside
# `virt-iscsi apply -f` / `status` / `destroy -f` of a stack with the same N exports.
#
#   raw-scale.sh export|unexport|status LIST
#
# LIST has one export a line: "TID NAME IMAGE VM DEV". The rest comes from the environment,
# as raw-export.sh takes it: RAW_SSH, CONTROL_PORT, INITIATOR, PORTAL_HOST, PORTAL_PORT,
# WORK_DIR, and IQN_PREFIX (the target name is IQN_PREFIX:NAME).
set -euo pipefail

verb="${1:-}"
list="${2:-}"
: "${CONTROL_PORT:?} ${IQN_PREFIX:?}"
[ -r "$list" ] || { echo "usage: $0 export|unexport|status LIST" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
read -r -a ssh_cmd <<<"${RAW_SSH:-}"
on_host() {
  if [ ${#ssh_cmd[@]} -eq 0 ]; then "$@"; else "${ssh_cmd[@]}" -- "$@"; fi
}

case "$verb" in
export | unexport)
  while read -r tid name image vm dev; do
    TID="$tid" NAME="$name" IQN="$IQN_PREFIX:$name" IMAGE="$image" VM="$vm" DEV="$dev" \
      "$here/raw-export.sh" "$verb"
  done <"$list"
  ;;
status)
  on_host tgtadm -C "$CONTROL_PORT" --lld iscsi --op show --mode target >/dev/null
  on_host virsh -c qemu:///system pool-list --all >/dev/null
  for vm in $(awk '{print $4}' "$list" | sort -u); do
    on_host virsh -c qemu:///system domblklist "$vm"
  done
  ;;
*)
  echo "usage: $0 export|unexport|status LIST" >&2
  exit 2
  ;;
esac
