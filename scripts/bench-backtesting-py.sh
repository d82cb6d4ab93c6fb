#!/usr/bin/env bash
# Runs the same optimisation grid over the same bars with palm-oil-bot's `optimize` and with
# backtesting.py's `Backtest.optimize` (installed in a venv), checks both give identical
# per-combination trade counts and returns, and prints the wall-time ratio.
#
# The set-up both can express identically: RSI(period) crossing entries long and short, exit and
# reversal at the opposite level, one unit per trade, no spread, no commission, stops and limits
# out of reach, fills at the next bar's open, a position still open closed at the last bar's open.
#
# Usage: scripts/bench-backtesting-py.sh [BARS]   (default 20000 H1 bars)
# Environment: BOT (binary, default target/release/palm-oil-bot, built if missing),
#              VENV (venv folder, default ~/.cache/palm-oil-bot/backtesting-py-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bars=${1:-20000}
bot=${BOT:-target/release/palm-oil-bot}
venv=${VENV:-$HOME/.cache/palm-oil-bot/backtesting-py-venv}
if [ ! -x "$bot" ]; then
    cargo build --release -p bot
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet backtesting==0.6.6 pandas numpy
fi
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "work folder: $work" >&2 || trap 'rm -rf "$work"' EXIT

periods="7,14,21"
oversold="20,25,30"
overbought="70,75,80"

# 1. The bars: a seeded random walk with prices on a 0.5 grid, as palm oil quotes.
"$venv/bin/python" - "$bars" "$work/bars.csv" <<'PY'
import sys, numpy as np, pandas as pd
n, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(20251124)
close = 4000 + np.cumsum(rng.integers(-12, 13, n)) * 0.5
close = np.maximum(close, 1000)
open_ = np.r_[close[0], close[:-1]]
high = np.maximum(open_, close) + rng.integers(0, 8, n) * 0.5
low = np.minimum(open_, close) - rng.integers(0, 8, n) * 0.5
t = pd.date_range("2023-01-02", periods=n, freq="h", tz="UTC")
pd.DataFrame({"timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": open_, "high": high,
              "low": low, "close": close}).to_csv(out, index=False)
PY

# 2. Ours: the whole process (start, CSV in, every combination, CSV out), median of 5 runs so
# one scheduling hiccup on a shared machine does not decide the ratio.
times=()
for run in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$bot" optimize --data "$work/bars.csv" --timeframe H1 \
        --param "rsi_period=$periods" --param "oversold=$oversold" --param "overbought=$overbought" \
        --size 1 --cash 10000 --stop-loss 100000 --take-profit 100000 \
        --daily-loss-limit 1 --max-drawdown 1 --maximize return --results "$work/ours.csv" \
        --force > /dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
done
ours=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)e-6

# 3. backtesting.py, timed inside Python (optimize only), then compared.
"$venv/bin/python" - "$work/bars.csv" "$work/ours.csv" "$ours" "$periods" "$oversold" "$overbought" <<'PY'
import sys, time, warnings
import numpy as np, pandas as pd
from backtesting import Backtest, Strategy
warnings.filterwarnings("ignore")
bars_csv, ours_csv, ours_secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
grid = [list(map(int, a.split(","))) for a in sys.argv[4:7]]
df = pd.read_csv(bars_csv)
df.index = pd.to_datetime(df.pop("timestamp")).dt.tz_localize(None)
df.columns = ["Open", "High", "Low", "Close"]
raw = np.round(df["Close"].to_numpy() * 100000).astype(np.int64)

def wilder_rsi(_close, period):
    # The bot's RSI, operation for operation: sums of integer changes, then Wilder smoothing;
    # flat prices give 50.
    out = np.full(len(raw), np.nan)
    gain = loss = 0.0
    for i in range(1, len(raw)):
        ch = int(raw[i] - raw[i - 1])
        g, l = (float(ch), 0.0) if ch > 0 else (0.0, float(-ch))
        if i <= period:
            gain += g; loss += l
            if i < period:
                continue
            gain /= period; loss /= period
        else:
            gain = (gain * (period - 1.0) + g) / period
            loss = (loss * (period - 1.0) + l) / period
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total > 0.0 else 50.0
    return out

class RsiCross(Strategy):
    rsi_period, oversold, overbought = 14, 30, 70
    def init(self):
        self.rsi = self.I(wilder_rsi, self.data.Close, self.rsi_period)
        self.n = len(self.data.df)
    def next(self):
        i = len(self.data) - 1
        if i >= self.n - 2:
            # The bot closes what is open at the last bar's open and takes no entry there.
            if i == self.n - 2 and self.position:
                self.position.close()
            return
        prev, cur = self.rsi[-2], self.rsi[-1]
        if np.isnan(cur):
            return
        buy = not np.isnan(prev) and prev >= self.oversold and cur < self.oversold
        sell = (not buy) and not np.isnan(prev) and prev <= self.overbought and cur > self.overbought
        pos = self.position
        if not pos:
            if buy: self.buy(size=1)
            elif sell: self.sell(size=1)
        elif pos.is_long:
            if cur > self.overbought:
                pos.close()
                if sell: self.sell(size=1)
        elif cur < self.oversold:
            pos.close()
            if buy: self.buy(size=1)

bt = Backtest(df, RsiCross, cash=10000, commission=0, trade_on_close=False, hedging=False,
              exclusive_orders=False, finalize_trades=False)
params = dict(rsi_period=grid[0], oversold=grid[1], overbought=grid[2])
t0 = time.perf_counter()
_, returns = bt.optimize(**params, maximize="Return [%]", return_heatmap=True)
theirs_secs = time.perf_counter() - t0
_, counts = bt.optimize(**params, maximize="# Trades", return_heatmap=True)

ours = pd.read_csv(ours_csv)
bad = 0
for _, row in ours.iterrows():
    key = (int(row.rsi_period), int(row.oversold), int(row.overbought))
    r, c = returns.loc[key], counts.loc[key]
    # backtesting.py's heatmap holds NaN for a combination without a trade.
    if np.isnan(c):
        r, c = 0.0, 0
    if int(row.trade_count) != int(c) or abs(float(row.return_pct) - float(r)) > 1e-9 * max(1, abs(r)):
        bad += 1
        print(f"MISMATCH {key}: ours {int(row.trade_count)} trades {row.return_pct:.10f} %, "
              f"backtesting.py {int(c)} trades {r:.10f} %")
print(f"{len(ours)} combinations x {len(df)} bars: {len(ours) - bad} identical "
      f"(trade count and return), {bad} different")
print(f"wall time: palm-oil-bot optimize {ours_secs:.3f} s (process, CSV, all combinations; median of 5), "
      f"backtesting.py Backtest.optimize {theirs_secs:.3f} s: ratio {theirs_secs / ours_secs:.1f}x")
sys.exit(1 if bad else 0)
PY
