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
    AccountCurrency, CertificateSource, FaultPlan, MaintenanceWindow, MarketHours, PartialFills,
    PriceSource, SimConfig, SimCredentials, SimError, Simulator,
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
            palm_oil_symbol: self.symbol.clone(),
            credentials,
            market_hours,
            account_currency,
            faults,
            live_account: self.live_account,
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
    ExitCode::from(tokio.block_on(serve(sim_config, args.duration)))
}

/// Serves until a signal or the duration; prints the one start line scripts parse.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the start line is this command's output
async fn serve(config: SimConfig, duration: Option<Duration>) -> u8 {
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
    runtime::wait_for(stop_rx).await;
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
