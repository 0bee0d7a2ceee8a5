#!/bin/bash
# `make test-lab`: builds (or reuses) the lab image, boots the guest (or reuses the one
# running), runs test/lab/*.lab.ts against it through SshRunner, stops the guest it
# booted, and prints how long each phase took.
# Env: LAB_KEEP=1 leaves the guest running afterwards (the next run reuses it).
set -uo pipefail
cd "$(dirname "$0")/../.."
LAB=test/lab
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

t=$(now)
state=$("$LAB/boot-lab.sh" start) || { stop; echo "test-lab: booting the lab guest failed" >&2; exit 1; }
grep -qx STARTED=1 <<<"$state" || booted=0
PHASES+=("boot to ssh        $(took "$t")s$([ $booted = 1 ] || echo ' (reused a running guest)')")

t=$(now)
# one file at a time (they share the guest); no single test may hang the run
node --import tsx --test --test-concurrency=1 --test-timeout=900000 $(find "$LAB" -name '*.lab.ts' | sort)
rc=$?
PHASES+=("lab tests          $(took "$t")s")

t=$(now)
stop
PHASES+=("stop guest         $(took "$t")s")
report
exit $rc
