#!/usr/bin/env bash
# Computes the expected annualised statistics of the fixture run with backtesting.py itself and
# writes testdata/backtest/backtesting-py-expected.json, which tests/backtesting_py.rs (crate
# research) checks our statistics against. Run it again only when the fixture run changes.
#
# Needs python3 with venv; installs backtesting.py (and pandas, numpy) in a throw-away venv.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet backtesting==0.6.6 pandas numpy
cargo run --quiet -p research --example fixture_equity > "$work/equity.csv"
"$work/venv/bin/python" - "$work/equity.csv" > testdata/backtest/backtesting-py-expected.json <<'PY'
import json, sys
import numpy as np, pandas as pd
import backtesting
from backtesting._stats import compute_stats

eq = pd.read_csv(sys.argv[1])
index = pd.to_datetime(eq["time"], unit="ms")
# compute_stats needs OHLC only for buy & hold (not compared) and the index.
ohlc = pd.DataFrame({"Open": 1.0, "High": 1.0, "Low": 1.0, "Close": 1.0}, index=index)
trades = pd.DataFrame({c: [] for c in ["Size", "EntryBar", "ExitBar", "EntryPrice", "ExitPrice",
                                       "SL", "TP", "PnL", "Commission", "ReturnPct",
                                       "EntryTime", "ExitTime", "Duration", "Tag"]})
s = compute_stats(trades=trades, equity=eq["equity"].to_numpy(dtype=float), ohlc_data=ohlc,
                  strategy_instance=None, risk_free_rate=0)
out = {
    "backtesting_py": backtesting.__version__,
    "bars": len(eq),
    "final_equity": float(eq["equity"].iloc[-1]),
    "annual_return_pct": float(s["Return (Ann.) [%]"]),
    "volatility_pct": float(s["Volatility (Ann.) [%]"]),
    "cagr_pct": float(s["CAGR [%]"]),
    "sharpe": float(s["Sharpe Ratio"]),
    "sortino": float(s["Sortino Ratio"]),
    "calmar": float(s["Calmar Ratio"]),
    "max_drawdown_pct": float(-s["Max. Drawdown [%]"]),
    "max_drawdown_duration_ms": int(pd.Timedelta(s["Max. Drawdown Duration"]).total_seconds() * 1000),
}
print(json.dumps(out, indent=2))
PY
cat testdata/backtest/backtesting-py-expected.json
