#!/usr/bin/env bash
# Installs the Debian packages hostplane needs to build, test and package itself.
# Idempotent; run as root (CI does, and so does a fresh dev machine before `npm ci`).
set -euo pipefail
packages=(
  # native addons (sd-notify) and the namespace init (shared/ns/nsinit.c)
  build-essential pkg-config libsystemd-dev
  # the system tools the daemons drive, for integration tests on the host
  iproute2 iptables util-linux procps socat openssl
  # the VM harness (scripts/vm): Debian 13 under qemu/TCG with systemd and cgroup v2
  qemu-system-x86 qemu-utils debootstrap busybox-static cpio e2fsprogs kmod xz-utils
  # packaging
  dpkg-dev fakeroot lintian
  # load generator of the webhook bench (test/bench/webhook.ts)
  hey
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
