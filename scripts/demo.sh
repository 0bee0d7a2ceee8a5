#!/bin/bash
# The main job, end to end, on this machine (what `make demo` runs, after `make setup build`):
# a small VM, a data image and an ISO; both exported to the VM over iSCSI with the built
# CLI; `virt-iscsi status`; what the VM sees (virsh domblklist, domblkinfo); unexported
# again. Then the demo VM and files go, and daemons it started are stopped (by PID, or by
# the service manager that started them), so the host is as the demo found it.
# Runs as root. Run it twice, or beside a running tgtd: it shares, and leaves that alone.
#
# For tests (a tgtd of its own and temporary places, so /etc is not touched):
#   DEMO_VM, DEMO_PREFIX (export names), DEMO_TGT_CONTROL_PORT, DEMO_PORTAL (IP:PORT),
#   DEMO_TGT_CONF_DIR, DEMO_HOST_RECORDS; TMPDIR (default /var/tmp) for the demo's files.
set -euo pipefail
cd "$(dirname "$0")/.."

VM=${DEMO_VM:-virt-iscsi-demo}
PREFIX=${DEMO_PREFIX:-demo}
LIBVIRT=qemu:///system
# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

[ "$(id -u)" -eq 0 ] || { echo "demo: run it as root (it starts daemons and defines a VM)" >&2; exit 1; }
[ -f dist/cli/main.js ] || { echo "demo: build first: make build (make demo does it)" >&2; exit 1; }

# Flags for a tgtd of its own (tests); none on a real run: the system tgtd and /etc/tgt/conf.d.
target_flags=()
[ -n "${DEMO_TGT_CONTROL_PORT:-}" ] && target_flags+=(--control-port "$DEMO_TGT_CONTROL_PORT")
[ -n "${DEMO_TGT_CONF_DIR:-}" ] && target_flags+=(--conf-dir "$DEMO_TGT_CONF_DIR")
[ -n "${DEMO_PORTAL:-}" ] && target_flags+=(--portal "$DEMO_PORTAL")
record_flags=()
[ -n "${DEMO_HOST_RECORDS:-}" ] && record_flags+=(--host-records "$DEMO_HOST_RECORDS")
tgtadm_cmd=(tgtadm ${DEMO_TGT_CONTROL_PORT:+-C "$DEMO_TGT_CONTROL_PORT"} --lld iscsi)
host_records=${DEMO_HOST_RECORDS:-/var/lib/virt-iscsi/exports}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/virt-iscsi-demo.XXXXXX")
# This machine's own export records go with the demo's files, not into root's home.
export XDG_STATE_HOME=$work/state
data_name=$PREFIX-data
cd_name=$PREFIX-cd
started_pids=()
tgt_was_running=0
"${tgtadm_cmd[@]}" --op show --mode sys >/dev/null 2>&1 && tgt_was_running=1
# Export records' directories that export makes: removed again when the demo made them.
made_dirs=()
for d in "$(dirname "$host_records")" "$host_records"; do [ -d "$d" ] || made_dirs=("$d" "${made_dirs[@]}"); done

# Stops the tgtd that our export started: it was not running before the demo.
stop_tgtd() {
  [ "$tgt_was_running" = 0 ] || return 0
  "${tgtadm_cmd[@]}" --op show --mode sys >/dev/null 2>&1 || return 0
  if [ -n "${DEMO_TGT_CONTROL_PORT:-}" ] || [ ! -d /run/systemd/system ]; then
    local pidfile=/run/tgtd${DEMO_TGT_CONTROL_PORT:+-$DEMO_TGT_CONTROL_PORT}.pid
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    say "stop tgtd (pid $pid): virt-iscsi export started it, it was not running before"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  else
    say "stop tgt: virt-iscsi export started it, it was not running before"
    systemctl stop tgt 2>/dev/null || systemctl stop tgtd
  fi
}

# Runs on every exit, also after a failure or Ctrl-C: takes away all the demo made.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  say "clean up: unexport what is still exported, remove the demo VM and its files"
  for name in "$cd_name" "$data_name"; do
    "${virt_iscsi[@]}" unexport "$name" "${record_flags[@]}" >/dev/null 2>&1 || echo "    (unexport $name failed; see: ${virt_iscsi[*]} status)"
  done
  remove_vm "$VM"
  rm -rf "$work"
  for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null; done
  stop_tgtd
  stop_started
  if [ "$rc" -eq 0 ]; then say "done: the host is as the demo found it"; else say "the demo failed (exit $rc); what it made was taken away"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- daemons ------------------------------------------------------------------------------
ensure_libvirtd
if [ "$tgt_was_running" = 1 ]; then
  say "tgtd is running: the demo's targets go beside the ones it has"
else
  say "tgtd is not running: virt-iscsi export starts it (and the demo stops it at the end)"
fi

# ---- a small VM, a data image, an ISO --------------------------------------------------------
virt_type=qemu
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && virsh domcapabilities --virttype kvm >/dev/null 2>&1; then virt_type=kvm; fi
if virsh dominfo "$VM" >/dev/null 2>&1; then
  say "a demo VM $VM is left from an earlier run: remove it first"
  for name in "$cd_name" "$data_name"; do "${virt_iscsi[@]}" unexport "$name" "${record_flags[@]}" >/dev/null 2>&1 || true; done
  virsh destroy "$VM" >/dev/null 2>&1 || true
  virsh undefine "$VM" >/dev/null
fi
say "create the VM $VM: 128 MiB, no OS, a virtio-scsi controller for hot-plugged disks ($virt_type)"
# The VM is templates/vm-domain.xml (what `virt-iscsi init --template vm-domain.xml` writes),
# with the demo's name and the type this host can run.
sed -e "s|<name>virt-iscsi-vm</name>|<name>$VM</name>|" -e "s|<domain type='qemu'>|<domain type='$virt_type'>|" templates/vm-domain.xml >"$work/domain.xml"
grep -q "<name>$VM</name>" "$work/domain.xml" && grep -q "<domain type='$virt_type'>" "$work/domain.xml" || { echo "demo: templates/vm-domain.xml lacks the name or type line it fills in" >&2; exit 1; }
run virsh define "$work/domain.xml" >/dev/null
run virsh start "$VM" >/dev/null

say "create a 64 MiB data image (sparse raw) and an ISO with a README on it"
virt-iscsi image create "$work/$data_name.img" --size 64M
mkdir "$work/iso"
echo "Served over iSCSI by virt-iscsi to $VM." >"$work/iso/README.txt"
# xorriso prints its banner on stderr even with -quiet: shown only when it fails.
run xorriso -as mkisofs -quiet -V VIRT_ISCSI_DEMO -o "$work/$cd_name.iso" "$work/iso" 2>"$work/xorriso.log" || { cat "$work/xorriso.log" >&2; exit 1; }

# ---- the main job -----------------------------------------------------------------------------
say "export the data image to $VM: a target and LUN, libvirt made to see it, a disk in the VM"
virt-iscsi export "$work/$data_name.img" --vm "$VM" "${target_flags[@]}" "${record_flags[@]}"
say "export the ISO to $VM: a read-only CD LUN, a read-only cdrom in the VM"
virt-iscsi export "$work/$cd_name.iso" --vm "$VM" "${target_flags[@]}" "${record_flags[@]}"

say "what virt-iscsi knows of the two exports"
virt-iscsi status "$data_name" "$cd_name"

say "the VM sees the disk and the cdrom: its block devices (virsh domblklist)"
run virsh domblklist --details "$VM"
for dev in $(virsh domblklist --details "$VM" | awk 'NR > 2 && $4 != "-" && $4 != "" { print $3 }'); do
  say "QEMU has $dev open over iSCSI: its size (virsh domblkinfo)"
  run virsh domblkinfo "$VM" "$dev" --human
done

say "unexport both: every piece goes, last made first; the files stay until the clean-up"
virt-iscsi unexport "$cd_name" "${record_flags[@]}"
virt-iscsi unexport "$data_name" "${record_flags[@]}"
