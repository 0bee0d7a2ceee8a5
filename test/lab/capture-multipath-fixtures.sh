#!/bin/bash
# Captures real dm-multipath / two-portal open-iscsi output in the lab guest as fixtures for
# the main suite's parser tests, with the tools alone (tgtadm, iscsiadm, multipath,
# multipathd, nft), not our drivers. Run on the host:
#   test/lab/boot-lab.sh start && test/lab/capture-multipath-fixtures.sh && test/lab/boot-lab.sh stop
# Writes test/fixtures/lab/multipath/NAME.txt (stdout and stderr as the ssh channel gave
# them) and each command's exit code in multipath/exit-codes.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/../fixtures/lab/multipath
mkdir -p "$OUT"
: >"$OUT/exit-codes.txt"
guest() { "$HERE/boot-lab.sh" ssh "$@"; }
# cap NAME CMD...: stdout+stderr of CMD in the guest, then its exit code, into NAME
cap() {
  local name=$1; shift
  local rc=0
  guest "$*" >"$OUT/$name" 2>&1 || rc=$?
  echo "$name $rc" | tee -a "$OUT/exit-codes.txt"
}
# mpcap NAME <<'SCRIPT' ... SCRIPT: the same for a bash script (W, T, P1, P2 are set in it)
mpcap() {
  local name=$1 rc=0
  { echo "W=$W T=$T P1=$P1 P2=$P2"; cat; } | guest bash -s >"$OUT/$name" 2>&1 || rc=$?
  echo "$name $rc" | tee -a "$OUT/exit-codes.txt"
}

T=iqn.2024-01.test.lab:fixture-mp
SCSI_ID=f1c7a0e5b2d94c38a6e1d0b7    # 24 hex digits; tgt makes the NAA-6 designator of them
W=360000000f1c7a0e5b2d94c38a6e1d0b7   # '36' + SCSI_ID zero-padded to 31 digits
P1=127.0.0.1:3260
P2=127.0.0.2:3260
PATHS_FMT='%w|%i|%d|%D|%t|%T|%o|%S|%s'
MAPS_FMT='%w|%n|%d|%S|%N|%Q|%t|%f'

cleanup() {
  guest bash -s <<CLEAN
nft delete table inet fixture_mp >/dev/null 2>&1
multipath -f $W >/dev/null 2>&1
iscsiadm -m node -T $T --logout >/dev/null 2>&1
iscsiadm -m node -T $T -o delete >/dev/null 2>&1
tgtadm --lld iscsi --op delete --mode target --tid 91 --force >/dev/null 2>&1
tgtadm --lld iscsi --op delete --mode portal --param portal=$P2 >/dev/null 2>&1
systemctl stop multipathd.service multipathd.socket tgt
rm -rf /etc/multipath /var/lib/fixture-mp.img /tmp/fixture-mp-holder.pid
true
CLEAN
}
trap cleanup EXIT

guest bash -s <<SETUP
set -e
iscsiadm -m node --logoutall=all >/dev/null 2>&1 || true
iscsiadm -m node -o delete >/dev/null 2>&1 || true
truncate -s 64M /var/lib/fixture-mp.img
systemctl start tgt
tgtadm --lld iscsi --op new --mode target --tid 91 -T $T
tgtadm --lld iscsi --op new --mode logicalunit --tid 91 --lun 1 -b /var/lib/fixture-mp.img
tgtadm --lld iscsi --op update --mode logicalunit --tid 91 --lun 1 --params scsi_id=$SCSI_ID,scsi_sn=fixturemp01
tgtadm --lld iscsi --op bind --mode target --tid 91 -I ALL
tgtadm --lld iscsi --op new --mode portal --param portal=$P2
for p in $P1 $P2; do
  iscsiadm -m node -T $T -p \$p -o new >/dev/null
  iscsiadm -m node -T $T -p \$p -o update -n node.session.timeo.replacement_timeout -v 5
done
SETUP

cap mp-tgtadm-show-portal.txt tgtadm --lld iscsi --op show --mode portal
cap mp-login-p1.txt iscsiadm -m node -T $T -p $P1 --login
cap mp-login-p2.txt iscsiadm -m node -T $T -p $P2 --login
guest udevadm settle
cap mp-node-record-p2.txt iscsiadm -m node -T $T -p $P2
cap mp-node-list.txt iscsiadm -m node
cap mp-session-list.txt iscsiadm -m session
cap mp-session-p3-two-portals.txt iscsiadm -m session -P 3
cap mp-lsblk-paths.txt lsblk -o NAME,HCTL,SIZE,WWN,SERIAL,VENDOR,MODEL,TRAN
cap mp-lsblk-paths-bytes.txt lsblk -dbnPo NAME,SIZE,WWN,SERIAL,TRAN
# each path: kernel WWID, udev's ID_SERIAL (the multipath WWID), vendor, model
mpcap mp-path-wwids.txt <<'SCRIPT'
for d in $(lsblk -dno NAME,TRAN | awk '$2=="iscsi"{print $1}'); do
  echo $d $(cat /sys/block/$d/device/wwid) $(/lib/udev/scsi_id -g -u -d /dev/$d) $(cat /sys/block/$d/device/vendor) $(cat /sys/block/$d/device/model)
done
SCRIPT
mpcap mp-sg-vpd-di.txt <<'SCRIPT'
sg_vpd -p di /dev/$(lsblk -dno NAME,TRAN | awk '$2=="iscsi"{print $1; exit}')
SCRIPT
mpcap mp-recovery-tmo.txt <<'SCRIPT'
for s in /sys/class/iscsi_session/session*; do echo ${s##*/} $(cat $s/targetname) $(cat $s/recovery_tmo); done
SCRIPT

# multipathd with our drop-in; the WWID into the wwids file (find_multipaths strict)
guest bash -s <<CONF
set -e
mkdir -p /etc/multipath/conf.d
cat > /etc/multipath/conf.d/virt-iscsi.conf <<'EOF'
# multipath for LUNs exported by virt-iscsi (lab fixture)
multipaths {
	multipath {
		wwid $W
		path_grouping_policy multibus
		no_path_retry 6
	}
}
EOF
CONF
cap mp-multipath-t-defaults.txt "multipath -t | sed -n '/^defaults {/,/^}/p'"
cap mp-multipath-ll-no-daemon.txt multipath -ll
cap mp-multipath-a.txt multipath -a $W
cap mp-multipath-a-again.txt multipath -a $W
guest systemctl start multipathd
guest "for i in \$(seq 60); do multipathd show maps raw format '%w %N' | grep -q '^$W 2\$' && exit 0; sleep 1; done; exit 1"
guest udevadm settle
cap mp-multipath-ll.txt multipath -ll
cap mp-multipath-ll-wwid.txt multipath -ll $W
cap mp-multipathd-show-paths.txt multipathd show paths
cap mp-multipathd-show-paths-raw.txt multipathd show paths raw format "'$PATHS_FMT'"
cap mp-multipathd-show-maps-raw.txt multipathd show maps raw format "'$MAPS_FMT'"
cap mp-multipathd-show-maps-json.txt multipathd show maps json
cap mp-multipathd-show-config-ours.txt "multipathd show config | sed -n '/^multipaths {/,/^}/p'"
cap mp-multipathd-show-wildcards.txt multipathd show wildcards
cap mp-dmsetup-table.txt dmsetup table $W
cap mp-by-id.txt "ls -l /dev/disk/by-id /dev/mapper | grep -v -e ata- -e control"
cap mp-wwids-file.txt cat /etc/multipath/wwids
cap mp-multipath-ll-missing-wwid.txt multipath -ll 3600000000000000000000000000000001

# the map held open (as a VM would hold it): what a flush says
guest "setsid sleep 30 </dev/mapper/$W >/dev/null 2>&1 & echo \$! >/tmp/fixture-mp-holder.pid"
cap mp-multipath-f-in-use.txt multipath -f $W
guest 'kill $(cat /tmp/fixture-mp-holder.pid); rm -f /tmp/fixture-mp-holder.pid'

# one path cut: what a failed path looks like
guest "nft add table inet fixture_mp; nft add chain inet fixture_mp out '{ type filter hook output priority 0; }'; nft add rule inet fixture_mp out ip daddr 127.0.0.2 tcp dport 3260 drop"
guest "dd if=/dev/mapper/$W of=/dev/null bs=4k count=1 iflag=direct status=none &
  for i in \$(seq 90); do multipathd show paths raw format '%t' | grep -q failed && exit 0; sleep 1; done; exit 1"
cap mp-multipath-ll-one-failed.txt multipath -ll $W
cap mp-multipathd-show-paths-raw-one-failed.txt multipathd show paths raw format "'$PATHS_FMT'"
cap mp-multipathd-show-maps-json-one-failed.txt multipathd show maps json
cap mp-session-p1-one-failed.txt iscsiadm -m session -P 1
guest nft delete table inet fixture_mp
guest "for i in \$(seq 120); do [ \$(multipathd show paths raw format '%t %T' | grep -c 'active ready') = 2 ] && exit 0; sleep 1; done; exit 1"

# teardown in the order that does not hang
cap mp-multipath-f.txt multipath -f $W
cap mp-multipath-w.txt multipath -w $W
guest "for d in \$(lsblk -dno NAME,TRAN | awk '\$2==\"iscsi\"{print \$1}'); do echo 1 > /sys/block/\$d/device/delete; done"
cap mp-logout-p1.txt iscsiadm -m node -T $T -p $P1 --logout
cap mp-logout-p2.txt iscsiadm -m node -T $T -p $P2 --logout
cap mp-tgtadm-delete-target.txt tgtadm --lld iscsi --op delete --mode target --tid 91
cap mp-multipath-ll-after.txt multipath -ll
guest 'uname -r; multipath -h 2>&1 | head -1; iscsiadm --version; tgtd --version 2>&1 | head -1; nft --version' >"$OUT/versions.txt"
