#!/usr/bin/env bash
# Install what lsmfs needs on a fresh Debian machine (idempotent, quiet when done).
set -euo pipefail
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v bindfs >/dev/null || need+=(bindfs)
command -v setfattr >/dev/null || need+=(attr)
command -v setfacl >/dev/null || need+=(acl)
command -v fio >/dev/null || need+=(fio)
command -v rsync >/dev/null || need+=(rsync)
command -v fs_mark >/dev/null || need+=(fsmark)
command -v db_bench >/dev/null || need+=(rocksdb-tools)
[ -x /usr/bin/time ] || need+=(time)
# The etcd backend: the server and etcdctl for the tests' clusters, protoc
# for the etcd-client crate's build script (it compiles etcd's .proto files).
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v protoc >/dev/null || need+=(protobuf-compiler)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: FUSE is not available here" >&2; exit 1; }
# Users mount through fusermount3, which opens /dev/fuse with their rights:
# udev's rule makes it 0666; a machine without udev leaves it 0600.
if [ "$(stat -c %a /dev/fuse)" != 666 ] && [ "$(id -u)" -eq 0 ]; then
  echo "setup: chmod 666 /dev/fuse (as udev's rule for it does)"
  chmod 666 /dev/fuse
fi
command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
