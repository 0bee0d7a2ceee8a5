#!/usr/bin/env bash
# A throwaway single-node Ceph cluster on 127.0.0.1, for tests, benchmarks and trying the
# rbd features by hand: one monitor, one bluestore OSD on a sparse file, an `rbd` pool of
# one replica, no manager (rbd does not need one) and no systemd. Everything it makes
# (configuration, keyrings, data, logs, sockets, pid files) lives under one directory,
# which `stop` removes after stopping the daemons by their PIDs.
#
#   scripts/ceph-dev.sh start  [DIR]   start (or find running) and print what clients need
#   scripts/ceph-dev.sh status [DIR]   "running" (exit 0) or "not running" (exit 3)
#   scripts/ceph-dev.sh stop   [DIR]   stop the daemons, remove DIR
#
# DIR defaults to $CEPH_DEV_DIR, else ${TMPDIR:-/var/tmp}/virt-iscsi-ceph. `start` prints
# shell assignments (CEPH_CONF=..., CEPH_ID=..., CEPH_KEYRING=..., CEPH_POOL=...), so
# `eval "$(scripts/ceph-dev.sh start)"` sets them. CEPH_DEV_OSD_SIZE sets the OSD's
# sparse file size (default 20G). Needs ceph-mon, ceph-osd and ceph-common.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status [DIR]" >&2
  exit 2
}

cmd=${1:-}
[ $# -le 2 ] || usage
DIR=${2:-${CEPH_DEV_DIR:-${TMPDIR:-/var/tmp}/virt-iscsi-ceph}}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
CONF="$DIR/ceph.conf"
# The file that says DIR is ours: stop removes nothing else.
MARK="$DIR/.virt-iscsi-ceph-dev"
CLIENT=virt-iscsi
POOL=rbd
DAEMONS=(mon.a osd.0)

log() { echo "ceph-dev: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# The PID of a daemon of ours, when it runs: its pid file names a live process of the
# right program (a PID reused by anything else does not count).
daemon_pid() {
  local name=$1 pid
  pid=$(cat "$DIR/run/$name.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "ceph-${name%%.*}" ] || return 1
  echo "$pid"
}

running() {
  local d
  for d in "${DAEMONS[@]}"; do daemon_pid "$d" >/dev/null || return 1; done
}

print_env() {
  cat <<EOF
CEPH_CONF=$CONF
CEPH_ID=$CLIENT
CEPH_KEYRING=$DIR/ceph.client.$CLIENT.keyring
CEPH_ADMIN_KEYRING=$DIR/ceph.client.admin.keyring
CEPH_POOL=$POOL
CEPH_MON=$(sed -n 's/^mon_host = //p' "$CONF")
EOF
}

stop_daemons() {
  local d pid pids=()
  for d in "${DAEMONS[@]}"; do
    if pid=$(daemon_pid "$d"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # Up to 2 s to exit cleanly, then SIGKILL: the data is thrown away anyway (an OSD
  # takes 7 s to shut down cleanly on 2 busy cores).
  local i
  for i in $(seq 20); do
    local left=()
    for pid in ${pids[@]+"${pids[@]}"}; do [ -e "/proc/$pid" ] && left+=("$pid"); done
    pids=(${left[@]+"${left[@]}"})
    [ ${#pids[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

remove_dir() {
  [ -d "$DIR" ] || return 0
  [ -f "$MARK" ] || die "$DIR was not made by ceph-dev.sh (no $(basename "$MARK")); not removing it"
  rm -rf -- "$DIR"
}

# A TCP port on 127.0.0.1 nothing listens on now (another cluster, a second run).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

write_conf() {
  local fsid=$1 v2=$2 v1=$3
  cat >"$CONF" <<EOF
# Made by scripts/ceph-dev.sh: a throwaway one-node cluster; "ceph-dev.sh stop" removes it.
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $DIR/\$cluster.\$name.keyring
run_dir = $DIR/run
mon_cluster_log_file = $DIR/log/cluster.log
crash_dir = $DIR/crash
# One OSD: one replica, placement by OSD rather than by host.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
# Health checks that a throwaway cluster trips by design; off, so it reports HEALTH_OK.
mon_warn_on_pool_no_redundancy = false
# No manager: rbd does not need one (it would cost ~300 MB). Without this the monitor
# reports "no active mgr" two minutes after it was made.
mon_mgr_mkfs_grace = 315360000
# The monitor's store is tiny: warn only when its filesystem is really full.
mon_data_avail_warn = 2
mon_data_avail_crit = 1
auth_allow_insecure_global_id_reclaim = false
# Clients give up instead of hanging when the monitor is gone.
client_mount_timeout = 15
rados_mon_op_timeout = 30
rados_osd_op_timeout = 60

# Daemons only: clients (rbd, QEMU, tgtd) would share these names and collide.
[mon]
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
mon_data = $DIR/\$name
keyring = $DIR/\$name/keyring
mon_initial_members = a

[osd]
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
osd_data = $DIR/\$name
osd_objectstore = bluestore
# The block file must live outside the OSD's data dir: ceph-osd --mkfs links
# \$osd_data/block to it, and a path inside the dir loops ("Too many levels of symbolic links").
bluestore_block_path = $DIR/\$name.block
bluestore_block_create = true
bluestore_block_size = $(size_bytes "${CEPH_DEV_OSD_SIZE:-20G}")
bluestore_fsck_on_mkfs = false
osd_memory_target = 939524096
EOF
}

size_bytes() {
  local n=${1%[KMGTkmgt]} u=${1: -1}
  [[ $n =~ ^[0-9]+$ ]] || die "size \"$1\" is not a number with an optional K, M, G or T suffix"
  case "$u" in
    [Kk]) echo $((n << 10)) ;; [Mm]) echo $((n << 20)) ;; [Gg]) echo $((n << 30)) ;; [Tt]) echo $((n << 40)) ;;
    *) echo "$1" ;;
  esac
}

wait_until() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs in $DIR/log)"
    sleep 0.2
  done
}

ceph_admin() { ceph -c "$CONF" -n client.admin --connect-timeout 15 "$@"; }

health_ok() { [ "$(ceph_admin health 2>/dev/null)" = HEALTH_OK ]; }

start() {
  if running; then
    log "already running in $DIR"
    print_env
    return 0
  fi
  if [ -f "$MARK" ]; then
    # Left over from a run that did not stop (a reboot, a killed test): start afresh.
    log "removing the stale cluster in $DIR"
    stop_daemons
    remove_dir
  elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists and was not made by ceph-dev.sh: give an empty or new directory"
  fi
  local t0=$SECONDS
  for tool in ceph-mon ceph-osd ceph ceph-authtool monmaptool; do
    command -v "$tool" >/dev/null || die "$tool is not installed: apt-get install ceph-mon ceph-osd ceph-common"
  done
  mkdir -p "$DIR"
  touch "$MARK"
  mkdir -p "$DIR"/{run,log,crash,mon.a,osd.0}
  chmod 700 "$DIR"

  local fsid v2 v1
  fsid=$(cat /proc/sys/kernel/random/uuid)
  v2=$(free_port)
  v1=$(free_port)
  [ "$v1" != "$v2" ] || v1=$((v2 + 1))
  write_conf "$fsid" "$v2" "$v1"

  # Every key is made here and put into the monitor's first database, so no `ceph auth`
  # round trip is needed later: mon., client.admin, osd.0 and the client for users.
  local kr="$DIR/mon.a.mkfs-keyring"
  ceph-authtool --create-keyring "$kr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  # ceph-osd --mkfs --key writes no keyring: the OSD's own is made here.
  ceph-authtool --create-keyring "$DIR/ceph.osd.0.keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool --create-keyring "$DIR/ceph.client.$CLIENT.keyring" --gen-key -n "client.$CLIENT" \
    --cap mon 'profile rbd' --cap osd "profile rbd pool=$POOL" >/dev/null
  for k in ceph.client.admin ceph.osd.0 "ceph.client.$CLIENT"; do
    ceph-authtool "$kr" --import-keyring "$DIR/$k.keyring" >/dev/null
  done
  chmod 600 "$DIR"/*.keyring "$kr"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$kr"
  rm -f "$kr" "$DIR/monmap"
  ceph-mon -c "$CONF" -i a 2>>"$DIR/log/start.log"
  wait_until "the monitor" 30 ceph_admin mon stat

  local uuid
  uuid=$(cat /proc/sys/kernel/random/uuid)
  [ "$(ceph_admin osd new "$uuid" 0)" = 0 ] || die "ceph osd new did not give id 0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 ||
    die "ceph-osd --mkfs failed (see $DIR/log/osd.0.log)"
  ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/start.log"
  wait_until "osd.0 to be up" 60 sh -c "ceph -c '$CONF' -n client.admin --connect-timeout 15 osd dump | grep -q '^osd.0 up'"

  ceph_admin osd pool create "$POOL" 8 8 2>>"$DIR/log/start.log"
  ceph_admin osd pool set "$POOL" size 1 --yes-i-really-mean-it 2>>"$DIR/log/start.log"
  rbd -c "$CONF" -n client.admin pool init "$POOL"
  wait_until "HEALTH_OK" 60 health_ok
  log "running in $DIR after $((SECONDS - t0)) s"
  print_env
}

case "$cmd" in
  start) start ;;
  stop)
    if [ -f "$MARK" ]; then stop_daemons; fi
    remove_dir
    ;;
  status)
    if running; then
      echo "running in $DIR (mon.a pid $(daemon_pid mon.a), osd.0 pid $(daemon_pid osd.0))"
      print_env
    else
      echo "not running ($DIR)"
      exit 3
    fi
    ;;
  *) usage ;;
esac
