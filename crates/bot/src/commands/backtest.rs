//! `backtest`: replay the live strategy and risk rules over a CSV of bars and report the result.
//!
//! Strategy and risk parameters default to the same settings `run` uses (defaults, `--config`
//! file, environment); a flag overrides its setting and is validated by the same rules, so a
//! parameter means the same thing live and here. The semantics are in `docs/backtesting.md`.
//!
//! Outputs (`--report`, `--trades`, `--plot`) are checked before the run: `-` means standard
//! output (then the summary and table go to standard error), an output may not be an input
//! (`--data`, `--sentiment`, `--quote-to-account FILE`, `--config`) or another output, its folder
//! must exist, and an existing file is replaced only with `--force`.
//! Each is written to a temporary file beside it and renamed into place, so an interrupted run
//! never leaves half a file.
//!
//! Exit status: 0 done (warnings, e.g. a set-up that cannot trade, on standard error); 2 bad
//! option, configuration, input data or output path (nothing is run); 1 an unexpected I/O failure
//! (reading an open file, writing an output).

use std::fs::File;
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use domain::{Bar, ConversionRate, Price, SentimentReading, Timeframe, Timestamp};
use research::{
    DataError, OhlcOptions, is_ticks_header, parse_time, read_ohlc_csv, read_rates_csv,
    read_sentiment_csv, read_ticks_csv, render_equity_svg, render_html_report, render_table,
    write_trades_csv,
};
use strategy::backtest::{
    BacktestConfig, BacktestResult, Backtester, Currencies, QuoteConversion, backtest_symbol,
    parse_money, parse_size,
};
use strategy::{RsiSentimentConfig, RsiSentimentStrategy, SizingRule, Strategy};

use crate::config::{Config, ConfigErrors, SentimentPolicySetting};
use crate::settings::{Origin, RawSettings};
use crate::strategy_setup::strategy_setup;

/// Digits of the backtest's account currency (MYR has 2).
const CASH_DIGITS: u8 = 2;
/// Starting cash when `--cash` is not given.
const DEFAULT_CASH: &str = "10000";

/// Options of `palm-oil-bot backtest`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BacktestArgs {
    /// Data, strategy, risk and costs (shared with `optimize`).
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Write the report and every trade as JSON (`-`: standard output).
    #[arg(long, value_name = "out.json")]
    pub report: Option<PathBuf>,
    /// Write every trade as CSV (`-`: standard output).
    #[arg(long, value_name = "out.csv")]
    pub trades: Option<PathBuf>,
    /// Draw the equity curve against buy & hold, the drawdown and the trades as SVG, with axes and
    /// a legend (`-`: standard output).
    #[arg(long, value_name = "equity.svg")]
    pub plot: Option<PathBuf>,
    /// Write a self-contained HTML report (charts of price with trades, equity with buy & hold,
    /// drawdown; statistics and trades tables; no script, no network) (`-`: standard output).
    #[arg(long, value_name = "report.html")]
    pub html: Option<PathBuf>,
    /// Replace output files that already exist (without it, an existing output is refused
    /// before the run; an input is never replaced).
    #[arg(long)]
    pub force: bool,
}

/// What a backtest runs on and with: the data, the strategy and risk parameters (over the
/// settings), and the costs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SetupArgs {
    /// Bars to test on: CSV with a header naming timestamp, open, high, low, close (volume
    /// optional); or ticks (timestamp, bid, ask), aggregated into --timeframe bars as live.
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
    /// When sentiment is stale or missing: ignore or stand_aside (stand-aside is accepted too) [default: SENTIMENT_POLICY].
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
    /// First bar to test: bars starting before it are left out (ISO 8601, YYYY-MM-DD[ HH:MM[:SS]] or epoch milliseconds).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the test: bars starting at or after it are left out; a bare date includes that whole day.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

/// Why the command stopped; decides the exit status.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad option, configuration or input: exit status 2.
    Usage(String),
    /// An I/O failure nobody could have checked beforehand: exit status 1.
    Io(String),
}

/// The strategy and risk parameters `optimize --param` can vary: (name, flag, setting). `size`
/// (not a setting) is the sizing rule `--size` takes.
pub(crate) const PARAMETERS: [(&str, &str, &str); 12] = [
    ("rsi_period", "--rsi-period", "RSI_PERIOD"),
    ("oversold", "--oversold", "RSI_OVERSOLD"),
    ("overbought", "--overbought", "RSI_OVERBOUGHT"),
    ("long_only", "--long-only", "LONG_ONLY"),
    ("stop_loss", "--stop-loss", "STOP_LOSS"),
    ("take_profit", "--take-profit", "TAKE_PROFIT"),
    ("sentiment_veto", "--sentiment-veto", "SENTIMENT_VETO"),
    ("sentiment_policy", "--sentiment-policy", "SENTIMENT_POLICY"),
    (
        "sentiment_max_age",
        "--sentiment-max-age",
        "SENTIMENT_MAX_AGE",
    ),
    ("daily_loss_limit", "--daily-loss-limit", "DAILY_LOSS_LIMIT"),
    ("max_drawdown", "--max-drawdown", "MAX_DRAWDOWN"),
    ("risk_per_trade", "--risk-per-trade", "RISK_PER_TRADE"),
];

impl SetupArgs {
    /// Flags that override a setting, paired with the setting's name.
    pub(crate) fn overrides(&self) -> Vec<(&'static str, &'static str, String)> {
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
                // The setting's own parser accepts both stand_aside and stand-aside.
                Some((flag, name, value.clone()))
            })
            .collect()
    }
}

/// Runs `backtest`; see the module documentation for the exit statuses.
pub fn run(config_path: Option<&Path>, args: &BacktestArgs) -> ExitCode {
    exit_status(backtest(config_path, args))
}

/// Prints a failure and maps it to the exit status: 2 usage, 1 I/O.
#[allow(clippy::print_stderr)] // this command's diagnostics are for the person running it
pub(crate) fn exit_status(result: Result<(), Failure>) -> ExitCode {
    match result {
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

/// Warm-up bars (before `--from`), the bars to trade, and the sentiment readings.
pub(crate) type MarketData = (Vec<Bar>, Vec<Bar>, Vec<SentimentReading>);

/// The settings of one run: the layered settings with the flags (and `extra` overrides, e.g. an
/// optimisation's parameters) on top, mapped to the engine's and the strategy's configuration.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
    pub(crate) raw: RawSettings,
    pub(crate) config: Config,
    pub(crate) backtest: BacktestConfig,
    pub(crate) strategy: RsiSentimentConfig,
}

impl SetupArgs {
    /// The settings with the flags and then `extra` on top; `size` overrides the sizing rule.
    pub(crate) fn settings(
        &self,
        config_path: Option<&Path>,
        extra: &[(&'static str, &'static str, String)],
        size: Option<&str>,
    ) -> Result<RunSettings, Failure> {
        let mut overrides = self.overrides();
        overrides.retain(|(_, name, _)| !extra.iter().any(|(_, n, _)| n == name));
        overrides.extend(extra.iter().cloned());
        let (raw, config) = load_settings_with(config_path, &overrides)
            .map_err(|e| Failure::Usage(describe_problems(&e, &overrides)))?;
        let setup = strategy_setup(&config).map_err(|e| Failure::Usage(e.to_string()))?;
        let mut risk = setup.risk.clone();
        if let Some(size) = size.or(self.size.as_deref()) {
            risk.sizing = parse_size(size).map_err(|e| Failure::Usage(format!("--size: {e}")))?;
        }
        let initial_cash = parse_money(&self.cash, CASH_DIGITS)
            .map_err(|e| Failure::Usage(format!("--cash: {e}")))?;
        let commission_per_fill = parse_money(&self.commission, CASH_DIGITS)
            .map_err(|e| Failure::Usage(format!("--commission: {e}")))?;
        let spread = Price::parse(&self.spread)
            .map_err(|e| Failure::Usage(format!("--spread {:?}: {e}", self.spread)))?;
        let (conversion, currencies) = conversion(self)?;
        let backtest = BacktestConfig {
            initial_cash,
            spread,
            commission_per_fill,
            risk,
            symbol: backtest_symbol(),
            conversion,
            currencies,
        };
        // Refused here rather than at the run: the same checks as the engine's.
        Backtester::new(backtest.clone()).map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(RunSettings {
            raw,
            config,
            backtest,
            strategy: setup.strategy,
        })
    }

    /// The files this run reads (an output may never be one of them).
    pub(crate) fn inputs<'a>(&'a self, config_path: Option<&'a Path>) -> Vec<&'a Path> {
        let mut inputs = vec![self.data.as_path()];
        inputs.extend(self.sentiment.as_deref());
        inputs.extend(config_path);
        // A file of conversion rates is an input too (a number is not a file).
        inputs.extend(
            self.quote_to_account
                .as_deref()
                .map(|text| Path::new(text.trim()))
                .filter(|path| path.is_file()),
        );
        inputs
    }

    /// `--from` and `--to` as a half-open range of bar starts.
    fn range(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), Failure> {
        let from = match &self.from {
            Some(t) => Some(parse_time(t).map_err(|e| Failure::Usage(format!("--from {e}")))?),
            None => None,
        };
        let to = match &self.to {
            Some(t) => {
                let at = parse_time(t).map_err(|e| Failure::Usage(format!("--to {e}")))?;
                // A bare date means the whole day.
                Some(if t.trim().len() == 10 {
                    at.plus_millis(Timestamp::DAY_MS)
                } else {
                    at
                })
            }
            None => None,
        };
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(Failure::Usage(format!(
                "--to {} is not after --from {}: the range holds no bar",
                self.to.as_deref().unwrap_or_default(),
                self.from.as_deref().unwrap_or_default()
            )));
        }
        Ok((from, to))
    }

    /// Reads the bars before `--from` (to warm the strategy up), those in `--from`..`--to`,
    /// and the sentiment readings.
    pub(crate) fn market(&self, settings: &RunSettings) -> Result<MarketData, Failure> {
        let range = self.range()?;
        // TIMEFRAME counts only when someone chose it: the default (M15) says nothing about a file.
        let chosen_timeframe = settings
            .raw
            .iter()
            .any(|(name, _, origin)| name == "TIMEFRAME" && origin != Origin::Default)
            .then_some(settings.config.strategy.timeframe);
        let mut bars = read_bars(&self.data, chosen_timeframe)?;
        let total = bars.len();
        let mut warm_up = Vec::new();
        if let Some(from) = range.0 {
            let first = bars.partition_point(|b| b.start < from);
            warm_up = bars.drain(..first).collect();
        }
        if let Some(to) = range.1 {
            bars.retain(|b| b.start < to);
        }
        if bars.is_empty() {
            return Err(Failure::Usage(format!(
                "{}: none of its {total} bars is inside --from/--to",
                self.data.display()
            )));
        }
        let sentiment = match &self.sentiment {
            Some(path) => read_sentiment(path)?,
            None => Vec::new(),
        };
        Ok((warm_up, bars, sentiment))
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the report table is this command's output
fn backtest(config_path: Option<&Path>, args: &BacktestArgs) -> Result<(), Failure> {
    let setup = &args.setup;
    let settings = setup.settings(config_path, &[], None)?;
    let backtester =
        Backtester::new(settings.backtest.clone()).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut strategy = RsiSentimentStrategy::new(settings.strategy.clone())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // Every output is checked (and its temporary file created) before anything runs.
    let outputs = Outputs::prepare(
        &[
            (Kind::Report, "--report", args.report.as_deref()),
            (Kind::Trades, "--trades", args.trades.as_deref()),
            (Kind::Plot, "--plot", args.plot.as_deref()),
            (Kind::Html, "--html", args.html.as_deref()),
        ],
        args.force,
        &setup.inputs(config_path),
    )?;
    let (warm_up, bars, sentiment) = setup.market(&settings)?;
    // The bars before --from warm the RSI up, so the strategy can trade from the first bar.
    strategy.warm_up(&warm_up);
    for warning in cannot_trade_warnings(&settings.config, bars.len(), setup.sentiment.is_some()) {
        eprintln!("warning: {warning}");
    }

    let result = run_with_progress(&backtester, &mut strategy, &bars, &sentiment)?;
    let headline = describe_run(
        &setup.data,
        &bars,
        &sentiment,
        &settings.config,
        &backtester,
    );
    let summary = format!("{headline}\n{}", render_table(&result.report));
    // Standard output carries the one output written there; the summary then goes to stderr.
    if outputs.uses_stdout() {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    outputs.write(|kind| {
        let mut bytes = Vec::new();
        match kind {
            Kind::Report => {
                let json = serde_json::to_string_pretty(&result.report)
                    .map_err(|e| Failure::Io(format!("cannot render the report: {e}")))?;
                bytes.extend_from_slice(json.as_bytes());
                bytes.push(b'\n');
            }
            Kind::Trades => write_trades_csv(&result.report.trades, &mut bytes)
                .map_err(|e| Failure::Io(format!("cannot render the trades: {e}")))?,
            Kind::Plot => bytes.extend_from_slice(render_equity_svg(&result, &bars).as_bytes()),
            Kind::Html => bytes.extend_from_slice(
                render_html_report(&result, &bars, headline.trim_end()).as_bytes(),
            ),
            other => {
                return Err(Failure::Io(format!("{other:?} is not a backtest output")));
            }
        }
        Ok(bytes)
    })
}

/// Set-ups that run but can open no position, said before the run rather than left to a
/// puzzling "0 trades".
fn cannot_trade_warnings(config: &Config, bars: usize, has_sentiment: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.strategy.sentiment_policy == SentimentPolicySetting::StandAside && !has_sentiment {
        warnings.push(
            "SENTIMENT_POLICY is stand_aside and no --sentiment file was given: sentiment is \
             always missing, so no position can open"
                .to_owned(),
        );
    }
    // RSI(n) needs n+1 closes; an entry needs a crossing (two RSI values) and fills at the
    // next bar's open.
    let needed = config.strategy.rsi_period.saturating_add(3);
    if bars < needed {
        warnings.push(format!(
            "{bars} bar(s) are too few for RSI({}): a first entry needs at least {needed} bars \
             (the RSI, a crossing and the next bar's open to fill)",
            config.strategy.rsi_period
        ));
    }
    warnings
}

/// `--quote-to-account`, `--quote-currency` and `--account-currency`: how prices become account
/// money. Two different currencies need a rate; one currency takes none.
fn conversion(args: &SetupArgs) -> Result<(QuoteConversion, Currencies), Failure> {
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
    // A folder opens on some systems and fails only when read: name it as the usage error it is.
    if path.is_dir() {
        return Err(Failure::Usage(format!(
            "{what} {} is a folder, not a file",
            path.display()
        )));
    }
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
    let mut file = open(path, "price data")?;
    // A file of ticks (bid and ask columns) is aggregated into bars of the chosen timeframe.
    let first_line = {
        use std::io::BufRead as _;
        let buffer = file
            .fill_buf()
            .map_err(|e| Failure::Io(format!("cannot read {}: {e}", path.display())))?;
        let end = buffer
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(buffer.len());
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    };
    if is_ticks_header(&first_line) {
        let Some(timeframe) = chosen else {
            return Err(Failure::Usage(format!(
                "{}: a file of ticks (bid, ask) is aggregated into bars: give --timeframe (M1 .. D1)",
                path.display()
            )));
        };
        return read_ticks_csv(file, domain::SymbolId(0), timeframe)
            .map_err(|e| data_failure(path, &e));
    }
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

/// One output: standard output, or a file written through a temporary file beside it.
#[derive(Debug)]
enum Sink {
    Stdout,
    File {
        /// Where the output ends up.
        path: PathBuf,
        /// Created (empty) before the run; renamed onto `path` once written.
        temp: PathBuf,
    },
}

/// What to write where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Report,
    Trades,
    Plot,
    Html,
    Results,
    Heatmap,
}

/// The checked outputs; temporary files left behind by a failed run are removed on drop.
#[derive(Debug)]
pub(crate) struct Outputs {
    sinks: Vec<(Kind, Sink)>,
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for (_, sink) in &self.sinks {
            if let Sink::File { temp, .. } = sink {
                // Already renamed when the run succeeded; otherwise nothing worth keeping.
                let _ = std::fs::remove_file(temp);
            }
        }
    }
}

/// The file `path` names, resolved through its folder, so `./a.csv`, `a.csv` and a symbolic
/// link to it compare equal; `None` when the folder does not exist.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(full) = std::fs::canonicalize(path) {
        return Some(full);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(parent).ok().map(|p| p.join(name))
}

impl Outputs {
    /// Checks every output path (`(kind, flag, path)`) against the inputs, each other and the
    /// file system, and creates each one's temporary file (which proves its folder is writable).
    pub(crate) fn prepare(
        flags: &[(Kind, &'static str, Option<&Path>)],
        force: bool,
        inputs: &[&Path],
    ) -> Result<Outputs, Failure> {
        let inputs: Vec<PathBuf> = inputs.iter().filter_map(|p| resolved(p)).collect();
        let mut outputs = Outputs { sinks: Vec::new() };
        let mut stdout_flag: Option<&str> = None;
        let mut taken: Vec<(PathBuf, &str)> = Vec::new();
        for &(kind, flag, path) in flags {
            let Some(path) = path else { continue };
            if path.as_os_str() == "-" {
                if let Some(first) = stdout_flag {
                    return Err(Failure::Usage(format!(
                        "{first} and {flag} both write to standard output (-): choose one"
                    )));
                }
                stdout_flag = Some(flag);
                outputs.sinks.push((kind, Sink::Stdout));
                continue;
            }
            let usage =
                |problem: String| Failure::Usage(format!("{flag} {}: {problem}", path.display()));
            if path.is_dir() {
                return Err(usage("is a folder; give a file name".to_owned()));
            }
            let full =
                resolved(path).ok_or_else(|| usage("its folder does not exist".to_owned()))?;
            if inputs.contains(&full) {
                return Err(usage(
                    "is an input of this backtest; an output never replaces an input".to_owned(),
                ));
            }
            if let Some((_, other)) = taken.iter().find(|(p, _)| *p == full) {
                return Err(usage(format!(
                    "is also the {other} output; give each its own file"
                )));
            }
            if full.exists() && !force {
                return Err(usage(
                    "already exists; pass --force to replace it".to_owned(),
                ));
            }
            let temp = temp_beside(&full);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| usage(format!("cannot be written: {e}")))?;
            taken.push((full.clone(), flag));
            outputs.sinks.push((kind, Sink::File { path: full, temp }));
        }
        Ok(outputs)
    }

    pub(crate) fn uses_stdout(&self) -> bool {
        self.sinks.iter().any(|(_, s)| matches!(s, Sink::Stdout))
    }

    /// Renders each output with `render` and moves it into place.
    pub(crate) fn write(
        &self,
        render: impl Fn(Kind) -> Result<Vec<u8>, Failure>,
    ) -> Result<(), Failure> {
        for (kind, sink) in &self.sinks {
            let bytes = render(*kind)?;
            match sink {
                Sink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)
                        .and_then(|()| out.flush())
                        .map_err(|e| {
                            Failure::Io(format!("cannot write to standard output: {e}"))
                        })?;
                }
                Sink::File { path, temp } => {
                    let io = |e: std::io::Error| {
                        Failure::Io(format!("cannot write {}: {e}", path.display()))
                    };
                    let mut file = File::create(temp).map_err(io)?;
                    file.write_all(&bytes).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    std::fs::rename(temp, path).map_err(io)?;
                }
            }
        }
        Ok(())
    }
}

/// `.NAME.PID.tmp` in the same folder as `path` (a rename within one folder is atomic).
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_their_settings_and_are_named_in_problems() {
        let args = SetupArgs {
            oversold: Some("80".to_owned()),
            sentiment_policy: Some("Stand-Aside".to_owned()),
            ..SetupArgs::default()
        };
        let overrides = args.overrides();
        assert!(overrides.iter().any(|(f, n, v)| *f == "--sentiment-policy"
            && *n == "SENTIMENT_POLICY"
            && v == "Stand-Aside"));
        let err = load_settings_with(None, &overrides).unwrap_err();
        let text = describe_problems(&err, &overrides);
        // 80 is above the default overbought level of 70.
        assert!(text.contains("--oversold (RSI_OVERSOLD)"), "{text}");
        assert!(!text.contains("SENTIMENT_POLICY"), "{text}");
    }
}
