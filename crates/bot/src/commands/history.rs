//! `history`: downloads the broker's trendbars (or ticks) of the configured symbol into the CSV the
//! backtester reads, a page at a time within the broker's span and rate limits, and resumes: a
//! rerun keeps the file and fetches only what lies before its start or after its end.
//!
//! Beside `FILE.csv` sits `FILE.csv.history`, which names the symbol, what the file holds (bars of
//! a timeframe, or ticks of a side) and the span already asked for, so a rerun asks nothing twice
//! (a closed market leaves no bar, so the bars alone cannot say what was already asked) and
//! refuses to mix symbols, timeframes or tick sides in one file.

use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{BrokerError, CTraderClient, HistoricalTick, QuoteSide};
use domain::{Bar, Clock, Price, SymbolId, SystemClock, Timeframe, Timestamp};
use persistence::{SqliteTradeStore, TradeStore};
use research::{
    BARS_CSV_HEADER, DataError, OhlcOptions, parse_time, read_ohlc_csv, write_bar_rows,
};

use ctrader_client::Broker as _;

use crate::commands::positions::{StoreAccessError, open_read_only};
use crate::commands::run::{TradingSetup, broker_config, prepare_trading, store_identity};
use crate::config::Config;
use crate::runtime::{EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};
use crate::token_vault::TokenVault;

/// Times one page is asked again after the broker said too many requests (each after its
/// `retryAfter`); the client already waits and retries a few times itself.
const PAGE_ATTEMPTS: u32 = 6;
/// How much of a tick download is fetched and written at a time.
const TICK_PAGE_MS: i64 = Timestamp::DAY_MS;

/// Options of `history`.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// Start of the span to download (UTC): an ISO 8601 date or date-time (`2025-01-01`,
    /// `2025-01-01T08:00:00Z`), or epoch milliseconds.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End of the span (exclusive), as --from [default: now].
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Bar period: M1, M5, M15, M30, H1, H4, D1 [default: TIMEFRAME].
    #[arg(long, value_name = "TF")]
    pub timeframe: Option<String>,
    /// Download ticks of this side (`both`: a bid and an ask column) instead of bars
    /// (ProtoOAGetTickDataReq); the backtester aggregates a ticks file into --timeframe bars.
    #[arg(long, value_name = "SIDE")]
    pub ticks: Option<TickSides>,
    /// The CSV file to write; an existing one is resumed (kept, and completed before its start
    /// and after its end).
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
}

/// Which sides of the quote a ticks file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TickSides {
    /// Bid prices only (aggregated, the broker's own bid trendbars).
    Bid,
    /// Ask prices only.
    Ask,
    /// Bid and ask on each row (aggregated, mid-price bars as the live bot builds).
    Both,
}

/// What one output file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Bars(Timeframe),
    Ticks(TickSides),
}

impl Content {
    /// The name kept in the coverage file.
    fn tag(self) -> String {
        match self {
            Content::Bars(tf) => format!("bars {tf}"),
            Content::Ticks(TickSides::Bid) => "ticks bid".into(),
            Content::Ticks(TickSides::Ask) => "ticks ask".into(),
            Content::Ticks(TickSides::Both) => "ticks both".into(),
        }
    }

    fn header(self) -> &'static str {
        match self {
            Content::Bars(_) => BARS_CSV_HEADER,
            Content::Ticks(TickSides::Bid) => "timestamp,bid",
            Content::Ticks(TickSides::Ask) => "timestamp,ask",
            Content::Ticks(TickSides::Both) => "timestamp,bid,ask",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Content::Bars(_) => "bars",
            Content::Ticks(_) => "ticks",
        }
    }
}

/// Why `history` stopped, with its exit status.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Bad dates, timeframe, settings, or a file that cannot be resumed: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The broker refused (credentials, symbol, a bad answer): exit 3.
    #[error("{0}")]
    Refused(String),
    /// The broker was unreachable, or a local file could not be written: exit 1.
    #[error("{0}")]
    Runtime(String),
}

impl Failure {
    const fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_CONFIG,
            Failure::Refused(_) => EXIT_REFUSED,
            Failure::Runtime(_) => EXIT_RUNTIME,
        }
    }

    fn broker(what: &str, error: &BrokerError) -> Failure {
        let text = format!("{what}: {error}");
        if error.is_transient() {
            Failure::Runtime(text)
        } else {
            Failure::Refused(text)
        }
    }
}

fn io_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::Runtime(format!("{}: {e}", path.display()))
}

/// The span the file is known to cover, as kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Coverage {
    symbol: String,
    content: String,
    from: Timestamp,
    to: Timestamp,
}

impl Coverage {
    fn render(&self) -> String {
        format!(
            "# palm-oil-bot history: what {{file}} holds, so a rerun fetches only what is missing\nsymbol={}\ncontent={}\nfrom={}\nto={}\n",
            self.symbol, self.content, self.from, self.to
        )
    }

    fn parse(text: &str) -> Result<Coverage, String> {
        let mut symbol = None;
        let mut content = None;
        let mut from = None;
        let mut to = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {line:?} is not key=value"));
            };
            let value = value.trim();
            match key.trim() {
                "symbol" => symbol = Some(value.to_owned()),
                "content" => content = Some(value.to_owned()),
                "from" => from = Some(parse_time(value)?),
                "to" => to = Some(parse_time(value)?),
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        match (symbol, content, from, to) {
            (Some(symbol), Some(content), Some(from), Some(to)) if from <= to => Ok(Coverage {
                symbol,
                content,
                from,
                to,
            }),
            _ => Err("needs symbol, content, from and to (from not after to)".into()),
        }
    }
}

fn coverage_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".history");
    PathBuf::from(name)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` at once: written beside it, synced, renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let temp = temp_path(path);
    let mut file = File::create(&temp).map_err(|e| io_failure(&temp, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_failure(&temp, &e))?;
    fs::rename(&temp, path).map_err(|e| io_failure(path, &e))
}

fn save_coverage(out: &Path, coverage: &Coverage) -> Result<(), Failure> {
    let text = coverage.render().replace(
        "{file}",
        &out.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    );
    replace_file(&coverage_path(out), text.as_bytes())
}

/// A span of time, `[start, end)`.
type Span = (Timestamp, Timestamp);

/// The spans to fetch so the file covers `[from, to)` without a hole: what lies before the
/// covered span and what lies after it (the file stays one contiguous span).
fn missing_spans(
    covered: Option<Span>,
    from: Timestamp,
    to: Timestamp,
) -> (Option<Span>, Option<Span>) {
    match covered {
        None => (None, (from < to).then_some((from, to))),
        Some((start, end)) => (
            (from < start).then_some((from, start)),
            (end < to).then_some((end, to)),
        ),
    }
}

/// A file cut short by a kill mid-write: everything after its last line end is dropped (a half
/// line would break the backtester). Returns the whole lines.
fn whole_lines(path: &Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = fs::read(path).map_err(|e| io_failure(path, &e))?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        tracing::warn!(
            file = %path.display(),
            dropped = bytes.len() - keep,
            "the file ended in a partial line (an interrupted write): dropping it"
        );
        bytes.truncate(keep);
        replace_file(path, &bytes)?;
    }
    Ok(bytes)
}

/// The span an existing file's rows cover: bars from the first start to the last bar's end,
/// ticks from the first to just after the last. `None` without rows. `known` skips the check of
/// the bars' timeframe (the coverage file already names it).
fn rows_span(
    path: &Path,
    bytes: &[u8],
    content: Content,
    known: bool,
) -> Result<Option<(Timestamp, Timestamp)>, Failure> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(None);
    };
    let header = header.trim_start_matches('\u{feff}').trim();
    let refuse = |why: String| {
        Failure::Usage(format!(
            "{} cannot be resumed as {} of this symbol: {why}; choose another --out",
            path.display(),
            content.tag()
        ))
    };
    match content {
        Content::Bars(tf) => {
            if research::is_ticks_header(header) {
                return Err(refuse("it holds ticks".into()));
            }
            let read = |timeframe| {
                read_ohlc_csv(
                    bytes,
                    &OhlcOptions {
                        symbol: SymbolId(0),
                        timeframe,
                    },
                )
            };
            let bars = match read(if known { Some(tf) } else { None }) {
                Ok(bars) => bars,
                Err(DataError::Empty { .. }) => return Ok(None),
                // One bar, or gaps that are no timeframe: the alignment check below decides.
                Err(DataError::Timeframe(_)) => {
                    read(Some(tf)).map_err(|e| refuse(e.to_string()))?
                }
                Err(e) => return Err(refuse(e.to_string())),
            };
            let (Some(first), Some(last)) = (bars.first(), bars.last()) else {
                return Ok(None);
            };
            if first.timeframe != tf {
                return Err(refuse(format!("it holds {} bars", first.timeframe)));
            }
            if let Some(bar) = bars.iter().find(|b| tf.bar_start(b.start) != b.start) {
                return Err(refuse(format!(
                    "the bar at {} does not start on a {tf} boundary",
                    bar.start
                )));
            }
            Ok(Some((first.start, last.start.plus_millis(tf.millis()))))
        }
        Content::Ticks(_) => {
            if !header.eq_ignore_ascii_case(content.header()) {
                return Err(refuse(format!(
                    "its header is {header:?}, not {:?}",
                    content.header()
                )));
            }
            let time = |line: &str| {
                let field = line.split(',').next().unwrap_or_default();
                parse_time(field).map_err(|e| refuse(format!("a row's time is {e}")))
            };
            let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
            match (rows.first(), rows.last()) {
                (Some(first), Some(last)) => Ok(Some((time(first)?, time(last)?.plus_millis(1)))),
                _ => Ok(None),
            }
        }
    }
}

/// Runs `history`: 0 when the file covers the span; 2 for bad options or settings, or a file
/// that cannot be resumed; 3 when the broker refused; 1 when it was unreachable or a write failed.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the summary is this command's output
pub fn run(config_path: Option<&Path>, args: &HistoryArgs) -> ExitCode {
    // Options first: a typo costs no connection.
    let options = match parse_options(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let TradingSetup {
        config,
        credentials,
        ..
    } = match prepare_trading(config_path) {
        Ok(setup) => setup,
        Err(code) => return ExitCode::from(code),
    };
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match tokio.block_on(download(&config, &credentials, &options, args)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("history: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The command line, checked.
#[derive(Debug)]
struct Options {
    from: Timestamp,
    to: Option<Timestamp>,
    timeframe: Option<Timeframe>,
}

fn parse_options(args: &HistoryArgs) -> Result<Options, Failure> {
    let from = parse_time(&args.from).map_err(|e| Failure::Usage(format!("--from {e}")))?;
    let to = args
        .to
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(|e| Failure::Usage(format!("--to {e}")))?;
    if let Some(to) = to
        && from >= to
    {
        return Err(Failure::Usage(format!(
            "--from {from} must be before --to {to}"
        )));
    }
    let timeframe = args
        .timeframe
        .as_deref()
        .map(|t| {
            t.parse::<Timeframe>().map_err(|_| {
                Failure::Usage(format!(
                    "--timeframe {t:?} is not one of M1, M5, M15, M30, H1, H4, D1"
                ))
            })
        })
        .transpose()?;
    if args.out.as_os_str().is_empty() || args.out.is_dir() {
        return Err(Failure::Usage(format!(
            "--out {:?} must name a file",
            args.out.display()
        )));
    }
    Ok(Options {
        from,
        to,
        timeframe,
    })
}

async fn download(
    config: &Config,
    credentials: &crate::config::BrokerCredentials,
    options: &Options,
    args: &HistoryArgs,
) -> Result<String, Failure> {
    let clock: Arc<dyn Clock> = match config.broker.simulator_clock {
        Some(simulated) => Arc::new(simulated),
        None => Arc::new(SystemClock),
    };
    let timeframe = options.timeframe.unwrap_or(config.strategy.timeframe);
    let content = match args.ticks {
        Some(sides) => Content::Ticks(sides),
        None => Content::Bars(timeframe),
    };
    // Nothing after now (the broker's time), and for bars only whole bars: the bar in progress
    // would change after it was written.
    let now = clock.now();
    let mut to = options.to.map_or(now, |to| to.min(now));
    if let Content::Bars(tf) = content {
        to = tf.bar_start(to);
    }
    let from = options.from;
    let out = &args.out;

    // What the file already holds.
    let coverage_file = coverage_path(out);
    let stored = if out.exists() && coverage_file.exists() {
        let text =
            fs::read_to_string(&coverage_file).map_err(|e| io_failure(&coverage_file, &e))?;
        Some(
            Coverage::parse(&text)
                .map_err(|why| Failure::Usage(format!("{}: {why}", coverage_file.display())))?,
        )
    } else {
        None
    };
    if let Some(stored) = &stored
        && stored.content != content.tag()
    {
        return Err(Failure::Usage(format!(
            "{} holds {}, not {}: choose another --out",
            out.display(),
            stored.content,
            content.tag()
        )));
    }
    let bytes = if out.exists() {
        whole_lines(out)?
    } else {
        Vec::new()
    };
    if !bytes.is_empty() && stored.is_none() && matches!(content, Content::Ticks(_)) {
        return Err(Failure::Usage(format!(
            "{} exists but was not written by `history --ticks` (no {}): choose another --out",
            out.display(),
            coverage_file.display()
        )));
    }
    let rows = rows_span(out, &bytes, content, stored.is_some())?;
    let covered = match (&stored, rows) {
        (Some(s), Some((a, b))) => Some((s.from.min(a), s.to.max(b))),
        (Some(s), None) => (s.from < s.to).then_some((s.from, s.to)),
        (None, rows) => rows,
    };
    let (before, after) = missing_spans(covered, from, to);
    if before.is_none() && after.is_none() {
        return Ok(format!(
            "nothing missing: 0 requests; {} covers {}",
            out.display(),
            span_text(covered)
        ));
    }

    let client = connect(config, credentials, &clock).await?;
    let result = fetch(
        &client, config, content, out, &bytes, stored, covered, before, after,
    )
    .await;
    let requests = client.historical_requests();
    client.shutdown();
    let (fetched, covered) = result?;
    Ok(format!(
        "fetched {fetched} {} in {requests} requests; {} now covers {}",
        content.noun(),
        out.display(),
        span_text(Some(covered))
    ))
}

fn span_text(span: Option<(Timestamp, Timestamp)>) -> String {
    span.map_or_else(|| "nothing yet".to_owned(), |(a, b)| format!("{a} .. {b}"))
}

/// Connects as `run` does, with the newest token pair (the store's when the bot rotated it),
/// the store opened read-only: a download never refreshes tokens (a refresh spends the refresh
/// token a running bot holds).
async fn connect(
    config: &Config,
    credentials: &crate::config::BrokerCredentials,
    clock: &Arc<dyn Clock>,
) -> Result<CTraderClient, Failure> {
    let mut broker = broker_config(config, credentials);
    let identity = store_identity(
        config,
        credentials,
        crate::live_guard::expected_live(&config.broker),
    );
    let url = crate::store::database_url(
        &config.database_url,
        identity.live,
        Some(identity.account_id),
    )
    .map_err(|e| Failure::Usage(format!("DATABASE_URL: {e}")))?;
    let store: Arc<dyn TradeStore> = match open_read_only(&url).await {
        Ok(store) => match store.identity().await {
            Ok(Some(bound)) if bound != identity => {
                return Err(Failure::Refused(format!(
                    "database {} belongs to {bound}, not to {identity}",
                    store.path().display()
                )));
            }
            Ok(_) => Arc::new(store),
            Err(e) => return Err(Failure::Refused(format!("cannot read the store: {e}"))),
        },
        Err(StoreAccessError::Missing(_)) => Arc::new(
            SqliteTradeStore::open_scratch()
                .await
                .map_err(|e| Failure::Runtime(format!("cannot make an empty store: {e}")))?,
        ),
        Err(e @ StoreAccessError::BadUrl(_)) => return Err(Failure::Usage(e.to_string())),
        Err(e) => return Err(Failure::Refused(e.to_string())),
    };
    let vault = Arc::new(
        TokenVault::new(
            Arc::clone(&store),
            broker.account_id,
            &broker.credentials.client_secret,
        )
        .map_err(Failure::Runtime)?,
    );
    let start = vault
        .start_tokens(
            &broker.credentials.access_token,
            broker.credentials.refresh_token.as_ref(),
        )
        .await
        .map_err(Failure::Runtime)?;
    broker.credentials.access_token = start.access;
    broker.credentials.refresh_token = None;
    CTraderClient::connect_with(broker, Arc::clone(clock), vault)
        .await
        .map_err(|e| Failure::broker("cannot connect to the broker", &e))
}

/// Fetches the missing spans: the one before the file's start in full and then written in one
/// replacement; the one after its end a page at a time, each page appended whole and synced
/// before the coverage file moves on (a kill keeps every page written).
#[allow(clippy::too_many_arguments)] // the download's state, each distinct
async fn fetch(
    client: &CTraderClient,
    config: &Config,
    content: Content,
    out: &Path,
    existing: &[u8],
    stored: Option<Coverage>,
    covered: Option<(Timestamp, Timestamp)>,
    before: Option<(Timestamp, Timestamp)>,
    after: Option<(Timestamp, Timestamp)>,
) -> Result<(usize, (Timestamp, Timestamp)), Failure> {
    let spec = client
        .resolve_symbol(&config.symbol_candidates)
        .await
        .map_err(|e| Failure::broker("cannot find the symbol", &e))?;
    if let Some(stored) = &stored
        && !stored.symbol.eq_ignore_ascii_case(&spec.name)
    {
        return Err(Failure::Usage(format!(
            "{} holds {}, not {}: choose another --out",
            out.display(),
            stored.symbol,
            spec.name
        )));
    }
    let total: i64 = [before, after]
        .iter()
        .flatten()
        .map(|(a, b)| b.0 - a.0)
        .sum();
    let progress = Progress::new(total, content.noun());
    let mut coverage = Coverage {
        symbol: spec.name.clone(),
        content: content.tag(),
        from: covered.map_or_else(|| after.map_or(Timestamp(0), |a| a.0), |c| c.0),
        to: covered.map_or_else(|| after.map_or(Timestamp(0), |a| a.0), |c| c.1),
    };
    let mut fetched = 0;
    let mut tail = TickTail::default();

    // Before the start: everything, then the file replaced once with it in front.
    if let Some((a, b)) = before {
        let mut rows = Vec::new();
        for (page_from, page_to) in pages(content, a, b) {
            fetched += fetch_page(
                client, spec.id, content, page_from, page_to, &mut tail, &mut rows,
            )
            .await?;
            progress.advance(page_to.0 - page_from.0);
        }
        let mut bytes = format!("{}\n", content.header()).into_bytes();
        bytes.extend_from_slice(&rows);
        if let Some(end) = existing.iter().position(|&c| c == b'\n') {
            bytes.extend_from_slice(&existing[end + 1..]);
        }
        replace_file(out, &bytes)?;
        coverage.from = a;
        save_coverage(out, &coverage)?;
    }

    // After the end: page by page, appended.
    if let Some((a, b)) = after {
        // The coverage is written before the file, so a file without one is never ours.
        save_coverage(out, &coverage)?;
        let fresh = !out.exists() || fs::metadata(out).map(|m| m.len() == 0).unwrap_or(true);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .map_err(|e| io_failure(out, &e))?;
        if fresh {
            writeln!(file, "{}", content.header())
                .and_then(|()| file.sync_data())
                .map_err(|e| io_failure(out, &e))?;
        }
        tail = TickTail::default();
        for (page_from, page_to) in pages(content, a, b) {
            let mut rows = Vec::new();
            fetched += fetch_page(
                client, spec.id, content, page_from, page_to, &mut tail, &mut rows,
            )
            .await?;
            // One write of whole lines, then synced, then recorded as covered.
            file.write_all(&rows)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_failure(out, &e))?;
            coverage.to = page_to;
            save_coverage(out, &coverage)?;
            progress.advance(page_to.0 - page_from.0);
        }
    }
    progress.finish();
    Ok((fetched, (coverage.from, coverage.to)))
}

/// The pages of a span: trendbar windows within the period's span limit, or a day of ticks.
fn pages(content: Content, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    match content {
        Content::Bars(tf) => ctrader_client::trendbar_pages(tf, from, to),
        Content::Ticks(_) => {
            let mut out = Vec::new();
            let mut cursor = from;
            while cursor < to {
                let end = Timestamp(cursor.0.saturating_add(TICK_PAGE_MS).min(to.0));
                out.push((cursor, end));
                cursor = end;
            }
            out
        }
    }
}

/// The latest bid and ask written, so a `both` file carries each side forward across pages.
#[derive(Debug, Default, Clone, Copy)]
struct TickTail {
    bid: Option<Price>,
    ask: Option<Price>,
}

/// Fetches one page and appends its CSV rows to `rows`; the number of bars or ticks.
async fn fetch_page(
    client: &CTraderClient,
    symbol: SymbolId,
    content: Content,
    from: Timestamp,
    to: Timestamp,
    tail: &mut TickTail,
    rows: &mut Vec<u8>,
) -> Result<usize, Failure> {
    let write = |e: std::io::Error| Failure::Runtime(format!("cannot format rows: {e}"));
    match content {
        Content::Bars(tf) => {
            let bars: Vec<Bar> =
                with_retry(|| client.trendbars(symbol, tf, from, to), "trendbars").await?;
            write_bar_rows(&bars, &mut *rows).map_err(write)?;
            Ok(bars.len())
        }
        Content::Ticks(TickSides::Bid | TickSides::Ask) => {
            let side = if content == Content::Ticks(TickSides::Bid) {
                QuoteSide::Bid
            } else {
                QuoteSide::Ask
            };
            let ticks =
                with_retry(|| client.tick_data(symbol, side, from, to), "tick data").await?;
            for t in &ticks {
                writeln!(rows, "{},{}", t.at, t.price).map_err(write)?;
            }
            Ok(ticks.len())
        }
        Content::Ticks(TickSides::Both) => {
            let bids = with_retry(
                || client.tick_data(symbol, QuoteSide::Bid, from, to),
                "tick data",
            )
            .await?;
            let asks = with_retry(
                || client.tick_data(symbol, QuoteSide::Ask, from, to),
                "tick data",
            )
            .await?;
            let merged = merge_sides(&bids, &asks, tail);
            for (at, bid, ask) in &merged {
                writeln!(rows, "{at},{bid},{ask}").map_err(write)?;
            }
            Ok(merged.len())
        }
    }
}

/// Merges bid and ask ticks (each oldest first) into rows of both sides: one row per instant
/// either side changed, each side carried forward from its latest tick; rows start once both
/// sides are known.
fn merge_sides(
    bids: &[HistoricalTick],
    asks: &[HistoricalTick],
    tail: &mut TickTail,
) -> Vec<(Timestamp, Price, Price)> {
    let mut out: Vec<(Timestamp, Price, Price)> = Vec::with_capacity(bids.len().max(asks.len()));
    let (mut i, mut j) = (0, 0);
    while i < bids.len() || j < asks.len() {
        let at = match (bids.get(i), asks.get(j)) {
            (Some(b), Some(a)) => b.at.min(a.at),
            (Some(b), None) => b.at,
            (None, Some(a)) => a.at,
            (None, None) => break,
        };
        while let Some(b) = bids.get(i).filter(|b| b.at == at) {
            tail.bid = Some(b.price);
            i += 1;
        }
        while let Some(a) = asks.get(j).filter(|a| a.at == at) {
            tail.ask = Some(a.price);
            j += 1;
        }
        if let (Some(bid), Some(ask)) = (tail.bid, tail.ask) {
            out.push((at, bid, ask));
        }
    }
    out
}

/// Runs a historical request; when the broker still says too many requests after the client's
/// own waits, waits its `retryAfter` and asks again, a bounded number of times.
async fn with_retry<T, F, Fut>(mut request: F, what: &str) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BrokerError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match request().await {
            Ok(value) => return Ok(value),
            Err(BrokerError::RateLimited { retry_after, .. }) if attempt < PAGE_ATTEMPTS => {
                let pause = retry_after.unwrap_or(Duration::from_secs(1));
                tracing::warn!(
                    request = what,
                    ?pause,
                    attempt,
                    "the broker said too many requests; waiting"
                );
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(Failure::broker(&format!("{what} failed"), &e)),
        }
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(total_ms: i64, noun: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(u64::try_from(total_ms).unwrap_or(0));
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{{bar:40}} {{percent:>3}}% of the span, {noun}, eta {{eta}}"
            )) {
                bar.set_style(style);
            }
            bar
        });
        Progress(bar)
    }

    fn advance(&self, ms: i64) {
        if let Some(bar) = &self.0 {
            bar.inc(u64::try_from(ms).unwrap_or(0));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = Timestamp::DAY_MS;

    fn t(day: i64) -> Timestamp {
        Timestamp(1_735_689_600_000 + day * DAY) // 2025-01-01
    }

    #[test]
    fn missing_spans_keep_the_file_contiguous() {
        // Nothing yet: the whole span.
        assert_eq!(
            missing_spans(None, t(0), t(10)),
            (None, Some((t(0), t(10))))
        );
        // Covered inside: before and after.
        assert_eq!(
            missing_spans(Some((t(3), t(5))), t(0), t(10)),
            (Some((t(0), t(3))), Some((t(5), t(10))))
        );
        // Covered already: nothing.
        assert_eq!(missing_spans(Some((t(0), t(10))), t(2), t(8)), (None, None));
        // Asked span after the file with a hole between: the hole is fetched too.
        assert_eq!(
            missing_spans(Some((t(0), t(2))), t(5), t(8)),
            (None, Some((t(2), t(8))))
        );
        // Asked span before the file: fetched up to the file's start.
        assert_eq!(
            missing_spans(Some((t(5), t(8))), t(0), t(2)),
            (Some((t(0), t(5))), None)
        );
    }

    #[test]
    fn coverage_round_trips_and_refuses_bad_files() {
        let c = Coverage {
            symbol: "PALMOIL".into(),
            content: "bars M5".into(),
            from: t(0),
            to: t(3),
        };
        assert_eq!(Coverage::parse(&c.render()).unwrap(), c);
        assert!(
            Coverage::parse("symbol=X\ncontent=bars M5\nfrom=2025-01-02\nto=2025-01-01\n").is_err()
        );
        assert!(Coverage::parse("garbage").is_err());
        assert!(Coverage::parse("symbol=X\n").is_err());
    }

    #[test]
    fn tick_pages_are_days_and_bar_pages_follow_the_span_limits() {
        let p = pages(Content::Ticks(TickSides::Bid), t(0), Timestamp(t(2).0 + 5));
        assert_eq!(p.len(), 3);
        assert_eq!(p[2], (t(2), Timestamp(t(2).0 + 5)));
        let m5 = pages(Content::Bars(Timeframe::M5), t(0), t(7));
        assert_eq!(m5.len(), 2);
        assert!(m5.iter().all(|(a, b)| b.0 - a.0 <= 302_400_000));
    }

    #[test]
    fn both_sides_merge_carrying_each_forward() {
        let tick = |ms: i64, p: i64| HistoricalTick {
            at: Timestamp(ms),
            price: Price(p),
        };
        let bids = [tick(1, 100), tick(3, 101), tick(5, 102)];
        let asks = [tick(2, 110), tick(3, 111)];
        let mut tail = TickTail::default();
        let rows = merge_sides(&bids, &asks, &mut tail);
        let got: Vec<(i64, i64, i64)> = rows.iter().map(|(a, b, c)| (a.0, b.0, c.0)).collect();
        // Nothing before both sides are known; one row at 3 for both changes.
        assert_eq!(got, vec![(2, 100, 110), (3, 101, 111), (5, 102, 111)]);
        // The next page carries the sides forward.
        let rows = merge_sides(&[], &[tick(7, 112)], &mut tail);
        assert_eq!(rows, vec![(Timestamp(7), Price(102), Price(112))]);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        let args = |from: &str, to: Option<&str>, tf: Option<&str>| HistoryArgs {
            from: from.into(),
            to: to.map(str::to_owned),
            timeframe: tf.map(str::to_owned),
            ticks: None,
            out: PathBuf::from("out.csv"),
        };
        for (a, why) in [
            (args("yesterday", None, None), "--from"),
            (args("2025-01-02", Some("2025-01-01"), None), "before"),
            (args("2025-01-02", Some("2025-01-02"), None), "before"),
            (args("2025-01-01", Some("2025-13-01"), None), "--to"),
            (args("2025-01-01", None, Some("M7")), "--timeframe"),
        ] {
            let e = parse_options(&a).unwrap_err();
            assert_eq!(e.exit_code(), EXIT_CONFIG);
            assert!(e.to_string().contains(why), "{e}");
        }
        let ok = parse_options(&args(
            "2025-01-01",
            Some("2025-01-02T12:00:00Z"),
            Some("h1"),
        ))
        .unwrap();
        assert_eq!(ok.timeframe, Some(Timeframe::H1));
        assert_eq!(ok.to, Some(Timestamp(t(1).0 + DAY / 2)));
    }

    #[test]
    fn a_half_line_left_by_a_kill_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        fs::write(&path, "timestamp,open,high,low,close,volume\n2025-01-01T00:00:00.000Z,1,1,1,1,1\n2025-01-01T00:05:00.0").unwrap();
        let bytes = whole_lines(&path).unwrap();
        assert!(bytes.ends_with(b",1\n"));
        assert_eq!(fs::read(&path).unwrap(), bytes);
        let span = rows_span(&path, &bytes, Content::Bars(Timeframe::M5), false).unwrap();
        assert_eq!(span, Some((t(0), Timestamp(t(0).0 + 300_000))));
        // Resuming bars of another timeframe is refused.
        let e = rows_span(&path, b"timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,1,1,1\n2025-01-01T01:00:00Z,1,1,1,1\n", Content::Bars(Timeframe::M5), false).unwrap_err();
        assert!(e.to_string().contains("H1 bars"), "{e}");
        let e = rows_span(
            &path,
            b"timestamp,bid\n",
            Content::Bars(Timeframe::M5),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ticks"), "{e}");
        let e = rows_span(
            &path,
            b"timestamp,bid\n",
            Content::Ticks(TickSides::Both),
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
    }
}
