#!/usr/bin/env bash
# Measures the demo's footprint: resident memory at the end and CPU use over the run.
# Usage: scripts/demo-footprint.sh [SECONDS]   (default 600: the issue's ten minutes)
# Builds the release binary, runs `demo` in a temporary folder, samples /proc every 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
cargo build --release -q -p bot
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$PWD/target/release/palm-oil-bot"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$work" && PORT="$port" LOG_FORMAT=json exec "$bin" demo --duration "${seconds}s" >"$work/out.log" 2>"$work/err.log") &
pid=$!
ticks_per_s="$(getconf CLK_TCK)"
start="$(date +%s)"
rss_kb=0
cpu_ticks=0
while kill -0 "$pid" 2>/dev/null; do
  if [ -r "/proc/$pid/status" ]; then
    rss_kb="$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo "$rss_kb")"
    cpu_ticks="$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo "$cpu_ticks")"
  fi
  sleep 10
done
wait "$pid" || true
elapsed=$(( $(date +%s) - start ))
orders="$(grep -c '"order sent"' "$work/err.log" || true)"
errors="$(grep -c '"level":"ERROR"' "$work/err.log" || true)"
awk -v rss="$rss_kb" -v t="$cpu_ticks" -v hz="$ticks_per_s" -v s="$elapsed" -v o="$orders" -v e="$errors" \
  'BEGIN { printf "demo for %d s: resident memory %.1f MB at the end, CPU %.2f s = %.2f%% of one core, %d orders, %d error lines\n", s, rss/1024, t/hz, 100*t/hz/s, o, e }'
