#!/bin/bash
# `make test-lab`: builds (or reuses) the lab image, boots the guest (or reuses the one
# running), runs test/lab/*.lab.ts against it through SshRunner one file at a time,
# stops the guest it booted, and prints how long each phase took and the totals.
# Env: LAB_KEEP=1 leaves the guest running afterwards (the next run reuses it);
#      LAB_FILES='test/lab/a.lab.ts ...' runs those files only (default: every *.lab.ts).
#
# The guest is emulated (TCG). Once in a CI run it stopped answering SSH for good in
# the middle of a file (QEMU alive, no handshake), and every later file failed on
# connect. So after each file the guest must still answer; when it does not, its
# serial console and this host's load are printed (what hung is there to read), a
# guest this script booted is booted again, and that one file runs once more on it.
# The retry is printed and counted in the totals: a file that also fails on the fresh
# guest fails the run, and so does any ordinary test failure (those are never retried);
# a guest that hangs in the second run too ends the lab there.
set -uo pipefail
cd "$(dirname "$0")/../.."
LAB=test/lab
CONSOLE=${LAB_RUN:-${LAB_CACHE:-/var/tmp/virt-iscsi-lab}/run}/console.log
declare -a PHASES=()
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
report() {
  echo "lab timing:"
  printf '  %s\n' "${PHASES[@]}"
}

t=$(now)
img=$("$LAB/build-lab.sh") || { echo "test-lab: building the lab image failed" >&2; exit 1; }
PHASES+=("build/reuse image  $(took "$t")s  ($img)")

booted=1   # until boot-lab.sh says it reused a running guest
stop() { if [ $booted = 1 ] && [ -z "${LAB_KEEP:-}" ]; then "$LAB/boot-lab.sh" stop; fi; }
trap 'stop; exit 130' INT TERM

boot() {
  local state
  state=$("$LAB/boot-lab.sh" start) || return 1
  grep -qx STARTED=1 <<<"$state" || booted=0
}

t=$(now)
boot || { stop; echo "test-lab: booting the lab guest failed" >&2; exit 1; }
PHASES+=("boot to ssh        $(took "$t")s$([ $booted = 1 ] || echo ' (reused a running guest)')")

# The guest answers a command over SSH (a loaded host may take a minute for banners).
answers() { timeout 150 "$LAB/boot-lab.sh" ssh true >/dev/null 2>&1; }

hung() {
  echo "test-lab: the lab guest stopped answering SSH during $1" >&2
  echo "test-lab: its serial console (last 40 lines):" >&2
  tail -n 40 "$CONSOLE" 2>/dev/null | sed 's/^/  console| /' >&2
  echo "test-lab: this host: $(uptime)" >&2
  ps -eo pid,pcpu,rss,etime,comm --sort=-pcpu | head -8 | sed 's/^/  host| /' >&2
}

declare -A SUM=([tests]=0 [pass]=0 [fail]=0 [cancelled]=0 [skipped]=0 [todo]=0)
OUT=$(mktemp)
# one file at a time (they share the guest); no single test may hang the run
runfile() {
  node --import tsx --test --test-concurrency=1 --test-timeout=900000 "$1" | tee "$OUT"
  return "${PIPESTATUS[0]}"
}
count() {
  local k n
  for k in "${!SUM[@]}"; do
    n=$(sed -n "s/^# $k \([0-9]*\)$/\1/p" "$OUT" | tail -n 1)
    SUM[$k]=$(( SUM[$k] + ${n:-0} ))
  done
}

t=$(now)
rc=0
declare -a RETRIED=() FAILED=()
for f in ${LAB_FILES:-$(find "$LAB" -name '*.lab.ts' | sort)}; do
  runfile "$f"; frc=$?
  if [ $frc != 0 ] && ! answers; then
    hung "$f"
    if [ $booted = 1 ]; then
      echo "test-lab: booting the guest again and running $f once more" >&2
      "$LAB/boot-lab.sh" stop
      boot || { echo "test-lab: booting the lab guest again failed" >&2; count; rc=1; FAILED+=("$f"); break; }
      RETRIED+=("$f")
      runfile "$f"; frc=$?
      if [ $frc != 0 ] && ! answers; then
        # Twice in a row is no passing stall: the remaining files would only hang too.
        hung "$f (second run)"
        count; rc=1; FAILED+=("$f")
        echo "test-lab: the guest hung twice; not running the files after $f" >&2
        break
      fi
    fi
  fi
  count
  [ $frc = 0 ] || { rc=1; FAILED+=("$f"); }
done
rm -f "$OUT"
PHASES+=("lab tests          $(took "$t")s")

t=$(now)
stop
PHASES+=("stop guest         $(took "$t")s")
report
echo "lab totals: tests ${SUM[tests]}, pass ${SUM[pass]}, fail ${SUM[fail]}, cancelled ${SUM[cancelled]}, skipped ${SUM[skipped]}, todo ${SUM[todo]}"
[ ${#RETRIED[@]} = 0 ] || echo "lab: run again on a freshly booted guest after the guest stopped answering: ${RETRIED[*]}"
[ ${#FAILED[@]} = 0 ] || echo "lab: failed: ${FAILED[*]}"
exit $rc
