#!/usr/bin/env bash
# kill -9 the daemon at random moments of a mixed workload, CYCLES times;
# after each kill: `lsmfs check` must be clean, the next mount must detach the
# stale mount point, and the tree must match the workload's journal.
# usage: scripts/crash-loop.sh [CYCLES] [WORKDIR]
#   LSMFS_DATA=etcd://HOST:PORT,.../PREFIX   run it on a store in etcd (an
#   empty prefix) instead of WORKDIR/data
#   LSMFS_TRANSPORT=io_uring|no_io_uring   mount with -o that (default: lsmfs's
#   default); io_uring sets fuse.enable_uring=Y around each mount and
#   restores it, and the run fails unless every mount was served by the ring.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-300}
WORK=${2:-/tmp/lsmfs-crash-loop}
WL="python3 $PWD/scripts/crash_workload.py"
if [ -n "${LSMFS_BIN:-}" ]; then
  BIN=$LSMFS_BIN
else
  cargo build --release --quiet
  BIN=$PWD/target/release/lsmfs
fi
DATA=${LSMFS_DATA:-$WORK/data} MNT=$WORK/mnt STATE=$WORK/state LOGS=$WORK/logs
PID=""
TRANSPORT=${LSMFS_TRANSPORT:-}
TRANSPORT_RE=
[ "$TRANSPORT" = io_uring ] && TRANSPORT_RE="io_uring, "
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=$(cat "$URING_PARAM" 2>/dev/null || true)
cleanup() {
  [ -n "$URING_OLD" ] && echo "$URING_OLD" >"$URING_PARAM" 2>/dev/null || true
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$MNT" "$LOGS"
$WL init "$STATE"
mounted() { grep -q " $MNT fuse" /proc/mounts && stat -f "$MNT" >/dev/null 2>&1; }
start() {
  local opts=()
  [ -n "$TRANSPORT" ] && opts=(-o "$TRANSPORT")
  [ "$TRANSPORT" = io_uring ] && echo Y >"$URING_PARAM"
  RUST_LOG=info,lsmfs::engine::db=debug "$BIN" mount "$DATA" "$MNT" --memtable-size 262144 "${opts[@]}" >>"$LOGS/daemon-$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 500); do
    # up, and its "mounted ... (TRANSPORT, ...)" line written
    if mounted && grep -q "^.* mounted .* ($TRANSPORT_RE" "$LOGS/daemon-$1.log"; then
      [ "$TRANSPORT" = io_uring ] && echo "$URING_OLD" >"$URING_PARAM"
      return 0
    fi
    sleep 0.02
  done
  [ "$TRANSPORT" = io_uring ] && grep -q " mounted " "$LOGS/daemon-$1.log" &&
    echo "cycle $1: not served by io_uring"
  echo "cycle $1: mount did not come up"; tail "$LOGS/daemon-$1.log"; exit 1
}
in_flush=0 in_compaction=0 flushes=0 compactions=0
for c in $(seq 1 "$CYCLES"); do
  start "$c"
  if ! $WL verify "$MNT" "$STATE" >"$LOGS/verify-$c.txt"; then
    echo "cycle $c: journal verification FAILED"; cat "$LOGS/verify-$c.txt"; exit 1
  fi
  $WL run "$MNT" "$STATE" "$c" 2>>"$LOGS/workload.err" &
  WPID=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN{srand(s); printf "%.2f", 0.3 + rand() * 2.2}')"
  kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  kill -9 "$WPID" 2>/dev/null || true; wait "$WPID" 2>/dev/null || true
  log="$LOGS/daemon-$c.log"
  flushes=$((flushes + $(grep -c 'flush finished' "$log" || true)))
  compactions=$((compactions + $(grep -c 'compaction finished' "$log" || true)))
  last=$(grep -E 'flush (started|finished)|compaction (started|finished)' "$log" | tail -1 || true)
  case "$last" in
    *"flush started"*) in_flush=$((in_flush + 1)); during="during a flush" ;;
    *"compaction started"*) in_compaction=$((in_compaction + 1)); during="during a compaction" ;;
    *) during="" ;;
  esac
  if ! "$BIN" check "$DATA" >"$LOGS/check-$c.txt" 2>&1; then
    echo "cycle $c: lsmfs check found problems"; cat "$LOGS/check-$c.txt"; exit 1
  fi
  echo "cycle $c: killed $during; check clean; $(tail -1 "$LOGS/verify-$c.txt")"
done
start final
$WL verify "$MNT" "$STATE" || { echo "final verification FAILED"; exit 1; }
umount "$MNT"; wait "$PID"; PID=""
"$BIN" check "$DATA" | tail -3
echo "crash-loop: $CYCLES kill -9 cycles, 0 problems (transport: ${TRANSPORT:-default}); killed during a flush: $in_flush, during a compaction: $in_compaction (flushes completed: $flushes, compactions completed: $compactions)"
