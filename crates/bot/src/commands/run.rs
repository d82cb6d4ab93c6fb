//! `run`: trade the configured cTrader account (demo or live) until Ctrl-C, SIGTERM or `--duration`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{CTraderConfig, Credentials, ExtraCa};
use domain::{Clock, SystemClock};
use persistence::{SqliteStoreConfig, SqliteTradeStore, TradeStore};
use tokio::sync::watch;

use crate::allowlist::NetworkAllowList;
use crate::commands::check_config::load_settings;
use crate::config::{BrokerCredentials, Config, TradingEnv};
use crate::runtime::{self, EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};
use crate::sentiment_setup::{SentimentSecrets, build_service};

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Required with CTRADER_ENV=live: confirms that real money will be traded.
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
}

/// Parses `90s`, `30m`, `2h` or a number of seconds.
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
    // Settings and credentials are checked together, so one run names every problem.
    let (config, credentials) = match (
        load_settings(config_path),
        BrokerCredentials::from_env(&env),
    ) {
        (Ok((_, config)), Ok(credentials)) => (config, credentials),
        (settings, credentials) => {
            let mut problems = settings.err().map(|e| e.0).unwrap_or_default();
            problems.extend(credentials.err().map(|e| e.0).unwrap_or_default());
            eprint!("{}", crate::config::ConfigErrors(problems));
            return Err(EXIT_CONFIG);
        }
    };
    let sentiment = SentimentSecrets::from_env(&env);
    let mut redact = vec![
        credentials.client_secret.clone(),
        credentials.access_token.clone(),
        credentials.client_id.clone(),
    ];
    redact.extend(credentials.refresh_token.clone());
    redact.extend(sentiment.perplexity_api_key.clone());
    redact.extend(sentiment.x_bearer_token.clone());
    runtime::install_globals(&config, redact).map_err(|e| {
        eprintln!("{e}");
        EXIT_RUNTIME
    })?;
    let allow = NetworkAllowList::from_config(
        &config,
        sentiment.perplexity_api_key.is_some(),
        sentiment.x_bearer_token.is_some(),
    );
    allow.check(&config.broker.host).map_err(|e| {
        eprintln!("{e}");
        EXIT_CONFIG
    })?;
    Ok(TradingSetup {
        config,
        credentials,
        sentiment,
        allow,
    })
}

/// Secrets come from the environment only: a `.env` file is never read, and saying so saves an
/// operator from wondering why its values are ignored.
#[allow(clippy::print_stderr)] // a start-up note for the operator's terminal
pub fn warn_about_dotenv() {
    if Path::new(".env").exists() {
        eprintln!(
            "note: a .env file is present but is never read; export its variables in the environment instead"
        );
    }
}

/// Runs `run`; the exit status says how it ended (see the README).
#[allow(clippy::print_stderr)] // start-up errors go to the operator's terminal
pub fn run(config_path: Option<&Path>, args: &RunArgs) -> ExitCode {
    let TradingSetup {
        config,
        credentials,
        sentiment: sentiment_secrets,
        allow,
    } = match prepare_trading(config_path) {
        Ok(setup) => setup,
        Err(code) => return ExitCode::from(code),
    };
    if config.broker.env == TradingEnv::Live && !args.confirm_live && !args.dry_run {
        eprintln!(
            "CTRADER_ENV is live: real money would be traded. Add --confirm-live to do so, or --dry-run to decide without sending orders."
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let broker = broker_config(&config, &credentials);
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::Service) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = tokio.block_on(session(
        config,
        broker,
        sentiment_secrets,
        allow,
        args.clone(),
    ));
    ExitCode::from(code)
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
    broker
}

async fn session(
    config: Config,
    broker: CTraderConfig,
    secrets: SentimentSecrets,
    allow: NetworkAllowList,
    args: RunArgs,
) -> u8 {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime::spawn_signal_watch(stop_tx, args.duration);
    let store: Arc<dyn TradeStore> = match open_store(&config.database_url).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_REFUSED;
        }
    };
    let (obs, addr) =
        match runtime::start_observability(&config, clock.clone(), stop_rx.clone()).await {
            Ok(started) => started,
            Err(e) => {
                tracing::error!("{e}");
                return EXIT_RUNTIME;
            }
        };
    tracing::info!("metrics, health and dashboard on http://{addr}/");
    let (sent_tx, sent_rx) = watch::channel(None);
    match build_service(&config, &secrets, &allow, clock.clone()) {
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
    };
    match runtime::trade(
        &config, broker, store, clock, obs, sent_rx, options, stop_rx,
    )
    .await
    {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

/// Opens the SQLite store named by `DATABASE_URL`; refuses foreign, corrupt or newer files.
pub async fn open_store(url: &str) -> Result<Arc<dyn TradeStore>, String> {
    let config = SqliteStoreConfig::from_url(url).map_err(|e| format!("DATABASE_URL: {e}"))?;
    let store = SqliteTradeStore::open(config)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    Ok(Arc::new(store))
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
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
