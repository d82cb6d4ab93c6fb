#!/usr/bin/env bash
# The long soak: `palm-oil-bot run` left alone against the simulator through a simulated year
# (release build). The short form (a simulated month) runs with `cargo test`.
#
#   scripts/soak.sh                 # 365 days, the default seed, every quote at a 250 ms step
#   SOAK_DAYS=90 SOAK_SEED=0x1234 SOAK_SPEED=20000 scripts/soak.sh   # slower: more real time per simulated day
#   SOAK_QUOTE_STEP_MS=1000 SOAK_EVERY_QUOTE=0 scripts/soak.sh   # the lighter quote stream of `cargo test`
#
# Writes target/soak/report.json (figures, the process's memory and file-descriptor curve) and
# target/soak/bot.log (every log line of every life of the bot).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/soak
mkdir -p "$out"
export SOAK_DAYS="${SOAK_DAYS:-365}"
export SOAK_SPEED="${SOAK_SPEED:-60000}"
export SOAK_QUOTE_STEP_MS="${SOAK_QUOTE_STEP_MS:-250}"
export SOAK_EVERY_QUOTE="${SOAK_EVERY_QUOTE:-1}"
export SOAK_REPORT="$PWD/$out/report.json"
export SOAK_LOG="$PWD/$out/bot.log"
start=$(date +%s)
cargo test --release -p bot --test soak -- --nocapture
echo "soak: ${SOAK_DAYS} simulated days in $(( $(date +%s) - start )) s of wall time; report: $SOAK_REPORT"
