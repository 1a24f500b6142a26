#!/usr/bin/env bash
# Set up and run every check: formatting, clippy, and the whole test suite
# (unit tests, engine model and power-loss tests, real FUSE mounts), the
# mount suites on an etcd cluster, then,
# as root on a kernel with FUSE over io_uring, the mount suites again on the
# io_uring transport (each of those mounts sets fuse.enable_uring=Y until it
# is up and restores the old value; see tests/common/mod.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets 2>&1
# The POSIX suite and the kill -9 loop again on the etcd backend: each
# test starts its own 3-member cluster on free 127.0.0.1 ports and kills it
# when it ends (tests/common/etcd.rs).
echo "== the mount suites on an etcd store"
LSMFS_TEST_STORE=etcd cargo test --test mount_posix --test crash_loop 2>&1
if [ "$(id -u)" = 0 ] && [ -w /sys/module/fuse/parameters/enable_uring ]; then
  echo "== the mount suites on the io_uring transport"
  LSMFS_TEST_TRANSPORT=io_uring cargo test --test mount_posix --test mount_durability \
    --test mount_tree --test mount_cli --test tools --test crash_loop --test mount_snapshots 2>&1
else
  echo "== io_uring transport runs skipped: not root, or no fuse.enable_uring parameter"
fi
