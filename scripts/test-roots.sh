#!/usr/bin/env bash
# Builds, once, what the ship tests run on, and caches it in $DAEMONIC_TEST_CACHE (/var/cache/daemonic-test):
#   bullseye/       a Debian 11 root (glibc 2.31) from `debootstrap --variant=minbase` (~1 min, ~200 MB)
#   arm64           Debian's qemu-user-static and libc6:arm64, to run arm64 binaries here
#   containers      Debian's podman, runc (crun refuses hybrid cgroup hosts) and prometheus (for promtool)
#   binfmt          registers qemu-aarch64 with binfmt_misc (not cached: the test removes it again with
#                   `echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64` when it was not there before)
# Usage: test-roots.sh bullseye|arm64|containers|binfmt ...   Idempotent: a finished part is skipped. Says what it does, fails loudly.
set -u
CACHE=${DAEMONIC_TEST_CACHE:-/var/cache/daemonic-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log=$CACHE/setup.log # beside what it builds, not in /tmp
die() { echo "test-roots: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, dpkg): rerun as root"
command -v apt-get >/dev/null || die "needs apt-get (a Debian-like host)"
mkdir -p "$CACHE" || die "cannot create $CACHE"
# One setup at a time: two test runtimes may call this together.
exec 9>"$CACHE/.lock" && flock 9

updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "test-roots: installing ${missing[*]} from Debian"
  if [ $updated -eq 0 ]; then apt-get update -qq >>"$log" 2>&1 || die "apt-get update failed: see $log"; updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >>"$log" 2>&1 || die "apt-get install ${missing[*]} failed: see $log"
}

bullseye() {
  [ -f "$CACHE/bullseye/.complete" ] && return 0
  apt_install debootstrap
  echo "test-roots: building a Debian 11 root in $CACHE/bullseye (debootstrap --variant=minbase bullseye, about a minute, once)"
  rm -rf "$CACHE/bullseye.tmp"
  debootstrap --variant=minbase bullseye "$CACHE/bullseye.tmp" "$MIRROR" >>"$log" 2>&1 \
    || die "debootstrap bullseye failed: see $log"
  touch "$CACHE/bullseye.tmp/.complete" && mv "$CACHE/bullseye.tmp" "$CACHE/bullseye"
}

arm64() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "test-roots: adding the arm64 architecture to dpkg (for libc6:arm64)"
    dpkg --add-architecture arm64 && updated=0
  fi
  apt_install qemu-user-static libc6:arm64
}

containers() {
  apt_install podman runc prometheus
}

binfmt() {
  local dir=/proc/sys/fs/binfmt_misc
  [ -e $dir/register ] || mount -t binfmt_misc binfmt_misc $dir || die "cannot mount binfmt_misc on $dir"
  [ -e $dir/qemu-aarch64 ] && return 0
  echo "test-roots: registering qemu-aarch64 with binfmt_misc"
  grep -m1 '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf > $dir/register || die "cannot register qemu-aarch64 in $dir"
}

[ $# -gt 0 ] || set -- bullseye arm64
for part in "$@"; do
  case $part in
    bullseye) bullseye ;;
    arm64) arm64 ;;
    containers) containers ;;
    binfmt) binfmt ;;
    *) die "unknown part $part: use bullseye, arm64, containers or binfmt" ;;
  esac
done
