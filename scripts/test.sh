#!/usr/bin/env bash
# The test command: installs what a fresh machine lacks, fetches the registry-carried
# model files (verified by sha256), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
scripts/fetch-models.sh
cargo test --release --all-targets "$@"
