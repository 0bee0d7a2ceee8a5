#!/bin/bash
# Builds (or reuses) a tiny Linux guest for tests that need a running OS in a VM:
# Debian's cloud kernel (unpacked from its .deb, nothing installed on this host) and a
# busybox initramfs whose /init is linux-guest-init.sh (mounts, modules, command agent).
#
# Output dir: $GUEST_CACHE/HASH, HASH covering the three scripts and the package versions
# apt would fetch, so editing a script or a new kernel in the archive builds a new guest;
# a second run reuses it. A lock file serialises builds (two test files starting at once
# build once). Only complete builds are renamed into place. Files there:
#   vmlinuz      the kernel
#   initrd.gz    busybox + the modules below + /init
#   info         kernel release, packages, modules loaded at boot
#
# Usage: linux-guest-build.sh     prints the output dir on the last line of stdout
# Env:   GUEST_CACHE=/var/tmp/virt-iscsi-guest
set -euo pipefail

GUEST_CACHE=${GUEST_CACHE:-/var/tmp/virt-iscsi-guest}
HERE=$(cd "$(dirname "$0")" && pwd)
DEBS=$GUEST_CACHE/debs
# Drivers the guest needs beyond what the cloud kernel builds in: the PCI transport for
# virtio, the virtio-scsi HBA (hot-plugged disks and CD-ROMs), SCSI disks and CD-ROMs,
# virtio-blk disks, and virtio-serial (the agent's port). Dependencies are added below.
WANT_MODULES=(virtio_pci virtio_scsi sd_mod sr_mod virtio_blk virtio_console)

t0=$(date +%s%N)
say() { echo "linux-guest-build [$(( ($(date +%s%N) - t0) / 1000000 )) ms] $*" >&2; }

mkdir -p "$GUEST_CACHE" "$DEBS"
exec 9>"$GUEST_CACHE/build.lock"
flock -w 900 9 || { echo "linux-guest-build: could not take $GUEST_CACHE/build.lock in 900 s" >&2; exit 1; }

# One apt-cache call (each costs seconds on a busy machine): the cloud meta-package's
# Depends names the versioned kernel image with its exact version, e.g.
#   Depends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)
resolve() {   # prints "KERNEL_PACKAGE KERNEL_VERSION BUSYBOX_VERSION", or less when apt lacks them
  apt-cache show --no-all-versions linux-image-cloud-amd64 busybox-static 2>/dev/null | awk '
    /^Package:/ { pkg = $2 }
    pkg == "linux-image-cloud-amd64" && /^Depends:/ && match($0, /linux-image-[0-9][^ ,]* \(= [^)]+\)/) {
      split(substr($0, RSTART, RLENGTH), d, /[ ()=]+/); k = d[1]; kv = d[2] }
    pkg == "busybox-static" && /^Version:/ { bv = $2 }
    END { print k, kv, bv }'
}
read -r KPKG KVER BBVER < <(resolve) || true
if [ -z "${BBVER:-}" ]; then
  say "apt lists lack linux-image-cloud-amd64 or busybox-static: apt-get update"
  apt-get update -qq >&2
  read -r KPKG KVER BBVER < <(resolve) || true
fi
# Debian package names and versions; anything else is not what apt should have printed.
[[ "${KPKG:-}" =~ ^linux-image-[0-9][a-z0-9.+-]*$ && "${KVER:-}" =~ ^[0-9A-Za-z.+~:-]+$ && "${BBVER:-}" =~ ^[0-9A-Za-z.+~:-]+$ ]] ||
  { echo "linux-guest-build: apt shows no linux-image-cloud-amd64 dependency or no busybox-static (got '${KPKG:-}' '${KVER:-}' '${BBVER:-}')" >&2; exit 1; }

HASH=$( { cat "$HERE/linux-guest-build.sh" "$HERE/linux-guest-init.sh" "$HERE/linux-guest-writer.sh"
          echo "$KPKG=$KVER busybox-static=$BBVER"; } | sha256sum | cut -c1-16)
OUT=$GUEST_CACHE/$HASH
if [ -f "$OUT/initrd.gz" ]; then
  say "reusing $OUT"
  echo "$OUT"; exit 0
fi

WORK=$(mktemp -d "$GUEST_CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

deb_of() {   # $1 = package, $2 = version: the .deb in $DEBS, downloaded when missing
  local f
  f=$(find "$DEBS" -maxdepth 1 -name "$1_*.deb" | while read -r d; do
        [ "$(dpkg-deb -f "$d" Version)" = "$2" ] && echo "$d"; done | head -1)
  if [ -z "$f" ]; then
    say "apt-get download $1=$2"
    # apt's sandbox user cannot write here; the download then runs as root (a warning).
    (cd "$DEBS" && apt-get download -q "$1=$2" >&2 2>"$WORK/apt.log") || { cat "$WORK/apt.log" >&2; exit 1; }
    f=$(find "$DEBS" -maxdepth 1 -name "$1_*.deb" | while read -r d; do
          [ "$(dpkg-deb -f "$d" Version)" = "$2" ] && echo "$d"; done | head -1)
  fi
  [ -n "$f" ] || { echo "linux-guest-build: no .deb for $1=$2 after apt-get download" >&2; exit 1; }
  echo "$f"
}

KDEB=$(deb_of "$KPKG" "$KVER")
BBDEB=$(deb_of busybox-static "$BBVER")
say "unpacking $(basename "$KDEB") and $(basename "$BBDEB")"
dpkg-deb -x "$KDEB" "$WORK/k"
dpkg-deb -x "$BBDEB" "$WORK/bb"
BB=$WORK/bb/bin/busybox
KREL=$(basename "$(ls -d "$WORK"/k/lib/modules/*)")
MODDIR=$WORK/k/lib/modules/$KREL

# Module name -> file (names use '_', some files '-'), built-ins, and each .ko's depends=.
declare -A KO
while read -r f; do n=${f##*/}; n=${n%.ko}; KO[${n//-/_}]=$f; done < <(find "$MODDIR/kernel" -name '*.ko')
declare -A BUILTIN
while read -r f; do n=${f##*/}; n=${n%.ko}; BUILTIN[${n//-/_}]=1; done < "$MODDIR/modules.builtin"
ORDER=()
declare -A SEEN
add_module() {   # depth-first: dependencies before the module
  local m=$1 d deps
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  [ -n "${BUILTIN[$m]:-}" ] && { say "$m is built in"; return 0; }
  [ -n "${KO[$m]:-}" ] || { echo "linux-guest-build: kernel $KREL has no module $m" >&2; exit 1; }
  deps=$("$BB" strings "${KO[$m]}" | sed -n 's/^depends=//p' | head -1)
  for d in ${deps//,/ }; do add_module "${d//-/_}"; done
  ORDER+=("$m")
}
for m in "${WANT_MODULES[@]}"; do add_module "$m"; done

R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,mnt,root,etc,lib/modules}
cp "$BB" "$R/bin/busybox"
for m in "${ORDER[@]}"; do cp "${KO[$m]}" "$R/lib/modules/$m.ko"; done
printf '%s\n' "${ORDER[@]}" > "$R/lib/modules/load-order"
install -m 0755 "$HERE/linux-guest-init.sh" "$R/init"
install -m 0755 "$HERE/linux-guest-writer.sh" "$R/bin/vi-writer"
# /init's stdio before devtmpfs is mounted.
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3

mkdir -p "$WORK/out"
(cd "$R" && find . | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -6 > "$WORK/out/initrd.gz"
cp "$WORK/k/boot/vmlinuz-$KREL" "$WORK/out/vmlinuz"
{
  echo "kernel_release=$KREL"
  echo "kernel_package=$KPKG=$KVER"
  echo "busybox_package=busybox-static=$BBVER"
  echo "modules=${ORDER[*]}"
} > "$WORK/out/info"
chmod 0644 "$WORK/out"/*
chmod 0755 "$WORK/out"
mv "$WORK/out" "$OUT"
say "built $OUT (kernel $KREL, $(stat -c %s "$OUT/initrd.gz") byte initramfs, modules: ${ORDER[*]})"
echo "$OUT"
