#!/bin/bash
# The export and unexport that virt-iscsi does, done the way people script it today: one
# raw command at a time (tgtadm, virsh), and over SSH one `ssh` call per command. The
# benchmark (bench/run.ts) runs it beside `virt-iscsi export`/`unexport` on the same hosts.
#
#   raw-export.sh export|unexport
#
# Everything comes from the environment:
#   RAW_SSH        empty: run here; else the ssh command line that reaches the host, e.g.
#                  "ssh -i KEY -o UserKnownHostsFile=KH -p 2222 root@127.0.0.1"
#   CONTROL_PORT   tgtd's control port (tgtadm -C)     TID   the target id to use
#   IQN            target name                          IMAGE raw image on the storage host
#   INITIATOR      the initiator the ACL lets in (and libvirt logs in as)
#   PORTAL_HOST, PORTAL_PORT   where libvirt dials     VM    the domain
#   NAME           pool and file names                  DEV   the disk's target dev (sda...)
#   WORK_DIR       where the XML and target files go on the host
set -euo pipefail

: "${CONTROL_PORT:?} ${TID:?} ${IQN:?} ${IMAGE:?} ${INITIATOR:?} ${PORTAL_HOST:?} ${PORTAL_PORT:?} ${VM:?} ${NAME:?} ${DEV:?} ${WORK_DIR:?}"
read -r -a ssh_cmd <<<"${RAW_SSH:-}"

# One command on the host: here, or one ssh call (ssh joins the words for the remote shell).
on_host() {
  if [ ${#ssh_cmd[@]} -eq 0 ]; then "$@"; else "${ssh_cmd[@]}" -- "$@"; fi
}
# A file on the host from stdin.
put() {
  if [ ${#ssh_cmd[@]} -eq 0 ]; then cat >"$1"; else "${ssh_cmd[@]}" -- "cat > $1"; fi
}

tgtadm=(tgtadm -C "$CONTROL_PORT" --lld iscsi)
virsh=(virsh -c qemu:///system)
pool="raw-$NAME"

case "${1:-}" in
export)
  on_host "${tgtadm[@]}" --op new --mode target --tid "$TID" --targetname "$IQN"
  on_host "${tgtadm[@]}" --op new --mode logicalunit --tid "$TID" --lun 1 --backing-store "$IMAGE"
  on_host "${tgtadm[@]}" --op bind --mode target --tid "$TID" --initiator-name "$INITIATOR"
  # Persisted, so tgtd brings it back at its next start.
  put "$WORK_DIR/$NAME.conf" <<CONF
<target $IQN>
    backing-store $IMAGE
    initiator-name $INITIATOR
</target>
CONF
  put "$WORK_DIR/$NAME-pool.xml" <<XML
<pool type='iscsi-direct'>
  <name>$pool</name>
  <source>
    <host name='$PORTAL_HOST' port='$PORTAL_PORT'/>
    <device path='$IQN'/>
    <initiator><iqn name='$INITIATOR'/></initiator>
  </source>
</pool>
XML
  on_host "${virsh[@]}" pool-define "$WORK_DIR/$NAME-pool.xml"
  on_host "${virsh[@]}" pool-start "$pool"
  on_host "${virsh[@]}" pool-autostart "$pool"
  # The LUN shows as volume unit:0:0:1 (refresh and look again while it does not).
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    on_host "${virsh[@]}" vol-list "$pool" | grep -q 'unit:0:0:1' && break
    on_host "${virsh[@]}" pool-refresh "$pool" >/dev/null
  done
  put "$WORK_DIR/$NAME-disk.xml" <<XML
<disk type='volume' device='disk'>
  <driver name='qemu' type='raw'/>
  <source pool='$pool' volume='unit:0:0:1'/>
  <target dev='$DEV' bus='scsi'/>
</disk>
XML
  on_host "${virsh[@]}" attach-device "$VM" "$WORK_DIR/$NAME-disk.xml" --live --config
  ;;
unexport)
  on_host "${virsh[@]}" detach-device "$VM" "$WORK_DIR/$NAME-disk.xml" --live --config
  on_host "${virsh[@]}" pool-destroy "$pool"
  on_host "${virsh[@]}" pool-undefine "$pool"
  # QEMU's session may still be closing: --force, as such scripts do.
  on_host "${tgtadm[@]}" --op delete --force --mode target --tid "$TID"
  on_host rm -f "$WORK_DIR/$NAME.conf" "$WORK_DIR/$NAME-pool.xml" "$WORK_DIR/$NAME-disk.xml"
  ;;
*)
  echo "usage: $0 export|unexport" >&2
  exit 2
  ;;
esac
