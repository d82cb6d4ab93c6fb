//! The backtest engine: a pure loop over bars that fills decisions at the next bar's open, and
//! the statistics of its result. Reading files and drawing results live in crate `research`.
//!
//! The exact semantics are in `docs/backtesting.md`; the comments below say where each rule lives.

mod stats;

use domain::{
    Bar, ConversionRate, KillSwitchState, Money, Price, SentimentReading, Side, SymbolId,
    SymbolSpec, Timestamp, TradingSchedule, Volume, price_move_e7,
};
use serde::{Serialize, Serializer};

use crate::ConfigError;
use crate::decision::{Action, BarContext, Entry, PositionView, Reason, Strategy};
use crate::risk::{RiskConfig, RiskGate, SizingRule};

/// Settings of a backtest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestConfig {
    /// Starting cash (its `digits` is the precision of every amount in the results).
    pub initial_cash: Money,
    /// Full bid-ask spread around the CSV prices, which are taken as mid prices.
    pub spread: Price,
    /// Commission charged on every fill (entry and exit each pay it).
    pub commission_per_fill: Money,
    /// Sizing and the kill-switch limits.
    pub risk: RiskConfig,
    /// The symbol traded: volume limits and trading schedule.
    pub symbol: SymbolSpec,
    /// How amounts in the symbol's quote currency become the account's currency.
    pub conversion: QuoteConversion,
    /// The names of the two currencies, for the report (e.g. quote `MYR`, account `USD`).
    pub currencies: Currencies,
}

/// The currency prices are quoted in and the one the account (cash, PnL, equity) is kept in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Currencies {
    /// The symbol's quote currency.
    pub quote: String,
    /// The account's currency.
    pub account: String,
}

impl Default for Currencies {
    /// Both unnamed: the same currency.
    fn default() -> Currencies {
        Currencies {
            quote: "quote".to_owned(),
            account: "quote".to_owned(),
        }
    }
}

/// Units of account currency per unit of quote currency over the backtest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QuoteConversion {
    /// The symbol is quoted in the account's currency.
    #[default]
    Same,
    /// One rate throughout (`--quote-to-account RATE`).
    Constant(ConversionRate),
    /// Rates known from each time on, sorted by time (`--quote-to-account FILE.csv`); a time
    /// before the first rate uses the first, so nothing is looked up from the future but the
    /// opening rate.
    Series(Vec<(Timestamp, ConversionRate)>),
}

impl QuoteConversion {
    /// The rate in force at `at`: the latest known at or before it.
    pub fn rate_at(&self, at: Timestamp) -> ConversionRate {
        match self {
            QuoteConversion::Same => ConversionRate::IDENTITY,
            QuoteConversion::Constant(rate) => *rate,
            QuoteConversion::Series(rates) => {
                let after = rates.partition_point(|(t, _)| *t <= at);
                rates
                    .get(after.saturating_sub(1))
                    .map_or(ConversionRate::IDENTITY, |(_, r)| *r)
            }
        }
    }
}

impl Default for BacktestConfig {
    /// 10,000.00 cash, no spread, no commission, default risk rules, [`backtest_symbol`].
    fn default() -> BacktestConfig {
        BacktestConfig {
            initial_cash: Money::new(1_000_000, 2),
            spread: Price::ZERO,
            commission_per_fill: Money::zero(2),
            risk: RiskConfig::default(),
            symbol: backtest_symbol(),
            conversion: QuoteConversion::Same,
            currencies: Currencies::default(),
        }
    }
}

/// A symbol for backtests of CSV data: always open, volumes from 0.01 unit in steps of 0.01.
pub fn backtest_symbol() -> SymbolSpec {
    SymbolSpec {
        id: SymbolId(0),
        name: "BACKTEST".to_owned(),
        digits: 5,
        pip_position: 0,
        lot_size: Volume(100),
        min_volume: Volume(1),
        max_volume: Volume(i64::MAX / 4),
        step_volume: Volume(1),
        schedule: TradingSchedule::always_open(),
        commission: None,
    }
}

/// Parses `--size`: `all` (whole units the cash affords) or a number of units such as `2.5`.
pub fn parse_size(text: &str) -> Result<SizingRule, ConfigError> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(SizingRule::AllCash);
    }
    match Volume::parse_units(text) {
        Ok(volume) if volume.is_positive() => Ok(SizingRule::Fixed(volume)),
        _ => Err(ConfigError::invalid(
            "size",
            text,
            "expected `all` or a positive number of units with at most 2 decimals",
        )),
    }
}

/// Parses an amount of money such as `10000` or `2.50` at `digits` decimals (e.g. `--cash`,
/// `--commission`); more decimals than `digits` are refused rather than dropped.
pub fn parse_money(text: &str, digits: u8) -> Result<Money, ConfigError> {
    let refuse = |reason| ConfigError::invalid("amount", text, reason);
    // A price parses the same decimal grammar at 5 decimals.
    let fine =
        Price::parse(text).map_err(|_| refuse("not a decimal number with at most 5 decimals"))?;
    let exact = Money::new(fine.raw(), 5);
    let money = exact
        .rescale(digits)
        .ok_or_else(|| refuse("out of range"))?;
    if money.rescale(5) != Some(exact) {
        return Err(refuse("more decimals than the account currency has"));
    }
    Ok(money)
}

/// Why a trade ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// The strategy decided to close (filled at the next bar's open).
    Signal,
    /// The stop-loss was touched inside a bar.
    StopLoss,
    /// The take-profit was touched inside a bar.
    TakeProfit,
    /// The kill switch engaged (filled at the next bar's open).
    KillSwitch,
    /// The data ended: closed at the last bar's open.
    EndOfData,
}

impl ExitKind {
    /// The name used in the trades CSV.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitKind::Signal => "signal",
            ExitKind::StopLoss => "stop_loss",
            ExitKind::TakeProfit => "take_profit",
            ExitKind::KillSwitch => "kill_switch",
            ExitKind::EndOfData => "end_of_data",
        }
    }
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn display_opt<T: std::fmt::Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

fn side_name<S: Serializer>(side: &Side, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *side == Side::Buy { "long" } else { "short" })
}

/// One closed trade. Amounts are exact decimals (serialized as strings); times are bar starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeRecord {
    /// Long or short.
    #[serde(serialize_with = "side_name")]
    pub side: Side,
    /// Volume (units of the instrument).
    #[serde(serialize_with = "display")]
    pub volume: Volume,
    /// Start of the bar whose open filled the entry.
    #[serde(serialize_with = "display")]
    pub entry_time: Timestamp,
    /// Entry fill price (spread included).
    #[serde(serialize_with = "display")]
    pub entry_price: Price,
    /// Start of the bar in which the exit filled.
    #[serde(serialize_with = "display")]
    pub exit_time: Timestamp,
    /// Exit fill price (spread included).
    #[serde(serialize_with = "display")]
    pub exit_price: Price,
    /// Profit after both commissions.
    #[serde(serialize_with = "display")]
    pub pnl: Money,
    /// Both commissions.
    #[serde(serialize_with = "display")]
    pub commission: Money,
    /// Why it ended.
    pub exit_kind: ExitKind,
    /// Index of the entry bar.
    pub entry_bar: usize,
    /// Index of the exit bar.
    pub exit_bar: usize,
    /// The strategy's reason for the entry.
    pub entry_reason: String,
    /// The reason for the exit.
    pub exit_reason: String,
}

/// Equity marked at one bar's close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EquityPoint {
    /// The bar's start.
    pub time: Timestamp,
    /// Cash plus the open position valued at the price it could be closed at (close ∓ half spread).
    pub equity: Money,
    /// True when a position was open at some moment of this bar.
    pub exposed: bool,
}

/// The statistics of a run (what the terminal table and the JSON report show). Formulas:
/// `docs/backtesting.md`. Ratios are `None` (JSON `null`) when undefined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The quote and account currencies: every amount below is in the account's.
    pub currencies: Currencies,
    /// Bars processed.
    pub bars: usize,
    /// Start of the first bar.
    #[serde(serialize_with = "display")]
    pub first_bar: Timestamp,
    /// Start of the last bar.
    #[serde(serialize_with = "display")]
    pub last_bar: Timestamp,
    /// Starting cash.
    #[serde(serialize_with = "display")]
    pub initial_equity: Money,
    /// Equity at the last close.
    #[serde(serialize_with = "display")]
    pub final_equity: Money,
    /// Highest equity marked at a close (or the starting cash).
    #[serde(serialize_with = "display")]
    pub peak_equity: Money,
    /// (final − initial) / initial, in percent.
    pub return_pct: f64,
    /// Geometric mean daily return compounded over a year of trading days, in percent.
    pub annual_return_pct: Option<f64>,
    /// Compound annual growth rate over the calendar time spanned, in percent.
    pub cagr_pct: Option<f64>,
    /// Annualised volatility of daily returns, in percent.
    pub volatility_pct: Option<f64>,
    /// Last close / first open − 1, in percent, no costs.
    pub buy_and_hold_return_pct: f64,
    /// Largest fall of the close-marked equity from its running peak, in percent of the peak.
    pub max_drawdown_pct: f64,
    /// Longest time from a peak back to a new peak (or to the end), in milliseconds.
    pub max_drawdown_duration_ms: Option<i64>,
    /// Closed trades.
    pub trade_count: usize,
    /// Share of closed trades with positive PnL, in percent (None without trades).
    pub win_rate_pct: Option<f64>,
    /// Gross profit / gross loss of closed trades (None without a losing trade).
    pub profit_factor: Option<f64>,
    /// Mean net PnL per trade (truncated to the minor unit).
    #[serde(serialize_with = "display_opt")]
    pub expectancy: Option<Money>,
    /// Mean net PnL of the winning trades.
    #[serde(serialize_with = "display_opt")]
    pub average_win: Option<Money>,
    /// Mean net PnL of the losing trades.
    #[serde(serialize_with = "display_opt")]
    pub average_loss: Option<Money>,
    /// Highest net PnL of a trade.
    #[serde(serialize_with = "display_opt")]
    pub best_trade: Option<Money>,
    /// Lowest net PnL of a trade.
    #[serde(serialize_with = "display_opt")]
    pub worst_trade: Option<Money>,
    /// Mean time from entry fill to exit bar, in milliseconds.
    pub average_trade_duration_ms: Option<i64>,
    /// Longest time from entry fill to exit bar, in milliseconds.
    pub longest_trade_duration_ms: Option<i64>,
    /// Annualised return / annualised volatility (backtesting.py's definition, risk-free 0).
    pub sharpe: Option<f64>,
    /// Annualised return / annualised downside deviation (backtesting.py's definition).
    pub sortino: Option<f64>,
    /// Annualised return / maximum drawdown (as fractions).
    pub calmar: Option<f64>,
    /// System quality number: √trades × mean PnL / standard deviation of PnL.
    pub sqn: Option<f64>,
    /// Most losing trades in a row.
    pub longest_losing_streak: usize,
    /// Share of bars with a position open at some moment, in percent.
    pub exposure_pct: f64,
    /// Commission paid.
    #[serde(serialize_with = "display")]
    pub total_commission: Money,
    /// Entry decisions refused by the risk rules (schedule, size below minimum, kill switch).
    pub refused_entries: usize,
    /// Why the kill switch engaged, if it did.
    #[serde(serialize_with = "display_opt")]
    pub kill_switch: Option<String>,
    /// When the kill switch engaged (the equity mark that engaged it), if it did.
    #[serde(serialize_with = "display_opt")]
    pub kill_switch_at: Option<Timestamp>,
    /// Every closed trade.
    pub trades: Vec<TradeRecord>,
}

/// A run's report and its equity curve (one point per bar).
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    /// Statistics and trades.
    pub report: Report,
    /// Equity at every close.
    pub equity_curve: Vec<EquityPoint>,
}

/// A backtest that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    /// No bars.
    #[error("no bars to backtest")]
    NoBars,
    /// Bars out of order (the CSV reader refuses these; a caller building bars itself may not).
    #[error("bar {index} at {at} does not come after the previous bar")]
    Unsorted {
        /// Index of the offending bar.
        index: usize,
        /// Its start.
        at: Timestamp,
    },
    /// Sentiment readings out of order: the engine walks them by `known_at`.
    #[error("sentiment reading {index} known at {at} comes before the previous reading")]
    UnsortedSentiment {
        /// Index of the offending reading.
        index: usize,
        /// Its `known_at`.
        at: Timestamp,
    },
    /// An amount left the range of a 64-bit integer.
    #[error("amounts overflowed at bar {index}: reduce cash or volume")]
    Overflow {
        /// The bar being processed.
        index: usize,
    },
}

impl BacktestError {
    /// Running the same backtest again gives the same error.
    pub const fn is_transient(&self) -> bool {
        false
    }
}

/// How often the progress callback is called, in bars.
const PROGRESS_EVERY: usize = 1 << 16;

/// Runs strategies over bars with the configured costs and risk rules.
#[derive(Debug, Clone)]
pub struct Backtester {
    config: BacktestConfig,
    gate: RiskGate,
}

/// The open position inside a run.
#[derive(Debug, Clone)]
struct OpenTrade {
    side: Side,
    volume: Volume,
    entry_price: Price,
    entry_time: Timestamp,
    entry_bar: usize,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    commission: i128,
    reason: Why,
}

/// What fills at the next bar's open.
#[derive(Debug, Clone)]
enum Pending {
    Close { kind: ExitKind, reason: Why },
    Open { entry: Entry, reason: Why },
    Reverse { entry: Entry, reason: Why },
}

/// Why a trade opened or ended, turned into text only when the trade list is kept (a search
/// keeps none, and formatting was a good part of its time).
#[derive(Debug, Clone)]
enum Why {
    /// The strategy's reason.
    Decision(Reason),
    /// Already a sentence.
    Text(String),
    /// A stop-loss or take-profit level touched inside a bar.
    Touched(ExitKind, Price),
    /// The data ended with the position open.
    EndOfData,
}

impl Why {
    fn text(self) -> String {
        match self {
            Why::Decision(reason) => reason.to_string(),
            Why::Text(text) => text,
            Why::Touched(kind, level) => {
                let what = if kind == ExitKind::StopLoss {
                    "stop-loss"
                } else {
                    "take-profit"
                };
                format!("{what} at {level} touched inside the bar")
            }
            Why::EndOfData => "end of data: closed at the last bar's open".to_owned(),
        }
    }
}

/// Money arithmetic of a run, in minor units at the cash's precision.
#[derive(Debug, Clone, Copy)]
struct Ledger {
    digits: u8,
    half_spread_down: i64,
    half_spread_up: i64,
    commission: i128,
    /// 10^(7 − digits): from 1e-7 units to minor units (0 when digits ≥ 7).
    e7_per_minor: i64,
}

impl Ledger {
    /// Price a buyer pays at `mid`.
    const fn buy_price(&self, mid: Price) -> Price {
        Price(mid.0.saturating_add(self.half_spread_up))
    }

    /// Price a seller gets at `mid`.
    const fn sell_price(&self, mid: Price) -> Price {
        Price(mid.0.saturating_sub(self.half_spread_down))
    }

    /// Fill price for opening (`closing == false`) or closing a position of `side` at `mid`.
    const fn fill(&self, side: Side, closing: bool, mid: Price) -> Price {
        match (side, closing) {
            (Side::Buy, false) | (Side::Sell, true) => self.buy_price(mid),
            (Side::Sell, false) | (Side::Buy, true) => self.sell_price(mid),
        }
    }

    /// Profit of a price move in account-currency minor units at `rate` (saturating: an overflow
    /// surfaces as [`BacktestError::Overflow`] when the amount is turned into money).
    fn pnl(
        &self,
        side: Side,
        entry: Price,
        exit: Price,
        volume: Volume,
        rate: ConversionRate,
    ) -> i128 {
        let e7 = price_move_e7(side, entry, exit, volume).unwrap_or(i128::MAX);
        // The same currency (most backtests): 64-bit arithmetic, rounded exactly as
        // `convert_e7_minor` rounds (half away from zero), without a 128-bit division per bar.
        if rate == ConversionRate::IDENTITY
            && self.e7_per_minor > 0
            && let Ok(e) = i64::try_from(e7)
        {
            let scale = self.e7_per_minor;
            let half = scale / 2;
            let rounded = if e >= 0 {
                e.checked_add(half)
            } else {
                e.checked_sub(half)
            };
            if let Some(r) = rounded {
                return i128::from(r / scale);
            }
        }
        rate.convert_e7_minor(e7, self.digits).unwrap_or(if e7 < 0 {
            i128::MIN / 2
        } else {
            i128::MAX / 2
        })
    }

    fn money(&self, minor: i128, index: usize) -> Result<Money, BacktestError> {
        i64::try_from(minor)
            .map(|m| Money::new(m, self.digits))
            .map_err(|_| BacktestError::Overflow { index })
    }
}

impl Backtester {
    /// A backtester with validated settings.
    pub fn new(config: BacktestConfig) -> Result<Backtester, ConfigError> {
        if config.initial_cash.minor <= 0 {
            return Err(ConfigError::invalid(
                "cash",
                config.initial_cash,
                "must be positive",
            ));
        }
        if config.spread.raw() < 0 {
            return Err(ConfigError::invalid(
                "spread",
                config.spread,
                "must not be negative",
            ));
        }
        if config.commission_per_fill.minor < 0 {
            return Err(ConfigError::invalid(
                "commission",
                config.commission_per_fill,
                "must not be negative",
            ));
        }
        if config.commission_per_fill.digits > config.initial_cash.digits {
            return Err(ConfigError::invalid(
                "commission",
                config.commission_per_fill,
                "has more decimals than the cash",
            ));
        }
        let gate = RiskGate::new(config.risk.clone(), config.symbol.clone())?;
        Ok(Backtester { config, gate })
    }

    /// The settings.
    pub const fn config(&self) -> &BacktestConfig {
        &self.config
    }

    /// Runs `strategy` over `bars` (oldest first) with `sentiment` readings (sorted by `known_at`),
    /// calling `progress(done, total)` every 65,536 bars and once at the end.
    pub fn run<S: Strategy + ?Sized>(
        &self,
        strategy: &mut S,
        bars: &[Bar],
        sentiment: &[SentimentReading],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<BacktestResult, BacktestError> {
        let (report, equity_curve) =
            self.simulate::<S, true>(strategy, bars, sentiment, progress)?;
        Ok(BacktestResult {
            report,
            equity_curve,
        })
    }

    /// The report [`Backtester::run`] gives, without its trade list (`trades` is empty): the
    /// run keeps no equity curve and writes no trade's reasons, which is what a parameter
    /// search needs, in a fraction of the time and memory.
    pub fn run_report<S: Strategy + ?Sized>(
        &self,
        strategy: &mut S,
        bars: &[Bar],
        sentiment: &[SentimentReading],
    ) -> Result<Report, BacktestError> {
        self.simulate::<S, false>(strategy, bars, sentiment, &mut |_, _| {})
            .map(|(report, _)| report)
    }

    /// The run; `KEEP` keeps the equity curve and the trade list.
    ///
    /// Per bar `i`: (1) fill what bar `i − 1` decided at bar `i`'s open (on the last bar: only
    /// closes, then any open position is closed there too); (2) stop-loss / take-profit inside the
    /// bar, the stop first when both are touched; (3) mark equity at the close; (4) the kill switch
    /// sees that equity; (5) the strategy decides at the close, seeing only bars `0..=i` and
    /// sentiment known by the close.
    fn simulate<S: Strategy + ?Sized, const KEEP: bool>(
        &self,
        strategy: &mut S,
        bars: &[Bar],
        sentiment: &[SentimentReading],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Report, Vec<EquityPoint>), BacktestError> {
        let (first, last) = match (bars.first(), bars.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(BacktestError::NoBars),
        };
        if let Some(index) = (1..bars.len()).find(|&i| bars[i].start <= bars[i - 1].start) {
            return Err(BacktestError::Unsorted {
                index,
                at: bars[index].start,
            });
        }
        if let Some(index) =
            (1..sentiment.len()).find(|&i| sentiment[i].known_at < sentiment[i - 1].known_at)
        {
            return Err(BacktestError::UnsortedSentiment {
                index,
                at: sentiment[index].known_at,
            });
        }
        let digits = self.config.initial_cash.digits;
        let spread = self.config.spread.raw();
        let ledger = Ledger {
            digits,
            half_spread_down: spread / 2,
            half_spread_up: spread - spread / 2,
            commission: i128::from(
                self.config
                    .commission_per_fill
                    .rescale(digits)
                    .map_or(0, |m| m.minor),
            ),
            e7_per_minor: if digits < 7 {
                10_i64.pow(7 - u32::from(digits))
            } else {
                0
            },
        };
        let mut run = Run {
            gate: &self.gate,
            conversion: &self.config.conversion,
            ledger,
            cash: i128::from(self.config.initial_cash.minor),
            position: None,
            keep: KEEP,
            trades: Vec::new(),
            figures: Vec::new(),
            commission_paid: 0,
            refused: 0,
        };
        let mut kill = KillSwitchState::default();
        // The kill switch sees the same equity on the same UTC day again on most bars (flat, or
        // the carried mark at the next open): nothing can change then (same peak, same day
        // start, same verdict), so the gate is asked only when the day or the equity moved.
        let mut last_seen: Option<(i64, Money)> = None;
        // The UTC day of the previous observation, as its first and past-the-end millisecond:
        // the day is worked out again only when a time falls outside it.
        let mut day_span = (0_i64, 0_i64, 0_i64);
        let gate = &self.gate;
        let mut observe = |kill: &mut KillSwitchState, equity: Money, at: Timestamp| {
            let t = at.millis();
            if t < day_span.0 || t >= day_span.1 {
                let d = at.epoch_day();
                day_span = (d * Timestamp::DAY_MS, (d + 1) * Timestamp::DAY_MS, d);
            }
            let key = (day_span.2, equity);
            if last_seen == Some(key) {
                return false;
            }
            last_seen = Some(key);
            gate.observe_equity(kill, equity, at)
        };
        let mut pending: Option<Pending> = None;
        let mut curve: Vec<EquityPoint> = Vec::with_capacity(if KEEP { bars.len() } else { 0 });
        let mut marks = stats::CurveStats::new(self.config.initial_cash.minor);
        let mut equity = run.cash;
        let mut next_reading = 0usize;
        let total = bars.len();
        let last_index = total - 1;

        for (i, bar) in bars.iter().enumerate() {
            // The day's reference equity is the equity carried into its first bar.
            let carried = ledger.money(equity, i)?;
            if observe(&mut kill, carried, bar.start) && run.position.is_some() {
                pending = Some(kill_close(&kill));
            }

            // (1) Fills at the open.
            if let Some(action) = pending.take() {
                run.fill_pending(action, bar, i, i == last_index)?;
            }
            if i == last_index
                && let Some(trade) = run.position.take()
            {
                let exit = ledger.fill(trade.side, true, bar.open);
                run.close(
                    trade,
                    exit,
                    bar.start,
                    i,
                    ExitKind::EndOfData,
                    Why::EndOfData,
                );
            }
            let exposed = run.position.is_some();

            // (2) Stops inside the bar.
            run.check_stops(bar, i);

            // (3) Mark at the close.
            let close_time = bar.start.plus_millis(bar.timeframe.millis());
            equity = run.cash + run.unrealized(bar.close, close_time);
            let marked = ledger.money(equity, i)?;
            let point = EquityPoint {
                time: bar.start,
                equity: marked,
                exposed,
            };
            marks.mark(point);
            if KEEP {
                curve.push(point);
            }

            // (4) Kill switch on the close's equity, attributed to the bar's own day.
            let engaged_now = observe(&mut kill, marked, close_time.plus_millis(-1));

            // (5) Decide at the close.
            while sentiment
                .get(next_reading)
                .is_some_and(|r| r.known_at <= close_time)
            {
                next_reading += 1;
            }
            let ctx = BarContext {
                now: close_time,
                position: run.position.as_ref().map(|t| PositionView {
                    side: t.side,
                    entry_price: t.entry_price,
                    volume: t.volume,
                }),
                sentiment: next_reading.checked_sub(1).and_then(|k| sentiment.get(k)),
            };
            let decision = strategy.on_bar(bar, &ctx);
            if kill.engaged {
                if engaged_now && run.position.is_some() {
                    pending = Some(kill_close(&kill));
                } else if matches!(decision.action, Action::Open(_) | Action::Reverse(_)) {
                    run.refused += 1;
                }
                if matches!(decision.action, Action::Close | Action::Reverse(_))
                    && run.position.is_some()
                    && pending.is_none()
                {
                    pending = Some(Pending::Close {
                        kind: ExitKind::Signal,
                        reason: Why::Decision(decision.reason),
                    });
                }
            } else {
                pending = match decision.action {
                    Action::Hold => None,
                    Action::Close if run.position.is_some() => Some(Pending::Close {
                        kind: ExitKind::Signal,
                        reason: Why::Decision(decision.reason),
                    }),
                    Action::Close => None,
                    Action::Open(entry) | Action::Reverse(entry) => {
                        let closes_first =
                            matches!(decision.action, Action::Reverse(_)) && run.position.is_some();
                        let holding = run.position.is_some() && !closes_first;
                        match self.gate.check_entry(&kill, close_time, holding) {
                            Ok(()) => Some(if closes_first {
                                Pending::Reverse {
                                    entry,
                                    reason: Why::Decision(decision.reason),
                                }
                            } else {
                                Pending::Open {
                                    entry,
                                    reason: Why::Decision(decision.reason),
                                }
                            }),
                            Err(refusal) => {
                                run.refused += 1;
                                closes_first.then(|| Pending::Close {
                                    kind: ExitKind::Signal,
                                    reason: Why::Text(format!(
                                        "{}; entry refused: {refusal}",
                                        decision.reason
                                    )),
                                })
                            }
                        }
                    }
                };
            }
            if (i + 1) % PROGRESS_EVERY == 0 {
                progress(i + 1, total);
            }
        }
        progress(total, total);

        let facts = stats::RunFacts {
            total_commission: ledger.money(run.commission_paid, last_index)?,
            refused_entries: run.refused,
            kill_switch: kill.reason.clone(),
            kill_switch_at: kill.engaged_at,
        };
        let report = stats::summarize(
            &self.config,
            first,
            last,
            marks,
            &run.figures,
            run.trades,
            facts,
        );
        Ok((report, curve))
    }
}

fn kill_close(kill: &KillSwitchState) -> Pending {
    Pending::Close {
        kind: ExitKind::KillSwitch,
        reason: Why::Text(format!(
            "kill switch: {}",
            kill.reason.as_deref().unwrap_or("engaged")
        )),
    }
}

/// The mutable state of one run.
struct Run<'a> {
    gate: &'a RiskGate,
    conversion: &'a QuoteConversion,
    ledger: Ledger,
    cash: i128,
    position: Option<OpenTrade>,
    /// Keep the trade list (with its texts); the figures are kept always.
    keep: bool,
    trades: Vec<TradeRecord>,
    figures: Vec<stats::TradeFigures>,
    commission_paid: i128,
    refused: usize,
}

impl Run<'_> {
    fn unrealized(&self, mid: Price, at: Timestamp) -> i128 {
        self.position.as_ref().map_or(0, |t| {
            let exit = self.ledger.fill(t.side, true, mid);
            let rate = self.conversion.rate_at(at);
            self.ledger.pnl(t.side, t.entry_price, exit, t.volume, rate)
        })
    }

    fn close(
        &mut self,
        trade: OpenTrade,
        exit_price: Price,
        at: Timestamp,
        index: usize,
        kind: ExitKind,
        reason: Why,
    ) {
        let rate = self.conversion.rate_at(at);
        let gross = self.ledger.pnl(
            trade.side,
            trade.entry_price,
            exit_price,
            trade.volume,
            rate,
        );
        let commission = self.ledger.commission;
        self.cash += gross - commission;
        self.commission_paid += commission;
        let total_commission = trade.commission + commission;
        let digits = self.ledger.digits;
        // Saturate rather than fail: a single trade's PnL beyond i64 minor units is not a real case,
        // and equity overflow is reported by the mark that follows.
        let clamp = |v: i128| {
            Money::new(
                i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX }),
                digits,
            )
        };
        let pnl = clamp(gross - total_commission);
        self.figures.push(stats::TradeFigures {
            pnl: pnl.minor,
            duration_ms: at.millis_since(trade.entry_time),
        });
        if !self.keep {
            return;
        }
        self.trades.push(TradeRecord {
            side: trade.side,
            volume: trade.volume,
            entry_time: trade.entry_time,
            entry_price: trade.entry_price,
            exit_time: at,
            exit_price,
            pnl,
            commission: clamp(total_commission),
            exit_kind: kind,
            entry_bar: trade.entry_bar,
            exit_bar: index,
            entry_reason: trade.reason.text(),
            exit_reason: reason.text(),
        });
    }

    fn fill_pending(
        &mut self,
        action: Pending,
        bar: &Bar,
        index: usize,
        is_last: bool,
    ) -> Result<(), BacktestError> {
        let (entry, reason) = match action {
            Pending::Close { kind, reason } => {
                if let Some(trade) = self.position.take() {
                    let exit = self.ledger.fill(trade.side, true, bar.open);
                    self.close(trade, exit, bar.start, index, kind, reason);
                }
                return Ok(());
            }
            Pending::Reverse { entry, reason } => {
                if let Some(trade) = self.position.take() {
                    let exit = self.ledger.fill(trade.side, true, bar.open);
                    self.close(
                        trade,
                        exit,
                        bar.start,
                        index,
                        ExitKind::Signal,
                        reason.clone(),
                    );
                }
                (entry, reason)
            }
            Pending::Open { entry, reason } => (entry, reason),
        };
        // A position opened at the last bar's open would be closed at the same price at once.
        if is_last || self.position.is_some() {
            return Ok(());
        }
        let price = self.ledger.fill(entry.side, false, bar.open);
        let available = self.cash - self.ledger.commission;
        let available = self.ledger.money(available.max(0), index)?;
        let rate = self.conversion.rate_at(bar.start);
        let volume = match self.gate.size(&entry, available, price, rate) {
            Ok(v) => v,
            Err(_) => {
                self.refused += 1;
                return Ok(());
            }
        };
        self.cash -= self.ledger.commission;
        self.commission_paid += self.ledger.commission;
        let (sl, tp) = match entry.side {
            Side::Buy => (
                entry.stop_loss.map(|d| Price(price.0 - d.0)),
                entry.take_profit.map(|d| Price(price.0 + d.0)),
            ),
            Side::Sell => (
                entry.stop_loss.map(|d| Price(price.0 + d.0)),
                entry.take_profit.map(|d| Price(price.0 - d.0)),
            ),
        };
        self.position = Some(OpenTrade {
            side: entry.side,
            volume,
            entry_price: price,
            entry_time: bar.start,
            entry_bar: index,
            stop_loss: sl,
            take_profit: tp,
            commission: self.ledger.commission,
            reason,
        });
        Ok(())
    }

    /// Stop-loss and take-profit inside the bar, on the side of the book that closes the
    /// position (bid for a long, ask for a short). A gap through a level fills at the open.
    fn check_stops(&mut self, bar: &Bar, index: usize) {
        let Some(trade) = &self.position else { return };
        if trade.stop_loss.is_none() && trade.take_profit.is_none() {
            return;
        }
        let l = self.ledger;
        let (open, high, low) = (
            l.fill(trade.side, true, bar.open),
            l.fill(trade.side, true, bar.high),
            l.fill(trade.side, true, bar.low),
        );
        let hit = match trade.side {
            Side::Buy => {
                if let Some(sl) = trade.stop_loss.filter(|&sl| low <= sl) {
                    Some((ExitKind::StopLoss, sl.min(open), sl))
                } else {
                    trade
                        .take_profit
                        .filter(|&tp| high >= tp)
                        .map(|tp| (ExitKind::TakeProfit, tp.max(open), tp))
                }
            }
            Side::Sell => {
                if let Some(sl) = trade.stop_loss.filter(|&sl| high >= sl) {
                    Some((ExitKind::StopLoss, sl.max(open), sl))
                } else {
                    trade
                        .take_profit
                        .filter(|&tp| low <= tp)
                        .map(|tp| (ExitKind::TakeProfit, tp.min(open), tp))
                }
            }
        };
        if let Some((kind, price, level)) = hit
            && let Some(trade) = self.position.take()
        {
            self.close(
                trade,
                price,
                bar.start,
                index,
                kind,
                Why::Touched(kind, level),
            );
        }
    }
}

#[cfg(test)]
mod tests;
