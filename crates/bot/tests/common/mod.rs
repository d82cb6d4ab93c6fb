//! Harness for the end-to-end tests: a simulated broker living in the test process (so it outlives
//! every bot process, as a separate broker would), the `palm-oil-bot` binary as a child process
//! with its JSON log lines collected, and the checks that compare the bot's store with the broker.

// Test helpers: a panic is how they fail a test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    unreachable_pub,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ctrader_sim::{
    CertificateSource, FaultPlan, MarketHours, PALM_OIL_SYMBOL_ID, SimConfig, SimCredentials,
    SimHandle, Simulator,
};
use domain::{ClientOrderId, Clock, PositionStatus, SystemClock, Timestamp};
use persistence::{SqliteStoreConfig, SqliteTradeStore, TradeStore};

pub const BIN: &str = env!("CARGO_BIN_EXE_palm-oil-bot");
/// The label prefix the bot runs with in these tests.
pub const PREFIX: &str = "pob";
/// Log message of a finished reconciliation.
pub const RECONCILED: &str = "reconciled with the broker; trading enabled";
/// Log message written just before an order leaves.
pub const ORDER_SENT: &str = "order sent";

/// A small seeded generator (SplitMix64): the same seed gives the same kill moments.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[low, high)` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next_u64() % (high - low))
    }
}

/// The simulated broker, its runtime, and a scratch directory with the database.
pub struct World {
    pub sim: SimHandle,
    pub rt: TestRuntime,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub ca: PathBuf,
    /// The simulator's credentials (and account), which the bot is given.
    pub creds: SimCredentials,
}

/// The world's async runtime (simulator and store reads), shut down within a bound when the world
/// is dropped: once, after a year soak had passed every check, dropping it waited for minutes
/// on a task in sqlx's pool maintenance that kept its worker busy, and a test must end by itself.
pub struct TestRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for TestRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0
            .as_ref()
            .expect("the runtime lives until the world is dropped")
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

impl World {
    /// A simulator running `speed` simulated seconds per real second, every market open.
    ///
    /// Its clock starts a day behind this machine's and, running faster, stays behind it for the
    /// whole test: a real broker's clock is close to ours, and the bot stamps its order intents
    /// with quote time but its broker snapshots with its own clock, so a simulated clock running
    /// *ahead* of ours makes every restart after an in-flight order refuse to trade ("the broker
    /// snapshot is older than order intent"), which would hide everything else these tests check.
    pub fn start(speed: f64, seed: u64, faults: FaultPlan) -> World {
        let behind = Timestamp(SystemClock.now().millis() - Timestamp::DAY_MS);
        World::start_at(speed, seed, faults, Some(behind))
    }

    /// Like [`World::start`], with the simulated clock starting at `start_time` (`None`: this
    /// machine's clock, which the accelerated simulated clock then overtakes).
    pub fn start_at(
        speed: f64,
        seed: u64,
        faults: FaultPlan,
        start_time: Option<Timestamp>,
    ) -> World {
        World::start_configured(speed, seed, faults, start_time, |_| {})
    }

    /// Like [`World::start_at`], with the simulator serving the account of `creds`.
    pub fn start_with(
        speed: f64,
        seed: u64,
        faults: FaultPlan,
        start_time: Option<Timestamp>,
        creds: SimCredentials,
    ) -> World {
        World::start_configured(speed, seed, faults, start_time, |c| c.credentials = creds)
    }

    /// Like [`World::start_at`], with `configure` changing the simulator's settings last.
    pub fn start_configured(
        speed: f64,
        seed: u64,
        faults: FaultPlan,
        start_time: Option<Timestamp>,
        configure: impl FnOnce(&mut SimConfig),
    ) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig {
            speed,
            seed,
            market_hours: MarketHours::AlwaysOpen,
            certificates: CertificateSource::Directory(dir.path().join("certs")),
            credentials: SimCredentials::default(),
            start_time,
            history: Duration::from_secs(12 * 3600),
            tick_interval: Duration::from_millis(50),
            faults,
            ..SimConfig::default()
        };
        configure(&mut config);
        let creds = config.credentials.clone();
        let sim = rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(60), Simulator::start(config)).await
            })
            .expect("the simulator starts within a minute")
            .expect("the simulator starts");
        let ca = sim.ca_cert_path().expect("a generated CA").to_path_buf();
        let db = dir.path().join("bot.db");
        World {
            sim,
            rt: TestRuntime(Some(rt)),
            dir,
            db,
            ca,
            creds,
        }
    }

    /// The environment of a bot trading this simulator fast: M1 bars, a 2-bar RSI with close
    /// levels so it trades often, tight protection, no sentiment source, no risk stop.
    pub fn bot_env(&self) -> Vec<(String, String)> {
        let creds = self.creds.clone();
        let pairs: Vec<(&str, String)> = vec![
            ("CTRADER_CLIENT_ID", creds.client_id.clone()),
            (
                "CTRADER_CLIENT_SECRET",
                creds.client_secret.expose().to_owned(),
            ),
            (
                "CTRADER_ACCESS_TOKEN",
                creds.access_token.expose().to_owned(),
            ),
            ("CTRADER_ACCOUNT_ID", creds.account_id.to_string()),
            ("CTRADER_HOST", "127.0.0.1".to_owned()),
            ("CTRADER_PORT", self.sim.local_addr().port().to_string()),
            ("CTRADER_CA_FILE", self.ca.display().to_string()),
            ("TIMEFRAME", "M1".to_owned()),
            ("RSI_PERIOD", "2".to_owned()),
            ("RSI_OVERSOLD", "45".to_owned()),
            ("RSI_OVERBOUGHT", "55".to_owned()),
            ("STOP_LOSS", "3".to_owned()),
            ("TAKE_PROFIT", "6".to_owned()),
            ("ORDER_VOLUME", "1".to_owned()),
            ("DAILY_LOSS_LIMIT", "1".to_owned()),
            ("MAX_DRAWDOWN", "1".to_owned()),
            ("SENTIMENT_SOURCES", String::new()),
            ("DATABASE_URL", format!("sqlite://{}", self.db.display())),
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("LABEL_PREFIX", PREFIX.to_owned()),
            // An order killed in flight that never reached the broker holds a restart this long.
            ("ORDER_ARRIVAL_GRACE", "3".to_owned()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Starts `palm-oil-bot run` against this simulator, with `changes` applied to the environment.
    pub fn spawn_bot(&self, changes: &[(&str, &str)]) -> Bot {
        let mut env = self.bot_env();
        for (k, v) in changes {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        Bot::spawn(self.dir.path(), &["run"], &env)
    }

    /// Opens the bot's store read-only and runs `read` on it.
    pub fn read_store<T>(
        &self,
        read: impl AsyncFnOnce(&SqliteTradeStore) -> T,
    ) -> Result<T, persistence::StoreError> {
        let mut config = SqliteStoreConfig::new(&self.db);
        config.read_only = true;
        config.readers = 1;
        self.rt.block_on(async {
            let store = SqliteTradeStore::open(config).await?;
            let out = read(&store).await;
            store.close().await;
            Ok(out)
        })
    }

    /// The store's view, read in one go.
    pub fn store_view(&self) -> Result<StoreView, persistence::StoreError> {
        let received: Vec<String> = self
            .sim
            .received_orders()
            .into_iter()
            .filter_map(|o| o.client_order_id)
            .collect();
        self.read_store(async |store| {
            let open = store.open_positions().await?;
            let fills = store.fills(usize::MAX).await?;
            let mut missing_intents = Vec::new();
            for id in &received {
                let known = match ClientOrderId::new(id.clone()) {
                    Ok(cid) => store.intent(&cid).await?.is_some(),
                    Err(_) => false,
                };
                if !known {
                    missing_intents.push(id.clone());
                }
            }
            Ok::<_, persistence::StoreError>(StoreView {
                open: open
                    .iter()
                    .filter(|p| p.status == PositionStatus::Open)
                    .map(|p| (p.id.0, p.volume.0))
                    .collect(),
                fill_deal_ids: fills.iter().map(|f| f.deal_id).collect(),
                missing_intents,
            })
        })?
    }

    /// The broker's open positions as `id → volume`.
    pub fn broker_open(&self) -> BTreeMap<i64, i64> {
        self.sim
            .open_positions()
            .into_iter()
            .map(|p| (p.id, p.volume))
            .collect()
    }

    /// Waits until the store and the broker agree (open positions by id and volume; every deal
    /// recorded exactly once, no fill the broker does not know), within `within`. Trading goes on
    /// meanwhile, so a difference only fails the check when it persists.
    pub fn assert_store_matches_broker(&self, within: Duration, context: &str, bot: &Bot) {
        let deadline = Instant::now() + within;
        let mut last;
        loop {
            let before_open = self.broker_open();
            let before_deals: Vec<i64> = self.sim.deals().iter().map(|d| d.deal_id).collect();
            match self.store_view() {
                Ok(view) => {
                    let after_open = self.broker_open();
                    let after_deals: Vec<i64> =
                        self.sim.deals().iter().map(|d| d.deal_id).collect();
                    // Orders must be durable intents before they leave: never racy.
                    assert!(
                        view.missing_intents.is_empty(),
                        "{context}: orders reached the broker without a durable intent: {:?}",
                        view.missing_intents
                    );
                    let unique: BTreeSet<i64> = view.fill_deal_ids.iter().copied().collect();
                    assert_eq!(
                        unique.len(),
                        view.fill_deal_ids.len(),
                        "{context}: a deal is recorded twice in the store's fills"
                    );
                    let broker_deals: BTreeSet<i64> = after_deals.iter().copied().collect();
                    let phantom: Vec<&i64> = unique.difference(&broker_deals).collect();
                    assert!(
                        phantom.is_empty(),
                        "{context}: fills the broker never made: {phantom:?}"
                    );
                    let stable = before_open == after_open && before_deals == after_deals;
                    let missing: Vec<&i64> = broker_deals.difference(&unique).collect();
                    if stable && view.open == after_open && missing.is_empty() {
                        return;
                    }
                    // The missing deals in full: when and by which order each was made tells a
                    // deal the store missed from one that landed after it looked.
                    let missing_deals: Vec<String> = self
                        .sim
                        .deals()
                        .iter()
                        .filter(|d| missing.contains(&&d.deal_id))
                        .map(|d| {
                            format!(
                                "deal {} order {} position {} client order id {:?} executed {} closing {}",
                                d.deal_id,
                                d.order_id,
                                d.position_id,
                                d.client_order_id,
                                d.executed,
                                d.closing
                            )
                        })
                        .collect();
                    last = format!(
                        "store open {:?} vs broker open {:?}; broker deals missing from the store: {missing:?} {missing_deals:?}",
                        view.open, after_open
                    );
                }
                Err(e) => last = format!("store unreadable: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "{context}: store and broker still differ after {within:?}: {last}\nthe store's intents: {}\nthe bot's last lines:\n{}",
                self.describe_intents(),
                bot.transcript()
            );
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// The stored status of intent `id`, if the store has it.
    pub fn intent_status(&self, id: &str) -> Option<domain::IntentStatus> {
        let cid = ClientOrderId::new(id.to_owned()).ok()?;
        self.read_store(async |store| store.intent(&cid).await)
            .ok()?
            .ok()?
            .map(|i| i.status())
    }

    /// Every intent in the store, for failure messages.
    pub fn describe_intents(&self) -> String {
        let ids: Vec<String> = self
            .sim
            .received_orders()
            .into_iter()
            .filter_map(|o| o.client_order_id)
            .collect();
        self.read_store(async |store| {
            let mut out = Vec::new();
            for id in ids {
                if let Ok(cid) = ClientOrderId::new(id.clone()) {
                    out.push(format!("{id}: {:?}", store.intent(&cid).await));
                }
            }
            out.join("\n")
        })
        .unwrap_or_else(|e| e.to_string())
    }

    /// No client order id reached the broker twice, and no decision (symbol, bar, purpose) gave
    /// more than one order: the id is derived from the decision, and a bar opens at most once.
    pub fn assert_no_duplicate_orders(&self) -> usize {
        let orders = self.sim.received_orders();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut openings_per_bar: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in &orders {
            let id = o
                .client_order_id
                .clone()
                .expect("every order of the bot carries a client order id");
            assert_eq!(
                o.label.as_deref(),
                Some(id.as_str()),
                "an order's label is its client order id"
            );
            *seen.entry(id.clone()).or_default() += 1;
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.len(), 4, "{id} is not prefix-symbol-minute-purpose");
            assert_eq!(parts[0], PREFIX);
            assert_eq!(parts[1], PALM_OIL_SYMBOL_ID.to_string());
            assert!(parts[2].parse::<i64>().is_ok(), "{id}: bar minute");
            assert!(matches!(parts[3], "L" | "S" | "X"), "{id}: purpose");
            assert_eq!(
                o.position_id.is_some(),
                parts[3] == "X",
                "{id}: only a close names a position"
            );
            if parts[3] != "X" {
                openings_per_bar
                    .entry(parts[2].to_owned())
                    .or_default()
                    .push(id.clone());
            }
        }
        let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "client order ids received more than once: {twice:?}"
        );
        let double: Vec<_> = openings_per_bar
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .collect();
        assert!(
            double.is_empty(),
            "one bar's decision opened more than once: {double:?}"
        );
        orders.len()
    }
}

/// What the store holds, as the checks need it.
#[derive(Debug, Clone)]
pub struct StoreView {
    pub open: BTreeMap<i64, i64>,
    pub fill_deal_ids: Vec<i64>,
    pub missing_intents: Vec<String>,
}

/// One collected line of the bot's standard error.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub raw: String,
    pub message: Option<String>,
}

impl LogLine {
    /// A string field of the JSON line.
    pub fn field(&self, name: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.raw).ok()?;
        value.get(name)?.as_str().map(str::to_owned)
    }
}

#[derive(Debug, Default)]
struct Lines {
    lines: Vec<LogLine>,
    closed: bool,
}

/// A running `palm-oil-bot`; killed (SIGKILL) when dropped, so a failing test leaves no process.
pub struct Bot {
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    status: Option<ExitStatus>,
}

impl Bot {
    /// Starts the binary with exactly `env` (nothing inherited) in `dir`.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(String, String)]) -> Bot {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the bot starts");
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<(Mutex<Lines>, Condvar)> = Arc::default();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(raw) = line else { break };
                let message = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
                let (lock, cv) = &*sink;
                lock.lock().unwrap().lines.push(LogLine { raw, message });
                cv.notify_all();
            }
            let (lock, cv) = &*sink;
            lock.lock().unwrap().closed = true;
            cv.notify_all();
        });
        Bot {
            child,
            lines,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines have been collected so far.
    pub fn line_count(&self) -> usize {
        self.lines.0.lock().unwrap().lines.len()
    }

    /// Every line collected so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.0.lock().unwrap().lines.clone()
    }

    /// The whole standard error so far, for failure messages.
    pub fn transcript(&self) -> String {
        let lines = self.lines();
        let start = lines.len().saturating_sub(60);
        lines[start..]
            .iter()
            .map(|l| l.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for a line at index `from` or later whose message is `message`; its index, or
    /// `None` when `timeout` passed or the process closed its standard error.
    pub fn wait_for_message(&self, from: usize, message: &str, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.lines;
        let mut guard = lock.lock().unwrap();
        loop {
            if let Some(i) = guard.lines[from.min(guard.lines.len())..]
                .iter()
                .position(|l| l.message.as_deref() == Some(message))
            {
                return Some(from + i);
            }
            let now = Instant::now();
            if guard.closed || now >= deadline {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Like [`Bot::wait_for_message`] but fails the test, showing the log, on timeout.
    pub fn expect_message(&self, from: usize, message: &str, timeout: Duration) -> usize {
        match self.wait_for_message(from, message, timeout) {
            Some(i) => i,
            None => panic!(
                "no {message:?} log line within {timeout:?}; the bot's last lines:\n{}",
                self.transcript()
            ),
        }
    }

    /// Messages of the collected lines that match `message`, from index `from`.
    pub fn count_messages(&self, from: usize, message: &str) -> usize {
        self.lines()
            .iter()
            .skip(from)
            .filter(|l| l.message.as_deref() == Some(message))
            .count()
    }

    /// SIGKILL, as a crash or an OOM killer would, and reap it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM (a graceful stop), then waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM could not be sent");
        self.wait_exit(timeout)
    }

    /// The exit status if the process ends within `timeout`; `None` (still running) otherwise.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.status.is_some() {
                return self.status;
            }
            if self
                .child
                .try_wait()
                .expect("the bot can be waited for")
                .is_some()
            {
                return Some(self.wait_exit(Duration::from_secs(1)));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to end on its own; fails the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the bot can be waited for") {
                self.status = Some(status);
                // Let the reader thread collect the last lines.
                let (lock, cv) = &*self.lines;
                let guard = lock.lock().unwrap();
                let _ = cv
                    .wait_timeout_while(guard, Duration::from_secs(2), |l| !l.closed)
                    .unwrap();
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "the bot did not exit within {timeout:?}; its last lines:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.kill();
    }
}
