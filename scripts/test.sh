#!/usr/bin/env bash
# Set up and run every check: formatting, clippy, and the whole test suite
# (unit tests, engine model and power-loss tests, real FUSE mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets 2>&1
