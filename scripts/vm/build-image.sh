#!/usr/bin/env bash
# Builds the hostplane test VM (see /work/shared/VM-NOTES.md and docs/vm.md): a Debian trixie
# minbase rootfs with systemd and node, trixie's own kernel booted as an uncompressed vmlinux,
# and a busybox initramfs that loads the virtio/ext4/9p modules and switch_roots to systemd.
#
# Output, cached by a hash of the build inputs (this script, suite, mirror, kernel version):
#   $HOSTPLANE_VM_CACHE/<key>/{vmlinux,initramfs.img,image.ext4,kernel-version}
# The last line of stdout is that directory; everything else goes to stderr.
# Run as root. A second run with the same inputs only prints the directory.
set -euo pipefail

SUITE=${HOSTPLANE_VM_SUITE:-trixie}
CACHE=${HOSTPLANE_VM_CACHE:-/var/cache/hostplane-vm}
IMAGE_SIZE=${HOSTPLANE_VM_IMAGE_SIZE:-4G}
default_mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${HOSTPLANE_VM_MIRROR:-${default_mirror:-http://deb.debian.org/debian}}
# Everything the tests in the VM need must be in the image: the VM has no network, so a later
# `apt install ./x.deb` only resolves dependencies that are already installed here.
PACKAGES=systemd,systemd-sysv,dbus,udev,iproute2,iptables,kmod,procps,nodejs,util-linux,ca-certificates,libsystemd0,socat,curl,openssl,iputils-ping,zstd
# Modules the initramfs loads (with their dependencies) to reach the root disk and the 9p shares.
INITRD_MODULES=(virtio_pci virtio_blk ext4 9p 9pnet_virtio)

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mkfs.ext4 -d with root-owned files)"
for tool in debootstrap mkfs.ext4 cpio xz depmod modprobe apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "missing $tool: apt-get install qemu-system-x86 qemu-utils debootstrap busybox-static cpio e2fsprogs kmod xz-utils"
done
[ -x /bin/busybox ] || die "missing /bin/busybox: apt-get install busybox-static"

t0=$SECONDS
mkdir -p "$CACHE"
# One build at a time (two test runs may start together); waiting runs then find the cache.
exec 9> "$CACHE/build.lock"
flock 9
script_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)

# A private apt configuration for $SUITE, to learn and fetch its kernel without touching the
# host's own apt state.
aptdir=$CACHE/apt-$SUITE
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
: > "$aptdir/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" > "$aptdir/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$aptdir/lists" -o "Dir::State::Status=$aptdir/status"
  -o "Dir::Cache=$aptdir/cache" -o Acquire::Languages=none -o APT::Architecture=amd64
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root
)

kver=""
if apt-get "${apt_opts[@]}" -qq update >&2; then
  # linux-image-amd64 depends on exactly one linux-image-<version>-amd64
  kpkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  kver=${kpkg#linux-image-}
fi
if [ -z "$kver" ]; then
  # Offline: reuse the newest image built by this same script, if any.
  latest=$CACHE/latest-$script_hash
  [ -e "$latest/image.ext4" ] || die "cannot resolve $SUITE's kernel from $MIRROR and no cached image for this script"
  log "offline: reusing $(readlink -f "$latest")"
  readlink -f "$latest"
  exit 0
fi
key=$(printf '%s\n' "$script_hash" "$SUITE" "$MIRROR" "$kver" "$PACKAGES" | sha256sum | cut -c1-16)
out=$CACHE/$key
if [ -e "$out/image.ext4" ]; then
  log "cached: $out (kernel $kver)"
  ln -sfn "$out" "$CACHE/latest-$script_hash"
  echo "$out"
  exit 0
fi

work=$CACHE/$key.tmp
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

log "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$MIRROR" >&2 \
  || { tail -n 30 "$work/rootfs/debootstrap/debootstrap.log" >&2 || true; die "debootstrap $SUITE failed"; }
log "debootstrap done at $((SECONDS - t0)) s"

log "kernel linux-image-$kver"
(cd "$work" && apt-get "${apt_opts[@]}" -qq download "linux-image-$kver" >&2)
dpkg-deb -x "$work"/linux-image-"$kver"_*.deb "$work/kernel"
kmods=$work/kernel/lib/modules/$kver
[ -d "$kmods" ] || kmods=$work/kernel/usr/lib/modules/$kver
[ -d "$kmods" ] || die "no modules directory for $kver in the kernel package"
vmlinuz=$work/kernel/boot/vmlinuz-$kver

# The uncompressed ELF vmlinux boots about twice as fast under TCG (no decompression, PVH
# entry): it is the compressed stream embedded in the bzImage (zstd in trixie, xz before).
extract() { # extract MAGIC DECOMPRESSOR...
  local magic=$1 off; shift
  command -v "$1" >/dev/null || return 1
  off=$(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | head -n1 | cut -d: -f1 || true)
  [ -n "$off" ] || return 1
  # the decompressor complains about the bzImage's trailing bytes: the ELF check decides
  tail -c +$((off + 1)) "$vmlinuz" | "$@" > "$work/vmlinux" 2>/dev/null || true
  [ "$(head -c4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]
}
# zstd from the new rootfs, so the host needs no zstd.
if extract '\x28\xb5\x2f\xfd' chroot "$work/rootfs" zstd -dc || extract '\xfd7zXZ\x00' xz -dc --single-stream; then
  log "booting the uncompressed vmlinux"
else
  log "no zstd/xz payload found in vmlinuz; booting the bzImage"
  cp "$vmlinuz" "$work/vmlinux"
fi

# Modules: the whole tree minus hardware no VM has, into the rootfs (merged /usr in trixie).
for d in drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging \
  drivers/bluetooth drivers/iio drivers/hid drivers/input drivers/usb drivers/isdn sound \
  net/wireless net/mac80211 net/bluetooth; do
  rm -rf "${kmods:?}/kernel/$d"
done
mkdir -p "$work/rootfs/usr/lib/modules"
cp -a "$kmods" "$work/rootfs/usr/lib/modules/$kver"
depmod -b "$work/rootfs" "$kver" 2>/dev/null || depmod -b "$work/rootfs/usr" "$kver"

# initramfs: static busybox and the boot modules, decompressed (busybox insmod and xz modules
# do not reliably mix), loaded in dependency order.
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$ird/bin/busybox"
moddb=$work/rootfs
[ -e "$moddb/lib/modules/$kver/modules.dep" ] || moddb=$work/rootfs/usr
: > "$ird/modules/order"
while read -r kind path _; do
  [ "$kind" = insmod ] || continue
  name=$(basename "$path"); name=${name%.xz}; name=${name%.zst}
  grep -qx "$name" "$ird/modules/order" && continue
  case "$path" in
    *.xz) xz -dc "$path" > "$ird/modules/$name" ;;
    *.zst) zstd -qdc "$path" > "$ird/modules/$name" ;;
    *) cp "$path" "$ird/modules/$name" ;;
  esac
  echo "$name" >> "$ird/modules/order"
done < <(modprobe -d "$moddb" -S "$kver" --show-depends -a "${INITRD_MODULES[@]}")
log "initramfs modules: $(tr '\n' ' ' < "$ird/modules/order")"
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r m; do insmod "/modules/$m" 2>/dev/null; done < /modules/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; sleep 2; poweroff -f; }
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet) | gzip -1 > "$work/initramfs.img"

# System configuration for a headless, offline test VM.
r=$work/rootfs
echo hostplane-vm > "$r/etc/hostname"
echo '/dev/vda / ext4 rw 0 0' > "$r/etc/fstab"
# A fixed machine-id keeps systemd out of first-boot mode (and systemd-firstboot off the console).
printf '%s\n' "$(echo "$key" | sha256sum | cut -c1-32)" > "$r/etc/machine-id"
for unit in serial-getty@ttyS0.service getty@tty1.service systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
  man-db.timer systemd-tmpfiles-clean.timer; do
  ln -sfn /dev/null "$r/etc/systemd/system/$unit"
done
mkdir -p "$r/mnt/host" "$r/mnt/ctl" "$r/etc/systemd/system/multi-user.target.wants"
cat > "$r/usr/local/sbin/hostplane-run" <<'RUN'
#!/bin/bash
# Runs /mnt/ctl/run.sh (written by scripts/vm/run.ts) as root with the checkout at /mnt/host,
# writes its output and exit status back to the ctl share, and powers the VM off.
set -u
opts=trans=virtio,version=9p2000.L,msize=512000
if ! mount -t 9p -o "$opts" ctl /mnt/ctl; then
  echo "hostplane-run: cannot mount the ctl share" >&2
  systemctl poweroff --no-block
  exit 1
fi
echo "booted $(cut -d' ' -f1 /proc/uptime)" > /mnt/ctl/boot
# The checkout is read far more than written: cache it in the guest (cache=loose).
if grep -qs '^host0' /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag; then
  mount -t 9p -o "$opts,cache=loose" host0 /mnt/host || echo "hostplane-run: cannot mount host0" >&2
fi
cd /mnt/host 2>/dev/null || cd /
HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/bash /mnt/ctl/run.sh > /mnt/ctl/output.log 2>&1 < /dev/null
code=$?
echo "$code" > /mnt/ctl/status.tmp && mv /mnt/ctl/status.tmp /mnt/ctl/status
sync
systemctl poweroff --no-block
RUN
chmod +x "$r/usr/local/sbin/hostplane-run"
cat > "$r/etc/systemd/system/hostplane-run.service" <<'UNIT'
[Unit]
Description=hostplane: run the command from the host and power off
After=dbus.service systemd-udev-settle.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/hostplane-run
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -sfn /etc/systemd/system/hostplane-run.service "$r/etc/systemd/system/multi-user.target.wants/hostplane-run.service"
# apt inside the VM is much faster without the lists; the installed packages stay, so local .deb
# files still resolve their dependencies from what is installed.
rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
rm -rf "$r/debootstrap"

log "mkfs.ext4 $IMAGE_SIZE"
mkfs.ext4 -q -F -L hostplane -d "$r" "$work/image.ext4" "$IMAGE_SIZE" >&2
echo "$kver" > "$work/kernel-version"
rm -rf "$r" "$work/kernel" "$ird" "$work"/*.deb
mv "$work" "$out"
trap - EXIT
ln -sfn "$out" "$CACHE/latest-$script_hash"
log "built $out in $((SECONDS - t0)) s (kernel $kver)"
echo "$out"
