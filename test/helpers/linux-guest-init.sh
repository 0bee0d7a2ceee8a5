#!/bin/busybox sh
# /init of the test guest (PID 1, busybox only). Mounts the kernel filesystems, loads the
# modules listed in /lib/modules/load-order, then serves a command agent on the
# virtio-serial port named org.virt-iscsi.agent.0 (a unix socket on the host).
#
# Agent protocol, one request per line from the host:
#   ID SECONDS BASE64(COMMAND)
# ID: digits; SECONDS: the command and every process it started (its process group) are
# killed (SIGKILL) after that long. The command runs as a sh script from /, stdin
# /dev/null. The answer, base64 so output can hold anything:
#   @@VI ID OUT
#   <stdout, base64, wrapped>
#   @@VI ID ERR
#   <stderr, base64, wrapped>
#   @@VI ID END STATUS
# On each (re)open of the port the agent first says `@@VI HELLO BOOT_ID`. Requests it
# cannot parse are answered with status 254. The kernel console (and this script's own
# messages) go to ttyS0, which the host writes to a log file.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
exec </dev/console >/dev/console 2>&1
echo "vi-init: up $(cut -d' ' -f1 /proc/uptime) s"

while read -r m; do
  insmod "/lib/modules/$m.ko" || echo "vi-init: insmod $m failed"
done < /lib/modules/load-order
echo "vi-init: modules loaded $(cut -d' ' -f1 /proc/uptime) s"

AGENT_NAME=org.virt-iscsi.agent.0

agent_port() {   # the /dev node of the named virtio-serial port, once the driver made it
  local p
  for p in /sys/class/virtio-ports/*; do
    [ -f "$p/name" ] && [ "$(cat "$p/name")" = "$AGENT_NAME" ] && [ -c "/dev/${p##*/}" ] && { echo "/dev/${p##*/}"; return 0; }
  done
  return 1
}

run_one() {   # $1 = seconds: runs /tmp/.vi-cmd, kills its whole process group at the deadline
  # setsid makes the command a process group of its own (so its children die with it) and
  # fd 3, the port, is closed for it: a leftover child holding the port open would keep
  # the next open of the port failing with EBUSY.
  setsid sh /tmp/.vi-cmd </dev/null >/tmp/.vi-out 2>/tmp/.vi-err 3<&- &
  pid=$!
  # The watchdog is a process group too, so its sleep goes with it when the command ends.
  setsid sh -c 'sleep "$1"; kill -KILL -- "-$2"' vi-watchdog "$1" "$pid" </dev/null >/dev/null 2>&1 3<&- &
  dog=$!
  wait "$pid"
  st=$?
  kill -- "-$dog" 2>/dev/null
  return "$st"
}

serve() {   # $1 = port: answers requests until the host side closes
  exec 3<>"$1" || return 1
  echo "@@VI HELLO $(cat /proc/sys/kernel/random/boot_id)" >&3
  while read -r id secs b64 <&3; do
    case "$id:$secs" in
      *[!0-9:]* | :* | *:) echo "@@VI ${id:-0} END 254" >&3; continue ;;
    esac
    echo "$b64" | base64 -d > /tmp/.vi-cmd 2>/dev/null || { echo "@@VI $id END 254" >&3; continue; }
    (cd / && run_one "$secs")
    st=$?
    { echo "@@VI $id OUT"; base64 </tmp/.vi-out; echo "@@VI $id ERR"; base64 </tmp/.vi-err; echo "@@VI $id END $st"; } >&3
  done
}

n=0
until PORT=$(agent_port); do
  n=$((n + 1))
  [ $n -eq 100 ] && echo "vi-init: still no virtio-serial port $AGENT_NAME"
  sleep 0.1
done
echo "vi-init: agent on $PORT $(cut -d' ' -f1 /proc/uptime) s"
while :; do
  # In a subshell: a failed open ends only that, never PID 1.
  (serve "$PORT") || echo "vi-init: agent could not open $PORT"
  # The host is not connected: a read returns end-of-file at once, so do not spin.
  sleep 0.2
done
