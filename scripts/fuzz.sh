#!/usr/bin/env bash
# Hostile bytes at scale: run tests/hostile_bytes.rs with many cases per
# decoder (default 1,000,000; first argument or LSMFS_FUZZ_CASES) and a
# fresh seed (LSMFS_FUZZ_SEED to repeat one), in release mode with
# overflow checks on. A failure prints the decoder, seed and case number
# and the input; rerun one case with
#   LSMFS_FUZZ_SEED=S LSMFS_FUZZ_FROM=N LSMFS_FUZZ_CASES=1 scripts/fuzz.sh
# then keep it as a regression test in tests/hostile_bytes.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
export LSMFS_FUZZ_CASES="${1:-${LSMFS_FUZZ_CASES:-1000000}}"
export LSMFS_FUZZ_SEED="${LSMFS_FUZZ_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
echo "fuzz: $LSMFS_FUZZ_CASES cases per decoder, LSMFS_FUZZ_SEED=$LSMFS_FUZZ_SEED"
exec cargo test --release --test hostile_bytes -- --test-threads "${FUZZ_THREADS:-2}" "${@:2}"
