#!/usr/bin/env bash
# Install lsmfs system-wide so that mount(8), /etc/fstab and systemd find it:
#   bash scripts/install.sh [--prefix DIR] [--binary FILE]
# --prefix  where to install (default /usr/local): DIR/bin/lsmfs, and the
#           example systemd unit as DIR/lib/systemd/system/lsmfs@.service
#           (systemd reads /usr/local/lib/systemd/system).
# --binary  install this built lsmfs instead of building the release one.
# mount(8) runs a fuse.TYPE helper from /sbin: fuse3's mount.fuse3 (as
# /sbin/mount.fuse) runs `lsmfs DATA_DIR MOUNTPOINT -o OPTS` through /bin/sh,
# and mount(8) clears PATH, so the shell's default PATH applies: /usr/local/bin
# and /usr/bin are on it, other prefixes are not.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    *) echo "usage: scripts/install.sh [--prefix DIR] [--binary FILE]" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  bash scripts/setup.sh
  cargo build --release --quiet
  binary=target/release/lsmfs
fi
install -d -m 755 "$prefix/bin" "$prefix/lib/systemd/system"
install -m 755 "$binary" "$prefix/bin/lsmfs"
sed "s|@BINDIR@|$prefix/bin|g" scripts/lsmfs@.service > "$prefix/lib/systemd/system/lsmfs@.service"
chmod 644 "$prefix/lib/systemd/system/lsmfs@.service"
echo "install: $prefix/bin/lsmfs, $prefix/lib/systemd/system/lsmfs@.service"
helper=""
for h in /sbin/mount.fuse /usr/sbin/mount.fuse /sbin/mount.fuse3 /usr/sbin/mount.fuse3; do
  [ -x "$h" ] && { helper="$h"; break; }
done
if [ -z "$helper" ]; then
  echo "install: warning: no mount.fuse helper in /sbin: mount -t fuse.lsmfs needs fuse3 (apt-get install fuse3)" >&2
fi
case "$prefix/bin" in
  /usr/local/bin|/usr/bin|/bin) ;;
  *) echo "install: note: mount(8) finds lsmfs only in /usr/local/bin or /usr/bin; $prefix/bin is for lsmfs mount and the unit" >&2 ;;
esac
