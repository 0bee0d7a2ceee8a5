# What both demos (demo.sh, demo-ceph.sh) do the same way; sourced, never run. Expects
# LIBVIRT and the arrays started_pids (daemons the demo started) from the demo.

say() { printf '\n==> %s\n' "$*"; }
# Shows the command, then runs it.
run() {
  printf '    $ %s\n' "$*"
  "$@"
}
virt_iscsi=(node bin/virt-iscsi.js)
virt-iscsi() { run "${virt_iscsi[@]}" "$@"; }
virsh() { command virsh -c "$LIBVIRT" "$@"; }

# The demo's VM, whatever state it is in.
remove_vm() {
  if virsh dominfo "$1" >/dev/null 2>&1; then
    virsh destroy "$1" >/dev/null 2>&1
    virsh undefine "$1" >/dev/null
    echo "    removed domain $1"
  fi
}

# Stops, by PID, each daemon the demo started (libvirtd before virtlogd).
stop_started() {
  for pid in "${started_pids[@]}"; do
    echo "    stop pid $pid (the demo started it)"
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}

# A libvirtd that answers: the running one, or virtlogd and libvirtd started (and noted in started_pids).
ensure_libvirtd() {
  if virsh version >/dev/null 2>&1; then
    say "libvirtd is running: use it"
    return
  fi
  say "libvirtd is not answering: start virtlogd and libvirtd (stopped again at the end)"
  pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
  if ! pid_alive /run/virtlogd.pid; then
    run virtlogd -d
    for _ in $(seq 100); do pid_alive /run/virtlogd.pid && break; sleep 0.1; done
    started_pids+=("$(cat /run/virtlogd.pid)")
  fi
  run libvirtd -d
  for _ in $(seq 300); do virsh version >/dev/null 2>&1 && break; sleep 0.1; done
  virsh version >/dev/null
  started_pids=("$(cat /run/libvirtd.pid)" "${started_pids[@]}")
}
