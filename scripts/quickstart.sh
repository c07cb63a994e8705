#!/usr/bin/env bash
# The main job on the embedded defaults: fetch and import SmolLM2, build stylevn,
# and let the model answer a question (greedy, with speed statistics).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh
cargo build --release --quiet --bin stylevn
target/release/stylevn generate --model models/smollm2-135m-instruct \
  --prompt "What is the capital of France?" --temperature 0 --max-new-tokens 32 --stats
