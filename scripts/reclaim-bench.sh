#!/usr/bin/env bash
# Space comes back on a live mount (issue 10's figure): write TOTAL_MIB of
# large files (FILE_MIB each, random bytes), sync, delete 90% of them
# chosen at random (fixed seed), then, with no more writes and no
# `lsmfs compact`, poll the data directory's size every second until it is
# at most 1.3x the live data or LIMIT seconds have passed. Prints the size
# before and after, the ratio to the live bytes, how long it took, and the
# engine's blob counters from `.lsmfs-stats`.
# Usage: scripts/reclaim-bench.sh [TOTAL_MIB] [FILE_MIB]
#   LSMFS_BIN picks the binary; LIMIT (default 300) bounds the wait.
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-2048}
FILE=${2:-10}
LIMIT=${LIMIT:-300}
BIN=${LSMFS_BIN:-target/release/lsmfs}
[ -x "$BIN" ] || cargo build --release
W=$(mktemp -d /tmp/lsmfs-reclaimbench.XXXXXX)
D=$W/data
M=$W/mnt
mkdir -p "$M"
cleanup() {
  if mountpoint -q "$M"; then umount "$M" 2>/dev/null || umount -l "$M" || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

"$BIN" mount "$D" "$M" --daemon --log-file "$W/log" -o no_io_uring >/dev/null
size() { du -sb "$D" | cut -f1; }
now() { date +%s.%N; }
mib() { echo "scale=1; $1 / 1048576" | bc; }

N=$((TOTAL / FILE))
echo "== writing $N files of $FILE MiB ($TOTAL MiB)"
t0=$(now)
python3 - "$M" "$N" "$FILE" <<'EOF'
import os, sys
root, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = os.urandom(1 << 20)
for i in range(n):
    with open(os.path.join(root, "f%04d" % i), "wb") as f:
        for j in range(mib):
            # Each MiB differs, so nothing below could share it.
            f.write(block[j:] + block[:j] if j else block)
            block = block[1:] + block[:1]
    if i % 20 == 19:
        os.sync()
os.sync()
EOF
echo "written and synced in $(echo "$(now) - $t0" | bc) s; data directory $(mib "$(size)") MiB"

echo "== deleting 90% of them at random"
python3 - "$M" "$N" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(10)
for i in rng.sample(range(n), n - n // 10):
    os.unlink(os.path.join(root, "f%04d" % i))
os.sync()
EOF
live=$(du -sb --apparent-size "$M" | cut -f1)
t0=$(now)
before=$(size)
echo "live data $(mib "$live") MiB; data directory $(mib "$before") MiB right after the deletes"
target=$(echo "$live * 13 / 10" | bc)
s=$before
for _ in $(seq "$LIMIT"); do
  s=$(size)
  [ "$s" -le "$target" ] && break
  sleep 1
done
took=$(echo "$(now) - $t0" | bc)
echo "data directory $(mib "$s") MiB after $took s: $(echo "scale=2; $s / $live" | bc)x the live data (target 1.3x)"
grep -E '^(blob_files|write_amplification|bytes_compacted)' "$M/.lsmfs-stats" || true
[ "$s" -le "$target" ]
