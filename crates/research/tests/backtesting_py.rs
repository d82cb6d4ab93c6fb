//! Our annualised statistics against backtesting.py's own on the fixture run: the expected
//! numbers were computed by backtesting.py 0.6.6 from this run's equity curve
//! (`scripts/backtesting-py-expected.sh`) and are shipped in
//! `testdata/backtest/backtesting-py-expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;

fn expected() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/backtest/backtesting-py-expected.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(ours: Option<f64>, theirs: &serde_json::Value, name: &str) {
    let theirs = theirs[name].as_f64().unwrap();
    let ours = ours.unwrap_or_else(|| panic!("{name}: ours is undefined, theirs {theirs}"));
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
        "{name}: ours {ours}, backtesting.py {theirs}"
    );
}

#[test]
fn sharpe_sortino_and_calmar_agree_with_backtesting_py() {
    let result = fixture::run();
    let r = &result.report;
    let e = expected();
    assert_eq!(r.bars as u64, e["bars"].as_u64().unwrap());
    assert_eq!(
        r.final_equity.to_string().parse::<f64>().unwrap(),
        e["final_equity"].as_f64().unwrap(),
        "the same run as the expected numbers were computed from"
    );
    assert!(
        r.trade_count > 20,
        "a fixture that trades: {}",
        r.trade_count
    );
    close(r.sharpe, &e, "sharpe");
    close(r.sortino, &e, "sortino");
    close(r.calmar, &e, "calmar");
    close(r.annual_return_pct, &e, "annual_return_pct");
    close(r.volatility_pct, &e, "volatility_pct");
    close(r.cagr_pct, &e, "cagr_pct");
    close(Some(r.max_drawdown_pct), &e, "max_drawdown_pct");
    assert_eq!(
        r.max_drawdown_duration_ms,
        e["max_drawdown_duration_ms"].as_i64()
    );
}
