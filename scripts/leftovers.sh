#!/usr/bin/env bash
# The before-stop hook: lists the kernel state and files that the tests and benchmarks create and must remove
# again, pass or fail (each test server's Drop guard runs `k1s reset`). Only test-named things are looked at, so
# a real `k1s server` running beside the tests is not a leftover: processes whose command line names a test
# data dir (/tmp/k1s-test-*, /tmp/k1s-bench-*), bridges k1st*, the veths (vk*) enslaved to them, cgroups
# k1s-test-* in every hierarchy (the unified one too), mounts under those data dirs, and the data dirs
# themselves. Prints "no leftovers" or each one; exits 1 when there are any. scripts/test.sh runs it after
# the tests and prints what it says (it does not change the tests' exit code: a leftover is a bug to fix,
# the list is how it is seen). Things still going away (a shim exiting, a lazy unmount) get a few seconds.
set -uo pipefail

scan() {
  local out=()
  local pat='/tmp/k1s-(test|bench)-'
  while read -r pid cmd; do
    [ "$pid" = "$$" ] && continue
    out+=("process $pid: $cmd")
  done < <(pgrep -a -f "$pat" | grep -v -E 'leftovers\.sh|pgrep' || true)
  while read -r name; do
    out+=("bridge $name")
  done < <(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^k1st' || true)
  while read -r name master; do
    out+=("veth $name (on $master)")
  done < <(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^vk/ {split($2, n, "@"); m = ""; if (match($0, / master [^ ]+/)) m = substr($0, RSTART + 8, RLENGTH - 8); print n[1], m}' | awk '$2 ~ /^k1st/' || true)
  while read -r dir; do
    out+=("cgroup $dir")
  done < <(find /sys/fs/cgroup -maxdepth 2 -type d -name 'k1s-test-*' 2>/dev/null || true)
  while read -r mnt; do
    out+=("mount $mnt")
  done < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^$pat" || true)
  while read -r dir; do
    out+=("directory $dir")
  done < <(find /tmp -maxdepth 1 -type d \( -name 'k1s-test-*' -o -name 'k1s-bench-*' \) 2>/dev/null || true)
  printf '%s\n' "${out[@]}"
}

for _ in 1 2 3 4 5; do
  found=$(scan | sed '/^$/d')
  [ -z "$found" ] && break
  sleep 1
done

if [ -z "$found" ]; then
  echo "leftovers: none"
  exit 0
fi
echo "leftovers after the tests (tests must remove what they create):"
echo "$found" | sed 's/^/  /'
exit 1
