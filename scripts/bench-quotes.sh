#!/usr/bin/env bash
# End-to-end quote throughput: the simulator streams every quote change (its price paths stepped
# every 250 ms of market time) at RATE quotes a second; `palm-oil-bot run` reads them through TLS,
# the client, the engine and the store. Prints what was offered, whether the bot kept up (the
# broker dropped nothing for it), and each process's CPU time per quote; with PROFILE=1
# also the bot's hottest functions (perf, from Debian's linux-perf).
#
#   scripts/bench-quotes.sh                    # 35,000 quotes/s for 40 s (the soak's year pace)
#   RATE=80000 DURATION=30 PROFILE=1 scripts/bench-quotes.sh
#
# Release build. Loopback only; both processes stop by themselves after DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${RATE:-35000}
duration=${DURATION:-40}
warmup=10
# Quote changes per simulated hour of the symbols the bot subscribes to with every market open
# and a 250 ms step, as measured by this script (95,940 spots a second at 22,500x).
per_sim_hour=15300
speed=$(( rate * 3600 / per_sim_hour ))

cargo build --release --bin palm-oil-bot >&2
bin=$PWD/target/release/palm-oil-bot
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

"$bin" simulate --listen 127.0.0.1:0 --cert-dir "$dir/sim" --market-hours always \
  --speed "$speed" --quote-step 250ms --every-quote --duration "$((duration + warmup + 15))s" \
  >"$dir/sim.out" 2>"$dir/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$dir/sim/client.env" ] && break; sleep 0.2; done
[ -s "$dir/sim/client.env" ] || { echo "the simulator did not start" >&2; cat "$dir/sim.err" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(
  set -a; . "$dir/sim/client.env"; set +a
  export DATABASE_URL="sqlite://$dir/bot.db" SENTIMENT_SOURCES="" PORT="$port" BIND_ADDRESS=127.0.0.1 \
    LOG_FORMAT=json RUST_LOG=warn TIMEFRAME=M1 RSI_PERIOD=2 RSI_OVERSOLD=45 RSI_OVERBOUGHT=55 \
    STOP_LOSS=3 TAKE_PROFIT=6 ORDER_VOLUME=1 DAILY_LOSS_LIMIT=1 MAX_DRAWDOWN=1
  exec "$bin" run >"$dir/bot.log" 2>&1
) &
bot_pid=$!

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep "$warmup"
kill -0 "$bot_pid" 2>/dev/null || { echo "the bot stopped:" >&2; tail -5 "$dir/bot.log" >&2; exit 1; }
bot0=$(cpu_ticks "$bot_pid"); sim0=$(cpu_ticks "$sim_pid"); t0=$(date +%s.%N)
if [ "${PROFILE:-0}" = 1 ]; then
  perf record -e cpu-clock -F 999 -g -p "$bot_pid" -o "$dir/perf.data" -- sleep "$duration" >/dev/null 2>&1 &
fi
sleep "$duration"
bot1=$(cpu_ticks "$bot_pid"); sim1=$(cpu_ticks "$sim_pid"); t1=$(date +%s.%N)
wait "$sim_pid" || true
sleep 1
kill "$bot_pid" 2>/dev/null || true
wait "$bot_pid" 2>/dev/null || true
sent=$(grep -o '[0-9]* spot events sent' "$dir/sim.err" | awk '{print $1}')
missed=$(grep -o '[0-9]* pushed events missed' "$dir/sim.err" | awk '{print $1}')
hz=$(getconf CLK_TCK)
python3 - "$rate" "$speed" "$sent" "$missed" "$bot0" "$bot1" "$sim0" "$sim1" "$t0" "$t1" "$hz" "$duration" "$warmup" <<'EOF'
import sys, statistics
rate, speed, sent, missed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3] or 0), int(sys.argv[4] or 0)
bot0, bot1, sim0, sim1 = map(int, sys.argv[5:9])
t0, t1, hz = float(sys.argv[9]), float(sys.argv[10]), int(sys.argv[11])
duration, warmup = int(sys.argv[12]), int(sys.argv[13])
wall = t1 - t0
# The simulator ran warm-up + duration + 15 s; quotes went out evenly, so this window saw its share.
window_quotes = sent * wall / (duration + warmup + 15)
per_s = window_quotes / wall
bot_cpu = (bot1 - bot0) / hz
sim_cpu = (sim1 - sim0) / hz
print(f"offered: {rate} quotes/s asked (speed {speed}x, 250 ms quote step); {sent} spot events sent in all, {per_s:,.0f}/s measured")
print(f"missed by the bot (the broker dropped them for a slow reader): {missed}")
print(f"bot: {bot_cpu / wall:.0%} of a core, {bot_cpu / window_quotes * 1e6:.2f} us CPU per quote")
print(f"simulator: {sim_cpu / wall:.0%} of a core, {sim_cpu / window_quotes * 1e6:.2f} us CPU per quote")
EOF
if [ "${PROFILE:-0}" = 1 ]; then
  sleep 1
  perf report -i "$dir/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -25
fi
