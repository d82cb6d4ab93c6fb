//! `run`: trade the configured cTrader account (demo or live) until Ctrl-C, SIGTERM or `--duration`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{CTraderConfig, Credentials, ExtraCa};
use domain::{Clock, SystemClock};
use persistence::{StoreIdentity, TradeStore};
use tokio::sync::watch;

use crate::allowlist::NetworkAllowList;
use crate::commands::check_config::{TradingSettings, validate_trading, warn_about_dotenv};
use crate::config::{BrokerCredentials, Config};
use crate::live_guard::{self, LiveConsent};
use crate::notifications::NotifySecrets;
use crate::runtime::{self, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME};
use crate::sentiment_setup::{SentimentSecrets, build_service};
use crate::store::{StoreRequest, TradingStore, open_trading_store};

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Required to trade a live account (the broker's isLive decides, whatever CTRADER_ENV says)
    /// or to connect to live.ctraderapi.com: confirms that real money will be traded.
    #[arg(long)]
    pub confirm_live: bool,
    /// Decide, record and log, but send no order.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this long (e.g. 90s, 30m, 2h); otherwise runs until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Release an engaged kill switch at start-up (an operator's decision; it is logged).
    #[arg(long)]
    pub reset_kill_switch: bool,
    /// When the database belongs to another account, host or environment: move it aside
    /// (renamed `{file}.{UTC time}Z.bak`, nothing deleted) and start a fresh store. Without a
    /// mismatch it changes nothing.
    #[arg(long)]
    pub new_store: bool,
}

/// Parses `250ms`, `90s`, `30m`, `2h` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m or 2h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{text:?} is not a duration like 90s, 30m or 2h")),
    };
    Ok(Duration::from_secs(secs))
}

/// What `run` and `reconcile` need before connecting to the broker.
#[derive(Debug)]
pub struct TradingSetup {
    /// Validated settings.
    pub config: Config,
    /// cTrader credentials from the environment.
    pub credentials: BrokerCredentials,
    /// Sentiment keys from the environment.
    pub sentiment: SentimentSecrets,
    /// Notification secrets from the environment.
    pub notify: NotifySecrets,
    /// The hosts connections may go to.
    pub allow: NetworkAllowList,
}

/// Loads settings and credentials (every problem named at once), installs the process globals
/// with every secret scrubbed from logs, and checks the broker host against the allow-list.
/// On failure the problem is on stderr and the exit status is returned.
#[allow(clippy::print_stderr)] // start-up errors go to the operator's terminal
pub fn prepare_trading(config_path: Option<&Path>) -> Result<TradingSetup, u8> {
    let env = |name: &str| std::env::var(name).ok();
    warn_about_dotenv();
    // The same validation `check-config` runs: settings and credentials together, so one run
    // names every problem.
    let TradingSettings {
        config,
        credentials,
        sentiment,
        notify,
        allow,
        ..
    } = validate_trading(config_path, &env).map_err(|errors| {
        eprint!("{errors}");
        EXIT_CONFIG
    })?;
    let mut redact = vec![
        credentials.client_secret.clone(),
        credentials.access_token.clone(),
        credentials.client_id.clone(),
    ];
    redact.extend(credentials.refresh_token.clone());
    redact.extend(sentiment.perplexity_api_key.clone());
    redact.extend(sentiment.x_bearer_token.clone());
    redact.extend(notify.redact());
    runtime::install_globals(&config, redact).map_err(|e| {
        eprintln!("{e}");
        EXIT_RUNTIME
    })?;
    let mut allow = allow;
    if config.broker.env.is_none() && !config.broker.host_set {
        // The account decides: a live one is traded on the official live host.
        allow.allow(ctrader_client::LIVE_HOST);
    }
    Ok(TradingSetup {
        config,
        credentials,
        sentiment,
        notify,
        allow,
    })
}

/// Runs `run`; the exit status says how it ended (see the README).
#[allow(clippy::print_stderr)] // start-up errors go to the operator's terminal
pub fn run(config_path: Option<&Path>, args: &RunArgs) -> ExitCode {
    let TradingSetup {
        config,
        credentials,
        sentiment: sentiment_secrets,
        notify,
        allow,
    } = match prepare_trading(config_path) {
        Ok(setup) => setup,
        Err(code) => return ExitCode::from(code),
    };
    let consent = LiveConsent {
        confirm_live: args.confirm_live,
        dry_run: args.dry_run,
    };
    // Before connecting: the official live host needs --confirm-live, and CTRADER_ENV must not
    // contradict an official host. The account's own kind is checked once the broker says it.
    let plan = match live_guard::plan(&config.broker, consent) {
        Ok(plan) => plan,
        Err(refusal) => {
            eprintln!("{refusal}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut broker = broker_config(&config, &credentials);
    broker.host.clone_from(&plan.host);
    broker.expect_live.clone_from(&plan.expect);
    // The store is bound to what is known before connecting: live when CTRADER_ENV says so or
    // the official live host is named; the broker's own word is checked once connected.
    let expected_live = plan
        .expect
        .as_ref()
        .map_or_else(|| live_guard::is_live_host(&plan.host), |e| e.live);
    let identity = store_identity(&config, &credentials, expected_live);
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::Service) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = tokio.block_on(session(
        config,
        broker,
        identity,
        sentiment_secrets,
        notify,
        allow,
        args.clone(),
    ));
    ExitCode::from(code)
}

/// Who trades, as the store is bound to it: the broker host, the account, and whether it is live
/// (`live` is what the caller established: the broker's word, or `CTRADER_ENV`).
pub fn store_identity(
    config: &Config,
    credentials: &BrokerCredentials,
    live: bool,
) -> StoreIdentity {
    StoreIdentity::new(&config.broker.host, credentials.account_id, live)
}

/// The cTrader client's configuration from the settings and credentials.
pub fn broker_config(config: &Config, credentials: &BrokerCredentials) -> CTraderConfig {
    let mut broker = CTraderConfig::new(
        config.broker.host.clone(),
        config.broker.port,
        Credentials {
            client_id: credentials.client_id.expose().to_owned(),
            client_secret: credentials.client_secret.clone(),
            access_token: credentials.access_token.clone(),
            refresh_token: credentials.refresh_token.clone(),
        },
        credentials.account_id,
    );
    broker.extra_ca = config.broker.ca_file.clone().map(ExtraCa::PemFile);
    // An accelerated simulator's market moves on while we wait: its waits keep its pace.
    let simulator = config.broker.simulator_clock.as_ref();
    broker.reconnect.initial_delay = runtime::paced(broker.reconnect.initial_delay, simulator);
    broker.reconnect.max_delay = runtime::paced(broker.reconnect.max_delay, simulator);
    broker.maintenance_jitter = runtime::paced(broker.maintenance_jitter, simulator);
    broker
}

async fn session(
    config: Config,
    broker: CTraderConfig,
    identity: StoreIdentity,
    secrets: SentimentSecrets,
    notify: NotifySecrets,
    allow: NetworkAllowList,
    args: RunArgs,
) -> u8 {
    // Trading keeps the broker's time: this machine's, or an accelerated simulator's when
    // SIMULATOR_CLOCK says so. The store's lease stays on this machine's clock, which other
    // processes on it share.
    let clock: Arc<dyn Clock> = match config.broker.simulator_clock {
        Some(simulated) => {
            tracing::info!(clock = %simulated, now = %simulated.now(), "keeping the simulator's time");
            Arc::new(simulated)
        }
        None => Arc::new(SystemClock),
    };
    let bound_live = identity.live;
    let request = StoreRequest {
        url: &config.database_url,
        identity,
        command: "run",
        new_store: args.new_store,
    };
    let held = match open_trading_store(&request, &SystemClock).await {
        Ok(held) => held,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    // Boxed: the session's future is large, and this one is awaited once.
    let code = Box::pin(trade_session(
        &config,
        broker,
        held.shared(),
        clock,
        secrets,
        &notify,
        &allow,
        &args,
        bound_live,
    ))
    .await;
    close_store(held, code).await
}

/// A clean stop of the store: the lease released, the write-ahead log checkpointed into the
/// file. A failure is logged and turns a clean exit into a runtime failure (exit 1).
pub async fn close_store(held: TradingStore, code: u8) -> u8 {
    match held.close().await {
        Ok(()) => code,
        Err(e) => {
            tracing::error!("the store did not close cleanly: {e}");
            if code == EXIT_OK { EXIT_RUNTIME } else { code }
        }
    }
}

#[allow(clippy::too_many_arguments)] // the session's collaborators, each distinct
async fn trade_session(
    config: &Config,
    broker: CTraderConfig,
    store: Arc<dyn TradeStore>,
    clock: Arc<dyn Clock>,
    secrets: SentimentSecrets,
    notify: &NotifySecrets,
    allow: &NetworkAllowList,
    args: &RunArgs,
    bound_live: bool,
) -> u8 {
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime::spawn_signal_watch(stop_tx, args.duration);
    let (obs, addr) =
        match runtime::start_observability(config, clock.clone(), stop_rx.clone(), Some(notify))
            .await
        {
            Ok(started) => started,
            Err(e) => {
                tracing::error!("{e}");
                return EXIT_RUNTIME;
            }
        };
    tracing::info!("metrics, health and dashboard on http://{addr}/");
    let (sent_tx, sent_rx) = watch::channel(None);
    match build_service(config, &secrets, allow, clock.clone()) {
        Ok((service, skipped)) => {
            for s in skipped {
                tracing::warn!("sentiment source {} skipped: {}", s.source, s.reason);
            }
            runtime::spawn_sentiment_refresher(
                Arc::new(service),
                store.clone(),
                obs.clone(),
                clock.clone(),
                Duration::from_secs(config.sentiment.refresh_secs),
                sent_tx,
                stop_rx.clone(),
            );
        }
        Err(e) => tracing::warn!("no sentiment: {e}; the strategy's SENTIMENT_POLICY applies"),
    }
    let options = runtime::SessionOptions {
        dry_run: args.dry_run,
        reset_kill_switch: args.reset_kill_switch,
        consent: LiveConsent {
            confirm_live: args.confirm_live,
            dry_run: args.dry_run,
        },
        // Neither CTRADER_HOST nor CTRADER_ENV: the account's kind decides the host.
        follow_account: config.broker.env.is_none() && !config.broker.host_set,
        store_bound_live: bound_live,
    };
    let notifier = obs.notifier.clone();
    let code =
        // Boxed: a trading session's state is large, and lives on the heap rather than the stack.
        match Box::pin(runtime::trade(
            config, broker, store, clock, obs, sent_rx, options, stop_rx,
        ))
        .await
        {
            Ok(()) => EXIT_OK,
            Err(e) => {
                tracing::error!("{e}");
                e.exit_code()
            }
        };
    runtime::finish_notifications(&notifier).await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
