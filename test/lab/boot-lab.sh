#!/bin/bash
# Boots the lab guest that build-lab.sh made, under QEMU, and waits until its sshd
# answers with the host key made at build time (host-key checking on).
#
# Usage: boot-lab.sh start|stop|status|ssh [CMD...]
#   start   boots (or reuses the guest already running from the same image) and prints
#           the state file: KEY=VALUE lines (PID, PORT, IMAGE_DIR, IDENTITY, KNOWN_HOSTS),
#           then STARTED=1 when it booted the guest, STARTED=0 when it reused one
#   stop    stops QEMU by the PID it recorded
#   ssh     runs a command in the guest (debugging)
# Env: LAB_CACHE=/var/tmp/virt-iscsi-lab  LAB_RUN=$LAB_CACHE/run  PORT (default: first free from 10022)  MEM=2048 CPUS=2
#
# -snapshot: guest writes go to a temporary overlay, the image stays as built.
# Network: QEMU user mode with restrict=on: the guest reaches nothing (no host, no
# internet); the one path in is host 127.0.0.1:PORT -> guest :22.
set -euo pipefail

LAB_CACHE=${LAB_CACHE:-/var/tmp/virt-iscsi-lab}
RUN=${LAB_RUN:-$LAB_CACHE/run}   # a second guest beside the first: LAB_RUN=another/dir
STATE=$RUN/state
HERE=$(cd "$(dirname "$0")" && pwd)
MEM=${MEM:-2048}
CPUS=${CPUS:-2}

val() { [ -f "$STATE" ] && sed -n "s/^$1=//p" "$STATE"; }
alive() { local pid; pid=$(val PID); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = qemu-system-x86 ]; }
ssh_lab() {
  ssh -i "$(val IDENTITY)" -p "$(val PORT)" -o UserKnownHostsFile="$(val KNOWN_HOSTS)" \
      -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes \
      -o ConnectTimeout="${CONNECT_TIMEOUT:-5}" -o LogLevel=ERROR root@127.0.0.1 "$@"
}
free_port() {
  local p
  for p in $(seq 10022 10099); do
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  echo "boot-lab: no free port in 10022-10099" >&2; exit 1
}

stop() {
  if alive; then
    local pid; pid=$(val PID)
    # Nothing in the guest needs saving (-snapshot): TERM, then KILL if it lingers.
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "boot-lab: stopped qemu (pid $pid)" >&2
  fi
  rm -f "$STATE"
}

start() {
  local img; img=$("$HERE/build-lab.sh")
  mkdir -p "$RUN"
  exec 9>"$RUN/lock"; flock 9
  if alive && [ "$(val IMAGE_DIR)" = "$img" ]; then
    echo "boot-lab: reusing the running guest (pid $(val PID))" >&2
    cat "$STATE"; echo STARTED=0; return
  fi
  stop
  local port=${PORT:-$(free_port)} accel
  # KVM only where a stock kernel boots under it. This host's /dev/kvm is PVM
  # (kvm_pvm), which runs PVM-built guest kernels only: TCG there.
  if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=(-accel kvm -cpu host)
  else accel=(-accel tcg,thread=multi -cpu max); fi
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1-2 "$img/ssh_host_ed25519_key.pub")" > "$RUN/known_hosts"
  rm -f "$RUN/qemu.pid"
  local t0; t0=$(date +%s.%N)
  qemu-system-x86_64 "${accel[@]}" -m "$MEM" -smp "$CPUS" -machine q35 \
    -display none -no-reboot -snapshot \
    -kernel "$img/vmlinuz" -initrd "$img/initrd" \
    -append 'root=/dev/vda rw console=ttyS0 quiet net.ifnames=0' \
    -drive file="$img/lab.img",format=raw,if=virtio,cache=unsafe \
    -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"$port"-:22 \
    -device virtio-net-pci,netdev=n0 \
    -serial file:"$RUN/console.log" -monitor none \
    -pidfile "$RUN/qemu.pid" -daemonize 9>&-   # the lock stays with this script
  cat > "$STATE" <<STATE
PID=$(cat "$RUN/qemu.pid")
PORT=$port
IMAGE_DIR=$img
IDENTITY=$img/id_ed25519
KNOWN_HOSTS=$RUN/known_hosts
STATE
  echo "boot-lab: qemu pid $(val PID) (${accel[*]}), waiting for ssh on 127.0.0.1:$port" >&2
  for _ in $(seq 1 300); do
    if ssh_lab true 2>/dev/null; then
      awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "boot-lab: ssh up after %.1fs\n", b-a}' >&2
      cat "$STATE"; echo STARTED=1; return
    fi
    alive || { echo "boot-lab: qemu died; console:" >&2; tail -30 "$RUN/console.log" >&2; rm -f "$STATE"; exit 1; }
    sleep 1
  done
  echo "boot-lab: no ssh after 300s; console:" >&2; tail -30 "$RUN/console.log" >&2; stop; exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if alive; then cat "$STATE"; else echo "not running"; exit 1; fi ;;
  # a loaded host can take longer than the boot probe's 5 s to exchange SSH banners
  ssh) shift; alive || { echo "boot-lab: not running" >&2; exit 1; }; CONNECT_TIMEOUT=60 ssh_lab "$@" ;;
  *) echo "usage: $0 start|stop|status|ssh [CMD...]" >&2; exit 2 ;;
esac
