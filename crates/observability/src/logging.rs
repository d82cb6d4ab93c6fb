//! Log setup: a JSON formatter for production, a readable one on a terminal, UTC RFC 3339
//! timestamps, a level filter handed in by the bot, and a writer that scrubs known secrets.

use std::io::{self, IsTerminal, Write};
use std::sync::Arc;

use domain::{ClientOrderId, PositionId, Price, Secret, Side, SymbolId, Volume};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::ObservabilityError;
use crate::status::{EventLevel, StatusHandle, StatusSnapshot};

/// Structured field names every trading event uses, so log queries can rely on them.
pub mod fields {
    /// The bot's own id for one round trip (entry to exit).
    pub const TRADE_ID: &str = "trade_id";
    /// The broker's numeric symbol id.
    pub const SYMBOL_ID: &str = "symbol_id";
    /// The idempotency key sent with an order.
    pub const CLIENT_ORDER_ID: &str = "client_order_id";
    /// The broker's position id.
    pub const POSITION_ID: &str = "position_id";
    /// `buy` or `sell`.
    pub const SIDE: &str = "side";
    /// Volume in units of the instrument, as a decimal string.
    pub const VOLUME: &str = "volume";
    /// Price as a decimal string.
    pub const PRICE: &str = "price";
    /// Why the event happened, in words.
    pub const REASON: &str = "reason";
    /// Every trading-event field name, in the order they are written.
    pub const ALL: [&str; 8] = [
        TRADE_ID,
        SYMBOL_ID,
        CLIENT_ORDER_ID,
        POSITION_ID,
        SIDE,
        VOLUME,
        PRICE,
        REASON,
    ];
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines when stderr is a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line (production, log shippers).
    Json,
    /// Readable, coloured lines for a person at a terminal.
    Pretty,
}

impl LogFormat {
    /// Resolves `Auto` by whether the log stream is a terminal.
    pub fn resolve(self, is_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if is_terminal => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = ObservabilityError;
    fn from_str(s: &str) -> Result<LogFormat, ObservabilityError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" | "text" | "human" => Ok(LogFormat::Pretty),
            _ => Err(ObservabilityError::InvalidLogFilter {
                filter: s.to_owned(),
                reason: "log format must be auto, json or pretty".to_owned(),
            }),
        }
    }
}

/// What the bot hands in to build the log pipeline.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// Filter directives such as `info` or `info,observability=debug` (the bot reads `RUST_LOG`);
    /// `None` or blank means `info`.
    pub filter: Option<String>,
    /// Output format; `Auto` picks by whether stderr is a terminal.
    pub format: LogFormat,
    /// Credentials whose values must never appear in a log line, whatever code logs them.
    pub redact: Vec<Secret>,
}

/// Writes timestamps as UTC RFC 3339 with microseconds, e.g. `2026-11-24T02:06:40.123456Z`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtcRfc3339;

impl FormatTime for UtcRfc3339 {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = chrono::Utc::now();
        write!(
            w,
            "{}",
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    }
}

/// Parses a filter string; blank means `info`.
pub fn parse_filter(filter: Option<&str>) -> Result<EnvFilter, ObservabilityError> {
    let directives = match filter.map(str::trim) {
        None | Some("") => "info",
        Some(given) => given,
    };
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| ObservabilityError::InvalidLogFilter {
            filter: directives.to_owned(),
            reason: e.to_string(),
        })
}

/// Builds the subscriber writing to `writer`; the caller (the bot) decides whether to install it.
/// `Auto` format is resolved by whether stderr is a terminal.
pub fn build_subscriber<W>(
    config: &LogConfig,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, ObservabilityError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let on_terminal = io::stderr().is_terminal();
    build(
        config,
        config.format.resolve(on_terminal),
        on_terminal,
        writer,
    )
}

/// Like [`build_subscriber`] with the format already resolved, for writers other than a
/// terminal (files, tests): readable lines carry no colour codes.
pub fn build_subscriber_as<W>(
    config: &LogConfig,
    format: LogFormat,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, ObservabilityError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, format.resolve(false), false, writer)
}

fn build<W>(
    config: &LogConfig,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, ObservabilityError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = parse_filter(config.filter.as_deref())?;
    let writer = RedactingMakeWriter::new(writer, &config.redact);
    let (json, pretty) = if format == LogFormat::Pretty {
        let layer = tracing_subscriber::fmt::layer()
            .with_timer(UtcRfc3339)
            .with_ansi(ansi)
            .with_writer(writer);
        (None, Some(layer))
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_timer(UtcRfc3339)
            .with_writer(writer);
        (Some(layer), None)
    };
    Ok(Registry::default().with(filter).with(json).with(pretty))
}

/// A value that prints `***` in `Debug` and `Display`, for logging that a secret-bearing value
/// was present without its content.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Redacted<T> {
        Redacted(value)
    }

    /// The wrapped value, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<T> std::fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Wraps a writer factory so every known secret (raw, JSON-escaped and Debug-escaped forms) is
/// replaced by `***` before a line leaves the process: the last defence when code logs a
/// credential by mistake.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<W> {
    inner: W,
    needles: Arc<[Vec<u8>]>,
}

impl<W> RedactingMakeWriter<W> {
    /// Scrubs `secrets` from everything written through `inner`.
    pub fn new(inner: W, secrets: &[Secret]) -> RedactingMakeWriter<W> {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for secret in secrets {
            let raw = secret.expose();
            if raw.is_empty() {
                continue;
            }
            let json = serde_json::to_string(raw).unwrap_or_default();
            let debug = format!("{raw:?}");
            for form in [raw.to_owned(), strip_quotes(&json), strip_quotes(&debug)] {
                let bytes = form.into_bytes();
                if !bytes.is_empty() && !needles.contains(&bytes) {
                    needles.push(bytes);
                }
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        RedactingMakeWriter {
            inner,
            needles: needles.into(),
        }
    }
}

fn strip_quotes(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .to_owned()
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<W> {
    type Writer = RedactingWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            inner: self.inner.make_writer(),
            needles: Arc::clone(&self.needles),
        }
    }
}

/// The per-line writer of [`RedactingMakeWriter`].
#[derive(Debug)]
pub struct RedactingWriter<W> {
    inner: W,
    needles: Arc<[Vec<u8>]>,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The fmt layer formats a whole line and writes it at once, so a secret is never split
        // across two calls.
        match redact(buf, &self.needles) {
            Some(clean) => self.inner.write_all(&clean)?,
            None => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Replaces every needle in `buf` with `***`; `None` when nothing matched (no copy).
fn redact(buf: &[u8], needles: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for needle in needles {
        let hay = out.as_deref().unwrap_or(buf);
        if let Some(replaced) = replace_all(hay, needle) {
            out = Some(replaced);
        }
    }
    out
}

fn replace_all(hay: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let first = find(hay, needle, 0)?;
    let mut out = Vec::with_capacity(hay.len());
    let mut start = 0;
    let mut at = Some(first);
    while let Some(pos) = at {
        out.extend_from_slice(&hay[start..pos]);
        out.extend_from_slice(b"***");
        start = pos + needle.len();
        at = find(hay, needle, start);
    }
    out.extend_from_slice(&hay[start..]);
    Some(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The identifiers and numbers of one trading event; absent fields are left out of the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct TradeEvent<'a> {
    /// The bot's round-trip id.
    pub trade_id: Option<&'a str>,
    /// The broker's symbol id.
    pub symbol_id: Option<SymbolId>,
    /// The order's idempotency key.
    pub client_order_id: Option<&'a ClientOrderId>,
    /// The broker's position id.
    pub position_id: Option<PositionId>,
    /// Buy or sell.
    pub side: Option<Side>,
    /// Volume (0.01 unit); logged as a decimal in units.
    pub volume: Option<Volume>,
    /// Price; logged as a decimal.
    pub price: Option<Price>,
    /// Why, in words.
    pub reason: Option<&'a str>,
}

/// Logs one trading event with the standard field names of [`fields`].
pub fn log_trade_event(level: EventLevel, message: &str, event: &TradeEvent<'_>) {
    macro_rules! emit {
        ($mac:ident) => {
            tracing::$mac!(
                target: "trading",
                trade_id = event.trade_id,
                symbol_id = event.symbol_id.map(|s| s.0),
                client_order_id = event.client_order_id.map(ClientOrderId::as_str),
                position_id = event.position_id.map(|p| p.0),
                side = event.side.map(Side::as_str),
                volume = event.volume.map(tracing::field::display),
                price = event.price.map(tracing::field::display),
                reason = event.reason,
                "{message}"
            )
        };
    }
    match level {
        EventLevel::Info => emit!(info),
        EventLevel::Warn => emit!(warn),
        EventLevel::Error => emit!(error),
    }
}

/// Logs the heartbeat line (the bot calls it every 30 s): connection state, last quote age,
/// position, equity, kill switch and readiness, so a silent log means a stuck bot.
pub fn log_heartbeat(snapshot: &StatusSnapshot) {
    let live = &snapshot.live;
    let position = live.position.as_ref();
    let account = live.account.as_ref();
    let failing: Vec<&str> = snapshot
        .readiness
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    tracing::info!(
        target: "heartbeat",
        connection = live.connection.as_str(),
        last_quote_age_s = snapshot.last_quote_age_seconds,
        market_open = live.market_open,
        position_id = position.map(|p| p.position_id),
        side = position.map(|p| p.side.as_str()),
        volume = position.map(|p| p.volume_units),
        equity = account.map(|a| a.equity),
        balance = account.map(|a| a.balance),
        unrealized_pnl = account.map(|a| a.unrealized_pnl),
        kill_switch = live.kill_switch.engaged,
        ready = snapshot.readiness.ready,
        failing_checks = %failing.join(","),
        "heartbeat"
    );
}

/// Logs a heartbeat every `period` (the first at once) until `shutdown` completes. The bot
/// spawns it; missed ticks are not bunched up after a stall, so the gap itself shows in the log.
pub async fn run_heartbeat(
    status: StatusHandle,
    period: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticker.tick() => log_heartbeat(&status.snapshot()),
        }
    }
}
