#!/usr/bin/env bash
# Headless Chromium test of the assistant's chat page (GET /), with a screenshot for the README.
# Needs Debian's chromium package: sudo apt-get install -y chromium
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 1; }
CHAT_SCREENSHOT="${CHAT_SCREENSHOT:-$PWD/src/serve/assistant/chat-page.png}"
mkdir -p "$(dirname "$CHAT_SCREENSHOT")"
export CHAT_SCREENSHOT
cargo test --release --test suite assistant_turn::chat_page_in_headless_chromium -- --ignored --exact
echo "screenshot: $CHAT_SCREENSHOT"
