#!/usr/bin/env bash
# Drives the dashboard in headless Chromium against the offline demo: screenshots of the page
# flat, with a position open, at phone width, and after the bot stopped, and DOM assertions: the
# header words the link and the account apart, money carries its currency, the trades table and
# collapsed holds appear, and the stale state ("bot unreachable") shows within a few seconds of
# stopping the bot.
# Usage: scripts/check-dashboard.sh [OUT_DIR]   (default: ./dashboard-shots)
# Needs: chromium (apt-get install -y chromium), node and npm (playwright-core is installed once
# into ~/.cache/palm-oil-bot/check-dashboard). Exit status 0 when every assertion held.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-dashboard-shots}")"
mkdir -p "$out"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ]; then
  echo "chromium not found: apt-get install -y chromium (or set CHROMIUM)" >&2
  exit 2
fi
tools="${CHECK_DASHBOARD_TOOLS:-$HOME/.cache/palm-oil-bot/check-dashboard}"
if [ ! -d "$tools/node_modules/playwright-core" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund playwright-core >/dev/null)
fi
cargo build -q -p bot
bin="$PWD/target/debug/palm-oil-bot"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$work" && PORT="$port" LOG_FORMAT=json exec "$bin" demo --duration 10m >"$work/out.log" 2>"$work/err.log") &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
NODE_PATH="$tools/node_modules" CHROMIUM="$chromium" URL="http://127.0.0.1:$port/" OUT="$out" BOT_PID="$pid" \
  node scripts/check-dashboard.js
