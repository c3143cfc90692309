#!/usr/bin/env bash
# Runs a bench on the target platform's userland (DESIGN.md: Debian 13 and Debian's nodejs,
# which uses the system's OpenSSL) instead of the dev machine's Node: the test VM's Debian trixie
# root filesystem (scripts/vm/build-image.sh; built and cached on first use) is mounted as a
# throwaway overlay and the bench runs chrooted into it, on this machine's kernel and CPUs, with
# this checkout at the same path. TLS-heavy figures differ most: the dev machine's NodeSource
# Node 20 carries its own OpenSSL 3.0, trixie's nodejs links OpenSSL 3.5, whose AES-GCM uses the
# VAES/AVX-512 units where the CPU has them (`openssl speed -evp aes-128-gcm` shows both).
#   bash test/bench/on-target.sh test/bench/machine-exec.ts [bench options]
# Run as root (loop and overlay mounts). The mounts live in a mount namespace of their own and
# go away with it; nothing is left mounted if the bench fails or is interrupted.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BENCH.ts [options]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "on-target: must run as root (loop and overlay mounts)" >&2; exit 2; }
checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image_dir=$(bash "$checkout/scripts/vm/build-image.sh" | tail -n 1)
image=$image_dir/image.ext4
[ -f "$image" ] || { echo "on-target: no root filesystem image at $image" >&2; exit 1; }

scratch=$(mktemp -d /tmp/hostplane-on-target.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/lower" "$scratch/rw" "$scratch/root"

# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private bash -euo pipefail -c '
  image=$1 scratch=$2 checkout=$3
  shift 3
  root=$scratch/root
  # noload: read-only without replaying the journal (a VM run may use the image as a backing file)
  mount -o loop,ro,noload "$image" "$scratch/lower"
  mount -t tmpfs -o size=1g tmpfs "$scratch/rw"
  mkdir "$scratch/rw/upper" "$scratch/rw/work"
  mount -t overlay overlay \
    -o "lowerdir=$scratch/lower,upperdir=$scratch/rw/upper,workdir=$scratch/rw/work" "$root"
  mkdir -p "$root$checkout" "$root/tmp"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount --bind /tmp "$root/tmp"
  mount --bind "$checkout" "$root$checkout"
  echo "on-target: $(chroot "$root" node -p "\"node \" + process.version + \", OpenSSL \" + process.versions.openssl") from $(. "$root/etc/os-release"; echo "$PRETTY_NAME")" >&2
  exec chroot "$root" /usr/bin/env -C "$checkout" node --import tsx "$@"
' on-target "$image" "$scratch" "$checkout" "$@"
