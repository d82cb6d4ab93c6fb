//! The TLS server: accepts connections, runs the market clock, and hands out the handle that
//! stops it and injects faults.

mod account;
mod control;
mod inspect;
mod session;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use domain::{AcceleratedClock, Clock, Secret, SystemClock, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use account::MarginCallType;
pub use control::FaultControl;
pub use inspect::{DealRecord, HistoricalRequest, OpenPositionRecord, ReceivedOrder};

use crate::broker::Execution;
use crate::exchange::Exchange;
use crate::faults::FaultPlan;
use crate::market::SpotUpdate;
use crate::tls::ServerIdentity;
use crate::{SimConfig, SimError};

/// How many pushes a slow connection may fall behind before it misses some.
const PUSH_BUFFER: usize = 4_096;
/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Something every connection hears about; each keeps what concerns its accounts and subscriptions.
#[derive(Debug)]
pub(crate) enum Push {
    /// Quotes moved.
    Spots(Vec<SpotUpdate>),
    /// Execution reports; `origin` is the connection that already sent them as replies.
    Executions {
        /// The reports.
        reports: Vec<Execution>,
        /// Connection id that caused them, if a request did.
        origin: Option<u64>,
    },
    /// An access token stopped working; sessions authorised with it lose those accounts.
    TokenInvalidated {
        /// The dead token.
        old_token: Secret,
        /// Accounts it covered.
        accounts: Vec<i64>,
        /// Why, as the event's reason says.
        reason: &'static str,
    },
    /// Events for every connection that authorised `account` (trader updates, symbol changes,
    /// margin calls), already framed.
    AccountMessages {
        /// The account concerned.
        account: i64,
        /// The frames, in order.
        messages: Vec<ctrader_proto::ProtoMessage>,
    },
    /// The server logs the account out of every connection (`ProtoOAAccountDisconnectEvent`).
    AccountDisconnect(i64),
    /// A fault or shutdown order for every connection.
    Command(ConnectionCommand),
}

/// What the control handle can make every connection do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectionCommand {
    /// Cut the connection without a word.
    Drop,
    /// Send `ProtoOAClientDisconnectEvent` with this reason, then close.
    Disconnect(String),
    /// Announce a frame larger than any client accepts, then close.
    OversizedFrame,
    /// Send a frame whose body is not a `ProtoMessage`.
    MalformedFrame,
    /// Send `ProtoOAErrorRes` `SERVER_IS_UNDER_MAINTENANCE` with the window's end (seconds since
    /// the Unix epoch), then close.
    Maintenance(i64),
}

/// State shared by the accept loop, the market clock, every connection and the control handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) exchange: Mutex<Exchange>,
    pub(crate) faults: Mutex<FaultPlan>,
    pub(crate) pushes: broadcast::Sender<Arc<Push>>,
    /// Every new-order request received, for [`SimHandle::received_orders`].
    pub(crate) received_orders: Mutex<Vec<ReceivedOrder>>,
    /// Every historical request (trendbars, ticks, deal and order lists), for
    /// [`SimHandle::historical_requests`].
    pub(crate) historical_requests: Mutex<Vec<HistoricalRequest>>,
    next_connection: AtomicU64,
    pub(crate) open_connections: AtomicUsize,
    /// Spot events sent to clients, for [`SimHandle::spots_sent`].
    pub(crate) spots_sent: AtomicU64,
    /// Pushed events a slow client missed, for [`SimHandle::pushes_missed`].
    pub(crate) pushes_missed: AtomicU64,
    /// The end of the maintenance window in force, in seconds since the Unix epoch.
    maintenance_end: Mutex<Option<i64>>,
    /// Where simulated time stood at a wall-clock moment, and its pace: the market follows it.
    pub(crate) clock: AcceleratedClock,
}

impl Shared {
    /// Sends to every connection; nobody listening is fine.
    pub(crate) fn push(&self, push: Push) {
        // An error only means no connection is open right now.
        let _ = self.pushes.send(Arc::new(push));
    }

    /// Opens a maintenance window of `lasts` from now: every connection hears of it and is
    /// closed, and every request is refused with its end until it is over. Its end in seconds.
    pub(crate) fn start_maintenance(&self, lasts: Duration) -> i64 {
        let end = wall_clock_after(lasts);
        *lock(&self.maintenance_end) = Some(end);
        tracing::info!(end, "simulated maintenance window opened");
        self.push(Push::Command(ConnectionCommand::Maintenance(end)));
        end
    }

    /// The end of the maintenance window in force now (seconds since the Unix epoch), if any.
    pub(crate) fn maintenance_until(&self) -> Option<i64> {
        let mut end = lock(&self.maintenance_end);
        let now_ms = SystemClock.now().millis();
        if end.is_some_and(|e| now_ms >= e.saturating_mul(1000)) {
            *end = None;
        }
        *end
    }
}

/// The wall clock `after` from now, in whole seconds since the Unix epoch, rounded up.
fn wall_clock_after(after: Duration) -> i64 {
    let ms = SystemClock
        .now()
        .millis()
        .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
    ms.saturating_add(999) / 1000
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it: the state is
/// plain data that every operation leaves consistent before it could panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// Validates `config`, prepares the certificates and the price history, binds the listening
    /// socket and starts serving. Stop it with [`SimHandle::shutdown`] (or by dropping the handle).
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let prepared = config.clone();
        // Certificate generation and the price warm-up are CPU work: keep them off the reactor.
        let (identity, exchange) = tokio::task::spawn_blocking(move || {
            let identity = ServerIdentity::prepare(&prepared.certificates)?;
            let exchange = Exchange::new(&prepared, SystemClock.now())?;
            Ok::<_, SimError>((identity, exchange))
        })
        .await
        .map_err(|e| SimError::Config(format!("simulator setup task failed: {e}")))??;
        let acceptor = TlsAcceptor::from(identity.server_config()?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                address: config.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| SimError::Bind {
            address: config.listen,
            source,
        })?;
        let (pushes, _) = broadcast::channel(PUSH_BUFFER);
        let clock = AcceleratedClock {
            sim: exchange.now(),
            wall: SystemClock.now(),
            speed: config.speed,
        };
        let shared = Arc::new(Shared {
            clock,
            faults: Mutex::new(config.faults.clone()),
            config,
            exchange: Mutex::new(exchange),
            pushes,
            received_orders: Mutex::new(Vec::new()),
            historical_requests: Mutex::new(Vec::new()),
            next_connection: AtomicU64::new(1),
            open_connections: AtomicUsize::new(0),
            spots_sent: AtomicU64::new(0),
            pushes_missed: AtomicU64::new(0),
            maintenance_end: Mutex::new(None),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(run_market(Arc::clone(&shared), shutdown_rx.clone())),
            tokio::spawn(accept_loop(
                Arc::clone(&shared),
                listener,
                acceptor,
                shutdown_rx,
            )),
        ];
        tracing::info!(%address, "simulated cTrader broker listening");
        Ok(SimHandle {
            address,
            ca_cert: identity.ca_cert,
            control: FaultControl::new(Arc::clone(&shared)),
            shared,
            shutdown: shutdown_tx,
            tasks,
        })
    }
}

/// A running simulator. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct SimHandle {
    address: SocketAddr,
    ca_cert: Option<PathBuf>,
    control: FaultControl,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// The address it listens on (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The CA certificate clients must trust (`None` when a given certificate is used).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The fault-injection handle (cheap to clone).
    pub fn faults(&self) -> &FaultControl {
        &self.control
    }

    /// The simulated clock's anchor and pace, for a client to follow (`SIMULATOR_CLOCK`).
    pub fn clock(&self) -> AcceleratedClock {
        self.shared.clock
    }

    /// Spot events sent to clients so far (one per quote change per subscribed connection).
    pub fn spots_sent(&self) -> u64 {
        self.shared.spots_sent.load(Ordering::Relaxed)
    }

    /// Pushed events (spots, executions, account events) that connections too slow to read them
    /// missed so far: a client that keeps up misses none.
    pub fn pushes_missed(&self) -> u64 {
        self.shared.pushes_missed.load(Ordering::Relaxed)
    }

    /// Simulated now.
    pub fn sim_time(&self) -> Timestamp {
        lock(&self.shared.exchange).now()
    }

    /// Ids of every open position, oldest first.
    pub fn open_position_ids(&self) -> Vec<i64> {
        lock(&self.shared.exchange).broker.open_position_ids()
    }

    /// The configured account's balance, in minor units.
    pub fn balance(&self) -> Option<i64> {
        let account = self.shared.config.credentials.account_id;
        lock(&self.shared.exchange)
            .broker
            .account(account)
            .map(|a| a.balance)
    }

    /// The latest bid and ask of a symbol, in 1/100000.
    pub fn quote(&self, symbol_id: i64) -> Option<(i64, i64)> {
        lock(&self.shared.exchange)
            .broker
            .quote(symbol_id)
            .map(|q| (q.bid, q.ask))
    }

    /// Moves a symbol's synthetic price to `mid` (1/100000) at once, like a news shock; the path
    /// carries on from there on the next simulated second. Replayed prices cannot be moved.
    pub fn set_mid_price(&self, symbol_id: i64, mid: i64) -> Result<(), SimError> {
        if mid <= 0 {
            return Err(SimError::Config(format!("price {mid} must be positive")));
        }
        if lock(&self.shared.exchange).market.jump_to(symbol_id, mid) {
            Ok(())
        } else {
            Err(SimError::Config(format!(
                "symbol {symbol_id} is unknown or replays a price file"
            )))
        }
    }

    /// Holds every symbol's price still (no spot events, no SL/TP triggers from price moves) while
    /// simulated time runs on, so a test can compare figures at a stable quote. Rollovers still
    /// happen. [`SimHandle::release_prices`] lets the paths move again from where they stood.
    pub fn freeze_prices(&self) {
        lock(&self.shared.exchange).market.set_frozen(true);
    }

    /// Lets the price paths move again after [`SimHandle::freeze_prices`].
    pub fn release_prices(&self) {
        lock(&self.shared.exchange).market.set_frozen(false);
    }

    /// True while prices are held still.
    pub fn prices_frozen(&self) -> bool {
        lock(&self.shared.exchange).market.is_frozen()
    }

    /// Sets a symbol's bid and ask (1/100000) now, as the market would: subscribers get the spot,
    /// positions are marked to market (a stop loss or take profit it reaches executes). With prices
    /// frozen the quote stays; otherwise a synthetic path carries on from its mid.
    pub fn set_quote(&self, symbol_id: i64, bid: i64, ask: i64) -> Result<(), SimError> {
        let changed = lock(&self.shared.exchange).set_quote(symbol_id, bid, ask);
        let Some((reports, spots)) = changed else {
            return Err(SimError::Config(format!(
                "cannot quote symbol {symbol_id} at {bid}/{ask}: unknown symbol, or not 0 < bid <= ask"
            )));
        };
        if !reports.is_empty() {
            self.shared.push(Push::Executions {
                reports,
                origin: None,
            });
        }
        if !spots.is_empty() {
            self.shared.push(Push::Spots(spots));
        }
        Ok(())
    }

    /// Stops accepting, tells every client (`ProtoOAClientDisconnectEvent`), closes the
    /// connections and waits a moment for them to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.shared.open_connections.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(address = %self.address, "simulated cTrader broker stopped");
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Accepts connections until shutdown; each gets its own task.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shared.open_connections.fetch_add(1, Ordering::SeqCst);
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    tracing::debug!(connection = id, %peer, "client connected");
                    session::serve(Arc::clone(&shared), stream, id, shutdown).await;
                    tracing::debug!(connection = id, %peer, "client disconnected");
                }
                Ok(Err(error)) => {
                    tracing::debug!(connection = id, %peer, %error, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(connection = id, %peer, "TLS handshake timed out"),
            }
            shared.open_connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The market clock: every tick moves simulated time (real elapsed time × speed), marks
/// positions to market, and publishes spots and the execution reports prices triggered.
async fn run_market(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(shared.config.tick_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_external_close = started;
    let mut maintenance = shared.config.maintenance;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if let Some(window) = maintenance.filter(|w| started.elapsed() >= w.after) {
            maintenance = None;
            shared.start_maintenance(window.lasts);
        }
        let expired = lock(&shared.exchange).tokens.newly_expired();
        if let Some((old_token, accounts)) = expired {
            shared.push(Push::TokenInvalidated {
                old_token,
                accounts,
                reason: "Access token expired",
            });
        }
        // Simulated time follows the wall clock through the anchor, so a client given the same
        // anchor (`SIMULATOR_CLOCK`) keeps the same time across its own restarts.
        let target = shared.clock.at(SystemClock.now());
        let (mut reports, spots) = lock(&shared.exchange).advance(target);

        let close_every = lock(&shared.faults).external_close_every;
        if let Some(every) = close_every
            && last_external_close.elapsed() >= every
        {
            last_external_close = tokio::time::Instant::now();
            let mut exchange = lock(&shared.exchange);
            let now = exchange.now();
            if let Some(&oldest) = exchange.broker.open_position_ids().first() {
                match exchange.broker.close_elsewhere(oldest, now) {
                    Ok(closed) => reports.extend(closed),
                    Err(refusal) => {
                        tracing::debug!(position = oldest, code = %refusal.code, "external close refused")
                    }
                }
            }
        }
        if !reports.is_empty() {
            shared.push(Push::Executions {
                reports,
                origin: None,
            });
        }
        if !spots.is_empty() {
            shared.push(Push::Spots(spots));
        }
    }
}
