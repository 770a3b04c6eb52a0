#!/usr/bin/env bash
# Installs the Debian tools the tests and the bench use (logrotate, socat, wrk, ruby …) when missing.
# Says what it installs; fails loudly when it cannot.
set -u
need=()
for pair in logrotate:logrotate socat:socat wrk:wrk hyperfine:hyperfine ruby:ruby strace:strace; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-test-tools: missing ${need[*]} and cannot apt-get install them here: install them, then rerun" >&2
  exit 1
fi
echo "setup-test-tools: installing ${need[*]} from Debian"
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/tmp/daemonic-apt.log 2>&1 || {
  echo "setup-test-tools: apt-get install ${need[*]} failed: see /tmp/daemonic-apt.log" >&2
  exit 1
}
