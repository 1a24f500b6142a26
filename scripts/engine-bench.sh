#!/usr/bin/env bash
# Engine benchmark side by side with RocksDB's db_bench, same flags, same run.
# usage: scripts/engine-bench.sh [NUM] [WORKDIR]
#   VALUE_SIZE=100        value size; at 4096 or more both engines keep the
#                         values in blob files (db_bench --enable_blob_files=true
#                         --min_blob_size=VALUE_SIZE, lsmfs --min_blob_size)
set -euo pipefail
cd "$(dirname "$0")/.."
NUM=${1:-1000000}
WORK=${2:-/tmp/lsmfs-engine-bench}
VALUE_SIZE=${VALUE_SIZE:-100}
BENCHES=fillseq,fillrandom,readrandom,readseq,overwrite
FLAGS="--benchmarks=$BENCHES --num=$NUM --value_size=$VALUE_SIZE --key_size=16 --threads=1 --compression_type=none"
ROCKS_FLAGS=
LSMFS_FLAGS=--min_blob_size=0
if [ "$VALUE_SIZE" -ge 4096 ]; then
  ROCKS_FLAGS="--enable_blob_files=true --min_blob_size=$VALUE_SIZE"
  LSMFS_FLAGS=--min_blob_size=$VALUE_SIZE
fi
bash scripts/setup.sh
cargo build --release --quiet
rm -rf "$WORK"; mkdir -p "$WORK"
echo "== RocksDB db_bench ($(db_bench --version 2>/dev/null | head -1 || echo db_bench))"
/usr/bin/time -v db_bench $FLAGS $ROCKS_FLAGS --db="$WORK/rocksdb" >"$WORK/rocksdb.out" 2>"$WORK/rocksdb.time"
grep -E '^(fillseq|fillrandom|readrandom|readseq|overwrite) ' "$WORK/rocksdb.out"
echo "== lsmfs bench"
/usr/bin/time -v ./target/release/lsmfs bench $FLAGS $LSMFS_FLAGS --db="$WORK/lsmfs" >"$WORK/lsmfs.out" 2>"$WORK/lsmfs.time"
grep -E '^(fillseq|fillrandom|readrandom|readseq|overwrite) ' "$WORK/lsmfs.out"
rss() { awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$1"; }
echo
printf '%-12s %14s %14s %8s\n' benchmark "rocksdb us/op" "lsmfs us/op" ratio
for b in ${BENCHES//,/ }; do
  r=$(awk -v b="$b" '$1==b {print $3}' "$WORK/rocksdb.out")
  l=$(awk -v b="$b" '$1==b {print $3}' "$WORK/lsmfs.out")
  printf '%-12s %14s %14s %8s\n' "$b" "$r" "$l" "$(awk -v r="$r" -v l="$l" 'BEGIN{ if (r>0) printf "%.2fx", l/r; else print "-" }')"
done
echo "peak RSS: rocksdb $(rss "$WORK/rocksdb.time") KiB, lsmfs $(rss "$WORK/lsmfs.time") KiB"
