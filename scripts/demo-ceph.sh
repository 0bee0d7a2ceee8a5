#!/bin/bash
# Ceph RBD, end to end, on this machine (what `make demo-ceph` runs, after `make setup build`):
# a throwaway one-node Ceph cluster (scripts/ceph-dev.sh, on 127.0.0.1), a small VM, an RBD
# image made with the built CLI and exported to the VM natively (QEMU's rbd driver opens
# it; the cephx key in a libvirt ceph secret, never on a command line); `virt-iscsi
# status`; what the VM sees; the disk grown while the VM runs; unexported again. Then the
# VM, the cluster (its daemons stopped by PID, its directory removed) and the demo's files
# go, and a libvirtd it started is stopped, so the host is as the demo found it.
# Runs as root. Needs ceph-mon, ceph-osd, ceph-common and QEMU's rbd driver (make setup).
#
# For tests (temporary places, so /var/lib is not touched):
#   DEMO_VM, DEMO_PREFIX (export and image names), DEMO_HOST_RECORDS; TMPDIR (default
#   /var/tmp) for the demo's files and the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

VM=${DEMO_VM:-virt-iscsi-demo-ceph}
PREFIX=${DEMO_PREFIX:-demo}
LIBVIRT=qemu:///system
# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

[ "$(id -u)" -eq 0 ] || { echo "demo-ceph: run it as root (it starts daemons and defines a VM)" >&2; exit 1; }
[ -f dist/cli/main.js ] || { echo "demo-ceph: build first: make build (make demo-ceph does it)" >&2; exit 1; }
for tool in ceph-mon ceph-osd rbd; do
  command -v "$tool" >/dev/null || { echo "demo-ceph: $tool is not installed: make setup installs Ceph's packages" >&2; exit 1; }
done

record_flags=()
[ -n "${DEMO_HOST_RECORDS:-}" ] && record_flags+=(--host-records "$DEMO_HOST_RECORDS")
host_records=${DEMO_HOST_RECORDS:-/var/lib/virt-iscsi/exports}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/virt-iscsi-demo-ceph.XXXXXX")
# This machine's own export records go with the demo's files, not into root's home.
export XDG_STATE_HOME=$work/state
cluster=$work/ceph
name=$PREFIX-rbd
started_pids=()
cluster_started=0
export_started=0
# Export records' directories that export makes: removed again when the demo made them.
made_dirs=()
for d in "$(dirname "$host_records")" "$host_records"; do [ -d "$d" ] || made_dirs=("$d" "${made_dirs[@]}"); done

# Runs on every exit, also after a failure or Ctrl-C: takes away all the demo made.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  say "clean up: unexport what is still exported, remove the demo VM, stop the cluster"
  if [ "$export_started" = 1 ]; then
    "${virt_iscsi[@]}" unexport "$name" "${record_flags[@]}" >/dev/null 2>&1 || echo "    (unexport $name failed; see: ${virt_iscsi[*]} status)"
  fi
  remove_vm "$VM"
  if [ "$cluster_started" = 1 ]; then
    ./scripts/ceph-dev.sh stop "$cluster" && echo "    stopped the Ceph cluster and removed $cluster"
  fi
  rm -rf "$work"
  for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null; done
  stop_started
  if [ "$rc" -eq 0 ]; then say "done: the host is as the demo found it"; else say "the demo failed (exit $rc); what it made was taken away"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- daemons ------------------------------------------------------------------------------
ensure_libvirtd

say "start a one-node Ceph cluster on 127.0.0.1 (one monitor, one OSD on a sparse file, pool rbd)"
printf '    $ %s\n' "scripts/ceph-dev.sh start $cluster"
t0=$SECONDS
cluster_started=1
settings=$(./scripts/ceph-dev.sh start "$cluster")
eval "$settings"
echo "    up in $((SECONDS - t0)) s: conf $CEPH_CONF, client $CEPH_ID (rbd caps on pool $CEPH_POOL)"
ceph=(--ceph-conf "$CEPH_CONF" --ceph-id "$CEPH_ID")
rbd() { command rbd --conf "$CEPH_CONF" --id "$CEPH_ID" "$@"; }

# ---- a small VM, an RBD image ---------------------------------------------------------------
virt_type=qemu
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && virsh domcapabilities --virttype kvm >/dev/null 2>&1; then virt_type=kvm; fi
if virsh dominfo "$VM" >/dev/null 2>&1; then
  say "a demo VM $VM is left from an earlier run: remove it first"
  virsh destroy "$VM" >/dev/null 2>&1 || true
  virsh undefine "$VM" >/dev/null
fi
say "create the VM $VM: 128 MiB, no OS, a virtio-scsi controller for hot-plugged disks ($virt_type)"
sed -e "s|<name>virt-iscsi-vm</name>|<name>$VM</name>|" -e "s|<domain type='qemu'>|<domain type='$virt_type'>|" templates/vm-domain.xml >"$work/domain.xml"
grep -q "<name>$VM</name>" "$work/domain.xml" && grep -q "<domain type='$virt_type'>" "$work/domain.xml" || { echo "demo-ceph: templates/vm-domain.xml lacks the name or type line it fills in" >&2; exit 1; }
run virsh define "$work/domain.xml" >/dev/null
run virsh start "$VM" >/dev/null

say "create a 64 MiB RBD image (thin: Ceph allocates only what is written)"
virt-iscsi image create "rbd:$CEPH_POOL/$name" --size 64M "${ceph[@]}"

# ---- the main job -----------------------------------------------------------------------------
say "export it to $VM natively: a libvirt ceph secret with the client's key, a network rbd disk QEMU opens"
export_started=1
virt-iscsi export "rbd:$CEPH_POOL/$name" --vm "$VM" --mode rbd "${ceph[@]}" "${record_flags[@]}"

say "what virt-iscsi knows of the export (the image's size and who has it open)"
virt-iscsi status "$name"

say "the VM sees the disk: its block devices (virsh domblklist), QEMU as the image's watcher (rbd status)"
run virsh domblklist --details "$VM"
run rbd status "$CEPH_POOL/$name"

say "grow the disk while the VM runs: rbd resize, then QEMU is told (virsh blockresize)"
virt-iscsi resize "$name" --size +32M "${record_flags[@]}"
dev=$(virsh domblklist --details "$VM" | awk -v img="$CEPH_POOL/$name" '$4 == img { print $3 }')
run virsh domblkinfo "$VM" "$dev" --human

say "unexport: the disk, the secret and the records go; the image and its data stay in Ceph"
virt-iscsi unexport "$name" "${record_flags[@]}"
run rbd info "$CEPH_POOL/$name"
