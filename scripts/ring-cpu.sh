#!/usr/bin/env bash
# Where a metadata workload's time goes on the io_uring transport: fs_mark
# (10,000 files of 4 KiB, no fsync, as in bench.sh) ROUNDS times on a ring
# mount, with the CPU time the ring threads spent in user space (lsmfs's
# own code: decoding, the filesystem logic, the engine) and in the kernel
# (the ring commands, the request copies, the WAL's write(2)), beside the
# same fs_mark on plain ext4 in the same run. Wall time minus the ring
# threads' user time is what the run would take if lsmfs's code cost
# nothing: the kernel's FUSE path and fs_mark's own system calls.
# Each round is timed alone; the summary takes the best round of each.
# Usage: scripts/ring-cpu.sh [ROUNDS]   (root, a kernel with FUSE over io_uring)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive whole number, not '$ROUNDS'" >&2; exit 2; }
PARAM=/sys/module/fuse/parameters/enable_uring
[ -w "$PARAM" ] || { echo "needs root and $PARAM" >&2; exit 1; }
command -v fs_mark >/dev/null || { echo "needs fs_mark (scripts/setup.sh)" >&2; exit 1; }
cargo build --release --quiet --bin lsmfs
BIN=$PWD/target/release/lsmfs
W=$(mktemp -d /tmp/lsmfs-ringcpu.XXXXXX)
mkdir -p "$W/m" "$W/plain"
ORIG=$(cat "$PARAM")
PID=
cleanup() {
  if mountpoint -q "$W/m"; then umount "$W/m" 2>/dev/null || umount -l "$W/m" || true; fi
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  echo "$ORIG" >"$PARAM"
  rm -rf "$W"
}
trap cleanup EXIT

echo Y >"$PARAM"
"$BIN" mount "$W/data" "$W/m" --log-file "$W/log" -o io_uring >/dev/null &
PID=$!
for _ in $(seq 100); do mountpoint -q "$W/m" && break; sleep 0.1; done
mountpoint -q "$W/m" || { echo "the mount did not come up: $W/log" >&2; exit 1; }
grep -q '^transport *io_uring' "$W/m/.lsmfs-stats" || { echo "the ring is not serving the mount" >&2; exit 1; }

# Ticks of user and system time of the ring threads (lsmfs-ring<N>).
ring_ticks() {
  local u=0 s=0 t f
  for t in /proc/"$PID"/task/*; do
    case "$(cat "$t/comm")" in lsmfs-ring[0-9]*) ;; *) continue ;; esac
    f=($(sed 's/.*) //' "$t/stat"))
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}
fsmark() { fs_mark -d "$1" -n 10000 -s 4096 -t 1 -S 0 >/dev/null; }
now() { date +%s.%N; }

HZ=$(getconf CLK_TCK)
# Plain first, on a quiet disk, as in bench.sh (plain ext4's fs_mark moves
# by 5x from one run to the next: it is the noisiest column).
echo "fs_mark, 10,000 x 4 KiB, seconds a run:"
plain=()
for i in $(seq "$ROUNDS"); do
  t0=$(now); fsmark "$W/plain/f$i"; t1=$(now)
  plain+=("$(echo "$t1 - $t0" | bc)")
  printf '  plain ext4   %6.3f\n' "${plain[-1]}"
done
fsmark "$W/m/warm"
best_ring= best_floor=
for i in $(seq "$ROUNDS"); do
  read -r u0 s0 < <(ring_ticks)
  t0=$(now); fsmark "$W/m/f$i"; t1=$(now)
  read -r u1 s1 < <(ring_ticks)
  wall=$(echo "$t1 - $t0" | bc)
  user=$(echo "scale=3; ($u1 - $u0) / $HZ" | bc)
  sys=$(echo "scale=3; ($s1 - $s0) / $HZ" | bc)
  floor=$(echo "$wall - $user" | bc)
  printf '  ring         %6.3f  (ring threads: user %5.3f, kernel %5.3f; wall minus user %5.3f)\n' \
    "$wall" "$user" "$sys" "$floor"
  if [ -z "$best_ring" ] || [ "$(echo "$wall < $best_ring" | bc)" = 1 ]; then
    best_ring=$wall best_floor=$floor
  fi
done
best_plain=$(printf '%s\n' "${plain[@]}" | sort -n | head -1)
printf 'best of %d: plain %.3f, ring %.3f (%.2fx), ring minus lsmfs user time %.3f (%.2fx)\n' \
  "$ROUNDS" "$best_plain" "$best_ring" "$(echo "$best_ring / $best_plain" | bc -l)" \
  "$best_floor" "$(echo "$best_floor / $best_plain" | bc -l)"
