#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need (only the missing ones),
# then the npm packages. Safe to run again: it does nothing that is already done.
set -euo pipefail

DEBS=(
  tgt libiscsi-bin
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-storage-iscsi-direct
  qemu-system-x86 qemu-utils qemu-block-extra
  openssh-server xorriso libxml2-utils
  # Ceph RBD: a one-node cluster for tests (scripts/ceph-dev.sh; no ceph-mgr: rbd works
  # without one), tgt's rbd backing store (the iSCSI gateway) and libvirt's rbd pools.
  ceph-mon ceph-osd ceph-common tgt-rbd libvirt-daemon-driver-storage-rbd
  multipath-tools zsh
  # benchmarks (bench/): fio drives QEMU's NBD export, strace checks flushes, GNU time the peak RSS
  fio strace time
)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps package scripts from starting daemons: tests start their own.
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
else
  echo "setup: Debian packages present"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
