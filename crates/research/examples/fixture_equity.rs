//! Prints the equity curve (`time,equity`) of the backtest-statistics fixture run: the input of
//! `scripts/backtesting-py-expected.sh`, which computes the expected statistics with
//! backtesting.py. The run's settings are those of `tests/backtesting_py.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/fixture/mod.rs"]
mod fixture;

fn main() {
    let result = fixture::run();
    println!("time,equity");
    for point in &result.equity_curve {
        println!("{},{}", point.time.millis(), point.equity);
    }
}
