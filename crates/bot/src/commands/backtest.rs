//! `backtest`: replay the live strategy and risk rules over a CSV of bars and report the result.
//!
//! Strategy and risk parameters default to the same settings `run` uses (defaults, `--config`
//! file, environment); a flag overrides its setting and is validated by the same rules, so a
//! parameter means the same thing live and here. The semantics are in `docs/backtesting.md`.
//!
//! Exit status: 0 done; 2 bad option, configuration or input data (nothing is run); 1 an
//! unexpected I/O failure (reading an open file, writing an output).

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use domain::{Bar, ConversionRate, Price, SentimentReading, Timeframe};
use strategy::backtest::{
    BacktestConfig, BacktestResult, Backtester, Currencies, OhlcOptions, QuoteConversion,
    backtest_symbol, parse_money, parse_size, read_ohlc_csv, read_rates_csv, read_sentiment_csv,
    render_equity_svg, render_table, write_trades_csv,
};
use strategy::{DataError, RsiSentimentStrategy, SizingRule};

use crate::config::{Config, ConfigErrors};
use crate::settings::{Origin, RawSettings};
use crate::strategy_setup::strategy_setup;

/// Digits of the backtest's account currency (MYR has 2).
const CASH_DIGITS: u8 = 2;
/// Starting cash when `--cash` is not given.
const DEFAULT_CASH: &str = "10000";

/// Options of `palm-oil-bot backtest`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BacktestArgs {
    /// Bars to test on: CSV with a header naming timestamp, open, high, low, close (volume optional).
    #[arg(long, value_name = "FILE.csv")]
    pub data: PathBuf,
    /// Bar period of the data (M1, M5, M15, M30, H1, H4, D1) [default: TIMEFRAME if set, else inferred from the data].
    #[arg(long, value_name = "TF")]
    pub timeframe: Option<String>,
    /// RSI period in bars [default: RSI_PERIOD].
    #[arg(long, value_name = "N")]
    pub rsi_period: Option<String>,
    /// RSI level below which a long entry is considered [default: RSI_OVERSOLD].
    #[arg(long, value_name = "LEVEL")]
    pub oversold: Option<String>,
    /// RSI level above which a short entry is considered [default: RSI_OVERBOUGHT].
    #[arg(long, value_name = "LEVEL")]
    pub overbought: Option<String>,
    /// Never open shorts; `--long-only false` overrides LONG_ONLY=true [default: LONG_ONLY].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub long_only: Option<String>,
    /// Stop-loss distance from the fill, in price units (MYR/t) [default: STOP_LOSS].
    #[arg(long, value_name = "PRICE")]
    pub stop_loss: Option<String>,
    /// Take-profit distance from the fill, in price units (MYR/t) [default: TAKE_PROFIT].
    #[arg(long, value_name = "PRICE")]
    pub take_profit: Option<String>,
    /// Sentiment opposing an entry by more than this (score x confidence) vetoes it [default: SENTIMENT_VETO].
    #[arg(long, value_name = "X")]
    pub sentiment_veto: Option<String>,
    /// When sentiment is stale or missing: ignore or stand-aside [default: SENTIMENT_POLICY].
    #[arg(long, value_name = "POLICY")]
    pub sentiment_policy: Option<String>,
    /// Seconds after which a sentiment reading is stale [default: SENTIMENT_MAX_AGE].
    #[arg(long, value_name = "SECS")]
    pub sentiment_max_age: Option<String>,
    /// Loss in a UTC day, as a fraction of its starting equity, that engages the kill switch [default: DAILY_LOSS_LIMIT].
    #[arg(long, value_name = "FRACTION")]
    pub daily_loss_limit: Option<String>,
    /// Fall from the equity peak, as a fraction, that engages the kill switch [default: MAX_DRAWDOWN].
    #[arg(long, value_name = "FRACTION")]
    pub max_drawdown: Option<String>,
    /// Fraction of equity risked per trade at the stop-loss [default: RISK_PER_TRADE, if set].
    #[arg(long, value_name = "FRACTION")]
    pub risk_per_trade: Option<String>,
    /// Starting cash.
    #[arg(long, value_name = "N", default_value = DEFAULT_CASH)]
    pub cash: String,
    /// Position size: `all` (whole units the cash affords) or units per trade [default: RISK_PER_TRADE sizing if set, else ORDER_VOLUME].
    #[arg(long, value_name = "all|UNITS")]
    pub size: Option<String>,
    /// Sentiment readings (timestamp known, score, confidence), each used only from when it was known.
    #[arg(long, value_name = "FILE.csv")]
    pub sentiment: Option<PathBuf>,
    /// Full bid-ask spread around the CSV's mid prices, in price units.
    #[arg(long, value_name = "P", default_value = "0")]
    pub spread: String,
    /// Commission per fill (entry and exit each pay it), in cash units.
    #[arg(long, value_name = "C", default_value = "0")]
    pub commission: String,
    /// Account-currency units per unit of the quote currency: a constant such as `0.2222`, or a
    /// CSV of `timestamp,rate` rows each holding from its time on (prices in MYR, account in USD).
    #[arg(long, value_name = "RATE|FILE.csv")]
    pub quote_to_account: Option<String>,
    /// The currency prices are quoted in, for the report.
    #[arg(long, value_name = "CODE", default_value = "MYR")]
    pub quote_currency: String,
    /// The account's currency: cash, commission and every result are in it [default: the quote
    /// currency; another one needs --quote-to-account].
    #[arg(long, value_name = "CODE")]
    pub account_currency: Option<String>,
    /// Write the report and every trade as JSON.
    #[arg(long, value_name = "out.json")]
    pub report: Option<PathBuf>,
    /// Write every trade as CSV.
    #[arg(long, value_name = "out.csv")]
    pub trades: Option<PathBuf>,
    /// Draw the equity curve, drawdown and trades as SVG.
    #[arg(long, value_name = "equity.svg")]
    pub plot: Option<PathBuf>,
}

/// Why the command stopped; decides the exit status.
#[derive(Debug)]
enum Failure {
    /// Bad option, configuration or input: exit status 2.
    Usage(String),
    /// An I/O failure nobody could have checked beforehand: exit status 1.
    Io(String),
}

impl BacktestArgs {
    /// Flags that override a setting, paired with the setting's name.
    fn overrides(&self) -> Vec<(&'static str, &'static str, String)> {
        let flags = [
            ("--timeframe", "TIMEFRAME", &self.timeframe),
            ("--rsi-period", "RSI_PERIOD", &self.rsi_period),
            ("--oversold", "RSI_OVERSOLD", &self.oversold),
            ("--overbought", "RSI_OVERBOUGHT", &self.overbought),
            ("--long-only", "LONG_ONLY", &self.long_only),
            ("--stop-loss", "STOP_LOSS", &self.stop_loss),
            ("--take-profit", "TAKE_PROFIT", &self.take_profit),
            ("--sentiment-veto", "SENTIMENT_VETO", &self.sentiment_veto),
            (
                "--sentiment-policy",
                "SENTIMENT_POLICY",
                &self.sentiment_policy,
            ),
            (
                "--sentiment-max-age",
                "SENTIMENT_MAX_AGE",
                &self.sentiment_max_age,
            ),
            (
                "--daily-loss-limit",
                "DAILY_LOSS_LIMIT",
                &self.daily_loss_limit,
            ),
            ("--max-drawdown", "MAX_DRAWDOWN", &self.max_drawdown),
            ("--risk-per-trade", "RISK_PER_TRADE", &self.risk_per_trade),
        ];
        flags
            .into_iter()
            .filter_map(|(flag, name, value)| {
                let value = value.as_ref()?;
                // The setting spells it stand_aside; accept the CLI's usual dash too.
                let value = if name == "SENTIMENT_POLICY" {
                    value.trim().to_ascii_lowercase().replace('-', "_")
                } else {
                    value.clone()
                };
                Some((flag, name, value))
            })
            .collect()
    }
}

/// Runs `backtest`; see the module documentation for the exit statuses.
#[allow(clippy::print_stderr)] // this command's diagnostics are for the person running it
pub fn run(config_path: Option<&Path>, args: &BacktestArgs) -> ExitCode {
    match backtest(config_path, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {}", message.trim_end());
            ExitCode::from(2)
        }
        Err(Failure::Io(message)) => {
            eprintln!("error: {}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // the report table is this command's output
fn backtest(config_path: Option<&Path>, args: &BacktestArgs) -> Result<(), Failure> {
    let overrides = args.overrides();
    let (raw, config) = load_settings_with(config_path, &overrides)
        .map_err(|e| Failure::Usage(describe_problems(&e, &overrides)))?;
    let setup = strategy_setup(&config).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut risk = setup.risk.clone();
    if let Some(size) = &args.size {
        risk.sizing = parse_size(size).map_err(|e| Failure::Usage(format!("--size: {e}")))?;
    }
    let initial_cash =
        parse_money(&args.cash, CASH_DIGITS).map_err(|e| Failure::Usage(format!("--cash: {e}")))?;
    let commission_per_fill = parse_money(&args.commission, CASH_DIGITS)
        .map_err(|e| Failure::Usage(format!("--commission: {e}")))?;
    let spread = Price::parse(&args.spread)
        .map_err(|e| Failure::Usage(format!("--spread {:?}: {e}", args.spread)))?;
    let (conversion, currencies) = conversion(args)?;
    let backtester = Backtester::new(BacktestConfig {
        initial_cash,
        spread,
        commission_per_fill,
        risk,
        symbol: backtest_symbol(),
        conversion,
        currencies,
    })
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut strategy =
        RsiSentimentStrategy::new(setup.strategy).map_err(|e| Failure::Usage(e.to_string()))?;

    // TIMEFRAME counts only when someone chose it: the default (M15) says nothing about a file.
    let chosen_timeframe = raw
        .iter()
        .any(|(name, _, origin)| name == "TIMEFRAME" && origin != Origin::Default)
        .then_some(config.strategy.timeframe);
    let bars = read_bars(&args.data, chosen_timeframe)?;
    let sentiment = match &args.sentiment {
        Some(path) => read_sentiment(path)?,
        None => Vec::new(),
    };

    let result = run_with_progress(&backtester, &mut strategy, &bars, &sentiment)?;
    println!(
        "{}",
        describe_run(&args.data, &bars, &sentiment, &config, &backtester)
    );
    print!("{}", render_table(&result.report));
    write_outputs(args, &result)
}

/// `--quote-to-account`, `--quote-currency` and `--account-currency`: how prices become account
/// money. Two different currencies need a rate; one currency takes none.
fn conversion(args: &BacktestArgs) -> Result<(QuoteConversion, Currencies), Failure> {
    let code = |flag: &str, text: &str| {
        let t = text.trim().to_ascii_uppercase();
        if (3..=6).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(t)
        } else {
            Err(Failure::Usage(format!(
                "{flag} {text:?}: expected a currency code such as MYR or USD"
            )))
        }
    };
    let quote = code("--quote-currency", &args.quote_currency)?;
    let account = match &args.account_currency {
        Some(a) => code("--account-currency", a)?,
        None => quote.clone(),
    };
    let conversion = match (&args.quote_to_account, quote == account) {
        (None, true) => QuoteConversion::Same,
        (None, false) => {
            return Err(Failure::Usage(format!(
                "--account-currency {account} differs from --quote-currency {quote}: give --quote-to-account RATE or FILE.csv"
            )));
        }
        (Some(_), true) => {
            return Err(Failure::Usage(format!(
                "--quote-to-account converts between two currencies, but both are {quote}: name the account's with --account-currency"
            )));
        }
        (Some(text), false) => match ConversionRate::parse(text) {
            Ok(rate) => QuoteConversion::Constant(rate),
            // Not a number: a file of rates.
            Err(_)
                if !text
                    .trim()
                    .starts_with(|c: char| c.is_ascii_digit() || c == '.') =>
            {
                let path = Path::new(text.trim());
                let rates = read_rates_csv(open(path, "conversion rates")?).map_err(|e| {
                    Failure::Usage(format!("--quote-to-account {}: {e}", path.display()))
                })?;
                QuoteConversion::Series(rates)
            }
            Err(why) => return Err(Failure::Usage(format!("--quote-to-account: {why}"))),
        },
    };
    Ok((conversion, Currencies { quote, account }))
}

/// Layers defaults, the `--config` file, the environment and then the flags (as `check-config`
/// does, plus the flags); every problem is reported at once.
fn load_settings_with(
    path: Option<&Path>,
    overrides: &[(&'static str, &'static str, String)],
) -> Result<(RawSettings, Config), ConfigErrors> {
    let env = |name: &str| {
        overrides
            .iter()
            .find(|(_, setting, _)| *setting == name)
            .map(|(_, _, value)| value.clone())
            .or_else(|| std::env::var(name).ok())
    };
    super::check_config::load_settings_from(path, &env)
}

/// Lists every problem, naming the flag when a flag set the value.
fn describe_problems(
    errors: &ConfigErrors,
    overrides: &[(&'static str, &'static str, String)],
) -> String {
    let mut out = format!("invalid configuration ({} problem(s)):", errors.0.len());
    for p in &errors.0 {
        let name = overrides
            .iter()
            .find(|(_, setting, _)| *setting == p.setting)
            .map_or_else(
                || p.setting.clone(),
                |(flag, setting, _)| format!("{flag} ({setting})"),
            );
        out.push_str(&format!("\n  - {name}: {}", p.problem));
    }
    out
}

fn open(path: &Path, what: &str) -> Result<BufReader<File>, Failure> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|e| Failure::Usage(format!("cannot open {what} {}: {e}", path.display())))
}

fn data_failure(path: &Path, e: &DataError) -> Failure {
    let message = format!("{}: {e}", path.display());
    match e {
        DataError::Io { .. } => Failure::Io(message),
        _ => Failure::Usage(message),
    }
}

/// Reads the bars; a chosen timeframe must match the data's own bar period.
fn read_bars(path: &Path, chosen: Option<Timeframe>) -> Result<Vec<Bar>, Failure> {
    let options = OhlcOptions {
        timeframe: chosen,
        ..OhlcOptions::default()
    };
    let file = open(path, "price data")?;
    // Parsing a long file takes a moment: show that something is happening, on a terminal only.
    let spinner = std::io::stderr().is_terminal().then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message(format!("reading {}", path.display()));
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        spinner
    });
    let bars = read_ohlc_csv(file, &options);
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let bars = bars.map_err(|e| data_failure(path, &e))?;
    if let Some(chosen) = chosen {
        // The reader refuses gaps shorter than the period; a longer smallest gap means the
        // bars are coarser than the timeframe says, and decisions would be stamped too early.
        let smallest = bars
            .windows(2)
            .map(|w| w[1].start.millis_since(w[0].start))
            .min();
        if let Some(gap) = smallest.filter(|g| *g != chosen.millis()) {
            let data = Timeframe::ALL
                .into_iter()
                .find(|t| t.millis() == gap)
                .map_or_else(|| format!("{} s apart", gap / 1000), |t| t.to_string());
            return Err(Failure::Usage(format!(
                "{}: the bars are {data} but the timeframe is {chosen} (from --timeframe or TIMEFRAME); \
                 pass --timeframe matching the data",
                path.display()
            )));
        }
    }
    Ok(bars)
}

fn read_sentiment(path: &Path) -> Result<Vec<SentimentReading>, Failure> {
    read_sentiment_csv(open(path, "sentiment data")?).map_err(|e| data_failure(path, &e))
}

fn run_with_progress(
    backtester: &Backtester,
    strategy: &mut RsiSentimentStrategy,
    bars: &[Bar],
    sentiment: &[SentimentReading],
) -> Result<BacktestResult, Failure> {
    // A bar only where a person watches; logs and pipes get no control characters.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(u64::try_from(bars.len()).unwrap_or(u64::MAX));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} bars, {elapsed} elapsed, {eta} left",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut progress = |done: usize, _total: usize| {
        if let Some(bar) = &bar {
            bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
        }
    };
    let result = backtester.run(strategy, bars, sentiment, &mut progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result.map_err(|e| Failure::Usage(format!("backtest: {e}")))
}

/// One line saying what was tested, so a saved output explains itself.
fn describe_run(
    data: &Path,
    bars: &[Bar],
    sentiment: &[SentimentReading],
    config: &Config,
    backtester: &Backtester,
) -> String {
    let timeframe = bars.first().map_or("?", |b| b.timeframe.as_str());
    let s = &config.strategy;
    let size = match backtester.config().risk.sizing {
        SizingRule::Fixed(v) => format!("{v} unit(s) per trade"),
        SizingRule::RiskFraction { bps } => {
            format!("risk {:.2}% of equity", f64::from(bps) / 100.0)
        }
        SizingRule::AllCash => "all cash".to_owned(),
    };
    let costs = backtester.config();
    format!(
        "Backtest of {} ({} {timeframe} bars): RSI({}) {}/{}{}, stop {} take-profit {}, size {size}, \
         spread {}, commission {}/fill, sentiment readings: {}\n",
        data.display(),
        bars.len(),
        s.rsi_period,
        s.oversold,
        s.overbought,
        if s.long_only { " long only" } else { "" },
        s.stop_loss,
        s.take_profit,
        costs.spread,
        costs.commission_per_fill,
        sentiment.len(),
    )
}

fn write_outputs(args: &BacktestArgs, result: &BacktestResult) -> Result<(), Failure> {
    let io = |path: &Path, e: &dyn std::fmt::Display| {
        Failure::Io(format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&result.report).map_err(|e| io(path, &e))?;
        std::fs::write(path, json + "\n").map_err(|e| io(path, &e))?;
    }
    if let Some(path) = &args.trades {
        let mut file = BufWriter::new(File::create(path).map_err(|e| io(path, &e))?);
        write_trades_csv(&result.report.trades, &mut file).map_err(|e| io(path, &e))?;
        file.flush().map_err(|e| io(path, &e))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, render_equity_svg(result)).map_err(|e| io(path, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_their_settings_and_are_named_in_problems() {
        let args = BacktestArgs {
            oversold: Some("80".to_owned()),
            sentiment_policy: Some("Stand-Aside".to_owned()),
            ..BacktestArgs::default()
        };
        let overrides = args.overrides();
        assert!(overrides.iter().any(|(f, n, v)| *f == "--sentiment-policy"
            && *n == "SENTIMENT_POLICY"
            && v == "stand_aside"));
        let err = load_settings_with(None, &overrides).unwrap_err();
        let text = describe_problems(&err, &overrides);
        // 80 is above the default overbought level of 70.
        assert!(text.contains("--oversold (RSI_OVERSOLD)"), "{text}");
        assert!(!text.contains("SENTIMENT_POLICY"), "{text}");
    }
}
