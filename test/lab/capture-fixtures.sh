#!/bin/bash
# Captures real open-iscsi / targetcli output in the lab guest as fixtures for the main
# suite's parser tests, with the tools alone (not our drivers), so the fixtures say what
# the tools print, not what we think they print. Run on the host:
#   test/lab/boot-lab.sh start && test/lab/capture-fixtures.sh && test/lab/boot-lab.sh stop
# Writes test/fixtures/lab/NAME.txt (the exact output, stdout and stderr as the ssh
# channel delivered them) and each command's exit code in exit-codes.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/../fixtures/lab
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

# targetcli on a fresh guest, before it has saved any preferences
guest rm -rf /root/.targetcli
cap targetcli-ls-first-run.txt targetcli ls /

T=iqn.2024-01.test.lab:fixture-tgt
L=iqn.2024-01.test.lab:fixture-lio
OTHER=iqn.2024-01.test.lab:fixture-other
guest bash -s <<SETUP
set -e
iscsiadm -m node --logoutall=all >/dev/null 2>&1 || true
iscsiadm -m node -o delete >/dev/null 2>&1 || true
truncate -s 32M /var/lib/fixture-tgt.img /var/lib/fixture-lio.img
# tgt on 127.0.0.1:3260 with mutual CHAP
systemctl start tgt
tgtadm --lld iscsi --op new --mode target --tid 90 -T $T
tgtadm --lld iscsi --op new --mode logicalunit --tid 90 --lun 1 -b /var/lib/fixture-tgt.img
tgtadm --lld iscsi --op bind --mode target --tid 90 -I ALL
tgtadm --lld iscsi --op new --mode account --user fxin --password fx-in-secret1
tgtadm --lld iscsi --op new --mode account --user fxout --password fx-out-secret
tgtadm --lld iscsi --op bind --mode account --tid 90 --user fxin
tgtadm --lld iscsi --op bind --mode account --tid 90 --user fxout --outgoing
# LIO on [::1]:3261, demo mode, read-only, mutual CHAP on the TPG
targetcli set global auto_add_default_portal=false >/dev/null
targetcli /backstores/fileio create name=fixture file_or_dev=/var/lib/fixture-lio.img wwn=FIXTURE0001 >/dev/null
targetcli /iscsi create $L >/dev/null
targetcli /iscsi/$L/tpg1/portals create ::1 3261 >/dev/null
targetcli /iscsi/$L/tpg1/luns create /backstores/fileio/fixture lun=1 >/dev/null
targetcli /iscsi/$L/tpg1 set attribute authentication=1 generate_node_acls=1 cache_dynamic_acls=1 demo_mode_write_protect=1 >/dev/null
targetcli /iscsi/$L/tpg1 set auth userid=lxin password=lx-in-secret1 mutual_userid=lxout mutual_password=lx-out-secret >/dev/null
iscsiadm -m iface -I fxother -o new >/dev/null
iscsiadm -m iface -I fxother -o update -n iface.initiatorname -v $OTHER >/dev/null
SETUP

node_chap() {  # IQN PORTAL IFACE USER SECRET USER_IN SECRET_IN
  guest bash -s <<NODE
set -e
iscsiadm -m node -T $1 -p $2 -I $3 -o new >/dev/null
for kv in authmethod=CHAP username=$4 password=$5 username_in=$6 password_in=$7; do
  iscsiadm -m node -T $1 -p $2 -I $3 -o update -n node.session.auth.\${kv%%=*} -v \${kv#*=}
done
NODE
}

cap discovery-tgt.txt iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260 -o nonpersistent
cap discovery-lio-ipv6.txt iscsiadm -m discovery -t sendtargets -p '[::1]:3261' -o nonpersistent
guest iscsiadm -m node -T $T -p 127.0.0.1:3260 -o new >/dev/null
cap login-tgt-no-chap.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --login
node_chap $T 127.0.0.1:3260 default fxin wrong-secret1 fxout fx-out-secret
cap login-tgt-wrong-secret.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --login
node_chap $T 127.0.0.1:3260 default fxin fx-in-secret1 fxout fx-out-secret
cap login-tgt.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --login
cap login-tgt-again.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --login
node_chap $L '[::1]:3261' default lxin lx-in-secret1 lxout not-the-secret
cap login-lio-wrong-mutual.txt iscsiadm -m node -T $L -p "'[::1]:3261'" --login
node_chap $L '[::1]:3261' fxother lxin lx-in-secret1 lxout lx-out-secret
cap login-lio-ipv6.txt iscsiadm -m node -T $L -p "'[::1]:3261'" -I fxother --login
guest udevadm settle
cap session-list.txt iscsiadm -m session
cap session-p3-tgt-and-lio-ipv6.txt iscsiadm -m session -P 3
cap node-list.txt iscsiadm -m node
cap by-path.txt ls -1 /dev/disk/by-path
cap targetcli-ls-demo-ipv6.txt targetcli ls /iscsi/$L
cap logout-tgt.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --logout
cap logout-tgt-again.txt iscsiadm -m node -T $T -p 127.0.0.1:3260 --logout

guest bash -s <<CLEAN
iscsiadm -m node --logoutall=all >/dev/null 2>&1
iscsiadm -m node -o delete >/dev/null 2>&1
iscsiadm -m iface -I fxother -o delete >/dev/null 2>&1
tgtadm --lld iscsi --op delete --mode target --tid 90 --force
tgtadm --lld iscsi --op delete --mode account --user fxin
tgtadm --lld iscsi --op delete --mode account --user fxout
targetcli /iscsi delete $L >/dev/null
targetcli /backstores/fileio delete fixture >/dev/null
rm -f /var/lib/fixture-tgt.img /var/lib/fixture-lio.img
true
CLEAN
guest 'uname -r; iscsiadm --version; targetcli --version 2>&1; tgtd --version 2>&1 | head -1' >"$OUT/versions.txt"
