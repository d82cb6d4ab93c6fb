//! The trading store as `run`, `demo` and `reconcile` open it: one process per store (an OS lock
//! on `{file}.lock` held for the process lifetime, and a lease row naming it), bound on first use
//! to one broker host, account and environment, and checkpointed at a clean stop so the `.db`
//! file alone is complete. Read-only commands use [`database_file`] only: they take no lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::{Clock, Timestamp};
use persistence::{
    Binding, Lease, SqliteStoreConfig, SqliteTradeStore, StoreError, StoreIdentity, StoreLock,
    TradeStore,
};

use crate::runtime::{EXIT_CONFIG, EXIT_REFUSED};

/// The placeholder in `DATABASE_URL` for the environment (`demo` or `live`).
pub const ENV_PLACEHOLDER: &str = "{env}";
/// The placeholder in `DATABASE_URL` for the account id.
pub const ACCOUNT_PLACEHOLDER: &str = "{account}";

/// Why a store was not opened, with the exit status it deserves.
#[derive(Debug, thiserror::Error)]
pub enum StoreRefusal {
    /// `DATABASE_URL` cannot name a file (exit 2).
    #[error("DATABASE_URL: {0}")]
    Setting(String),
    /// The store is refused: locked by another process, bound to another account, unreadable,
    /// corrupt or newer (exit 3).
    #[error("{0}")]
    Refused(String),
}

impl StoreRefusal {
    /// The process exit status for this refusal.
    pub const fn exit_code(&self) -> u8 {
        match self {
            StoreRefusal::Setting(_) => EXIT_CONFIG,
            StoreRefusal::Refused(_) => EXIT_REFUSED,
        }
    }
}

/// Fills the `{env}` and `{account}` placeholders of a `DATABASE_URL` (the default names both,
/// so demo and live, and two accounts, never share a file). `account` is needed only when the
/// URL names it.
pub fn database_url(template: &str, live: bool, account: Option<i64>) -> Result<String, String> {
    let mut url = template.replace(ENV_PLACEHOLDER, if live { "live" } else { "demo" });
    if url.contains(ACCOUNT_PLACEHOLDER) {
        let Some(account) = account else {
            return Err(format!(
                "{template:?} names the account ({ACCOUNT_PLACEHOLDER}) but CTRADER_ACCOUNT_ID is not set: set it, or set DATABASE_URL to the file"
            ));
        };
        url = url.replace(ACCOUNT_PLACEHOLDER, &account.to_string());
    }
    if let Some(start) = url.find('{')
        && url[start..].contains('}')
    {
        return Err(format!(
            "{template:?} has an unknown placeholder; only {ENV_PLACEHOLDER} and {ACCOUNT_PLACEHOLDER} are filled in"
        ));
    }
    Ok(url)
}

/// The database file a read-only command looks at: `DATABASE_URL` with `{env}` from
/// `CTRADER_ENV` and `{account}` from `CTRADER_ACCOUNT_ID` (read from the environment only when
/// the URL names the account).
pub fn database_file_url(config: &crate::config::Config) -> Result<String, String> {
    let account = if config.database_url.contains(ACCOUNT_PLACEHOLDER) {
        match std::env::var("CTRADER_ACCOUNT_ID") {
            Ok(text) => Some(
                text.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|a| *a > 0)
                    .ok_or_else(|| {
                        "CTRADER_ACCOUNT_ID must be the numeric ctidTraderAccountId".to_owned()
                    })?,
            ),
            Err(_) => None,
        }
    } else {
        None
    };
    database_url(
        &config.database_url,
        crate::live_guard::expected_live(&config.broker),
        account,
    )
}

/// The resolved database path of a URL, for callers that only read.
pub fn database_file(url: &str) -> Result<PathBuf, String> {
    SqliteStoreConfig::from_url(url)
        .map(|c| c.path)
        .map_err(|e| e.to_string())
}

/// What a start asks of the store.
#[derive(Debug, Clone)]
pub struct StoreRequest<'a> {
    /// `DATABASE_URL`, placeholders not yet filled.
    pub url: &'a str,
    /// Who trades: the store must belong to them (or be new).
    pub identity: StoreIdentity,
    /// The command taking the store (`run`, `demo`, `reconcile`), for the lease.
    pub command: &'static str,
    /// `--new-store`: a store bound to another identity is moved aside and a fresh one started.
    pub new_store: bool,
}

/// The open trading store: its lock is held until [`TradingStore::close`] (or the process
/// ends, however it ends).
#[derive(Debug)]
pub struct TradingStore {
    store: SqliteTradeStore,
    lease: Lease,
    _lock: StoreLock,
}

impl TradingStore {
    /// The store, to hand to the engine and the sentiment refresher.
    pub fn shared(&self) -> Arc<dyn TradeStore> {
        Arc::new(self.store.clone())
    }

    /// The SQLite store itself.
    pub fn sqlite(&self) -> &SqliteTradeStore {
        &self.store
    }

    /// A clean stop: releases the lease, checkpoints the write-ahead log into the file
    /// (TRUNCATE), closes every connection, then frees the lock.
    pub async fn close(self) -> Result<(), StoreError> {
        let released = self.store.release_lease(self.lease.pid).await;
        let closed = self.store.shutdown().await;
        released.and(closed)
    }
}

/// Opens the store for a trading process: takes the lock beside the file (refused, naming the
/// holder, when another process has it), opens and migrates the file, binds it to
/// `request.identity` or checks it belongs to it, and writes the lease. Logs what it did.
pub async fn open_trading_store(
    request: &StoreRequest<'_>,
    clock: &dyn Clock,
) -> Result<TradingStore, StoreRefusal> {
    LockedStore::lock(request, clock)?
        .open(request, clock)
        .await
}

/// A store whose lock this process holds but which is not open yet (the demo empties its file
/// in between: only the lock holder may).
#[derive(Debug)]
pub struct LockedStore {
    config: SqliteStoreConfig,
    lease: Lease,
    lock: StoreLock,
}

impl LockedStore {
    /// Takes the lock beside the file `request.url` names; refused (exit 3), naming the holder,
    /// when another process has it.
    pub fn lock(
        request: &StoreRequest<'_>,
        clock: &dyn Clock,
    ) -> Result<LockedStore, StoreRefusal> {
        let url = database_url(
            request.url,
            request.identity.live,
            Some(request.identity.account_id),
        )
        .map_err(StoreRefusal::Setting)?;
        let config =
            SqliteStoreConfig::from_url(&url).map_err(|e| StoreRefusal::Setting(e.to_string()))?;
        let lease = Lease {
            pid: std::process::id(),
            host: host_name(),
            started_at: clock.now(),
            command: request.command.to_owned(),
        };
        let lock = StoreLock::acquire(&config.path, &lease).map_err(refused)?;
        Ok(LockedStore {
            config,
            lease,
            lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Opens and migrates the file, binds it (see [`open_trading_store`]) and writes the lease.
    pub async fn open(
        self,
        request: &StoreRequest<'_>,
        clock: &dyn Clock,
    ) -> Result<TradingStore, StoreRefusal> {
        let LockedStore {
            config,
            lease,
            lock,
        } = self;
        let mut store = SqliteTradeStore::open(config.clone())
            .await
            .map_err(refused)?;
        match store.bind(&request.identity, clock.now()).await {
            Ok(Binding::BoundNow) => tracing::info!(
                "store {} bound to {}: a start with another account, host or environment will be refused",
                config.path.display(),
                request.identity
            ),
            Ok(Binding::Matches) => {}
            Err(StoreError::BoundElsewhere { bound, .. }) if request.new_store => {
                let moved = move_aside(&store, &config.path, clock.now()).await?;
                tracing::warn!(
                    "--new-store: the store {} belonged to {bound}; moved it to {} and started a fresh one for {}",
                    config.path.display(),
                    moved.display(),
                    request.identity
                );
                store = SqliteTradeStore::open(config.clone())
                    .await
                    .map_err(refused)?;
                store
                    .bind(&request.identity, clock.now())
                    .await
                    .map_err(refused)?;
            }
            Err(e) => {
                store.close().await;
                return Err(refused(e));
            }
        }
        if let Some(previous) = store.take_lease(&lease).await.map_err(refused)? {
            // We hold the OS lock, so the process that wrote this lease is gone.
            tracing::warn!(
                "took over the store from {previous}, which ended without releasing it (its lock was free)"
            );
        }
        tracing::info!(
            "store {} held by this process (pid {}; lock file {})",
            config.path.display(),
            lease.pid,
            lock.path().display()
        );
        Ok(TradingStore {
            store,
            lease,
            _lock: lock,
        })
    }
}

fn refused(e: StoreError) -> StoreRefusal {
    StoreRefusal::Refused(format!("cannot open the store: {e}"))
}

/// Checkpoints and closes `store`, then renames its file (and any `-shm` left) to
/// `{file}.{UTC time}.bak`. Nothing is deleted; a store whose log could not be emptied is not
/// moved (its data would be split across two names).
async fn move_aside(
    store: &SqliteTradeStore,
    path: &Path,
    now: Timestamp,
) -> Result<PathBuf, StoreRefusal> {
    store.shutdown().await.map_err(|e| {
        StoreRefusal::Refused(format!(
            "--new-store: {} could not be checkpointed, so it was not moved: {e}",
            path.display()
        ))
    })?;
    let stamp: String = now
        .to_string()
        .chars()
        .take(19)
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let target = suffixed(path, &format!(".{stamp}Z.bak"));
    if target.exists() || suffixed(path, "-wal").exists() {
        return Err(StoreRefusal::Refused(format!(
            "--new-store: {} cannot be moved aside ({} exists, or a write-ahead log is left beside it); nothing was moved",
            path.display(),
            target.display()
        )));
    }
    std::fs::rename(path, &target).map_err(|e| {
        StoreRefusal::Refused(format!(
            "--new-store: cannot move {} to {}: {e}",
            path.display(),
            target.display()
        ))
    })?;
    let shm = suffixed(path, "-shm");
    if shm.exists() {
        // A shared-memory index is rebuilt from the file; it must not sit beside the new one.
        let _moved = std::fs::rename(&shm, suffixed(&target, "-shm"));
    }
    Ok(target)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// This machine's name, for the lease (`unknown` when the system does not say).
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_names_environment_and_account() {
        let template = "sqlite://./data/palm-oil-bot-{env}-{account}.db";
        assert_eq!(
            database_url(template, false, Some(42)).as_deref(),
            Ok("sqlite://./data/palm-oil-bot-demo-42.db")
        );
        assert_eq!(
            database_url(template, true, Some(42)).as_deref(),
            Ok("sqlite://./data/palm-oil-bot-live-42.db")
        );
        let missing = database_url(template, false, None).unwrap_err();
        assert!(missing.contains("CTRADER_ACCOUNT_ID"), "{missing}");
        assert_eq!(
            database_url("sqlite://x.db", true, None).as_deref(),
            Ok("sqlite://x.db")
        );
        let unknown = database_url("sqlite://{user}.db", true, Some(1)).unwrap_err();
        assert!(unknown.contains("unknown placeholder"), "{unknown}");
    }

    #[test]
    fn refusals_map_to_exit_statuses() {
        assert_eq!(
            StoreRefusal::Setting(String::new()).exit_code(),
            EXIT_CONFIG
        );
        assert_eq!(
            StoreRefusal::Refused(String::new()).exit_code(),
            EXIT_REFUSED
        );
    }
}
