#!/usr/bin/env bash
# Snapshot figures on a real mount (root, or a user who may mount FUSE):
#  1. `lsmfs snapshot create` on a tree of FILES files (default 100,000:
#     1 KiB each in directories of 100), ms, five times;
#  2. reading the whole tree (tar to /dev/null's stand-in, wc) through
#     `.snapshots/NAME` against the live tree, each after a remount (cold
#     caches), alternated twice, before and after half the files change;
#  3. the data directory's size (after `lsmfs compact`) with the tree,
#     with the live tree deleted while the snapshot pins it, after the
#     snapshot is deleted on the live mount (no compact: the background
#     rewrites; how long until under a tenth of the pinned size, up to
#     2 min), and after a compact.
# Usage: scripts/snapshot-bench.sh [FILES]   (LSMFS_BIN picks the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-100000}
BIN=${LSMFS_BIN:-target/release/lsmfs}
[ -x "$BIN" ] || cargo build --release
W=$(mktemp -d /tmp/lsmfs-snapbench.XXXXXX)
D=$W/data
M=$W/mnt
mkdir -p "$M"
cleanup() {
  if mountpoint -q "$M"; then umount "$M" 2>/dev/null || umount -l "$M" || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

mnt() { "$BIN" mount "$D" "$M" --daemon --log-file "$W/log" -o no_io_uring >/dev/null 2>&1; }
unmnt() {
  umount "$M"
  # The daemon closes the store after the kernel lets go: wait for its lock.
  for _ in $(seq 100); do "$BIN" stats "$D" >/dev/null 2>&1 && return; sleep 0.1; done
}
remount() { unmnt; mnt; }
size() { du -sb "$D" | cut -f1; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

mnt
echo "== tree: $FILES files of 1 KiB in directories of 100"
t0=$(now)
python3 - "$M/tree" "$FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(1024)
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%03d" % (i % 100)), "wb") as f:
        f.write(data[i % 512:] + data[:i % 512])
EOF
echo "written in $(secs "$t0" "$(now)") s"
remount
echo "== snapshot create (ms, as the command reports it; the tree is $FILES files)"
for i in 1 2 3 4 5; do
  "$BIN" snapshot create "$M" "s$i" | sed -n 's/.*(\(.*\) ms)/\1/p'
done
for i in 2 3 4 5; do "$BIN" snapshot delete "$M" "s$i" >/dev/null; done

read_tree() { # $1: directory holding `tree`
  local t0; t0=$(now)
  tar -C "$1" -cf - tree | wc -c >/dev/null
  secs "$t0" "$(now)"
}
compare() {
  for round in 1 2; do
    remount; l=$(read_tree "$M")
    remount; s=$(read_tree "$M/.snapshots/s1")
    echo "round $round: live $l s, snapshot $s s, snapshot/live $(echo "scale=2; $s / $l" | bc)x"
  done
}
echo "== reading the tree with tar, cold (remount before each)"
compare
echo "== after overwriting half the files (the snapshot reads the older versions)"
python3 - "$M/tree" <<'EOF'
import os, sys
root = sys.argv[1]
for i, d in enumerate(sorted(os.listdir(root))):
    for j, f in enumerate(sorted(os.listdir(os.path.join(root, d)))):
        if (i * 100 + j) % 2 == 0:
            with open(os.path.join(root, d, f), "wb") as fh:
                fh.write(b"changed %d\n" % j * 64)
EOF
compare

echo "== space (data directory after lsmfs compact, bytes)"
unmnt
"$BIN" compact "$D" >/dev/null 2>&1
with=$(size)
mnt
rm -rf "$M/tree"
unmnt
"$BIN" compact "$D" >/dev/null 2>&1
pinned=$(size)
# Deleted on the live mount, no compact: the background rewrites.
mnt
t0=$(now)
"$BIN" snapshot delete "$M" s1 >/dev/null
for _ in $(seq 1200); do
  [ "$(size)" -lt $((pinned / 10)) ] && break
  sleep 0.1
done
live_s=$(secs "$t0" "$(now)")
live_after=$(size)
rewrites=$(sed -n 's/^snapshot_rewrites *\([0-9]*\).*/\1/p' "$M/.lsmfs-stats")
unmnt
"$BIN" compact "$D" >/dev/null 2>&1
after=$(size)
echo "with the tree and the snapshot: $with"
echo "live tree deleted, snapshot pins it: $pinned"
echo "snapshot deleted on the mount, no compact: $live_after after $live_s s ($rewrites tables rewritten)"
echo "then lsmfs compact: $after"
