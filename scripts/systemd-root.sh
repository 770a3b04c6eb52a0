#!/usr/bin/env bash
# Builds, once, a Debian bookworm root with systemd as PID 1 for test/service.test.ts, and prints its path.
# Idempotent: a finished root (marked by .daemonic-ready) is reused; a half-built one is rebuilt.
# Needs root, debootstrap and systemd-nspawn (Debian's systemd-container, installed here when missing).
set -eu
dir=${DAEMONIC_SYSTEMD_ROOT:-/var/cache/daemonic-test/bookworm-systemd}
# Bump when the packages change, so an older cached root is rebuilt.
version=2
ready() { [ "$(cat "$dir/.daemonic-ready" 2>/dev/null)" = "$version" ]; }
if ready; then echo "$dir"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "systemd-root: building $dir needs root" >&2; exit 1; fi
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
  echo "systemd-root: installing ${missing[*]} from Debian" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/daemonic-apt.log 2>&1 ||
    { echo "systemd-root: apt-get install ${missing[*]} failed: see /tmp/daemonic-apt.log" >&2; exit 1; }
fi
# flock: two test runs at once build it once.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if ready; then echo "$dir"; exit 0; fi
rm -rf "$dir"
# libpam-systemd: so a user's own systemd (user@UID.service) starts, for --user-service.
echo "systemd-root: debootstrap bookworm into $dir (about 1.5 min, once)" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libpam-systemd bookworm "$dir" >"$dir.log" 2>&1 ||
  { echo "systemd-root: debootstrap failed: see $dir.log" >&2; exit 1; }
# Boot quietly and fast: no getty on the console, no network setup waiting, a fixed machine id.
systemd-machine-id-setup --root="$dir" >/dev/null 2>&1 || true
chroot "$dir" systemctl mask console-getty.service getty@.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo "$version" >"$dir/.daemonic-ready"
echo "$dir"
