#!/usr/bin/env bash
# The README's run command: install what k1s needs on a fresh Debian 12 machine (as root), build the release
# binary and run `k1s server` with its embedded defaults. Extra arguments go to `k1s server`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "k1s server runs Pods as Linux containers and needs root" >&2
  exit 1
fi

# busybox-static gives the built-in busybox image its rootfs (a dynamic busybox cannot run in a scratch root).
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi

cargo build --locked --release -p k1s
exec ./target/release/k1s server "$@"
