#!/usr/bin/env bash
# The README's test command: everything every test needs, on a fresh Debian 12 machine (run as root), then
# every test. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the test suite includes root end-to-end tests: run it as root" >&2
  exit 1
fi

# busybox-static gives the built-in busybox image its rootfs (a dynamic busybox cannot run in a scratch root).
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi

# The end-to-end tests start the real binary: build it first (cargo test does not build other packages' bins).
cargo build --locked -p k1s

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --workspace 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last line is a crate's doc tests, often 0 of them).
sum() { grep -E '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
echo "$(sum passed) passed, $(sum failed) failed"
# The before-stop hook: what the tests left behind (kernel state and data dirs), pass or fail.
bash scripts/leftovers.sh || true
exit "$rc"
