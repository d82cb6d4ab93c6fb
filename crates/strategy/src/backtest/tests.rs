//! Backtest engine tests: one run computed entirely by hand, the risk rules inside a run, and
//! properties over random price paths.

use domain::{
    ConversionRate, Money, Price, Timeframe, Timestamp, TradingSchedule, Volume, WeeklySession,
};
use proptest::prelude::{ProptestConfig, any, prop, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as PropStrategy;

use super::*;
use crate::{RiskConfig, RsiSentimentConfig, RsiSentimentStrategy, SizingRule};

/// Fourteen H1 bars from Monday 2025-11-24 00:00 UTC. Closes 100, 102, 104, 96, 98, 105, 101,
/// 95, 99, 111, 112, 101, 102, 102.
const HAND_CSV: &str = "timestamp,open,high,low,close
2025-11-24 00:00:00,100,101,99,100
2025-11-24 01:00:00,100,103,100,102
2025-11-24 02:00:00,102,105,101,104
2025-11-24 03:00:00,104,104,95,96
2025-11-24 04:00:00,97,99,96,98
2025-11-24 05:00:00,98,106,98,105
2025-11-24 06:00:00,105,106,100,101
2025-11-24 07:00:00,101,102,94,95
2025-11-24 08:00:00,96,100,90,99
2025-11-24 09:00:00,99,112,98,111
2025-11-24 10:00:00,111,114,100,112
2025-11-24 11:00:00,112,113,100,101
2025-11-24 12:00:00,101,103,99,102
2025-11-24 13:00:00,103,104,101,102
";

/// Start of Monday 2025-11-24 UTC, the day every hand-written test row falls on.
const HAND_DAY: i64 = 1_763_942_400_000;

/// Milliseconds after [`HAND_DAY`] of `2025-11-24[ T]HH:MM:SS[.mmm][Z]` (test rows only).
fn hand_time(text: &str) -> Timestamp {
    assert_eq!(&text[..11].replace('T', " "), "2025-11-24 ", "{text}");
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let millis = if text.get(19..20) == Some(".") {
        n(20..23)
    } else {
        0
    };
    Timestamp(
        HAND_DAY
            + n(11..13) * Timestamp::HOUR_MS
            + n(14..16) * Timestamp::MINUTE_MS
            + n(17..19) * 1000
            + millis,
    )
}

/// H1 bars from `timestamp,open,high,low,close` rows (the reader itself is tested in `research`).
fn hand_bars(text: &str) -> Vec<domain::Bar> {
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let p = |i: usize| Price::parse(f[i]).unwrap();
            domain::Bar {
                symbol: domain::SymbolId(0),
                timeframe: Timeframe::H1,
                start: hand_time(f[0]),
                open: p(1),
                high: p(2),
                low: p(3),
                close: p(4),
                volume: 0,
            }
        })
        .collect()
}

/// Sentiment readings from `timestamp,score,confidence` rows.
fn hand_readings(text: &str) -> Vec<domain::SentimentReading> {
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            domain::SentimentReading {
                score: f[1].parse().unwrap(),
                confidence: f[2].parse().unwrap(),
                source: "replay".to_owned(),
                known_at: hand_time(f[0]),
                item_count: 0,
                summary: String::new(),
            }
        })
        .collect()
}

fn units(x: i64) -> Price {
    Price(x * 100_000)
}

fn tenths(x: i64) -> Price {
    Price(x * 10_000)
}

fn hand_config(risk: RiskConfig) -> BacktestConfig {
    BacktestConfig {
        initial_cash: Money::new(100_000, 2),    // 1000.00
        spread: tenths(2),                       // 0.2: buy at mid + 0.1, sell at mid - 0.1
        commission_per_fill: Money::new(100, 2), // 1.00 per fill
        risk,
        ..BacktestConfig::default()
    }
}

fn all_cash_no_limits() -> RiskConfig {
    RiskConfig {
        sizing: SizingRule::AllCash,
        daily_loss_limit_bps: None,
        max_drawdown_bps: None,
    }
}

fn hand_strategy() -> RsiSentimentStrategy {
    RsiSentimentStrategy::new(RsiSentimentConfig {
        rsi_period: 2,
        stop_loss: Some(units(3)),
        take_profit: Some(units(10)),
        ..RsiSentimentConfig::default()
    })
    .unwrap()
}

fn run_hand(risk: RiskConfig) -> BacktestResult {
    let bars = hand_bars(HAND_CSV);
    assert_eq!(bars[0].timeframe, Timeframe::H1);
    let backtester = Backtester::new(hand_config(risk)).unwrap();
    let mut calls = Vec::new();
    let result = backtester
        .run(&mut hand_strategy(), &bars, &[], &mut |done, total| {
            calls.push((done, total))
        })
        .unwrap();
    assert_eq!(calls, vec![(14, 14)]);
    result
}

fn money(x: i64) -> Money {
    Money::new(x * 100, 2)
}

/// RSI(2), oversold 30 / overbought 70, stop 3, target 10, spread 0.2, commission 1 per fill,
/// cash 1000, `--size all`. Worked by hand:
///
/// | bar | close | avg gain | avg loss | RSI   | decision at the close          |
/// |-----|-------|----------|----------|-------|--------------------------------|
/// | 2   | 104   | 2        | 0        | 100   | (first value)                  |
/// | 3   | 96    | 1        | 4        | 20    | crossed below 30: open long    |
/// | 4   | 98    | 1.5      | 2        | 42.86 | hold                           |
/// | 5   | 105   | 4.25     | 1        | 80.95 | crossed above 70: reverse      |
/// | 6   | 101   | 2.125    | 2.5      | 45.95 | hold                           |
/// | 7   | 95    | 1.0625   | 4.25     | 20    | (flat after TP) open long      |
/// | 8   | 99    | 2.53125  | 2.125    | 54.36 | (flat after SL) no crossing    |
/// | 9   | 111   | 7.265625 | 1.0625   | 87.24 | crossed above 70: open short   |
/// | 10  | 112   | 4.133    | 0.531    | 88.61 | (flat after SL) no crossing    |
/// | 11  | 101   | 2.066    | 5.766    | 26.38 | crossed below 30: open long    |
/// | 12  | 102   | 1.533    | 2.883    | 34.72 | hold                           |
/// | 13  | 102   | 0.767    | 1.441    | 34.72 | last bar: nothing fills        |
///
/// Trades (price x units, PnL net of 2 x 1.00 commission):
/// 1. long 10 @ 97.1 (bar 4 open 97 + 0.1; 999 / 97.1 = 10.3 -> 10), closed by the reversal at
///    bar 6's open 105 - 0.1 = 104.9: +78 - 2 = +76.
/// 2. short 10 @ 104.9 (cash 1075 after two commissions; 1075 / 104.9 -> 10), SL 107.9, TP 94.9;
///    bar 7's ask low 94.1 touches the TP: exit 94.9, +100 - 2 = +98.
/// 3. long 12 @ 96.1 (1173 / 96.1 = 12.2 -> 12), SL 93.1, TP 106.1; bar 8's bid low 89.9 hits
///    the stop, bid open 95.9 did not gap through it: exit 93.1, -36 - 2 = -38.
/// 4. short 10 @ 110.9 (1135 / 110.9 -> 10), SL 113.9, TP 100.9; bar 10's ask range 100.1..114.1
///    touches both: the stop is taken first, exit 113.9, -30 - 2 = -32.
/// 5. long 10 @ 101.1 (1103 / 101.1 -> 10) at bar 12; still open after the data: closed at the
///    last bar's open 103 - 0.1 = 102.9, +18 - 2 = +16.
///
/// Equity at each close: 1000, 1000, 1000, 1000, 1007, 1077, 1113, 1174, 1136, 1136, 1104,
/// 1104, 1111, 1120. Return +12%; peak 1174 to trough 1104: drawdown 70 / 1174 = 5.9625%;
/// 3 wins of 5 = 60%; profit factor (76 + 98 + 16) / (38 + 32) = 2.7143; exposure 7 of 14 bars
/// (4, 5, 6, 7, 8, 10, 12) = 50%; buy and hold 100 -> 102 = 2%; commission 10 fills = 10.
/// Expectancy (76 + 98 - 38 - 32 + 16) / 5 = 24; average win 190 / 3 = 63.33; two losses in a row.
#[test]
fn a_backtest_computed_by_hand() {
    let result = run_hand(all_cash_no_limits());
    let r = &result.report;
    let equity: Vec<i64> = result
        .equity_curve
        .iter()
        .map(|p| p.equity.minor / 100)
        .collect();
    assert_eq!(
        equity,
        [
            1000, 1000, 1000, 1000, 1007, 1077, 1113, 1174, 1136, 1136, 1104, 1104, 1111, 1120
        ]
    );
    assert!(
        result
            .equity_curve
            .iter()
            .all(|p| p.equity.minor % 100 == 0)
    );
    let exposed: Vec<usize> = (0..14)
        .filter(|&i| result.equity_curve[i].exposed)
        .collect();
    assert_eq!(exposed, [4, 5, 6, 7, 8, 10, 12]);

    let t: Vec<_> = r
        .trades
        .iter()
        .map(|t| {
            (
                t.side,
                t.volume,
                t.entry_price,
                t.exit_price,
                t.pnl,
                t.exit_kind,
                t.entry_bar,
                t.exit_bar,
            )
        })
        .collect();
    let (l, s) = (Side::Buy, Side::Sell);
    assert_eq!(
        t,
        vec![
            (
                l,
                Volume(1_000),
                tenths(971),
                tenths(1049),
                money(76),
                ExitKind::Signal,
                4,
                6
            ),
            (
                s,
                Volume(1_000),
                tenths(1049),
                tenths(949),
                money(98),
                ExitKind::TakeProfit,
                6,
                7
            ),
            (
                l,
                Volume(1_200),
                tenths(961),
                tenths(931),
                money(-38),
                ExitKind::StopLoss,
                8,
                8
            ),
            (
                s,
                Volume(1_000),
                tenths(1109),
                tenths(1139),
                money(-32),
                ExitKind::StopLoss,
                10,
                10
            ),
            (
                l,
                Volume(1_000),
                tenths(1011),
                tenths(1029),
                money(16),
                ExitKind::EndOfData,
                12,
                13
            ),
        ]
    );
    assert!(r.trades.iter().all(|t| t.commission == money(2)));
    assert_eq!(
        r.trades[0].entry_time.to_string(),
        "2025-11-24T04:00:00.000Z"
    );
    assert!(
        r.trades[0]
            .entry_reason
            .starts_with("open long: RSI fell below oversold 30 (100.00 -> 20.00)")
    );
    assert!(
        r.trades[0]
            .exit_reason
            .starts_with("close long and open short")
    );
    assert_eq!(
        r.trades[3].exit_reason,
        "stop-loss at 113.9 touched inside the bar"
    );
    assert_eq!(
        r.trades[4].exit_reason,
        "end of data: closed at the last bar's open"
    );

    assert_eq!(r.bars, 14);
    assert_eq!(r.final_equity, money(1120));
    assert!((r.return_pct - 12.0).abs() < 1e-9);
    assert!((r.max_drawdown_pct - 70.0 / 1174.0 * 100.0).abs() < 1e-9);
    assert_eq!(r.trade_count, 5);
    assert_eq!(r.win_rate_pct, Some(60.0));
    assert!((r.profit_factor.unwrap() - 190.0 / 70.0).abs() < 1e-9);
    assert!((r.exposure_pct - 50.0).abs() < 1e-9);
    assert!((r.buy_and_hold_return_pct - 2.0).abs() < 1e-9);
    assert_eq!(r.total_commission, money(10));
    // One UTC day of bars: no daily return, so no annualised figure (see `stats.rs` and the
    // fixture test against backtesting.py in `research`).
    assert_eq!((r.sharpe, r.sortino, r.calmar), (None, None, None));
    assert_eq!(r.peak_equity, money(1174));
    assert_eq!(r.expectancy, Some(money(24)));
    assert_eq!(r.average_win, Some(Money::new(6_333, 2)));
    assert_eq!(r.average_loss, Some(money(-35)));
    assert_eq!(
        (r.best_trade, r.worst_trade),
        (Some(money(98)), Some(money(-38)))
    );
    assert_eq!(r.longest_losing_streak, 2);
    // Peak 1174 at 07:00; under water to the end (13:00).
    assert_eq!(r.max_drawdown_duration_ms, Some(6 * Timestamp::HOUR_MS));
    // Durations: 2, 1, 0, 0, 1 hours.
    assert_eq!(r.longest_trade_duration_ms, Some(2 * Timestamp::HOUR_MS));
    assert_eq!(
        r.average_trade_duration_ms,
        Some(4 * Timestamp::HOUR_MS / 5)
    );
    assert_eq!(r.refused_entries, 0);
    assert_eq!(r.kill_switch, None);
}

#[test]
fn the_kill_switch_stops_new_entries_for_the_rest_of_the_run() {
    // A 5% drawdown limit: peak 1174 (bar 7) to 1104 (bar 10's close) is 5.96%, engaged there.
    // That position was already stopped out inside bar 10; bar 11's long is refused.
    let result = run_hand(RiskConfig {
        max_drawdown_bps: Some(500),
        ..all_cash_no_limits()
    });
    let r = &result.report;
    assert_eq!(r.trade_count, 4);
    assert_eq!(r.final_equity, money(1104));
    assert_eq!(r.refused_entries, 1);
    let reason = r.kill_switch.as_deref().unwrap();
    assert!(
        reason.starts_with("drawdown 5.96% from the equity peak 1174"),
        "{reason}"
    );
}

#[test]
fn the_kill_switch_closes_an_open_position_at_the_next_open() {
    // RSI(2) goes 100 -> 20 at bar 3: long 10 @ 97.1 at bar 4's open (no stops). Bar 4 closes
    // at 90: marked at 89.9, equity 999 - 72 = 927, 7.3% under the day's start 1000, beyond the
    // 5% daily limit: engaged at that close; the long is closed at bar 5's open 91 - 0.1 = 90.9:
    // -62 - 2 = -64, cash 936. No later signal is taken.
    let csv = "time,open,high,low,close
2025-11-24T00:00:00Z,100,101,99,100
2025-11-24T01:00:00Z,100,103,100,102
2025-11-24T02:00:00Z,102,105,101,104
2025-11-24T03:00:00Z,104,104,95,96
2025-11-24T04:00:00Z,97,98,89,90
2025-11-24T05:00:00Z,91,92,90,91
2025-11-24T06:00:00Z,91,100,91,99
2025-11-24T07:00:00Z,99,99,80,81
2025-11-24T08:00:00Z,81,82,80,81
";
    let bars = hand_bars(csv);
    let config = hand_config(RiskConfig {
        daily_loss_limit_bps: Some(500),
        ..all_cash_no_limits()
    });
    let mut strategy = RsiSentimentStrategy::new(RsiSentimentConfig {
        rsi_period: 2,
        ..RsiSentimentConfig::default()
    })
    .unwrap();
    let result = Backtester::new(config)
        .unwrap()
        .run(&mut strategy, &bars, &[], &mut |_, _| {})
        .unwrap();
    let r = &result.report;
    assert_eq!(r.trade_count, 1);
    let t = &r.trades[0];
    assert_eq!(
        (t.exit_kind, t.exit_bar, t.exit_price, t.pnl),
        (ExitKind::KillSwitch, 5, tenths(909), money(-64))
    );
    assert!(
        t.exit_reason.starts_with("kill switch: daily loss 7.30%"),
        "{}",
        t.exit_reason
    );
    assert_eq!(r.final_equity, money(936));
    // RSI(2) after bar 4: 23.08 (bar 5), 77.78 (bar 6: a short signal), 18.52 (bar 7: a long
    // signal): both refused by the engaged switch.
    assert_eq!(r.refused_entries, 2);
    assert!(
        result.equity_curve[5..]
            .iter()
            .all(|p| p.equity == money(936))
    );
}

#[test]
fn entries_only_inside_the_session() {
    // Monday sessions 00:00-04:00 and 05:00-24:00 UTC. Bar 3's long is decided at its close,
    // 04:00, the first second outside the first session: refused. Bar 5 (decision at 06:00) is a
    // short signal inside the second session: opened at bar 6.
    let monday = 86_400;
    let mut symbol = backtest_symbol();
    symbol.schedule = TradingSchedule {
        sessions: vec![
            WeeklySession {
                start_second: monday,
                end_second: monday + 4 * 3_600,
            },
            WeeklySession {
                start_second: monday + 5 * 3_600,
                end_second: monday + 86_400,
            },
        ],
        holidays: vec![],
        changes: vec![],
    };
    let bars = hand_bars(HAND_CSV);
    let config = BacktestConfig {
        symbol,
        ..hand_config(all_cash_no_limits())
    };
    let result = Backtester::new(config)
        .unwrap()
        .run(&mut hand_strategy(), &bars, &[], &mut |_, _| {})
        .unwrap();
    let r = &result.report;
    assert_eq!(r.refused_entries, 1);
    assert_eq!((r.trades[0].side, r.trades[0].entry_bar), (Side::Sell, 6));
}

#[test]
fn sentiment_is_used_only_from_the_moment_it_was_known() {
    // A bearish reading (-0.8 x 1.0) vetoes the long decided at bar 3's close (04:00) only if it
    // was known by then.
    let bars = hand_bars(HAND_CSV);
    let backtester = Backtester::new(hand_config(all_cash_no_limits())).unwrap();
    let first_entry = |known: &str| {
        let text = format!("timestamp,score,confidence\n{known},-0.8,1.0\n");
        let sentiment = hand_readings(&text);
        let result = backtester
            .run(&mut hand_strategy(), &bars, &sentiment, &mut |_, _| {})
            .unwrap();
        result.report.trades[0].entry_bar
    };
    assert_eq!(
        first_entry("2025-11-24T04:00:00Z"),
        6,
        "known at the close: vetoed"
    );
    assert_eq!(
        first_entry("2025-11-24T04:00:00.001Z"),
        4,
        "known 1 ms later: not used"
    );
}

#[test]
fn refuses_unusable_input() {
    let backtester = Backtester::new(BacktestConfig::default()).unwrap();
    let mut strategy = hand_strategy();
    assert_eq!(
        backtester
            .run(&mut strategy, &[], &[], &mut |_, _| {})
            .unwrap_err(),
        BacktestError::NoBars
    );
    let mut bars = hand_bars(HAND_CSV);
    bars.swap(3, 4);
    assert!(matches!(
        backtester.run(&mut strategy, &bars, &[], &mut |_, _| {}),
        Err(BacktestError::Unsorted { index: 4, .. })
    ));
    bars.swap(3, 4);
    let text = "timestamp,score,confidence\n2025-11-24T01:00:00Z,0,1\n2025-11-24T02:00:00Z,0,1\n";
    let mut readings = hand_readings(text);
    readings.swap(0, 1);
    assert!(matches!(
        backtester.run(&mut strategy, &bars, &readings, &mut |_, _| {}),
        Err(BacktestError::UnsortedSentiment { index: 1, .. })
    ));
    assert!(
        Backtester::new(BacktestConfig {
            initial_cash: Money::new(0, 2),
            ..BacktestConfig::default()
        })
        .is_err()
    );
    assert!(
        Backtester::new(BacktestConfig {
            spread: Price(-1),
            ..BacktestConfig::default()
        })
        .is_err()
    );
}

/// Random-walk bars with consistent OHLC, one hour apart.
fn random_bars() -> impl PropStrategy<Value = Vec<domain::Bar>> {
    prop::collection::vec(
        (-300_i64..=300, 0_i64..200, 0_i64..200, -300_i64..=300),
        20..120,
    )
    .prop_map(|steps| {
        let mut price = 10_000_000_i64; // 100.0
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (gap, up, down, move_))| {
                let open = (price + gap * 1_000).max(1_000_000);
                let close = (open + move_ * 1_000).max(1_000_000);
                let high = open.max(close) + up * 1_000;
                let low = (open.min(close) - down * 1_000).max(500_000);
                price = close;
                domain::Bar {
                    symbol: domain::SymbolId(0),
                    timeframe: Timeframe::H1,
                    start: Timestamp(1_763_942_400_000 + i64::try_from(i).unwrap() * 3_600_000),
                    open: Price(open),
                    high: Price(high),
                    low: Price(low),
                    close: Price(close),
                    volume: 0,
                }
            })
            .collect()
    })
}

fn random_config() -> impl PropStrategy<Value = (BacktestConfig, RsiSentimentConfig)> {
    (
        (0_i64..50_000, 100_u32..300, any::<bool>()),
        0_i64..300,
        prop::option::of(1_i64..500),
        prop::option::of(1_i64..500),
        2_u32..6,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                (spread, max_size_pct, stand_aside),
                commission,
                sl,
                tp,
                period,
                long_only,
                all_cash,
            )| {
                let backtest = BacktestConfig {
                    initial_cash: Money::new(1_000_000, 2),
                    spread: Price(spread),
                    commission_per_fill: Money::new(commission, 2),
                    risk: RiskConfig {
                        sizing: if all_cash {
                            SizingRule::AllCash
                        } else {
                            SizingRule::Fixed(Volume(250))
                        },
                        daily_loss_limit_bps: Some(300),
                        max_drawdown_bps: Some(1_500),
                    },
                    ..BacktestConfig::default()
                };
                let strategy = RsiSentimentConfig {
                    rsi_period: period,
                    long_only,
                    stop_loss: sl.map(|d| Price(d * 10_000)),
                    take_profit: tp.map(|d| Price(d * 10_000)),
                    sentiment: crate::SentimentRules {
                        max_size_pct,
                        max_age_ms: 3 * 3_600_000,
                        policy: if stand_aside {
                            crate::SentimentPolicy::StandAside
                        } else {
                            crate::SentimentPolicy::Ignore
                        },
                        ..crate::SentimentRules::default()
                    },
                    ..RsiSentimentConfig::default()
                };
                (backtest, strategy)
            },
        )
}

/// Records every decision's text while delegating to the real strategy.
struct Recorder {
    inner: RsiSentimentStrategy,
    log: Vec<String>,
}

impl crate::Strategy for Recorder {
    fn warm_up(&mut self, history: &[domain::Bar]) {
        self.inner.warm_up(history);
    }
    fn on_bar(&mut self, bar: &domain::Bar, ctx: &BarContext<'_>) -> crate::Decision {
        let d = self.inner.on_bar(bar, ctx);
        self.log.push(format!("{:?} {}", d.action, d.reason));
        d
    }
}

fn run_with_sentiment(
    bars: &[domain::Bar],
    sentiment: &[domain::SentimentReading],
    config: &(BacktestConfig, RsiSentimentConfig),
) -> (BacktestResult, Vec<String>) {
    let mut recorder = Recorder {
        inner: RsiSentimentStrategy::new(config.1.clone()).unwrap(),
        log: Vec::new(),
    };
    let result = Backtester::new(config.0.clone())
        .unwrap()
        .run(&mut recorder, bars, sentiment, &mut |_, _| {})
        .unwrap();
    (result, recorder.log)
}

/// Sentiment readings at distinct random minutes over the first 120 hours.
fn random_sentiment() -> impl PropStrategy<Value = Vec<domain::SentimentReading>> {
    prop::collection::btree_map(0_i64..7_200, (-1.0_f64..=1.0, 0.0_f64..=1.0), 0..40).prop_map(
        |readings| {
            readings
                .into_iter()
                .map(|(minute, (score, confidence))| domain::SentimentReading {
                    score,
                    confidence,
                    source: "prop".into(),
                    known_at: Timestamp(1_763_942_400_000 + minute * 60_000),
                    item_count: 1,
                    summary: String::new(),
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn equity_never_changes_while_flat(
        bars in random_bars(),
        sentiment in random_sentiment(),
        config in random_config(),
    ) {
        let (result, _) = run_with_sentiment(&bars, &sentiment, &config);
        let curve = &result.equity_curve;
        prop_assert!(curve[0].exposed || curve[0].equity == config.0.initial_cash);
        for i in 1..curve.len() {
            if !curve[i - 1].exposed && !curve[i].exposed {
                prop_assert_eq!(curve[i].equity, curve[i - 1].equity, "bar {}", i);
            }
        }
        // And the report agrees with its trades: final equity = cash + sum of net PnL.
        let pnl: i64 = result.report.trades.iter().map(|t| t.pnl.minor).sum();
        prop_assert_eq!(result.report.final_equity.minor, config.0.initial_cash.minor + pnl);
    }

    #[test]
    fn the_report_alone_is_the_full_runs_report(
        bars in random_bars(),
        sentiment in random_sentiment(),
        config in random_config(),
    ) {
        let (full, _) = run_with_sentiment(&bars, &sentiment, &config);
        let mut strategy = RsiSentimentStrategy::new(config.1.clone()).unwrap();
        let alone = Backtester::new(config.0.clone())
            .unwrap()
            .run_report(&mut strategy, &bars, &sentiment)
            .unwrap();
        prop_assert!(alone.trades.is_empty());
        let mut expected = full.report;
        expected.trades.clear();
        prop_assert_eq!(alone, expected);
    }

    #[test]
    fn no_decision_uses_a_later_bar(
        bars in random_bars(),
        sentiment in random_sentiment(),
        config in random_config(),
        cut in 2_usize..20,
    ) {
        let (full, full_log) = run_with_sentiment(&bars, &sentiment, &config);
        let k = bars.len() - cut.min(bars.len() - 2);
        // The future removed: bars from k on, and sentiment known after bar k-2's close.
        let horizon = bars[k - 2].start.plus_millis(3_600_000);
        let known: Vec<_> = sentiment.iter().filter(|r| r.known_at <= horizon).cloned().collect();
        let (part, part_log) = run_with_sentiment(&bars[..k], &known, &config);
        // Bar k-1 is the truncated run's last bar, where the end-of-data close happens; every
        // earlier mark, decision and finished trade is the same whatever follows.
        prop_assert_eq!(&full.equity_curve[..k - 1], &part.equity_curve[..k - 1]);
        prop_assert_eq!(&full_log[..k - 1], &part_log[..k - 1]);
        let done = |r: &BacktestResult| r.report.trades.iter().filter(|t| t.exit_bar < k - 1).cloned().collect::<Vec<_>>();
        prop_assert_eq!(done(&full), done(&part));
    }
}

#[test]
fn parses_size_and_money_options() {
    assert_eq!(parse_size("all"), Ok(SizingRule::AllCash));
    assert_eq!(parse_size("ALL"), Ok(SizingRule::AllCash));
    assert_eq!(parse_size("2.5"), Ok(SizingRule::Fixed(Volume(250))));
    assert!(parse_size("0").is_err());
    assert!(parse_size("1.234").is_err());
    assert!(parse_size("some").is_err());
    assert_eq!(parse_money("10000", 2), Ok(Money::new(1_000_000, 2)));
    assert_eq!(parse_money("2.5", 2), Ok(Money::new(250, 2)));
    assert!(parse_money("2.555", 2).is_err());
    assert!(parse_money("ten", 2).is_err());
}

/// The hand-worked run with prices in MYR and the account in USD at a constant 0.25: fixed size,
/// no commission, so each trade's PnL is exactly a quarter of the same-currency run's.
#[test]
fn a_quote_to_account_rate_converts_every_trade() {
    let bars = hand_bars(HAND_CSV);
    let run = |conversion: QuoteConversion| {
        let config = BacktestConfig {
            commission_per_fill: Money::zero(2),
            conversion,
            currencies: Currencies {
                quote: "MYR".into(),
                account: "USD".into(),
            },
            ..hand_config(RiskConfig {
                sizing: SizingRule::Fixed(Volume(1_000)),
                daily_loss_limit_bps: None,
                max_drawdown_bps: None,
            })
        };
        Backtester::new(config)
            .unwrap()
            .run(&mut hand_strategy(), &bars, &[], &mut |_, _| {})
            .unwrap()
            .report
    };
    let same = run(QuoteConversion::Same);
    let quarter = ConversionRate::from_price(Price(25_000)).unwrap();
    let usd = run(QuoteConversion::Constant(quarter));
    assert_eq!(same.trade_count, usd.trade_count);
    assert!(usd.trade_count >= 3);
    for (a, b) in same.trades.iter().zip(&usd.trades) {
        assert_eq!(b.pnl.minor * 4, a.pnl.minor, "{a:?} vs {b:?}");
    }
    assert_eq!(usd.currencies.account, "USD");
    // A series uses the latest rate known at each time: the first rate before it.
    let half = ConversionRate::from_price(Price(50_000)).unwrap();
    let series = QuoteConversion::Series(vec![(bars[0].start, quarter), (bars[9].start, half)]);
    assert_eq!(series.rate_at(Timestamp(0)), quarter);
    assert_eq!(series.rate_at(bars[8].start), quarter);
    assert_eq!(series.rate_at(bars[9].start), half);
    assert_eq!(series.rate_at(bars[13].start), half);
}

/// The same-currency fast path of the ledger rounds exactly as the general conversion does.
#[test]
fn the_same_currency_ledger_rounds_as_the_conversion() {
    for digits in 0..=6_u8 {
        let ledger = Ledger {
            digits,
            half_spread_down: 0,
            half_spread_up: 0,
            commission: 0,
            e7_per_minor: 10_i64.pow(7 - u32::from(digits)),
        };
        for (entry, exit, volume) in [
            (100_000_i64, 150_000_i64, 1_i64),
            (412_512_345, 412_500_000, 7),
            (412_500_000, 412_512_345, 13),
            (1, 6, 1),
            (6, 1, 1),
            (1, 51, 1),
            (51, 1, 3),
            (400_000_000, 100_000, 123_456_789),
        ] {
            for side in [Side::Buy, Side::Sell] {
                let fast = ledger.pnl(
                    side,
                    Price(entry),
                    Price(exit),
                    Volume(volume),
                    ConversionRate::IDENTITY,
                );
                let e7 = price_move_e7(side, Price(entry), Price(exit), Volume(volume)).unwrap();
                let general = ConversionRate::IDENTITY
                    .convert_e7_minor(e7, digits)
                    .unwrap();
                assert_eq!(
                    fast, general,
                    "{side:?} {entry} {exit} {volume} at {digits} digits"
                );
            }
        }
    }
}
