#!/bin/bash
# Builds (or reuses) the lab guest: a Debian 12 root filesystem with a real kernel
# iSCSI stack (open-iscsi initiator, tgt and LIO/targetcli-fb targets) and libvirt,
# booted by boot-lab.sh under QEMU. The host kernel has neither iscsi_tcp nor LIO.
#
# The image is cached in $LAB_CACHE/img-HASH, HASH being a hash of this script:
# a second run with the same script reuses it; editing the script builds a new one.
# Output there (only complete builds are renamed into place):
#   lab.img             raw ext4 image of the guest root (/dev/vda); boot with -snapshot
#   vmlinuz, initrd     kernel + initramfs for QEMU -kernel/-initrd
#   id_ed25519[.pub]    root's login key
#   ssh_host_ed25519_key.pub   the guest's only host key, generated here, so the first
#                       connection is already checked (boot-lab.sh writes known_hosts)
#
# Usage: build-lab.sh            prints the image dir on the last line of stdout
# Env:   LAB_CACHE=/var/tmp/virt-iscsi-lab  MIRROR=<apt mirror>  IMG_SIZE=3G
set -euo pipefail

LAB_CACHE=${LAB_CACHE:-/var/tmp/virt-iscsi-lab}
IMG_SIZE=${IMG_SIZE:-3G}
HERE=$(cd "$(dirname "$0")" && pwd)
HASH=$(sha256sum "$HERE/build-lab.sh" | cut -c1-12)
OUT=$LAB_CACHE/img-$HASH
DEBS=$LAB_CACHE/debs          # .deb cache shared by every build

if [ -f "$OUT/lab.img" ]; then
  echo "build-lab: reusing $OUT" >&2
  echo "$OUT"; exit 0
fi

# The guest's packages. debootstrap resolves plain Depends only: list what it misses.
PKGS=(
  systemd-sysv libpam-systemd udev kmod dbus iproute2 procps less e2fsprogs util-linux
  openssh-server
  linux-image-amd64 initramfs-tools
  open-iscsi lsscsi sg3-utils
  tgt
  targetcli-fb python3-rtslib-fb
  libvirt-daemon-system libvirt-clients qemu-system-x86
  qemu-block-extra      # QEMU's own iSCSI client: network disks that migrate between hypervisors
  multipath-tools       # dm-multipath over two portals
  nftables              # cuts one path in the multipath tests
)

t0=$(date +%s)
step() { echo "=== build-lab [$(( $(date +%s) - t0 ))s] $*" >&2; }

host_packages() {
  local need=()
  for p in debootstrap qemu-system-x86 e2fsprogs openssh-client; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  ((${#need[@]})) || return 0
  step "installing host packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# The host's own apt mirror (the only package source this machine reaches).
find_mirror() {
  [ -n "${MIRROR:-}" ] && { echo "$MIRROR"; return; }
  local m
  m=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$m" ] || m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || { echo "build-lab: no apt mirror in the host's apt sources; set MIRROR=" >&2; exit 1; }
  echo "$m"
}

unmount_under() {
  local m
  for m in $(awk -v r="$1" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
}

rootfs() {   # $1 = rootdir
  local root=$1 mirror inc
  mirror=$(find_mirror)
  step "debootstrap bookworm from $mirror"
  mkdir -p "$DEBS"
  inc=$(IFS=,; echo "${PKGS[*]}")
  if ! debootstrap --variant=minbase --cache-dir="$DEBS" --include="$inc" bookworm "$root" "$mirror" \
       >"$WORK/debootstrap.log" 2>&1; then
    tail -20 "$WORK/debootstrap.log" >&2; tail -40 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null
    exit 1
  fi
  local bad; bad=$(chroot "$root" dpkg -l | awk 'NR>5 && $1!="ii"')
  [ -z "$bad" ] || { echo "build-lab: unconfigured packages:" >&2; echo "$bad" >&2; exit 1; }
}

configure() {   # $1 = rootdir
  local root=$1
  step "configure"
  echo lab > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tlab\n::1\tlocalhost ip6-localhost\n' > "$root/etc/hosts"
  echo '/dev/vda / ext4 rw,relatime 0 1' > "$root/etc/fstab"
  : > "$root/etc/resolv.conf"                    # no DNS: the guest reaches nothing outside
  echo 'root:root' | chroot "$root" chpasswd     # serial console only; ssh is key-only

  # ssh: root by key; one host key, made here so clients check it from the first connection
  ssh-keygen -q -t ed25519 -N '' -C lab-root -f "$WORK/id_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C lab-host -f "$WORK/ssh_host_ed25519_key"
  rm -f "$root"/etc/ssh/ssh_host_*
  install -m 600 "$WORK/ssh_host_ed25519_key" "$root/etc/ssh/ssh_host_ed25519_key"
  install -m 644 "$WORK/ssh_host_ed25519_key.pub" "$root/etc/ssh/ssh_host_ed25519_key.pub"
  rm -f "$WORK/ssh_host_ed25519_key"
  install -d -m 700 "$root/root/.ssh"
  install -m 600 "$WORK/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
  cat > "$root/etc/ssh/sshd_config.d/lab.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
MaxSessions 20
CONF

  # slirp user networking, inbound hostfwd only: no gateway, no DNS
  cat > "$root/etc/systemd/network/10-lab.network" <<'CONF'
[Match]
Name=en* eth*
[Network]
Address=10.0.2.15/24
LinkLocalAddressing=no
IPv6AcceptRA=no
CONF
  chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
  for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer; do
    chroot "$root" systemctl disable "$u" >/dev/null 2>&1 || true
  done
  # tgt and LIO both want :3260: tests start the one they use (tgtd on loopback only)
  chroot "$root" systemctl disable tgt.service rtslib-fb-targetctl.service >/dev/null 2>&1 || true
  mkdir -p "$root/etc/systemd/system/tgt.service.d"
  printf '[Service]\nExecStart=\nExecStart=/usr/sbin/tgtd -f --iscsi portal=127.0.0.1:3260\n' \
    > "$root/etc/systemd/system/tgt.service.d/loopback.conf"
  # multipathd would take every iSCSI disk of the other tests: the multipath tests
  # start it with a configuration of their own and stop it again
  chroot "$root" systemctl disable multipathd.service multipathd.socket >/dev/null 2>&1 || true
  chroot "$root" systemctl disable nftables.service >/dev/null 2>&1 || true
  # libvirt: no NAT 'default' network (no bridge, no dnsmasq in the lab)
  rm -f "$root/etc/libvirt/qemu/networks/autostart/default.xml"
  printf 'iscsi_tcp\ntarget_core_mod\ntarget_core_file\ntarget_core_iblock\niscsi_target_mod\n' \
    > "$root/etc/modules-load.d/lab-iscsi.conf"
  # a smaller image: docs, man pages, other locales, apt lists
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*_Packages
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'en*' ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)" "$WORK/vmlinuz"
  cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)" "$WORK/initrd"
  chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' > "$WORK/packages.txt"
}

image() {   # $1 = rootdir
  step "ext4 image ($IMG_SIZE)"
  truncate -s "$IMG_SIZE" "$WORK/lab.img"
  mkfs.ext4 -q -F -L labroot -E root_owner=0:0 -d "$1" "$WORK/lab.img"
}

host_packages
mkdir -p "$LAB_CACHE"
# One build at a time per cache; a second caller waits and then reuses the result.
exec 9>"$LAB_CACHE/build.lock"
flock 9
if [ -f "$OUT/lab.img" ]; then echo "build-lab: reusing $OUT" >&2; echo "$OUT"; exit 0; fi
WORK=$OUT.tmp
unmount_under "$WORK/"
trap 'unmount_under "$WORK/"' EXIT   # a failed build leaves no tmpfs or chroot mounts behind
rm -rf "$WORK"
mkdir -p "$WORK/rootdir"
# dpkg syncs every file it unpacks: on tmpfs that costs nothing (disk otherwise)
mount -t tmpfs -o size=6g,mode=755 lab-rootdir "$WORK/rootdir" 2>/dev/null || step "no tmpfs: building on disk"
rootfs "$WORK/rootdir"
configure "$WORK/rootdir"
image "$WORK/rootdir"
unmount_under "$WORK/rootdir"
rm -rf "$WORK/rootdir"
mv "$WORK" "$OUT"
# older builds of other script versions are not used any more
for old in "$LAB_CACHE"/img-*; do [ "$old" = "$OUT" ] || rm -rf "$old"; done
step "built $OUT"
echo "$OUT"
