#!/bin/bash
# Use case: an ISO on the storage host as a CD-ROM of a VM, over iSCSI (installers, driver
# discs, cloud-init seeds) without copying the ISO to the hypervisor.
# `virt-iscsi export X.iso` serves it as a read-only CD LUN and gives the VM a read-only
# cdrom: into an empty cdrom drive the VM already has (it stays, empty, after undo), else a
# new SCSI cdrom (IDE/SATA cdroms cannot be hot-plugged).
#
#   VM=web1 ISO=/srv/iso/debian-12.iso ./examples/iso-cdrom.sh        # insert
#   VM=web1 ISO=/srv/iso/debian-12.iso ./examples/iso-cdrom.sh undo   # eject and unexport
#
# Settings (environment), besides those in examples/common.sh:
#   VM     the libvirt domain (required)        ISO   the ISO image on the storage host (required)
#   NAME   export name (default: the ISO name without .iso, lower case, '-' for other characters)
#   MODE   pool | direct | network | block (default: the best the hypervisor can do)
# The same as a stack file, with two ISOs: examples/iso-cdrom.yaml (templates/iso-cdrom.yaml;
# virt-iscsi init --template iso-cdrom writes a copy).
set -euo pipefail
. "$(dirname "$0")/common.sh"

: "${VM:?set VM to the libvirt domain}" "${ISO:?set ISO to the ISO image on the storage host}"
NAME=${NAME:-$(basename "$ISO" .iso | tr 'A-Z' 'a-z' | tr -c 'a-z0-9.\n-' '-')}

if [ "${1:-}" = undo ]; then
  say "unexport $NAME: the media leave $VM, the target goes"
  virt-iscsi unexport "$NAME" --storage "$STORAGE" "${record_flags[@]}" "${ssh_flags[@]}"
  exit 0
fi

flags=(--vm "$VM" --name "$NAME" --storage "$STORAGE" --hypervisor "$HYPERVISOR")
[ -n "${PORTAL:-}" ] && flags+=(--portal "$PORTAL")
[ -n "${MODE:-}" ] && flags+=(--mode "$MODE")

say "export $ISO to $VM as a read-only CD-ROM"
virt-iscsi export "$ISO" "${flags[@]}" "${tgt_flags[@]}" "${record_flags[@]}" "${ssh_flags[@]}"

say "status"
virt-iscsi status "$NAME" "${ssh_flags[@]}"

if [ "$HYPERVISOR" = local ]; then
  say "what $VM has now (virsh domblklist)"
  virsh -c qemu:///system domblklist --details "$VM"
fi
