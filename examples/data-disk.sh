#!/bin/bash
# Use case: give a VM a data disk that lives on the storage host, over iSCSI.
# `virt-iscsi export` does it in one command: target + LUN + ACL on the storage host, the
# LUN made visible to libvirt, attached to the VM (live when it runs, and persistent).
# This script makes the image when it is missing, exports it, shows what the VM got, and
# with "undo" takes it all back (the image file stays).
#
#   VM=web1 ./examples/data-disk.sh           # export (run it again: nothing changes)
#   VM=web1 ./examples/data-disk.sh undo      # unexport
#
# Settings (environment), besides those in examples/common.sh:
#   VM      the libvirt domain that gets the disk (required)
#   IMAGE   raw image on the storage host (default /var/lib/virt-iscsi/images/$VM-data.img);
#           made sparse with `virt-iscsi image create` when it is missing (local storage only)
#   SIZE    its size when it is made (default 10G)
#   NAME    export name (default: the image name without .img)
#   MODE    pool | direct | network | block (default: the best the hypervisor can do)
#   CHAP=1  require CHAP (a generated secret, kept by the target and a libvirt secret only)
# The same export as a stack file: examples/data-disk.yaml, which is templates/data-disk.yaml
# (virt-iscsi init --template data-disk writes a copy; then virt-iscsi apply -f FILE).
set -euo pipefail
. "$(dirname "$0")/common.sh"

: "${VM:?set VM to the libvirt domain that gets the disk}"
IMAGE=${IMAGE:-/var/lib/virt-iscsi/images/$VM-data.img}
SIZE=${SIZE:-10G}
NAME=${NAME:-$(basename "$IMAGE" .img | tr 'A-Z' 'a-z' | tr -c 'a-z0-9.\n-' '-')}

if [ "${1:-}" = undo ]; then
  say "unexport $NAME: the disk leaves $VM, the target goes; $IMAGE stays"
  virt-iscsi unexport "$NAME" --storage "$STORAGE" "${record_flags[@]}" "${ssh_flags[@]}"
  exit 0
fi

if [ "$STORAGE" = local ] && [ ! -e "$IMAGE" ]; then
  say "make $IMAGE ($SIZE, sparse raw)"
  mkdir -p "$(dirname "$IMAGE")"
  virt-iscsi image create "$IMAGE" --size "$SIZE"
fi

flags=(--vm "$VM" --name "$NAME" --storage "$STORAGE" --hypervisor "$HYPERVISOR")
[ -n "${PORTAL:-}" ] && flags+=(--portal "$PORTAL")
[ -n "${MODE:-}" ] && flags+=(--mode "$MODE")
[ "${CHAP:-}" = 1 ] && flags+=(--chap)

say "export $IMAGE to $VM"
virt-iscsi export "$IMAGE" "${flags[@]}" "${tgt_flags[@]}" "${record_flags[@]}" "${ssh_flags[@]}"

say "what virt-iscsi knows of it (target, LUN, sessions, the VM's device, health)"
virt-iscsi status "$NAME" "${ssh_flags[@]}"

if [ "$HYPERVISOR" = local ]; then
  say "what $VM has now (virsh domblklist)"
  virsh -c qemu:///system domblklist --details "$VM"
fi
