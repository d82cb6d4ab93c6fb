//! `demo`: the whole bot against the in-process simulator, offline, with no credentials. Sentiment
//! is replayed from the bundled series; only `--live-sentiment` asks Perplexity (with
//! `PERPLEXITY_API_KEY`), so a key that happens to be set never sends a request by itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{CTraderConfig, Credentials, ExtraCa};
use ctrader_sim::{CertificateSource, MarketHours, SimConfig, SimCredentials, Simulator};
use domain::{Clock, Timeframe};
use tokio::sync::watch;

use crate::commands::check_config::load_settings;
use crate::commands::run::{close_store, parse_duration};
use crate::config::Config;
use crate::runtime::{self, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, ScaledClock};
use crate::sentiment_setup::{SentimentSecrets, build_service, replay_service};
use crate::store::{LockedStore, StoreRequest};
use persistence::StoreIdentity;

/// Options of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. 90s, 10m); otherwise runs until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Simulated seconds per real second, above 0 (300: one one-minute bar every 200 ms).
    #[arg(long, default_value_t = 300.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Seed of the synthetic palm oil price path.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Folder for the demo database (`demo.db`, recreated at every start) and the simulator's certificates.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Ask Perplexity for sentiment (needs PERPLEXITY_API_KEY; goes to the network) instead of
    /// replaying the bundled series.
    #[arg(long)]
    pub live_sentiment: bool,
}

/// A speed the simulator can run at: a finite number above 0 (a usage error otherwise, exit 2).
pub fn parse_speed(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        _ => Err(format!("{text:?} is not a speed above 0 (e.g. 1, 60, 300)")),
    }
}

/// Runs `demo`.
#[allow(clippy::print_stderr)] // start-up errors go to the operator's terminal
pub fn run(config_path: Option<&std::path::Path>, args: &DemoArgs) -> ExitCode {
    let (_, mut config) = match load_settings(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The demo trades the simulator's palm oil CFD on one-minute bars so trades come quickly.
    config.strategy.timeframe = Timeframe::M1;
    config.symbol_candidates = vec!["PALMOIL".to_owned()];
    config.database_url = format!("sqlite://{}", args.data_dir.join("demo.db").display());
    // The bundled sentiment series has about one reading a day: judge it fresh for two days.
    config.strategy.sentiment_max_age_secs = config.strategy.sentiment_max_age_secs.max(2 * 86_400);
    crate::commands::check_config::warn_about_dotenv();
    // Offline unless asked: without --live-sentiment no key is even read.
    let secrets = if args.live_sentiment {
        let secrets = SentimentSecrets::from_env(&|name: &str| std::env::var(name).ok());
        if secrets.perplexity_api_key.is_none() {
            eprintln!(
                "--live-sentiment needs PERPLEXITY_API_KEY in the environment (without the flag the demo replays the bundled series)"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        secrets
    } else {
        SentimentSecrets::default()
    };
    if let Err(e) = runtime::install_globals(
        &config,
        secrets.perplexity_api_key.iter().cloned().collect(),
    ) {
        eprintln!("{e}");
        return ExitCode::from(EXIT_RUNTIME);
    }
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::Service) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    ExitCode::from(tokio.block_on(demo(config, secrets, args.clone())))
}

/// The simulator's state lives only as long as the demo, so each demo starts from an empty
/// database: otherwise reconciliation would (rightly) flag last run's positions as vanished.
fn fresh_demo_database(data_dir: &std::path::Path) -> Result<(), String> {
    for name in ["demo.db", "demo.db-wal", "demo.db-shm"] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "cannot reset the demo database {}: {e}",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

async fn demo(config: Config, secrets: SentimentSecrets, args: DemoArgs) -> u8 {
    let credentials = SimCredentials::default();
    let request = StoreRequest {
        url: &config.database_url,
        identity: StoreIdentity::new("localhost", credentials.account_id, false),
        command: "demo",
        new_store: false,
    };
    // The lock first: a second demo on the same folder must not empty the running one's file.
    let locked = match LockedStore::lock(&request, &domain::SystemClock) {
        Ok(locked) => locked,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    if let Err(e) = fresh_demo_database(&args.data_dir) {
        tracing::error!("{e}");
        return EXIT_RUNTIME;
    }
    let sim_config = SimConfig {
        certificates: CertificateSource::Directory(args.data_dir.join("demo-certs")),
        speed: args.speed,
        seed: args.seed,
        market_hours: MarketHours::AlwaysOpen,
        credentials: credentials.clone(),
        ..SimConfig::default()
    };
    let sim = match Simulator::start(sim_config).await {
        Ok(sim) => sim,
        Err(e) => {
            tracing::error!("the simulator did not start: {e}");
            return EXIT_RUNTIME;
        }
    };
    let Some(ca) = sim.ca_cert_path().map(std::path::Path::to_path_buf) else {
        tracing::error!("the simulator has no CA certificate to trust");
        return EXIT_RUNTIME;
    };
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(sim.sim_time(), args.speed));
    let held = match locked.open(&request, clock.as_ref()).await {
        Ok(held) => held,
        Err(e) => {
            tracing::error!("{e}");
            sim.shutdown().await;
            return e.exit_code();
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime::spawn_signal_watch(stop_tx, args.duration);
    // Boxed: the session's future is large, and this one is awaited once.
    let code = Box::pin(trade_against(
        held.shared(),
        &config,
        &secrets,
        &credentials,
        sim.local_addr(),
        ca,
        clock,
        stop_rx,
    ))
    .await;
    let code = close_store(held, code).await;
    sim.shutdown().await;
    code
}

#[allow(clippy::too_many_arguments)] // the demo session's collaborators, each distinct
async fn trade_against(
    store: Arc<dyn persistence::TradeStore>,
    config: &Config,
    secrets: &SentimentSecrets,
    credentials: &SimCredentials,
    sim_addr: std::net::SocketAddr,
    ca: PathBuf,
    clock: Arc<dyn Clock>,
    stop_rx: watch::Receiver<bool>,
) -> u8 {
    let (obs, http) =
        // No notifications from the demo: it is offline, and a token that happens to be set
        // is never used.
        match runtime::start_observability(config, clock.clone(), stop_rx.clone(), None).await {
            Ok(started) => started,
            Err(e) => {
                tracing::error!("{e}");
                return EXIT_RUNTIME;
            }
        };
    // Set only with --live-sentiment (the key is not read otherwise).
    let live_sentiment = secrets.perplexity_api_key.is_some();
    let service = if live_sentiment {
        let mut live = config.clone();
        live.sentiment.sources = vec![crate::config::SentimentSourceKind::Perplexity];
        let allow = crate::allowlist::NetworkAllowList::from_config(&live, true, false);
        build_service(&live, secrets, &allow, clock.clone()).map(|(s, _)| s)
    } else {
        replay_service(clock.clone(), None)
    };
    let (sent_tx, sent_rx) = watch::channel(None);
    match service {
        Ok(service) => runtime::spawn_sentiment_refresher(
            Arc::new(service),
            store.clone(),
            obs.clone(),
            clock.clone(),
            // Replayed sentiment is in memory: refresh often so the dashboard shows it at once.
            Duration::from_secs(if live_sentiment {
                config.sentiment.refresh_secs
            } else {
                5
            }),
            sent_tx,
            stop_rx.clone(),
        ),
        Err(e) => tracing::warn!("no sentiment: {e}"),
    }
    tracing::info!(
        "demo: simulated cTrader on {sim_addr} (TLS, own CA), database {}, sentiment {}",
        config.database_url,
        if live_sentiment {
            "from Perplexity"
        } else {
            "replayed from the bundled series"
        }
    );
    tracing::info!(
        "demo: dashboard http://{http}/ · metrics http://{http}/metrics · readiness http://{http}/readyz · Ctrl-C stops"
    );
    let mut broker = CTraderConfig::new(
        "localhost",
        sim_addr.port(),
        Credentials {
            client_id: credentials.client_id.clone(),
            client_secret: credentials.client_secret.clone(),
            access_token: credentials.access_token.clone(),
            refresh_token: Some(credentials.refresh_token.clone()),
        },
        credentials.account_id,
    );
    broker.extra_ca = Some(ExtraCa::PemFile(ca));
    // Boxed: a trading session's state is large, and lives on the heap rather than the stack.
    match Box::pin(runtime::trade(
        config,
        broker,
        store,
        clock,
        obs,
        sent_rx,
        runtime::SessionOptions::default(),
        stop_rx,
    ))
    .await
    {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
