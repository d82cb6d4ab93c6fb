//! `simulate`: the simulated cTrader broker as a process, for scripts, fault drills and tests that
//! need a server outside their own process (kill the bot, keep the broker).
//!
//! At start it writes what a client needs (host, port, CA and credentials) to `client.env` in its
//! certificate folder, readable by its owner only, and prints that file's path, never a secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ctrader_sim::{
    AccountCurrency, CertificateSource, FaultPlan, MaintenanceWindow, MarginCallType, MarketHours,
    PALM_OIL_SYMBOL_ID, PartialFills, PriceSource, SimConfig, SimCredentials, SimError, SimHandle,
    Simulator,
};
use domain::{AcceleratedClock, Secret};
use tokio::sync::watch;

use crate::commands::check_config::load_settings;
use crate::commands::run::parse_duration;
use crate::runtime::{self, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME};

/// Name of the file in `--cert-dir` holding what a client needs to connect.
pub const CLIENT_ENV_FILE: &str = "client.env";

/// `simulate --help`'s closing example: a simulator and `run` that trade within a minute.
pub const SIMULATE_EXAMPLE: &str = "\
Example: trade against the simulator within a minute (two terminals):
  palm-oil-bot simulate --listen 127.0.0.1:5035 --cert-dir sim --market-hours always --speed 300
  set -a; . sim/client.env; set +a
  TIMEFRAME=M1 DATABASE_URL=sqlite://sim/bot.db palm-oil-bot run

client.env (mode 0600) holds CTRADER_HOST, CTRADER_PORT, CTRADER_CA_FILE, the credentials the
simulator accepts, SYMBOL_CANDIDATES and SIMULATOR_CLOCK (so `run` keeps the simulator's time at
any --speed, across its own restarts). With --market-hours realistic (Bursa Malaysia sessions)
and --speed 1 the market is closed most of the day; the bot logs when it opens next.";

/// Options of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Loopback address to accept TLS connections on (port 0 picks a free port; the line printed
    /// at start says which).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Folder holding (or receiving) ca.pem, server.pem and server.key; existing files are reused
    /// so clients keep trusting the same CA across restarts.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: PathBuf,
    /// `synthetic` (a seeded palm oil path) or an OHLC CSV file to replay (time,open,high,low,close).
    #[arg(long, default_value = "synthetic", value_name = "synthetic|FILE.csv")]
    pub prices: String,
    /// Simulated seconds per real second (600: one simulated minute every 100 ms).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub speed: f64,
    /// Seed of the synthetic price paths.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time between two steps of the price paths: the resolution of quotes, SL/TP
    /// checks and bars (e.g. 250ms, 1s; 1 ms to 60 s).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub quote_step: Duration,
    /// Send every quote change as its own spot event, in order, as a real server streams them
    /// (otherwise each market update sends a symbol's latest quote only: lighter at high speeds).
    #[arg(long)]
    pub every_quote: bool,
    /// Name of the palm oil CFD on this broker.
    #[arg(long, default_value = "PALMOIL", value_name = "NAME")]
    pub symbol: String,
    /// When symbols trade: `realistic` (Bursa Malaysia sessions for palm oil) or `always`.
    #[arg(long, default_value = "realistic", value_name = "realistic|always")]
    pub market_hours: String,
    /// Application client id the broker accepts (default: palm-oil-sim).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Application client secret the broker accepts (never printed).
    #[arg(long, value_name = "SECRET", value_parser = parse_secret)]
    pub client_secret: Option<Secret>,
    /// Access token the broker accepts (never printed).
    #[arg(long, value_name = "TOKEN", value_parser = parse_secret)]
    pub access_token: Option<Secret>,
    /// Refresh token the broker accepts (never printed).
    #[arg(long, value_name = "TOKEN", value_parser = parse_secret)]
    pub refresh_token: Option<Secret>,
    /// The trading account id (ctidTraderAccountId) the broker serves.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub account_id: Option<i64>,
    /// The account's deposit currency: `USD` (palm oil, quoted in MYR, converts through the
    /// moving USDMYR quote) or `MYR` (palm oil needs no conversion; dollar symbols convert through
    /// USDMYR). Money is converted at the conversion symbols' mid prices.
    #[arg(long, default_value = "USD", value_name = "USD|MYR")]
    pub account_currency: String,
    /// Stop after this long (e.g. 90s, 30m, 2h); otherwise runs until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// List the account as live (the account list's isLive) instead of demo.
    #[arg(long)]
    pub live_account: bool,
    /// Make the account limited-risk (isLimitedRisk): every new order needs a guaranteed stop
    /// loss, which closes at its own price however far the market jumps.
    #[arg(long)]
    pub limited_risk_account: bool,
    /// Seconds an access token works before it expires (and a refresh's expires_in).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub token_lifetime: Option<Duration>,
    /// Fault: open a maintenance window this many seconds after the start (with --maintenance-for).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, requires = "maintenance_for", help_heading = "Faults")]
    pub maintenance_after: Option<Duration>,
    /// Fault: the maintenance window lasts this many seconds: clients are dropped and every
    /// request is answered SERVER_IS_UNDER_MAINTENANCE with the window's end.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, help_heading = "Faults")]
    pub maintenance_for: Option<Duration>,
    /// Fault: cut each connection when its N-th message arrives (the message is still carried out).
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub drop_after_messages: Option<u64>,
    /// Fault: cut each connection this many seconds after it was accepted.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, help_heading = "Faults")]
    pub drop_every: Option<Duration>,
    /// Fault: hold every reply this many milliseconds.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub reply_delay_ms: Option<u64>,
    /// Fault: work each new order this many milliseconds after it arrives (even when its
    /// connection has gone by then), as a busy server's queue may.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub order_delay_ms: Option<u64>,
    /// Fault: hold the answer to each token refresh this many milliseconds; the tokens rotate
    /// at once, as a real server's do when its answer is late.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub refresh_reply_delay_ms: Option<u64>,
    /// Fault: hold the answers to new orders this many milliseconds (each is worked at once),
    /// and no other reply.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    pub order_reply_delay_ms: Option<u64>,
    /// Fault: a refreshed token's invalidation reaches each connection only after its next
    /// answer (an account authorised with the old token answers ALREADY_LOGGED_IN meanwhile).
    #[arg(long, help_heading = "Faults")]
    pub late_token_invalidation: bool,
    /// Fault: refuse the next new order with this cTrader error code (e.g. NOT_ENOUGH_MONEY).
    #[arg(long, value_name = "CODE", help_heading = "Faults")]
    pub reject_next_order: Option<String>,
    /// Fault: send every execution event twice.
    #[arg(long, help_heading = "Faults")]
    pub duplicate_executions: bool,
    /// Fault: close the oldest open position this often, as a person in the cTrader app would.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, help_heading = "Faults")]
    pub external_close_every: Option<Duration>,
    /// Fault: never send heartbeats.
    #[arg(long, help_heading = "Faults")]
    pub silence_heartbeats: bool,
    /// Fault: after answering a connection's N-th message, announce an oversized frame and close.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub oversized_frame_after: Option<u64>,
    /// Fault: after answering a connection's N-th message, send a frame that is not a ProtoMessage.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub malformed_frame_after: Option<u64>,
    /// Broker behaviour: fill market orders (opening and closing) in N deals, ORDER_PARTIAL_FILL
    /// for each but the last, then ORDER_FILLED; `cancel-rest` fills half and cancels the rest
    /// (ORDER_CANCELLED); `off` fills whole.
    #[arg(
        long,
        default_value = "off",
        value_name = "off|cancel-rest|N",
        help_heading = "Broker behaviour"
    )]
    pub partial_fills: String,
    /// Broker behaviour: answer the first N requests after account authorisation with
    /// CANT_ROUTE_REQUEST (nothing done; the client retries reads with backoff).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Broker behaviour"
    )]
    pub cant_route_requests: u32,
    /// Broker behaviour: answer the first N requests after account authorisation with
    /// REQUEST_FREQUENCY_EXCEEDED and retryAfter 1 s.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Broker behaviour"
    )]
    pub frequency_exceeded_requests: u32,
    /// Broker behaviour: accept the next new order, then refuse it with this error code in an
    /// order error event that names the order id but carries no clientMsgId.
    #[arg(long, value_name = "CODE", help_heading = "Broker behaviour")]
    pub order_error_without_msg_id: Option<String>,
    /// Broker behaviour: send ProtoOAMarginChangedEvent after every deal.
    #[arg(long, help_heading = "Broker behaviour")]
    pub margin_changed_events: bool,
    /// Scheduled: deposit AMOUNT (account currency, e.g. 1000 or 250.50) AFTER a real-time delay
    /// (e.g. 30s, 5m): a DEPOSIT_WITHDRAW execution event and a trader update. Repeatable.
    #[arg(long, value_name = "AMOUNT@AFTER", value_parser = value_at("AMOUNT", |v| cash(v).map(BrokerEvent::Deposit)), help_heading = EVENTS)]
    pub deposit: Vec<ScheduledEvent>,
    /// Scheduled: withdraw AMOUNT AFTER a delay, as --deposit; more than the balance is refused
    /// (logged). Repeatable.
    #[arg(long, value_name = "AMOUNT@AFTER", value_parser = value_at("AMOUNT", |v| cash(v).map(BrokerEvent::Withdraw)), help_heading = EVENTS)]
    pub withdraw: Vec<ScheduledEvent>,
    /// Scheduled: change the account's money digits to D (0 to 8) AFTER a delay, rescaling the
    /// balance; a trader update carries the new moneyDigits. Repeatable.
    #[arg(long, value_name = "D@AFTER", value_parser = value_at("D", money_digits), help_heading = EVENTS)]
    pub money_digits: Vec<ScheduledEvent>,
    /// Scheduled: set the palm oil symbol's minimum volume to UNITS (e.g. 2 or 0.5) AFTER a delay;
    /// a symbol changed event names it (a value off the symbol's step is refused, logged).
    /// Repeatable.
    #[arg(long, value_name = "UNITS@AFTER", value_parser = value_at("UNITS", min_volume), help_heading = EVENTS)]
    pub min_volume: Vec<ScheduledEvent>,
    /// Scheduled: suspend palm oil trading AFTER a delay (every order and close refused with
    /// TRADING_DISABLED), and resume it FOR later when given. Repeatable.
    #[arg(long, value_name = "AFTER[:FOR]", value_parser = pause(BrokerEvent::SuspendTrading), help_heading = EVENTS)]
    pub suspend_trading: Vec<TradingPause>,
    /// Scheduled: let palm oil only close positions AFTER a delay, and trade normally again FOR
    /// later when given. Repeatable.
    #[arg(long, value_name = "AFTER[:FOR]", value_parser = pause(BrokerEvent::CloseOnly), help_heading = EVENTS)]
    pub close_only: Vec<TradingPause>,
    /// Scheduled: a margin call (ProtoOAMarginCallTriggerEvent, threshold 1 at a 100 % margin
    /// level) AFTER a delay. Repeatable.
    #[arg(long, value_name = "AFTER", value_parser = at(BrokerEvent::MarginCall), help_heading = EVENTS)]
    pub margin_call: Vec<ScheduledEvent>,
    /// Scheduled: stop out the oldest open position AFTER a delay (a broker close with isStopOut;
    /// logged and skipped when none is open). Repeatable.
    #[arg(long, value_name = "AFTER", value_parser = at(BrokerEvent::StopOut), help_heading = EVENTS)]
    pub stop_out: Vec<ScheduledEvent>,
    /// Scheduled: log the account out of every connection (ProtoOAAccountDisconnectEvent) AFTER a
    /// delay. Repeatable.
    #[arg(long, value_name = "AFTER", value_parser = at(BrokerEvent::AccountDisconnect), help_heading = EVENTS)]
    pub account_disconnect: Vec<ScheduledEvent>,
    /// Scheduled: end every open session (ProtoOAClientDisconnectEvent) AFTER a delay. Repeatable.
    #[arg(long, value_name = "AFTER", value_parser = at(BrokerEvent::ClientDisconnect), help_heading = EVENTS)]
    pub client_disconnect: Vec<ScheduledEvent>,
}

/// Help heading of the broker events `simulate` schedules.
const EVENTS: &str = "Scheduled broker events";

/// The margin level (percent) a scheduled margin call reports for threshold 1.
const MARGIN_CALL_LEVEL: f64 = 100.0;

/// A positive decimal as written on the command line: `digits` / 10^`scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    digits: i64,
    scale: u32,
}

impl Decimal {
    /// Parses `1000` or `250.50` (more than 0, at most `max_scale` decimals).
    fn parse(text: &str, max_scale: u32) -> Result<Decimal, String> {
        let not_a_number = || format!("{text:?} is not a positive number like 1000 or 250.50");
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(not_a_number());
        }
        let scale = u32::try_from(fraction.len())
            .ok()
            .filter(|s| *s <= max_scale)
            .ok_or_else(|| format!("{text:?} has more than {max_scale} decimals"))?;
        let digits: i64 = format!("{whole}{fraction}")
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?;
        if digits == 0 {
            return Err(format!("{text:?} must be more than 0"));
        }
        Ok(Decimal { digits, scale })
    }

    /// The amount in units of 10^-`digits`, when that is exact and fits.
    fn in_units_of(self, digits: u32) -> Option<i64> {
        if self.scale <= digits {
            10_i64
                .checked_pow(digits - self.scale)?
                .checked_mul(self.digits)
        } else {
            let divisor = 10_i64.checked_pow(self.scale - digits)?;
            (self.digits % divisor == 0).then_some(self.digits / divisor)
        }
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.digits);
        }
        let text = format!("{:0>width$}", self.digits, width = self.scale as usize + 1);
        let (whole, fraction) = text.split_at(text.len() - self.scale as usize);
        write!(f, "{whole}.{fraction}")
    }
}

/// A one-off broker action `simulate` carries out at a scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEvent {
    /// Cash in, in the account currency.
    Deposit(Decimal),
    /// Cash out, in the account currency.
    Withdraw(Decimal),
    /// New digits of the account's money.
    MoneyDigits(u32),
    /// New minimum volume of the palm oil symbol, in units of the symbol.
    MinVolume(Decimal),
    /// Palm oil trading suspended.
    SuspendTrading,
    /// Palm oil trades closes only.
    CloseOnly,
    /// Palm oil trades normally again.
    ResumeTrading,
    /// A margin call at threshold 1.
    MarginCall,
    /// The oldest open position stopped out.
    StopOut,
    /// The account logged out of every connection.
    AccountDisconnect,
    /// Every open session ended by the server.
    ClientDisconnect,
}

impl std::fmt::Display for BrokerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerEvent::Deposit(amount) => write!(f, "deposit {amount}"),
            BrokerEvent::Withdraw(amount) => write!(f, "withdrawal {amount}"),
            BrokerEvent::MoneyDigits(digits) => write!(f, "money digits {digits}"),
            BrokerEvent::MinVolume(units) => write!(f, "minimum volume {units} units"),
            BrokerEvent::SuspendTrading => f.write_str("trading suspended"),
            BrokerEvent::CloseOnly => f.write_str("close only"),
            BrokerEvent::ResumeTrading => f.write_str("trading resumed"),
            BrokerEvent::MarginCall => f.write_str("margin call"),
            BrokerEvent::StopOut => f.write_str("stop-out"),
            BrokerEvent::AccountDisconnect => f.write_str("account disconnect"),
            BrokerEvent::ClientDisconnect => f.write_str("client disconnect"),
        }
    }
}

/// A broker event and how long after the simulator starts (real time) it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledEvent {
    /// Real time after the start.
    pub after: Duration,
    /// What happens.
    pub event: BrokerEvent,
}

/// Palm oil trading restricted (`event`) after a delay, and resumed `lasts` later when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradingPause {
    /// Real time after the start.
    pub after: Duration,
    /// How long the restriction lasts; `None`: until the simulator stops.
    pub lasts: Option<Duration>,
    /// The restriction: [`BrokerEvent::SuspendTrading`] or [`BrokerEvent::CloseOnly`].
    pub event: BrokerEvent,
}

/// The parser of a `SHAPE@AFTER` flag: `value` makes the event of the part before the `@`.
fn value_at(
    shape: &'static str,
    value: fn(&str) -> Result<BrokerEvent, String>,
) -> impl Fn(&str) -> Result<ScheduledEvent, String> + Clone + Send + Sync + 'static {
    move |text| {
        let (v, after) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not {shape}@AFTER (e.g. 1000@30s)"))?;
        let after = parse_duration(after)?;
        Ok(ScheduledEvent {
            after,
            event: value(v.trim())?,
        })
    }
}

/// The parser of an `AFTER` flag: `event` after a delay.
fn at(
    event: BrokerEvent,
) -> impl Fn(&str) -> Result<ScheduledEvent, String> + Clone + Send + Sync + 'static {
    move |text| {
        Ok(ScheduledEvent {
            after: parse_duration(text)?,
            event,
        })
    }
}

/// The parser of an `AFTER[:FOR]` flag: the restriction `event` after a delay, lifted FOR later.
fn pause(
    event: BrokerEvent,
) -> impl Fn(&str) -> Result<TradingPause, String> + Clone + Send + Sync + 'static {
    move |text| {
        let (after, lasts) = match text.split_once(':') {
            Some((after, lasts)) => (after, Some(parse_duration(lasts)?)),
            None => (text, None),
        };
        if lasts == Some(Duration::ZERO) {
            return Err(format!("{text:?}: FOR must be longer than 0"));
        }
        Ok(TradingPause {
            after: parse_duration(after)?,
            lasts,
            event,
        })
    }
}

/// An amount of cash; money digits go up to 8, so more decimals fit no account.
fn cash(text: &str) -> Result<Decimal, String> {
    Decimal::parse(text, 8)
}

fn money_digits(digits: &str) -> Result<BrokerEvent, String> {
    digits
        .parse()
        .ok()
        .filter(|d| *d <= 8)
        .map(BrokerEvent::MoneyDigits)
        .ok_or_else(|| format!("{digits:?} is not a number of money digits from 0 to 8"))
}

fn min_volume(units: &str) -> Result<BrokerEvent, String> {
    // Volumes are in 0.01 units: two decimals at most.
    let units = Decimal::parse(units, 2)?;
    if units.in_units_of(2).is_none() {
        return Err(format!("{units} units is too large"));
    }
    Ok(BrokerEvent::MinVolume(units))
}

/// Wraps a secret flag so `Debug` of the parsed arguments never shows it.
fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// Parses a number of seconds, fractions allowed (`0.5`, `30`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text:?} is not a non-negative number of seconds"))
}

/// A flag combination the simulator cannot start with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SimulateArgsError(String);

impl SimulateArgs {
    /// The simulator's configuration from the flags, checked the way the simulator checks it.
    pub fn sim_config(&self) -> Result<SimConfig, SimulateArgsError> {
        let bad = |e: SimError| SimulateArgsError(format!("--market-hours: {e}"));
        let market_hours: MarketHours = self.market_hours.parse().map_err(bad)?;
        let account_currency: AccountCurrency = self
            .account_currency
            .parse()
            .map_err(|e: SimError| SimulateArgsError(format!("--account-currency: {e}")))?;
        let prices = self
            .prices
            .parse::<PriceSource>()
            .unwrap_or_else(|never| match never {});
        let defaults = SimCredentials::default();
        let credentials = SimCredentials {
            client_id: self.client_id.clone().unwrap_or(defaults.client_id),
            client_secret: self.client_secret.clone().unwrap_or(defaults.client_secret),
            access_token: self.access_token.clone().unwrap_or(defaults.access_token),
            refresh_token: self.refresh_token.clone().unwrap_or(defaults.refresh_token),
            account_id: self.account_id.unwrap_or(defaults.account_id),
        };
        let partial_fills: PartialFills = self
            .partial_fills
            .parse()
            .map_err(|e: SimError| SimulateArgsError(format!("--partial-fills: {e}")))?;
        let faults = FaultPlan {
            drop_after_messages: self.drop_after_messages,
            drop_every: self.drop_every,
            reply_delay: self.reply_delay_ms.map(Duration::from_millis),
            order_delay: self.order_delay_ms.map(Duration::from_millis),
            refresh_reply_delay: self.refresh_reply_delay_ms.map(Duration::from_millis),
            order_reply_delay: self.order_reply_delay_ms.map(Duration::from_millis),
            late_token_invalidation: self.late_token_invalidation,
            reject_next_order: self.reject_next_order.clone(),
            duplicate_execution_events: self.duplicate_executions,
            external_close_every: self.external_close_every,
            silence_heartbeats: self.silence_heartbeats,
            oversized_frame_after_messages: self.oversized_frame_after,
            malformed_frame_after_messages: self.malformed_frame_after,
            partial_fills,
            cant_route_requests: self.cant_route_requests,
            frequency_exceeded_requests: self.frequency_exceeded_requests,
            order_error_without_msg_id: self.order_error_without_msg_id.clone(),
            margin_changed_events: self.margin_changed_events,
        };
        let config = SimConfig {
            listen: self.listen,
            certificates: CertificateSource::Directory(self.cert_dir.clone()),
            prices,
            speed: self.speed,
            seed: self.seed,
            quote_step: self.quote_step,
            every_quote: self.every_quote,
            palm_oil_symbol: self.symbol.clone(),
            credentials,
            market_hours,
            account_currency,
            faults,
            live_account: self.live_account,
            limited_risk_account: self.limited_risk_account,
            token_lifetime: self
                .token_lifetime
                .unwrap_or(SimConfig::default().token_lifetime),
            maintenance: self.maintenance_for.map(|lasts| MaintenanceWindow {
                after: self.maintenance_after.unwrap_or_default(),
                lasts,
            }),
            ..SimConfig::default()
        };
        config
            .validate()
            .map_err(|e| SimulateArgsError(e.to_string()))?;
        Ok(config)
    }

    /// Every scheduled broker event, earliest first (a pause with FOR yields its resumption too).
    pub fn schedule(&self) -> Vec<ScheduledEvent> {
        let mut events: Vec<ScheduledEvent> = [
            &self.deposit,
            &self.withdraw,
            &self.money_digits,
            &self.min_volume,
            &self.margin_call,
            &self.stop_out,
            &self.account_disconnect,
            &self.client_disconnect,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect();
        for pause in self.suspend_trading.iter().chain(&self.close_only) {
            events.push(ScheduledEvent {
                after: pause.after,
                event: pause.event,
            });
            if let Some(lasts) = pause.lasts {
                events.push(ScheduledEvent {
                    after: pause.after.saturating_add(lasts),
                    event: BrokerEvent::ResumeTrading,
                });
            }
        }
        // Stable: events due at the same time keep the order above.
        events.sort_by_key(|e| e.after);
        events
    }
}

/// Carries out each scheduled event once, at its time after the call, earliest first; returns
/// when the last has fired. `money_digits`: the account's at the start.
async fn fire_events(sim: &SimHandle, events: Vec<ScheduledEvent>, mut money_digits: u32) {
    let start = tokio::time::Instant::now();
    for scheduled in events {
        tokio::time::sleep_until(start + scheduled.after).await;
        let event = scheduled.event;
        match carry_out(sim, event, &mut money_digits) {
            Ok(()) => tracing::info!("scheduled broker event: {event}"),
            Err(e) => tracing::warn!("scheduled broker event {event} not carried out: {e}"),
        }
    }
}

/// Makes the simulator do `event` now; `money_digits` follows a change of digits.
fn carry_out(sim: &SimHandle, event: BrokerEvent, money_digits: &mut u32) -> Result<(), String> {
    let digits = *money_digits;
    let minor = |amount: Decimal| {
        amount
            .in_units_of(digits)
            .ok_or_else(|| format!("{amount} does not fit the account's {digits} money digits"))
    };
    let done = match event {
        BrokerEvent::Deposit(amount) => sim.deposit(minor(amount)?).map(drop),
        BrokerEvent::Withdraw(amount) => sim.withdraw(minor(amount)?).map(drop),
        BrokerEvent::MoneyDigits(new) => sim.set_money_digits(new).map(|()| *money_digits = new),
        BrokerEvent::MinVolume(units) => {
            let volume = units
                .in_units_of(2)
                .ok_or_else(|| format!("{units} units is too large"))?;
            sim.set_symbol_min_volume(PALM_OIL_SYMBOL_ID, volume)
        }
        BrokerEvent::SuspendTrading => sim.suspend_trading(PALM_OIL_SYMBOL_ID),
        BrokerEvent::CloseOnly => sim.close_only(PALM_OIL_SYMBOL_ID),
        BrokerEvent::ResumeTrading => sim.resume_trading(PALM_OIL_SYMBOL_ID),
        BrokerEvent::MarginCall => {
            sim.trigger_margin_call(MarginCallType::Threshold1, MARGIN_CALL_LEVEL);
            Ok(())
        }
        BrokerEvent::StopOut => {
            let oldest = sim.open_position_ids().first().copied();
            let oldest = oldest.ok_or_else(|| "no position is open".to_owned())?;
            sim.stop_out(oldest)
        }
        BrokerEvent::AccountDisconnect => {
            sim.disconnect_account();
            Ok(())
        }
        BrokerEvent::ClientDisconnect => {
            sim.faults()
                .disconnect_clients("scheduled by simulate --client-disconnect");
            Ok(())
        }
    };
    done.map_err(|e| e.to_string())
}

/// Runs `simulate`: 0 after a clean stop, 2 for bad flags or settings, 1 when the server fails.
#[allow(clippy::print_stderr)] // start-up errors go to the operator's terminal
pub fn run(config_path: Option<&Path>, args: &SimulateArgs) -> ExitCode {
    let (_, config) = match load_settings(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let sim_config = match args.sim_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let c = &sim_config.credentials;
    let redact = vec![
        c.client_secret.clone(),
        c.access_token.clone(),
        c.refresh_token.clone(),
    ];
    if let Err(e) = runtime::install_globals(&config, redact) {
        eprintln!("{e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::Service) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let events = args.schedule();
    ExitCode::from(tokio.block_on(serve(sim_config, args.duration, events)))
}

/// Serves until a signal or the duration; prints the one start line scripts parse.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the start line is this command's output
async fn serve(config: SimConfig, duration: Option<Duration>, events: Vec<ScheduledEvent>) -> u8 {
    let money_digits = config.money_digits;
    let account = config.credentials.account_id;
    let client_id = config.credentials.client_id.clone();
    let credentials = config.credentials.clone();
    let symbol = config.palm_oil_symbol.clone();
    let currency = config.account_currency;
    let sim = match Simulator::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("the simulator did not start: {e}");
            return start_failure_code(&e);
        }
    };
    let ca = sim
        .ca_cert_path()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let Some(ca) = ca else {
        // `--cert-dir` always yields a CA; a server without one is of no use to a client.
        eprintln!("the simulator has no CA certificate for clients to trust");
        sim.shutdown().await;
        return EXIT_RUNTIME;
    };
    let env_file = ca.with_file_name(CLIENT_ENV_FILE);
    let text = client_env(
        &credentials,
        sim.local_addr().port(),
        &ca,
        &symbol,
        &sim.clock(),
    );
    if let Err(e) = write_private(&env_file, &text) {
        eprintln!("cannot write {}: {e}", env_file.display());
        sim.shutdown().await;
        return EXIT_RUNTIME;
    }
    println!(
        "simulator listening on {} ca={} credentials={} account={account} client_id={client_id} symbol={symbol} currency={currency}",
        sim.local_addr(),
        ca.display(),
        env_file.display()
    );
    // Scripts read the line before connecting: it must not sit in a buffer.
    if let Err(e) = std::io::Write::flush(&mut std::io::stdout()) {
        eprintln!("cannot write to stdout: {e}");
        sim.shutdown().await;
        return EXIT_RUNTIME;
    }
    tracing::info!(
        address = %sim.local_addr(),
        ca = %ca.display(),
        "simulator ready: Ctrl-C or SIGTERM stops it"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime::spawn_signal_watch(stop_tx, duration);
    // The scheduled events run until the last has fired or the simulator stops, whichever is first.
    let scheduled = async {
        fire_events(&sim, events, money_digits).await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = runtime::wait_for(stop_rx) => {}
        () = scheduled => {}
    }
    // What a load test reads: how many quotes went out, and whether any client fell behind (on
    // stderr: stdout holds the one line scripts parse at start).
    eprintln!(
        "simulator stopped at {}: {} spot events sent, {} pushed events missed by slow clients",
        sim.sim_time(),
        sim.spots_sent(),
        sim.pushes_missed()
    );
    sim.shutdown().await;
    EXIT_OK
}

/// The settings and secrets `run` needs for this simulator, as `NAME='value'` lines a shell can
/// load (`set -a; . client.env; set +a`).
fn client_env(
    credentials: &SimCredentials,
    port: u16,
    ca: &Path,
    symbol: &str,
    clock: &AcceleratedClock,
) -> String {
    let ca = ca.display().to_string();
    let clock = clock.to_string();
    let port = port.to_string();
    let account = credentials.account_id.to_string();
    let lines = [
        ("CTRADER_HOST", "localhost"),
        ("CTRADER_PORT", port.as_str()),
        ("CTRADER_CA_FILE", ca.as_str()),
        ("CTRADER_CLIENT_ID", credentials.client_id.as_str()),
        ("CTRADER_CLIENT_SECRET", credentials.client_secret.expose()),
        ("CTRADER_ACCESS_TOKEN", credentials.access_token.expose()),
        ("CTRADER_REFRESH_TOKEN", credentials.refresh_token.expose()),
        ("CTRADER_ACCOUNT_ID", account.as_str()),
        ("SYMBOL_CANDIDATES", symbol),
        // At any --speed but 1 the simulator's time runs away from this machine's: `run` keeps it.
        ("SIMULATOR_CLOCK", clock.as_str()),
    ];
    let mut text = String::from(
        "# Written by `palm-oil-bot simulate`: what a client needs to connect to it. Holds secrets.\n\
         # Load it into a shell with: set -a; . PATH/TO/client.env; set +a\n",
    );
    for (name, value) in lines {
        text.push_str(&format!("{name}={}\n", shell_quoted(value)));
    }
    text
}

/// `value` in single quotes, safe to source from a shell.
fn shell_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Writes `text` to `path` readable and writable by the owner only (0600 on Unix), through a
/// temporary file renamed into place so a reader never sees half of it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let temp = path.with_file_name(format!(".{CLIENT_ENV_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(&temp)?;
        // The mode applies only to a new file: make sure of it either way.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)
}

/// Bad flag values (file, folder, configuration) are the operator's to fix: exit 2; a failed
/// bind or TLS setup is a runtime failure: exit 1.
fn start_failure_code(error: &SimError) -> u8 {
    match error {
        SimError::Config(_)
        | SimError::PriceFileIo { .. }
        | SimError::PriceFile { .. }
        | SimError::CertificateIo { .. } => EXIT_CONFIG,
        _ => EXIT_RUNTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use domain::Timestamp;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(extra: &[&str]) -> SimulateArgs {
        let mut argv = vec![
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--cert-dir",
            "/tmp/x",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.args,
            Err(e) => panic!("flags did not parse: {e}"),
        }
    }

    #[test]
    fn flags_map_onto_the_simulator_config() {
        let args = parse(&[
            "--speed",
            "600",
            "--seed",
            "9",
            "--symbol",
            "FCPO",
            "--market-hours",
            "always",
            "--client-id",
            "me",
            "--client-secret",
            "flag-secret-1",
            "--access-token",
            "flag-token-1",
            "--account-id",
            "77",
            "--account-currency",
            "myr",
            "--drop-after-messages",
            "5",
            "--drop-every",
            "2.5",
            "--reply-delay-ms",
            "40",
            "--order-delay-ms",
            "900",
            "--refresh-reply-delay-ms",
            "1200",
            "--late-token-invalidation",
            "--order-reply-delay-ms",
            "700",
            "--reject-next-order",
            "NOT_ENOUGH_MONEY",
            "--duplicate-executions",
            "--external-close-every",
            "30",
            "--silence-heartbeats",
            "--oversized-frame-after",
            "3",
            "--malformed-frame-after",
            "4",
            "--partial-fills",
            "3",
            "--cant-route-requests",
            "2",
            "--frequency-exceeded-requests",
            "1",
            "--order-error-without-msg-id",
            "NOT_ENOUGH_MONEY",
            "--margin-changed-events",
        ]);
        let config = args.sim_config().unwrap_or_else(|e| panic!("{e}"));
        assert!((config.speed - 600.0).abs() < f64::EPSILON);
        assert_eq!(config.seed, 9);
        assert_eq!(config.palm_oil_symbol, "FCPO");
        assert_eq!(config.market_hours, MarketHours::AlwaysOpen);
        assert_eq!(config.credentials.client_id, "me");
        assert_eq!(config.credentials.client_secret.expose(), "flag-secret-1");
        assert_eq!(config.credentials.access_token.expose(), "flag-token-1");
        assert_eq!(config.credentials.account_id, 77);
        assert_eq!(config.account_currency, AccountCurrency::Myr);
        assert_eq!(
            parse(&[]).sim_config().map(|c| c.account_currency).ok(),
            Some(AccountCurrency::Usd),
            "USD by default, as before"
        );
        let f = &config.faults;
        assert_eq!(f.drop_after_messages, Some(5));
        assert_eq!(f.drop_every, Some(Duration::from_millis(2500)));
        assert_eq!(f.reply_delay, Some(Duration::from_millis(40)));
        assert_eq!(f.order_delay, Some(Duration::from_millis(900)));
        assert_eq!(f.refresh_reply_delay, Some(Duration::from_millis(1200)));
        assert!(f.late_token_invalidation);
        assert_eq!(f.order_reply_delay, Some(Duration::from_millis(700)));
        assert_eq!(f.reject_next_order.as_deref(), Some("NOT_ENOUGH_MONEY"));
        assert!(f.duplicate_execution_events && f.silence_heartbeats);
        assert_eq!(f.external_close_every, Some(Duration::from_secs(30)));
        assert_eq!(f.oversized_frame_after_messages, Some(3));
        assert_eq!(f.malformed_frame_after_messages, Some(4));
        assert_eq!(f.partial_fills, PartialFills::Deals(3));
        assert_eq!(
            (f.cant_route_requests, f.frequency_exceeded_requests),
            (2, 1)
        );
        assert_eq!(
            f.order_error_without_msg_id.as_deref(),
            Some("NOT_ENOUGH_MONEY")
        );
        assert!(f.margin_changed_events);
        let bad = parse(&["--partial-fills", "1"]).sim_config().unwrap_err();
        assert!(bad.to_string().contains("--partial-fills"), "{bad}");
        let shown = format!("{args:?} {config:?}");
        assert!(!shown.contains("flag-secret-1") && !shown.contains("flag-token-1"));
    }

    #[test]
    fn client_env_quotes_every_value_for_a_shell() {
        let credentials = SimCredentials {
            client_secret: Secret::new("it's-secret"),
            ..SimCredentials::default()
        };
        let clock = AcceleratedClock {
            sim: Timestamp(1_736_121_600_000),
            wall: Timestamp(1_764_693_550_000),
            speed: 300.0,
        };
        let text = client_env(
            &credentials,
            5035,
            Path::new("/tmp/c a/ca.pem"),
            "PALMOIL",
            &clock,
        );
        assert!(
            text.contains("SIMULATOR_CLOCK='1736121600000,1764693550000,300'\n"),
            "{text}"
        );
        assert!(
            text.contains("CTRADER_CLIENT_SECRET='it'\\''s-secret'\n"),
            "{text}"
        );
        assert!(
            text.contains("CTRADER_CA_FILE='/tmp/c a/ca.pem'\n"),
            "{text}"
        );
        assert!(text.contains("CTRADER_PORT='5035'\n"), "{text}");
        assert!(text.contains("CTRADER_HOST='localhost'\n"), "{text}");
    }

    /// The error clap reports for `extra`, or a panic when it parses.
    fn refused(extra: &[&str]) -> String {
        let mut argv = vec![
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--cert-dir",
            "/tmp/x",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{extra:?} was accepted: {:?}", cli.args.schedule()),
            Err(e) => e.to_string(),
        }
    }

    fn at(secs: u64, event: BrokerEvent) -> ScheduledEvent {
        ScheduledEvent {
            after: Duration::from_secs(secs),
            event,
        }
    }

    #[test]
    fn scheduled_events_parse_and_come_earliest_first() {
        let args = parse(&[
            "--deposit",
            "1000@30s",
            "--deposit",
            "250.50@5m",
            "--withdraw",
            "0.01@1m",
            "--money-digits",
            "3@2m",
            "--min-volume",
            "0.5@10",
            "--suspend-trading",
            "1m:30s",
            "--close-only",
            "3m",
            "--margin-call",
            "45s",
            "--stop-out",
            "1h",
            "--account-disconnect",
            "2m",
            "--client-disconnect",
            "0s",
        ]);
        let deposit = |digits, scale| BrokerEvent::Deposit(Decimal { digits, scale });
        assert_eq!(
            args.schedule(),
            vec![
                at(0, BrokerEvent::ClientDisconnect),
                at(
                    10,
                    BrokerEvent::MinVolume(Decimal {
                        digits: 5,
                        scale: 1
                    })
                ),
                at(30, deposit(1000, 0)),
                at(45, BrokerEvent::MarginCall),
                at(
                    60,
                    BrokerEvent::Withdraw(Decimal {
                        digits: 1,
                        scale: 2
                    })
                ),
                at(60, BrokerEvent::SuspendTrading),
                at(90, BrokerEvent::ResumeTrading),
                at(120, BrokerEvent::MoneyDigits(3)),
                at(120, BrokerEvent::AccountDisconnect),
                at(180, BrokerEvent::CloseOnly),
                at(300, deposit(25050, 2)),
                at(3600, BrokerEvent::StopOut),
            ]
        );
        assert!(
            parse(&[]).schedule().is_empty(),
            "nothing scheduled by default"
        );
    }

    #[test]
    fn amounts_convert_exactly_into_the_accounts_money_digits() {
        let amount = |text| Decimal::parse(text, 8).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(amount("250.50").in_units_of(2), Some(25_050));
        assert_eq!(amount("1000").in_units_of(2), Some(100_000));
        assert_eq!(amount("1000").in_units_of(0), Some(1000));
        assert_eq!(amount("250.50").in_units_of(1), Some(2505));
        assert_eq!(amount("0.005").in_units_of(2), None, "not exact");
        assert_eq!(
            amount("92233720368547758").in_units_of(8),
            None,
            "overflows"
        );
        assert_eq!(amount("250.50").to_string(), "250.50");
        assert_eq!(amount("0.05").to_string(), "0.05");
        assert_eq!(amount("7").to_string(), "7");
        assert_eq!(
            BrokerEvent::Deposit(amount("1000")).to_string(),
            "deposit 1000"
        );
    }

    #[test]
    fn bad_scheduled_events_name_their_flag() {
        let cases: [(&[&str], &str, &str); 14] = [
            (&["--deposit", "1000"], "--deposit", "AMOUNT@AFTER"),
            (&["--deposit=-5@1s"], "--deposit", "positive number"),
            (&["--deposit", "0@1s"], "--deposit", "more than 0"),
            (&["--deposit", "1.123456789@1s"], "--deposit", "8 decimals"),
            (&["--deposit", "10@soon"], "--deposit", "duration"),
            (&["--withdraw", "ten@1s"], "--withdraw", "positive number"),
            (&["--money-digits", "9@1s"], "--money-digits", "0 to 8"),
            (&["--min-volume", "0.001@1s"], "--min-volume", "2 decimals"),
            (
                &["--suspend-trading", "1m:0s"],
                "--suspend-trading",
                "longer than 0",
            ),
            (&["--close-only", "x"], "--close-only", "duration"),
            (&["--margin-call=-1s"], "--margin-call", "duration"),
            (&["--stop-out", "1d"], "--stop-out", "duration"),
            (
                &["--account-disconnect", ""],
                "--account-disconnect",
                "duration",
            ),
            (
                &["--client-disconnect", "5x"],
                "--client-disconnect",
                "duration",
            ),
        ];
        for (extra, flag, why) in cases {
            let message = refused(extra);
            assert!(
                message.contains(flag) && message.contains(why),
                "{extra:?}: {message}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = |extra: &[&str]| match parse(extra).sim_config() {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err(&["--speed", "0"]).contains("speed"));
        assert!(err(&["--market-hours", "weekends"]).contains("market hours"));
        assert!(err(&["--reject-next-order", "no money"]).contains("error code"));
        assert!(err(&["--drop-after-messages", "0"]).contains("drop after messages"));
        assert!(err(&["--account-id", "-4"]).contains("account id"));
        let currency = err(&["--account-currency", "EUR"]);
        assert!(
            currency.contains("--account-currency") && currency.contains("USD or MYR"),
            "{currency}"
        );
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("-1").is_err());
    }
}
