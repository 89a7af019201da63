#!/usr/bin/env bash
# The benchmark suite in one command (BENCHMARKS.md, "The suite"): builds the release binaries, installs what
# the suite needs on Debian 12 (busybox-static for k1s's built-in image; podman, crun and runc for the side by
# side with `podman kube play`), then runs `k1s-bench-suite`, which prints the markdown table and writes it to
# target/bench/results.md (BENCH_OUT overrides; BENCH_PARTS runs only some parts). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the suite runs real containers (k1s's and podman's): run it as root" >&2
  exit 1
fi

missing=()
for pkg in busybox-static podman crun runc; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Only the binaries the suite runs (the release profile links each one on its own, which is slow on 2 cores).
cargo build --locked --release -p k1s -p k1s-tests --bin k1s --bin k1s-bench --bin k1s-bench-pods --bin k1s-bench-job \
  --bin k1s-bench-stream --bin k1s-bench-suite
# Run copies: another build of target/release during the run must not swap the binaries under test.
mkdir -p target/bench/bin
for b in k1s k1s-bench k1s-bench-pods k1s-bench-job k1s-bench-stream k1s-bench-suite; do
  cp -f "target/release/$b" "target/bench/bin/$b"
done
K1S_BIN="$PWD/target/bench/bin/k1s" target/bench/bin/k1s-bench-suite
