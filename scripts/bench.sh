#!/usr/bin/env bash
# Filesystem benchmark: the same workloads on lsmfs, on bindfs over a plain
# directory (a FUSE passthrough: the cost of FUSE itself) and on the plain
# directory; prints seconds and ratios.
# usage: scripts/bench.sh [WORKDIR]     (default /tmp/lsmfs-fsbench)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/lsmfs-fsbench}
bash scripts/setup.sh
cargo build --release --quiet
BIN=$REPO/target/release/lsmfs
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
MNTS=()
cleanup() {
  for m in "${MNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT

# The source tree: the Python standard library and /usr/include (~230 MB, ~10,000 files).
STDLIB=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')
if [ ! -f "$WORK/src.tar" ]; then
  echo "building $WORK/src.tar ..."
  tar -cf "$WORK/src.tar" --exclude=site-packages --exclude=__pycache__ \
    --transform 's,^,src/,' -C "$(dirname "$STDLIB")" "$(basename "$STDLIB")" -C / usr/include 2>/dev/null
fi
if [ ! -d "$WORK/gitsrc/.git" ]; then
  rm -rf "$WORK/gitsrc"; mkdir -p "$WORK/gitsrc"
  tar -xf "$WORK/src.tar" -C "$WORK/gitsrc"
  (cd "$WORK/gitsrc" && git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm src)
fi
echo "source tree: $(du -sh "$WORK/gitsrc/src" | cut -f1), $(find "$WORK/gitsrc/src" -type f | wc -l) files"

now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
t() { # t TARGET NAME COMMAND...
  local target=$1 name=$2; shift 2
  local s e
  s=$(now)
  "$@" >/dev/null
  e=$(now)
  awk -v t="$target" -v n="$name" -v s="$s" -v e="$e" 'BEGIN {printf "%s %s %.3f\n", t, n, e - s}' >>"$RESULTS"
}

small_files() { python3 - "$1" <<'EOF'
import os, sys
d = sys.argv[1]
data = b"x" * 1024
for i in range(100):
    os.mkdir(f"{d}/{i}")
    for j in range(100):
        with open(f"{d}/{i}/{j}", "wb") as f:
            f.write(data)
EOF
}
fsync_appends() { python3 - "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(500):
    os.write(fd, b"%08d appended record, fsync'd\n" % i)
    os.fsync(fd)
os.close(fd)
EOF
}

run_all() { # run_all TARGET DIR
  local T=$1 D=$2
  t "$T" untar tar -xf "$WORK/src.tar" -C "$D"
  if [ "$T" = lsmfs ]; then
    local pid
    pid=$(pgrep -f "lsmfs mount $WORK/lsmfs-data" | head -1)
    echo "lsmfs daemon peak RSS after untar: $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")" | tee -a "$WORK/rss.txt"
  fi
  drop
  t "$T" find find "$D/src"
  t "$T" du du -s "$D/src"
  t "$T" grep-r grep -r -c "include" "$D/src"
  t "$T" cp-r cp -r "$D/src" "$D/copy"
  t "$T" rm-r rm -rf "$D/copy"
  t "$T" git-clone git clone -q --no-local "file://$WORK/gitsrc" "$D/clone"
  t "$T" git-status git -C "$D/clone" status --porcelain
  mkdir -p "$D/small"
  t "$T" 10k-files small_files "$D/small"
  drop
  t "$T" stat-10k find "$D/small" -type f -printf '%s\n'
  mkdir -p "$D/fsmark"
  t "$T" fs_mark fs_mark -d "$D/fsmark" -n 1000 -s 4096 -t 1 -S 0
  t "$T" seq-write-512M dd if=/dev/zero of="$D/big" bs=1M count=512 conv=fsync status=none
  drop
  t "$T" seq-read-512M dd if="$D/big" of=/dev/null bs=1M status=none
  t "$T" fio-randwrite-4k fio --name=rw --filename="$D/fio" --rw=randwrite --bs=4k --size=64M \
    --io_size=32M --ioengine=psync --end_fsync=1 --randrepeat=1 --output=/dev/null
  t "$T" 500-fsync-appends fsync_appends "$D/appends"
}

# plain directory
rm -rf "$WORK/plain"; mkdir -p "$WORK/plain"
echo "plain directory: $(df -T "$WORK/plain" | awk 'NR==2 {print $2}') at $WORK/plain"
run_all plain "$WORK/plain"
rm -rf "$WORK/plain"

# bindfs over a plain directory
rm -rf "$WORK/bind-back" "$WORK/bind-mnt"; mkdir -p "$WORK/bind-back" "$WORK/bind-mnt"
bindfs "$WORK/bind-back" "$WORK/bind-mnt"; MNTS+=("$WORK/bind-mnt")
run_all bindfs "$WORK/bind-mnt"
umount "$WORK/bind-mnt"; rm -rf "$WORK/bind-back"

# lsmfs
rm -rf "$WORK/lsmfs-data" "$WORK/lsmfs-mnt"; mkdir -p "$WORK/lsmfs-mnt"
"$BIN" mount "$WORK/lsmfs-data" "$WORK/lsmfs-mnt" --daemon; MNTS+=("$WORK/lsmfs-mnt")
run_all lsmfs "$WORK/lsmfs-mnt"
"$BIN" stats "$WORK/lsmfs-mnt" | grep -E "^L[0-9]|write_amp|block_cache" || true
umount "$WORK/lsmfs-mnt"

echo
printf '%-20s %9s %9s %9s %14s %13s\n' workload plain bindfs lsmfs lsmfs/bindfs lsmfs/plain
awk '{v[$2,$1]=$3; if (!($2 in seen)) {seen[$2]=1; order[n++]=$2}}
  END {for (i=0;i<n;i++) {w=order[i]; p=v[w,"plain"]; b=v[w,"bindfs"]; l=v[w,"lsmfs"];
    printf "%-20s %9.2f %9.2f %9.2f %13.2fx %12.2fx\n", w, p, b, l, (b>0?l/b:0), (p>0?l/p:0)}}' "$RESULTS"
