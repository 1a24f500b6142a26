#!/usr/bin/env bash
# Set up, build and mount: scripts/mount.sh DATA_DIR MOUNTPOINT [lsmfs mount options...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/mount.sh DATA_DIR MOUNTPOINT [--daemon] [--sync always|on-fsync] [-o OPTS]" >&2
  exit 2
fi
bash scripts/setup.sh
cargo build --release --quiet
mkdir -p "$2"
exec ./target/release/lsmfs mount "$@"
