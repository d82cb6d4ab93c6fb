#!/usr/bin/env bash
# Renders a backtest's HTML report in headless Chromium and checks it: the page loads without
# network, its DOM holds the charts (inline SVG with axes, legend, buy & hold, kill-switch mark)
# and both tables, and a screenshot is written (look at it: SCREENSHOT=out.png keeps it).
#
# Usage: scripts/check-report.sh [palm-oil-bot binary]   (default: target/debug/palm-oil-bot)
# Needs chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/palm-oil-bot}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build -p bot first" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$work/report.html"
shot=${SCREENSHOT:-$work/report.png}

# A year of the sample with a 3 % drawdown limit, so the kill switch engages and is marked.
"$bin" backtest --data testdata/backtest/fcpo-h1-sample.csv --from 2025-01-01 --to 2025-12-31 \
    --size all --spread 1 --commission 2.5 --max-drawdown 0.03 --html "$report" > /dev/null

fail() { echo "check-report: $*" >&2; exit 1; }
# Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
if sed 's|http://www.w3.org/2000/svg||g' "$report" | grep -Eq '(src|href)=|://'; then
    fail "the report refers to something outside itself"
fi

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run
       --disable-component-update --disable-sync --user-data-dir="$work/profile")
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$report" > "$work/dom.html" 2> "$work/dom.log" \
    || fail "chromium could not load the page: $(tail -3 "$work/dom.log")"
for needle in '<table id="statistics">' '<table id="trades">' 'Price (MYR) with entries and exits' \
    'Equity (MYR)' 'Drawdown (deepest' '>buy &amp; hold</text>' '>kill switch</text>' \
    'class="tick"' '>Sortino</th>'; do
    grep -qF "$needle" "$work/dom.html" || fail "rendered page lacks $needle"
done
timeout 120 "$browser" "${flags[@]}" --window-size=1100,2400 --screenshot="$shot" "file://$report" \
    > /dev/null 2> "$work/shot.log" || fail "no screenshot: $(tail -3 "$work/shot.log")"
size=$(stat -c %s "$shot")
[ "$size" -gt 50000 ] || fail "the screenshot is nearly empty ($size bytes)"
rows=$(grep -o '<tr class=' "$work/dom.html" | wc -l)
if [ -n "${SCREENSHOT:-}" ]; then
    echo "report renders: $rows trade rows, screenshot $shot ($size bytes)"
else
    echo "report renders: $rows trade rows, screenshot of $size bytes (SCREENSHOT=FILE.png keeps it)"
fi
