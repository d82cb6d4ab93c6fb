//! What `run` and `demo` share: process globals, the observability stack, the sentiment refresher,
//! and one trading session from connect to shutdown.

use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{
    Broker, BrokerError, CTraderClient, CTraderConfig, LIVE_HOST, LiveExpectation,
};
use domain::{AcceleratedClock, Clock, SentimentReading, Timestamp};
use observability::{
    HttpServer, LogConfig, Metrics, SentimentResult, ServerConfig, StatusConfig, StatusHandle,
};
use persistence::TradeStore;
use scraper::SentimentService;
use tokio::sync::watch;

use crate::config::{Config, LogFormat};
use crate::engine::{AlertSettings, Engine, EngineError, EngineSettings, Observers};
use crate::live_guard::{self, LiveConsent};
use crate::notifications::NotifySecrets;
use crate::strategy_setup;
use crate::token_vault::{TokenOrigin, TokenVault};
use notify::{Notification, NotificationKind, Notifier, Severity};

/// Exit status for a clean stop.
pub const EXIT_OK: u8 = 0;
/// Exit status for a failure while running (broker gone, store failed).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status for a configuration or usage error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when start-up checks refused to trade (symbol missing, reconciliation failed,
/// credentials refused): fail closed.
pub const EXIT_REFUSED: u8 = 3;

/// What an async runtime is for: a long-running service gets both cores, a one-shot command one
/// thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// `run`, `demo`, `simulate`.
    Service,
    /// `reconcile`, `positions`, `trades`, `sentiment`.
    OneShot,
}

/// A fresh async runtime; when one cannot start, the reason is on stderr and the error is the
/// exit status to return.
#[allow(clippy::print_stderr)] // a start-up failure for the operator's terminal
pub fn async_runtime(kind: RuntimeKind) -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    let built = match kind {
        RuntimeKind::Service => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        RuntimeKind::OneShot => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    built.map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        std::process::ExitCode::from(EXIT_RUNTIME)
    })
}

/// Installs the process-wide globals only the binary may install: the rustls crypto provider and
/// the log subscriber (secrets listed in `redact` are scrubbed from every line).
pub fn install_globals(config: &Config, redact: Vec<domain::Secret>) -> Result<(), String> {
    // Ignored when already installed (tests start several sessions in one process).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let format = match config.log_format {
        LogFormat::Auto => observability::LogFormat::Auto,
        LogFormat::Json => observability::LogFormat::Json,
        LogFormat::Pretty => observability::LogFormat::Pretty,
    };
    let log = LogConfig {
        filter: Some(config.log_filter.clone()),
        format,
        redact,
    };
    // observability builds the subscriber; installing it is the binary's business alone.
    let subscriber = observability::build_subscriber(&log, std::io::stderr)
        .map_err(|e| format!("logging: {e}"))?;
    // Ignored when already installed (tests start several sessions in one process).
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// Metrics, status, notifications (when `notify` names destinations) and the HTTP server
/// (metrics, health, dashboard), serving until `shutdown`.
pub async fn start_observability(
    config: &Config,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
    notify: Option<&NotifySecrets>,
) -> Result<(Observers, std::net::SocketAddr), String> {
    let metrics = Arc::new(Metrics::new(clock.clone()).map_err(|e| format!("metrics: {e}"))?);
    metrics.set_drawdown_limit(config.risk.max_drawdown);
    let notifier = match notify {
        Some(secrets) => {
            crate::notifications::start(&config.notify, secrets, &metrics, clock.clone())?
        }
        None => Notifier::disabled(),
    };
    let alerts = AlertSettings {
        disconnect_after: Duration::from_secs(config.notify.disconnect_after_secs),
        sentiment_max_age: Some(Duration::from_secs(config.strategy.sentiment_max_age_secs)),
        ..AlertSettings::default()
    };
    let status = StatusHandle::new(StatusConfig::default(), clock);
    let server = HttpServer::bind(
        ServerConfig::at(config.http_bind),
        metrics.clone(),
        status.clone(),
    )
    .await
    .map_err(|e| {
        format!(
            "cannot serve metrics and health on {}: {e}",
            config.http_bind
        )
    })?;
    let addr = server.local_addr();
    tokio::spawn(server.serve(wait_for(shutdown.clone())));
    tokio::spawn(observability::run_heartbeat(
        status.clone(),
        Duration::from_secs(30),
        wait_for(shutdown),
    ));
    Ok((
        Observers {
            metrics,
            status,
            notifier,
            alerts,
        },
        addr,
    ))
}

/// At the end of a session: lets the last messages (the stop, a failure) leave, for at most ten
/// seconds, then stops delivery.
pub async fn finish_notifications(notifier: &Notifier) {
    if !notifier.flush(Duration::from_secs(10)).await {
        tracing::warn!("some notifications were still waiting at exit and are lost");
    }
    notifier.close();
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
pub async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Flips `shutdown` on SIGINT, SIGTERM or after `duration`.
pub fn spawn_signal_watch(shutdown: watch::Sender<bool>, duration: Option<Duration>) {
    tokio::spawn(async move {
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = terminate_signal() => tracing::info!("signal received: stopping"),
            () = deadline => tracing::info!("duration reached: stopping"),
        }
        let _ = shutdown.send(true);
    });
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Refreshes sentiment on a schedule: publishes each reading, stores it, and counts it.
pub fn spawn_sentiment_refresher(
    service: Arc<SentimentService>,
    store: Arc<dyn TradeStore>,
    obs: Observers,
    clock: Arc<dyn Clock>,
    every: Duration,
    publish: watch::Sender<Option<SentimentReading>>,
    shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = service.stats();
        let mut stop = std::pin::pin!(wait_for(shutdown));
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {}
            }
            let now = clock.now();
            match service.reading().await {
                Ok(reading) => {
                    obs.metrics
                        .record_sentiment_request(&reading.source, SentimentResult::Ok, now);
                    let is_new = publish.borrow().as_ref().is_none_or(|last| {
                        last.known_at != reading.known_at || last.source != reading.source
                    });
                    if is_new {
                        tracing::info!(source = %reading.source, score = reading.score, confidence = reading.confidence, items = reading.item_count, "sentiment: {}", reading.summary);
                        if let Err(e) = store.record_sentiment(&reading).await {
                            tracing::warn!("sentiment reading not stored: {e}");
                        }
                        let _ = publish.send(Some(reading));
                    }
                }
                Err(unavailable) => {
                    obs.metrics.record_sentiment_request(
                        &unavailable.source,
                        SentimentResult::Error,
                        now,
                    );
                    tracing::warn!("{unavailable}");
                }
            }
            let stats = service.stats();
            for _ in seen.cache_hits..stats.cache_hits {
                obs.metrics.record_sentiment_cache(true);
            }
            for _ in seen.cache_misses..stats.cache_misses {
                obs.metrics.record_sentiment_cache(false);
            }
            seen = stats;
        }
    });
}

/// Why a trading session ended badly, with the exit status it deserves.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Start-up refused to trade (fail closed).
    #[error("refusing to trade: {0}")]
    Refused(String),
    /// Trading stopped on a failure.
    #[error("trading stopped: {0}")]
    Failed(String),
    /// The operator's settings or flags do not allow this session (e.g. a live account without
    /// `--confirm-live`, or CTRADER_ENV contradicting the broker).
    #[error("refusing to trade: {0}")]
    Usage(String),
}

impl SessionError {
    /// The process exit status for this failure.
    pub const fn exit_code(&self) -> u8 {
        match self {
            SessionError::Refused(_) => EXIT_REFUSED,
            SessionError::Failed(_) => EXIT_RUNTIME,
            SessionError::Usage(_) => EXIT_CONFIG,
        }
    }
}

/// What an operator chose for one trading session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// Decide and record, send no order.
    pub dry_run: bool,
    /// Release an engaged kill switch at start-up.
    pub reset_kill_switch: bool,
    /// Whether a live account may be traded (`--confirm-live`) or watched (`--dry-run`).
    pub consent: LiveConsent,
    /// Neither CTRADER_HOST nor CTRADER_ENV was set: the first host (the demo host) is asked
    /// what the account is, and a live account moves the session to the live host.
    pub follow_account: bool,
    /// Whether the store this session writes was bound to a live account (from what was known
    /// before connecting); the broker's word must agree, or nothing is traded into it.
    pub store_bound_live: bool,
}

/// One trading session: connect, start the engine (fail closed), trade until `shutdown`.
#[allow(clippy::too_many_arguments)] // the session's collaborators, each distinct
pub async fn trade(
    config: &Config,
    broker: CTraderConfig,
    store: Arc<dyn TradeStore>,
    clock: Arc<dyn Clock>,
    obs: Observers,
    sentiment: watch::Receiver<Option<SentimentReading>>,
    options: SessionOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    obs.status
        .update(|s| s.connection = observability::ConnectionState::Connecting);
    let account_id = broker.account_id;
    let vault = Arc::new(
        TokenVault::new(store.clone(), account_id, &broker.credentials.client_secret)
            .map_err(SessionError::Failed)?,
    );
    // Every exit, refused or stopped, first lets a token refresh in flight be kept: the broker
    // spent the old refresh token when it answered, so the next start needs the new pair.
    let refresh_answer_wait = crate::token_vault::refresh_answer_wait(&broker.timing);
    let traded: Result<(), SessionError> = async {
        // A broker that drops the link or goes silent while the session starts is the same blip
        // it would be later: wait and start again, as a reconnect would, not exit for a person.
        let mut pause = START_RETRY_FIRST;
        let mut reached = false;
        loop {
            let (client, engine, events) = loop {
                // Asked at every attempt: an attempt may have refreshed (and spent) the tokens before.
                let start = vault
                    .start_tokens(
                        &broker.credentials.access_token,
                        broker.credentials.refresh_token.as_ref(),
                    )
                    .await
                    .map_err(SessionError::Failed)?;
                let mut broker = broker.clone();
                if start.origin == TokenOrigin::Stored {
                    broker.token_expiry = start.expiry;
                }
                broker.credentials.access_token = start.access;
                broker.credentials.refresh_token = start.refresh;
                let mut session_obs = obs.clone();
                session_obs.alerts.token_expires_at = broker.token_expiry.map(|t| t.expires_at);
                let session = SessionParts {
                    config,
                    broker,
                    store: store.clone(),
                    clock: clock.clone(),
                    obs: session_obs,
                    sentiment: sentiment.clone(),
                    options,
                    vault: vault.clone(),
                };
                match start_session(session, shutdown.clone()).await {
                    Ok(Some(started)) => break started,
                    Ok(None) => return Ok(()),
                    Err(StartFailure::Fatal(e)) => {
                        return Err(refusal_notified(&obs, clock.as_ref(), e));
                    }
                    // A broker never reached since this process started is more likely a wrong host or
                    // port than a blip: say so and exit, for the operator or the supervisor.
                    Err(StartFailure::Transient(
                        e @ (BrokerError::Io { .. } | BrokerError::Tls { .. }),
                    )) if !reached => {
                        return Err(refusal_notified(
                            &obs,
                            clock.as_ref(),
                            SessionError::Failed(e.to_string()),
                        ));
                    }
                    Err(StartFailure::Transient(why)) => {
                        reached = true;
                        let wait = paced(pause, config.broker.simulator_clock.as_ref());
                        tracing::warn!(
                            reason = %why,
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "the session did not start; starting again"
                        );
                        obs.status
                            .update(|s| s.connection = observability::ConnectionState::Connecting);
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = wait_for(shutdown.clone()) => return Ok(()),
                        }
                        pause = (pause * 2).min(START_RETRY_MAX);
                    }
                }
            };
            let outcome = engine.run(events, wait_for(shutdown.clone())).await;
            client.shutdown();
            let stop = client.stop_reason();
            match outcome {
                Ok(_) => return Ok(()),
                // Refused credentials (a spent refresh token) need a person: refusing, not failing.
                Err(e)
                    if stop
                        .as_ref()
                        .is_some_and(BrokerError::is_credentials_problem) =>
                {
                    return Err(SessionError::Refused(e.to_string()));
                }
                // Found by the year soak: a token refresh racing a reconnection left the account
                // unauthorised on the new connection, the client stopped, and `run` exited 1. As at
                // start-up, a new session authorises the account afresh (the engine reconciles first).
                Err(e) if stop.as_ref().is_some_and(lost_account_authorisation) => {
                    let wait = paced(START_RETRY_FIRST, config.broker.simulator_clock.as_ref());
                    tracing::warn!(
                        error = %e,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "the broker no longer counts the account authorised on this connection; starting a new session"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = wait_for(shutdown.clone()) => return Ok(()),
                    }
                    pause = START_RETRY_FIRST;
                }
                Err(e) => return Err(SessionError::Failed(e.to_string())),
            }
        }
    }
    .await;
    vault.settle(refresh_answer_wait).await;
    traded
}

/// A wait the bot makes before asking the broker again (a session start, a reconnection), in
/// real time: as given for a real broker; for an accelerated simulator (`SIMULATOR_CLOCK`)
/// divided by its speed, never below [`SHORTEST_PACED_WAIT`]. So a reconnect costs the bot as
/// much of the simulator's market as it would cost of a real one: at 55,000× an unscaled 1 s
/// pause is 15 simulated hours, and a few disconnects a day kept the year soak's bot offline.
pub fn paced(wait: Duration, simulator: Option<&AcceleratedClock>) -> Duration {
    match simulator {
        Some(clock) if clock.speed.is_finite() && clock.speed > 1.0 => {
            wait.div_f64(clock.speed).max(SHORTEST_PACED_WAIT).min(wait)
        }
        _ => wait,
    }
}

/// How long a sent order may show no trace at the broker before it is concluded lost
/// (`ORDER_ARRIVAL_GRACE`): kept to an accelerated simulator's pace, but never under
/// [`SIMULATOR_ORDER_GRACE`] there, because an order on its way is held up by real sockets and
/// tasks, which no clock speeds up.
pub fn unseen_order_grace(grace: Duration, simulator: Option<&AcceleratedClock>) -> Duration {
    match simulator {
        Some(_) => paced(grace, simulator)
            .max(SIMULATOR_ORDER_GRACE)
            .min(grace),
        None => grace,
    }
}

/// The least an accelerated simulator's order may stay unseen before it is concluded lost.
pub const SIMULATOR_ORDER_GRACE: Duration = Duration::from_millis(500);

/// The shortest paced wait: a simulator is not to be asked in a tight loop either.
pub const SHORTEST_PACED_WAIT: Duration = Duration::from_millis(10);

/// First wait before starting a failed session again; it doubles up to [`START_RETRY_MAX`].
const START_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two session starts.
const START_RETRY_MAX: Duration = Duration::from_secs(60);

/// What one session start needs.
struct SessionParts<'a> {
    config: &'a Config,
    broker: CTraderConfig,
    store: Arc<dyn TradeStore>,
    clock: Arc<dyn Clock>,
    obs: Observers,
    sentiment: watch::Receiver<Option<SentimentReading>>,
    options: SessionOptions,
    vault: Arc<TokenVault>,
}

/// Why a session did not start.
enum StartFailure {
    /// The broker blinked (a dropped link, a timeout): start again.
    Transient(BrokerError),
    /// Nothing will change without a person.
    Fatal(SessionError),
}

impl From<SessionError> for StartFailure {
    fn from(e: SessionError) -> StartFailure {
        StartFailure::Fatal(e)
    }
}

/// A started session: the client, the engine and the broker's event stream.
type Started = (
    Arc<CTraderClient>,
    Engine<CTraderClient>,
    ctrader_client::BrokerEvents,
);

/// Connects, checks the account, and starts the engine (which reconciles). `None` when a
/// shutdown came first.
async fn start_session(
    parts: SessionParts<'_>,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<Started>, StartFailure> {
    let SessionParts {
        config,
        broker,
        store,
        clock,
        obs,
        sentiment,
        options,
        vault,
    } = parts;
    let account_id = broker.account_id;
    let Some(client) = connect(broker, &clock, &vault, options, shutdown.clone()).await? else {
        return Ok(None);
    };
    // Before anything is subscribed or sent: a live account needs the operator's consent.
    live_guard::check_account(account_id, client.account_is_live(), options.consent)
        .map_err(|e| SessionError::Usage(e.0))?;
    // The store was bound before the broker could say what the account is: a live account's
    // history never goes into a store bound as demo (or the other way round).
    if client.account_is_live() != options.store_bound_live {
        let (is, bound) = if client.account_is_live() {
            ("live", "demo")
        } else {
            ("demo", "live")
        };
        return Err(StartFailure::Fatal(SessionError::Refused(format!(
            "account {account_id} is a {is} account, but the store (DATABASE_URL) was bound as {bound} before connecting: set CTRADER_ENV={is} so the {is} account gets a store of its own"
        ))));
    }
    let client = Arc::new(client);
    let events = client.take_events().ok_or_else(|| {
        SessionError::Failed("the broker's event stream was already taken".to_owned())
    })?;
    let settings = EngineSettings {
        label_prefix: config.label_prefix.clone(),
        dry_run: options.dry_run,
        reset_kill_switch: options.reset_kill_switch,
        symbol_candidates: config.symbol_candidates.clone(),
        warmup_bars: config.strategy.rsi_period.saturating_mul(10),
        timeframe: config.strategy.timeframe,
        unseen_order_grace: unseen_order_grace(
            Duration::from_secs(config.order_arrival_grace_secs),
            config.broker.simulator_clock.as_ref(),
        ),
    };
    let setup =
        strategy_setup::strategy_setup(config).map_err(|e| SessionError::Refused(e.to_string()))?;
    let strategy = strategy::RsiSentimentStrategy::new(setup.strategy)
        .map_err(|e| SessionError::Refused(e.to_string()))?;
    let risk = setup.risk;
    let engine = Engine::start(
        client.clone(),
        store,
        clock,
        obs,
        settings,
        strategy,
        risk,
        sentiment,
    )
    .await;
    let engine = match engine {
        Ok(engine) => engine,
        // A link lost during start-up (also while reconciling) is a blip like any other.
        Err(
            EngineError::Broker(b)
            | EngineError::Reconcile(crate::reconcile::ReconcileFailure::Broker(b)),
        ) if b.is_transient() || lost_account_authorisation(&b) => {
            client.shutdown();
            return Err(StartFailure::Transient(b));
        }
        Err(EngineError::Broker(b)) => {
            client.shutdown();
            return Err(StartFailure::Fatal(refused_or_failed(&b)));
        }
        Err(other) => {
            client.shutdown();
            return Err(StartFailure::Fatal(SessionError::Refused(
                other.to_string(),
            )));
        }
    };
    Ok(Some((client, engine, events)))
}

/// Connects with the chosen tokens; refreshed pairs go to the vault before use. When the
/// session follows the account and the demo host finds it live, it moves to the live host (only
/// with consent). `None` when a shutdown came first (e.g. during a maintenance window).
async fn connect(
    mut broker: CTraderConfig,
    clock: &Arc<dyn Clock>,
    vault: &Arc<TokenVault>,
    options: SessionOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<CTraderClient>, StartFailure> {
    let account_id = broker.account_id;
    for attempt in 0..2 {
        let connecting = CTraderClient::connect_with(broker.clone(), clock.clone(), vault.clone());
        let connected = tokio::select! {
            connected = connecting => connected,
            () = wait_for(shutdown.clone()) => return Ok(None),
        };
        match connected {
            Ok(client) => return Ok(Some(client)),
            Err(BrokerError::WrongEnvironment {
                account_is_live: true,
                ..
            }) if options.follow_account && attempt == 0 => {
                live_guard::check_account(account_id, true, options.consent)
                    .map_err(|e| SessionError::Usage(e.0))?;
                tracing::info!("account {account_id} is a live account: connecting to {LIVE_HOST}");
                broker.host = LIVE_HOST.to_owned();
                broker.expect_live = Some(LiveExpectation {
                    live: true,
                    said_by: "the account list called it live".to_owned(),
                });
            }
            Err(e @ BrokerError::WrongEnvironment { .. }) => {
                return Err(SessionError::Usage(e.to_string()).into());
            }
            Err(e) if e.is_transient() => return Err(StartFailure::Transient(e)),
            Err(e) => return Err(refused_or_failed(&e).into()),
        }
    }
    Err(
        SessionError::Failed("the account's kind changed between two connections".to_owned())
            .into(),
    )
}

/// Tells the operator that the session could not start trading (the engine tells them of what
/// happens once it runs), and hands the error on.
fn refusal_notified(obs: &Observers, clock: &dyn Clock, error: SessionError) -> SessionError {
    obs.notifier.send(
        Notification::new(
            NotificationKind::Stopped,
            Severity::Critical,
            clock.now(),
            format!("{error}"),
        )
        .body(format!(
            "exit status {}; the bot needs a person before it trades",
            error.exit_code()
        )),
    );
    error
}

/// A request refused because the account is no longer authorised on this connection: a token
/// refresh during start-up invalidates the old access token and, with it, the account's
/// authorisation. A new session authorises it afresh; a token that does not grant the account at
/// all fails at that authorisation instead, for good.
fn lost_account_authorisation(error: &BrokerError) -> bool {
    matches!(error, BrokerError::Refused { code, .. } if code == "ACCOUNT_NOT_AUTHORIZED")
}

fn refused_or_failed(error: &BrokerError) -> SessionError {
    if error.is_transient() {
        SessionError::Failed(error.to_string())
    } else {
        SessionError::Refused(error.to_string())
    }
}

/// A clock that runs `speed` times faster than the wall clock from a known instant (the demo's
/// simulator time), so decisions, intents and reconciliation use the simulator's timeline.
#[derive(Debug)]
pub struct ScaledClock {
    sim_start: Timestamp,
    wall_start: std::time::Instant,
    speed: f64,
}

impl ScaledClock {
    /// Simulated time `sim_start` now, advancing `speed` simulated seconds per real second.
    pub fn new(sim_start: Timestamp, speed: f64) -> ScaledClock {
        ScaledClock {
            sim_start,
            wall_start: std::time::Instant::now(),
            speed,
        }
    }
}

impl Clock for ScaledClock {
    #[allow(clippy::cast_possible_truncation)] // elapsed demo time in ms fits an i64 by far
    fn now(&self) -> Timestamp {
        let elapsed_ms = self.wall_start.elapsed().as_secs_f64() * 1000.0 * self.speed;
        self.sim_start.plus_millis(elapsed_ms as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the year soak: at 55,000× a 1 s pause before starting again was 15 simulated
    /// hours, and disconnects a few times a day kept the bot offline most of the year.
    #[test]
    fn waits_keep_an_accelerated_simulators_pace_and_a_real_brokers_time() {
        let second = Duration::from_secs(1);
        assert_eq!(paced(second, None), second, "a real broker: real time");
        let clock = |speed| AcceleratedClock {
            sim: Timestamp(0),
            wall: Timestamp(0),
            speed,
        };
        assert_eq!(
            paced(Duration::from_secs(60), Some(&clock(1_000.0))),
            Duration::from_millis(60)
        );
        assert_eq!(
            paced(second, Some(&clock(55_000.0))),
            SHORTEST_PACED_WAIT,
            "never a tight loop"
        );
        assert_eq!(paced(second, Some(&clock(0.5))), second, "never longer");
        assert_eq!(
            paced(Duration::from_millis(3), Some(&clock(100.0))),
            Duration::from_millis(3),
            "a short wait stays as short"
        );
    }

    #[test]
    fn an_order_on_its_way_gets_real_time_even_from_an_accelerated_simulator() {
        let grace = Duration::from_secs(30);
        let clock = |speed| AcceleratedClock {
            sim: Timestamp(0),
            wall: Timestamp(0),
            speed,
        };
        assert_eq!(unseen_order_grace(grace, None), grace, "a real broker");
        assert_eq!(
            unseen_order_grace(grace, Some(&clock(55_000.0))),
            SIMULATOR_ORDER_GRACE,
            "sockets and tasks are not accelerated"
        );
        assert_eq!(
            unseen_order_grace(grace, Some(&clock(3.0))),
            Duration::from_secs(10),
            "a slow simulator keeps its pace"
        );
        assert_eq!(
            unseen_order_grace(Duration::ZERO, Some(&clock(55_000.0))),
            Duration::ZERO,
            "an operator's zero stays zero"
        );
    }

    /// Found by the soak: a start-up refresh left the account unauthorised on the connection, and
    /// `run` exited 3 instead of starting again.
    #[test]
    fn an_account_no_longer_authorised_on_the_connection_starts_the_session_again() {
        let refused = |code: &str| BrokerError::Refused {
            request: "symbol by id",
            code: code.to_owned(),
            description: None,
        };
        assert!(lost_account_authorisation(&refused(
            "ACCOUNT_NOT_AUTHORIZED"
        )));
        assert!(!lost_account_authorisation(&refused("TRADING_DISABLED")));
        assert!(!lost_account_authorisation(&BrokerError::Stopped(
            "shut down".into()
        )));
    }
}
