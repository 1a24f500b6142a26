#!/usr/bin/env bash
# The floor under a large sequential write through FUSE, beside lsmfs:
# `dd if=/dev/zero bs=1M count=MIB conv=fsync` to plain ext4, to
# examples/fuse_floor in its `null` mode (the transport alone) and its
# `file` mode (one pwrite per request into a backing file, fdatasync on
# fsync), and to an lsmfs mount, alternated ROUNDS times (seconds).
# Usage: scripts/fuse-floor.sh [MIB] [ROUNDS]   (root or a FUSE-capable user)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-512}
ROUNDS=${2:-3}
cargo build --release --quiet --bin lsmfs --example fuse_floor
BIN=target/release/lsmfs
FLOOR=target/release/examples/fuse_floor
W=$(mktemp -d /tmp/lsmfs-fusefloor.XXXXXX)
mkdir -p "$W/plain" "$W/null" "$W/file" "$W/lsmfs"
PIDS=()
cleanup() {
  for m in null file lsmfs; do
    if mountpoint -q "$W/$m"; then umount "$W/$m" 2>/dev/null || umount -l "$W/$m" || true; fi
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

"$FLOOR" "$W/null" null & PIDS+=($!)
"$FLOOR" "$W/file" file "$W/backing" & PIDS+=($!)
"$BIN" mount "$W/data" "$W/lsmfs" --daemon --log-file "$W/log" -o no_io_uring >/dev/null
for m in null file; do
  for _ in $(seq 50); do mountpoint -q "$W/$m" && break; sleep 0.1; done
done
run() { # $1: label, $2: file
  local t0 t1
  rm -f "$2"
  sync
  t0=$(date +%s.%N)
  dd if=/dev/zero of="$2" bs=1M count="$MIB" conv=fsync status=none
  t1=$(date +%s.%N)
  printf '  %-22s %6.2f s\n' "$1" "$(echo "$t1 - $t0" | bc)"
}
for r in $(seq "$ROUNDS"); do
  echo "round $r: $MIB MiB, dd bs=1M conv=fsync"
  run "plain ext4" "$W/plain/big"
  run "fuse_floor null" "$W/null/big"
  run "fuse_floor file" "$W/file/big"
  run "lsmfs" "$W/lsmfs/big"
done
