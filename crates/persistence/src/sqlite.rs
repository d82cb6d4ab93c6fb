//! The production store: one SQLite file in WAL mode with `synchronous = FULL`, so a committed
//! order intent survives a crash or a power cut.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::{
    ClientOrderId, Fill, IntentStatus, KillSwitchState, Money, OrderIntent, Position, PositionId,
    PositionStatus, SentimentReading, Timestamp,
};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, Transaction};

use crate::StoreError;
use crate::error::open_error;
use crate::intent::StoredIntent;
use crate::reconcile::{Correction, ReconcilePlan};
use crate::rows::{FillRow, IntentRow, PositionRow, SentimentRow, money_parts};
use crate::store::{
    Acknowledge, AnswerRecorded, AuditEntry, FillRecorded, OrderAnswer, PositionQuery,
    SealedTokens, StoreFuture, TradeStore, check_fill, check_new_intent, check_same_deal,
    check_sentiment, next_status,
};

/// Where a store opened without a path goes (the bot's own default names the environment and
/// account, and is resolved by the bot).
pub const DEFAULT_DATABASE_PATH: &str = "./data/palm-oil-bot.db";

/// The schema migrations this build carries, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The first bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// SQLite's default page size, for turning a byte cap into a page cap.
const PAGE_SIZE: u64 = 4096;

/// How to open the SQLite store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteStoreConfig {
    /// The database file; created with its folder when missing (unless `read_only`).
    pub path: PathBuf,
    /// How long a write waits for another process's lock before failing as [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// Open without writing anything (for `positions`/`trades` while the bot runs): no
    /// migration, and every write fails with [`StoreError::ReadOnly`]. With no write-ahead log
    /// beside the file it is opened immutable: no `-wal`/`-shm` file is created, so a file in a
    /// folder this process may not write can still be read.
    pub read_only: bool,
    /// Hard cap on the file size; writes past it fail with [`StoreError::DiskFull`].
    pub max_size_bytes: Option<u64>,
    /// Connections for concurrent reads (writes always go through one connection).
    pub readers: u32,
}

impl SqliteStoreConfig {
    /// Defaults for a file: 5 s busy timeout, read-write, no size cap, 4 readers.
    pub fn new(path: impl Into<PathBuf>) -> SqliteStoreConfig {
        SqliteStoreConfig {
            path: path.into(),
            busy_timeout: Duration::from_secs(5),
            read_only: false,
            max_size_bytes: None,
            readers: 4,
        }
    }

    /// From a `DATABASE_URL`-style text: `sqlite://path`, `sqlite:path` or a plain path.
    /// Query strings are refused: durability settings are not negotiable.
    pub fn from_url(url: &str) -> Result<SqliteStoreConfig, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains('?') || path == ":memory:" {
            return Err(StoreError::InvalidRecord(format!(
                "database url {url:?} must name a file (sqlite://path/to/file.db, no options)"
            )));
        }
        Ok(SqliteStoreConfig::new(path))
    }
}

impl Default for SqliteStoreConfig {
    fn default() -> SqliteStoreConfig {
        SqliteStoreConfig::new(DEFAULT_DATABASE_PATH)
    }
}

/// The durability-relevant settings of an open connection, as SQLite reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurabilitySettings {
    /// `wal` when write-ahead logging is on.
    pub journal_mode: String,
    /// 2 is FULL (fsync at every commit).
    pub synchronous: i64,
    /// 1 when foreign keys are enforced.
    pub foreign_keys: i64,
    /// Milliseconds a write waits for a lock.
    pub busy_timeout_ms: i64,
}

/// The SQLite [`TradeStore`].
#[derive(Debug, Clone)]
pub struct SqliteTradeStore {
    /// One connection: writes are serialised in-process, so no two of ours ever contend.
    pub(crate) writer: SqlitePool,
    /// Reads run beside writes (WAL lets readers see the last commit).
    pub(crate) reader: SqlitePool,
    path: PathBuf,
    /// Opened with `read_only`: nothing may be written, not even a checkpoint.
    read_only: bool,
}

/// The highest migration version this build carries.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl SqliteTradeStore {
    /// Opens (creating when missing) the database at `path` with default settings.
    pub async fn open_path(path: impl Into<PathBuf>) -> Result<SqliteTradeStore, StoreError> {
        SqliteTradeStore::open(SqliteStoreConfig::new(path)).await
    }

    /// An empty store that lives in memory and is gone when dropped: the same schema and code as
    /// a file, for planning against "nothing stored yet" (`reconcile --dry-run` before the first
    /// run) without creating a file. Never for trading: nothing in it survives the process.
    pub async fn open_scratch() -> Result<SqliteTradeStore, StoreError> {
        let path = PathBuf::from(":memory:");
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // Each connection to `:memory:` is a database of its own: one connection serves all.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| open_error(&path, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| migrate_error(&path, e))?;
        Ok(SqliteTradeStore {
            writer: pool.clone(),
            reader: pool,
            path,
            read_only: false,
        })
    }

    /// Opens the store: checks the file is ours and not from a newer build (without writing to
    /// it), then sets WAL, `synchronous = FULL`, foreign keys and the busy timeout, and runs the
    /// migrations. A file that is not a database, is corrupt or is newer is never modified.
    pub async fn open(config: SqliteStoreConfig) -> Result<SqliteTradeStore, StoreError> {
        let path = config.path.clone();
        let exists = inspect_file(&path)?;
        if !exists {
            if config.read_only {
                return Err(StoreError::Unreadable {
                    path,
                    detail: "no such file".to_owned(),
                });
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| io_open_error(&path, &e))?;
            }
        } else {
            precheck(&config).await?;
        }

        let mut options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(!config.read_only)
            .read_only(config.read_only)
            // Read-only without a write-ahead log beside the file: the file holds everything (a
            // clean stop checkpoints it), so open it immutable. SQLite then creates no -wal/-shm
            // files, which it cannot in a folder it may not write and must not in one it may.
            .immutable(config.read_only && !wal_path(&path).exists())
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout)
            .synchronous(SqliteSynchronous::Full);
        if !config.read_only {
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        if let Some(bytes) = config.max_size_bytes {
            let pages = (bytes / PAGE_SIZE).max(1);
            options = options.pragma("max_page_count", pages.to_string());
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.busy_timeout.saturating_mul(2))
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(&path, e))?;
        if !config.read_only {
            MIGRATOR
                .run(&writer)
                .await
                .map_err(|e| migrate_error(&path, e))?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(config.readers.max(1))
            .acquire_timeout(config.busy_timeout.saturating_mul(2))
            .connect_with(options)
            .await
            .map_err(|e| open_error(&path, e))?;
        let store = SqliteTradeStore {
            writer,
            reader,
            path,
            read_only: config.read_only,
        };
        if !config.read_only {
            let settings = store.durability().await?;
            if settings.journal_mode != "wal" || settings.synchronous != 2 {
                return Err(StoreError::Unreadable {
                    path: store.path,
                    detail: format!(
                        "SQLite refused durable settings (journal_mode {}, synchronous {})",
                        settings.journal_mode, settings.synchronous
                    ),
                });
            }
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads back the durability settings of the writing connection.
    pub async fn durability(&self) -> Result<DurabilitySettings, StoreError> {
        let mut conn = self.writer.acquire().await?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        Ok(DurabilitySettings {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous,
            foreign_keys,
            busy_timeout_ms,
        })
    }

    /// The highest migration applied to this file.
    pub async fn applied_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.reader)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// Closes every connection; the store is unusable afterwards. A read-write store first
    /// tries to checkpoint (see [`SqliteTradeStore::shutdown`] to learn whether that worked).
    pub async fn close(&self) {
        // A failed checkpoint loses nothing: the log stays and is replayed at the next open.
        let _checkpointed = self.shutdown().await;
    }

    /// A clean stop: closes every connection, and for a read-write store first checkpoints the
    /// write-ahead log into the file (see [`SqliteTradeStore::checkpoint`]), so the `.db` file
    /// alone is complete. A failed checkpoint is returned; the log still holds the data then,
    /// and SQLite replays it at the next open.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.reader.close().await;
        let checkpoint = if self.read_only {
            Ok(())
        } else {
            self.checkpoint().await
        };
        self.writer.close().await;
        checkpoint
    }

    /// Copies every committed page from the write-ahead log into the database file and empties
    /// the log (`wal_checkpoint(TRUNCATE)`). Fails as [`StoreError::Busy`] when a reader of
    /// another process kept it from finishing.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy != 0 {
            return Err(StoreError::Busy(format!(
                "{}: another process is reading; the write-ahead log could not be emptied",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// A write transaction that takes the write lock at once, so the busy timeout applies to it
    /// (a deferred transaction upgrading to a writer would fail with SQLITE_BUSY instead).
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The write-ahead log beside a database file: `{file}-wal`.
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Whether the file exists; refuses anything that is not an SQLite file without writing to it.
fn inspect_file(path: &Path) -> Result<bool, StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_open_error(path, &e)),
    };
    if !meta.is_file() {
        return Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            detail: "not a regular file".to_owned(),
        });
    }
    if meta.len() == 0 {
        // SQLite treats an empty file as an empty database.
        return Ok(true);
    }
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|e| io_open_error(path, &e))?;
    let read = read_up_to(&mut file, &mut header).map_err(|e| io_open_error(path, &e))?;
    if read < header.len() || &header != SQLITE_HEADER {
        return Err(StoreError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    Ok(true)
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn io_open_error(path: &Path, err: &std::io::Error) -> StoreError {
    match err.kind() {
        std::io::ErrorKind::StorageFull => {
            StoreError::DiskFull(format!("{}: {err}", path.display()))
        }
        std::io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::ReadOnly(format!("{}: {err}", path.display()))
        }
        _ => StoreError::Unreadable {
            path: path.to_path_buf(),
            detail: err.to_string(),
        },
    }
}

/// Looks inside an existing file through a read-only connection: it must be readable, intact,
/// and carry a migration history this build knows. Nothing is written.
async fn precheck(config: &SqliteStoreConfig) -> Result<(), StoreError> {
    let path = &config.path;
    // Without a write-ahead log beside it the file holds everything: open it as immutable, so
    // SQLite creates no -wal/-shm files next to a file we may be about to refuse. With a log
    // (left by a crash), a read-only open uses the existing files and creates nothing either.
    let has_wal = wal_path(path).exists();
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(!has_wal)
        .create_if_missing(false)
        .busy_timeout(config.busy_timeout);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| open_error(path, e))?;
    let result = precheck_schema(&mut conn, config).await;
    // Closing a read-only connection writes nothing; a failure to close changes no verdict.
    let _closed = conn.close().await;
    result
}

async fn precheck_schema(
    conn: &mut SqliteConnection,
    config: &SqliteStoreConfig,
) -> Result<(), StoreError> {
    let path = &config.path;
    let check: String = sqlx::query_scalar("PRAGMA quick_check(1)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| open_error(path, e))?;
    if check != "ok" {
        return Err(StoreError::Corrupt {
            path: path.clone(),
            detail: check,
        });
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| open_error(path, e))?;
    if !tables.iter().any(|t| t == "_sqlx_migrations") {
        if tables.is_empty() {
            return if config.read_only {
                Err(StoreError::NeedsUpgrade {
                    path: path.clone(),
                    found: 0,
                    known: schema_version(),
                })
            } else {
                Ok(())
            };
        }
        return Err(StoreError::SchemaHistory {
            path: path.clone(),
            detail: format!(
                "it holds tables ({}) but no migration history: not a palm-oil-bot database",
                tables.join(", ")
            ),
        });
    }
    let applied = sqlx::query("SELECT version, success, checksum FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| open_error(path, e))?;
    let known = schema_version();
    let mut history: Vec<(i64, bool, Vec<u8>)> = Vec::with_capacity(applied.len());
    for row in &applied {
        history.push((
            row.try_get("version")?,
            row.try_get("success")?,
            row.try_get("checksum")?,
        ));
    }
    let found = history.iter().map(|(v, ..)| *v).max().unwrap_or(0);
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.clone(),
            found,
            known,
        });
    }
    for (version, success, checksum) in &history {
        let detail = match MIGRATOR.iter().find(|m| m.version == *version) {
            None => format!("migration {version} is not one this build knows"),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                format!("migration {version} differs from this build's")
            }
            Some(_) if !success => format!("migration {version} did not finish"),
            Some(_) => continue,
        };
        return Err(StoreError::SchemaHistory {
            path: path.clone(),
            detail,
        });
    }
    if config.read_only && found < known {
        return Err(StoreError::NeedsUpgrade {
            path: path.clone(),
            found,
            known,
        });
    }
    Ok(())
}

fn migrate_error(path: &Path, err: MigrateError) -> StoreError {
    let path = path.to_path_buf();
    match err {
        MigrateError::VersionMissing(found) => StoreError::NewerSchema {
            path,
            found,
            known: schema_version(),
        },
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => StoreError::from(e),
        other => StoreError::SchemaHistory {
            path,
            detail: other.to_string(),
        },
    }
}

// ---- statements ---------------------------------------------------------------------------

macro_rules! intent_columns {
    () => {
        "client_order_id, symbol_id, side, volume, relative_stop_loss, \
    relative_take_profit, label, position_to_close, status, reason, created_at, updated_at, \
    broker_order_id, position_id, note"
    };
}

macro_rules! position_columns {
    () => {
        "position_id, symbol_id, side, volume, entry_price, entry_time, \
    stop_loss, take_profit, label, client_order_id, status, exit_price, exit_time, pnl_minor, \
    pnl_digits, close_reason"
    };
}

macro_rules! audit_columns {
    () => {
        "seq, at, kind, subject, before, after, why, flagged, check_by_hand, acknowledged_at"
    };
}

/// An audit row read with [`audit_columns`].
fn audit_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at: Timestamp(r.try_get("at")?),
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        before: r.try_get("before")?,
        after: r.try_get("after")?,
        why: r.try_get("why")?,
        flagged: r.try_get("flagged")?,
        check_by_hand: r.try_get("check_by_hand")?,
        acknowledged_at: r
            .try_get::<Option<i64>, _>("acknowledged_at")?
            .map(Timestamp),
    })
}

/// The account the store is bound to (0 until it is): the first half of a fill's key.
macro_rules! store_account {
    () => {
        "COALESCE((SELECT account_id FROM store_identity WHERE id = 1), 0)"
    };
}

macro_rules! fill_columns {
    () => {
        "deal_id, order_id, position_id, client_order_id, symbol_id, side, \
    volume, price, time, commission_minor, commission_digits, close_entry_price, \
    close_gross_profit_minor, close_swap_minor, close_commission_minor, close_balance_minor, \
    close_money_digits, close_volume, close_reason"
    };
}

async fn fetch_intent(
    conn: &mut SqliteConnection,
    id: &ClientOrderId,
) -> Result<Option<StoredIntent>, StoreError> {
    let row: Option<IntentRow> = sqlx::query_as(concat!(
        "SELECT ",
        intent_columns!(),
        " FROM order_intents WHERE client_order_id = ?"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(IntentRow::into_domain).transpose()
}

async fn set_intent_status(
    conn: &mut SqliteConnection,
    id: &ClientOrderId,
    status: IntentStatus,
    at: Timestamp,
    broker_order_id: Option<i64>,
    position: Option<PositionId>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE order_intents SET status = ?, updated_at = ?, \
         broker_order_id = COALESCE(?, broker_order_id), position_id = COALESCE(?, position_id), \
         note = COALESCE(?, note) WHERE client_order_id = ?",
    )
    .bind(status.as_str())
    .bind(at.0)
    .bind(broker_order_id)
    .bind(position.map(|p| p.0))
    .bind(note)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_position(conn: &mut SqliteConnection, p: &Position) -> Result<(), StoreError> {
    let (pnl_minor, pnl_digits) = money_parts(p.pnl);
    sqlx::query(concat!(
        "INSERT INTO positions (",
        position_columns!(),
        ") \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (position_id) DO UPDATE SET symbol_id = excluded.symbol_id, \
         side = excluded.side, volume = excluded.volume, entry_price = excluded.entry_price, \
         entry_time = excluded.entry_time, stop_loss = excluded.stop_loss, \
         take_profit = excluded.take_profit, label = COALESCE(excluded.label, label), \
         client_order_id = COALESCE(excluded.client_order_id, client_order_id), \
         status = excluded.status, exit_price = excluded.exit_price, \
         exit_time = excluded.exit_time, pnl_minor = excluded.pnl_minor, \
         pnl_digits = excluded.pnl_digits, close_reason = excluded.close_reason"
    ))
    .bind(p.id.0)
    .bind(p.symbol.0)
    .bind(p.side.as_str())
    .bind(p.volume.0)
    .bind(p.entry_price.0)
    .bind(p.entry_time.0)
    .bind(p.stop_loss.map(|v| v.0))
    .bind(p.take_profit.map(|v| v.0))
    .bind(p.label.as_deref())
    .bind(p.client_order_id.as_ref().map(ClientOrderId::as_str))
    .bind(p.status.as_str())
    .bind(p.exit_price.map(|v| v.0))
    .bind(p.exit_time.map(|v| v.0))
    .bind(pnl_minor)
    .bind(pnl_digits)
    .bind(p.close_reason.map(|r| r.as_str()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts a fill unless its deal id is known; `AlreadyRecorded` writes nothing. A known deal
/// id with other content is [`StoreError::ConflictingFill`]: never dropped silently.
async fn insert_fill(conn: &mut SqliteConnection, f: &Fill) -> Result<FillRecorded, StoreError> {
    if let Some(stored) = stored_fill(conn, f.deal_id).await? {
        check_same_deal(&stored, f)?;
        return Ok(FillRecorded::AlreadyRecorded);
    }
    let row = FillRow::from_domain(f)?;
    // The key is (account, deal id); the deal id was looked up above, so this inserts a new row.
    let done = sqlx::query(concat!(
        "INSERT INTO fills (account_id, ",
        fill_columns!(),
        ") VALUES (",
        store_account!(),
        ", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(row.deal_id)
    .bind(row.order_id)
    .bind(row.position_id)
    .bind(row.client_order_id)
    .bind(row.symbol_id)
    .bind(row.side)
    .bind(row.volume)
    .bind(row.price)
    .bind(row.time)
    .bind(row.commission_minor)
    .bind(row.commission_digits)
    .bind(row.close_entry_price)
    .bind(row.close_gross_profit_minor)
    .bind(row.close_swap_minor)
    .bind(row.close_commission_minor)
    .bind(row.close_balance_minor)
    .bind(row.close_money_digits)
    .bind(row.close_volume)
    .bind(row.close_reason)
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::UnknownPosition {
                deal_id: f.deal_id,
                position: f.position_id,
            }
        }
        _ => StoreError::from(e),
    })?;
    debug_assert_eq!(done.rows_affected(), 1);
    Ok(FillRecorded::New)
}

/// The stored fill with this deal id, if any.
async fn stored_fill(
    conn: &mut SqliteConnection,
    deal_id: i64,
) -> Result<Option<Fill>, StoreError> {
    let row: Option<FillRow> = sqlx::query_as(concat!(
        "SELECT ",
        fill_columns!(),
        " FROM fills WHERE account_id = ",
        store_account!(),
        " AND deal_id = ?"
    ))
    .bind(deal_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(FillRow::into_domain).transpose()
}

/// Records a fill and the position it leaves, unless the deal is known. A position the fill
/// closes gets the exit and net result of ALL its closing deals (a close in several deals made the
/// sum of them), whatever the caller computed from this one.
async fn record_fill_tx(
    conn: &mut SqliteConnection,
    fill: &Fill,
    position: &Position,
) -> Result<FillRecorded, StoreError> {
    if let Some(stored) = stored_fill(conn, fill.deal_id).await? {
        check_same_deal(&stored, fill)?;
        return Ok(FillRecorded::AlreadyRecorded);
    }
    let mut position = position.clone();
    if position.status == PositionStatus::Closed && fill.close.is_some() {
        let earlier = position_fills(conn, position.id).await?;
        if let Some((price, net)) = crate::closing::exit_of(earlier.iter().chain([fill])) {
            position.exit_price = Some(price);
            position.pnl = Some(net);
        }
    }
    // The position first: a fill must name a stored position (foreign key).
    upsert_position(conn, &position).await?;
    insert_fill(conn, fill).await
}

/// Every stored fill of a position, oldest first.
async fn position_fills(
    conn: &mut SqliteConnection,
    position: PositionId,
) -> Result<Vec<Fill>, StoreError> {
    let rows: Vec<FillRow> = sqlx::query_as(concat!(
        "SELECT ",
        fill_columns!(),
        " FROM fills WHERE account_id = ",
        store_account!(),
        " AND position_id = ? ORDER BY time, deal_id"
    ))
    .bind(position.0)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(FillRow::into_domain).collect()
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    at: Timestamp,
    c: &Correction,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reconcile_audit \
         (at, kind, subject, before, after, why, flagged, check_by_hand) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at.0)
    .bind(c.kind())
    .bind(c.subject())
    .bind(c.before())
    .bind(c.after())
    .bind(c.why())
    .bind(c.flagged())
    .bind(c.check_by_hand())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_correction(
    conn: &mut SqliteConnection,
    c: &Correction,
    at: Timestamp,
) -> Result<(), StoreError> {
    match c {
        Correction::SyncPosition {
            id, after, deals, ..
        } => {
            let done = sqlx::query(
                "UPDATE positions SET volume = ?, stop_loss = ?, take_profit = ? \
                 WHERE position_id = ? AND status = 'open'",
            )
            .bind(after.volume.0)
            .bind(after.stop_loss.map(|v| v.0))
            .bind(after.take_profit.map(|v| v.0))
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
            expect_one(done.rows_affected(), c)?;
            for d in deals {
                insert_fill(conn, d).await?;
            }
        }
        Correction::ClosePosition {
            id, exit, deals, ..
        } => {
            let (pnl_minor, pnl_digits) = money_parts(Some(exit.pnl));
            let done = sqlx::query(
                "UPDATE positions SET status = 'closed', volume = MAX(volume, ?), exit_price = ?, \
                 exit_time = ?, pnl_minor = ?, pnl_digits = ?, close_reason = ? \
                 WHERE position_id = ? AND status = 'open'",
            )
            .bind(exit.volume.0)
            .bind(exit.price.0)
            .bind(exit.time.0)
            .bind(pnl_minor)
            .bind(pnl_digits)
            .bind(exit.reason.as_str())
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
            expect_one(done.rows_affected(), c)?;
            for d in deals {
                insert_fill(conn, d).await?;
            }
        }
        Correction::CloseUnexplained { id, .. } => {
            let done = sqlx::query(
                "UPDATE positions SET status = 'closed', close_reason = NULL \
                 WHERE position_id = ? AND status = 'open'",
            )
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
            expect_one(done.rows_affected(), c)?;
        }
        Correction::AdoptPosition {
            position, deals, ..
        } => {
            upsert_position(conn, position).await?;
            for d in deals {
                insert_fill(conn, d).await?;
            }
        }
        Correction::ResolveIntent {
            client_order_id,
            from,
            to,
            position,
            broker_order_id,
            evidence,
        } => {
            let current = fetch_intent(conn, client_order_id)
                .await?
                .ok_or_else(|| StoreError::UnknownIntent(client_order_id.clone()))?;
            crate::store::check_resolution(client_order_id, current.status(), *from, *to)?;
            set_intent_status(
                conn,
                client_order_id,
                *to,
                at,
                *broker_order_id,
                *position,
                Some(evidence),
            )
            .await?;
        }
    }
    Ok(())
}

fn expect_one(rows: u64, c: &Correction) -> Result<(), StoreError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(StoreError::StalePlan(format!(
            "{} is no longer open in the store",
            c.subject()
        )))
    }
}

impl TradeStore for SqliteTradeStore {
    fn commit_intent<'a>(&'a self, intent: &'a OrderIntent) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_new_intent(intent)?;
            let r = &intent.request;
            let mut tx = self.begin().await?;
            let done = sqlx::query(concat!(
                "INSERT INTO order_intents (",
                intent_columns!(),
                ") \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, NULL, NULL, NULL) \
                 ON CONFLICT (client_order_id) DO NOTHING"
            ))
            .bind(r.client_order_id.as_str())
            .bind(r.symbol.0)
            .bind(r.side.as_str())
            .bind(r.volume.0)
            .bind(r.relative_stop_loss.map(|v| v.0))
            .bind(r.relative_take_profit.map(|v| v.0))
            .bind(&r.label)
            .bind(r.position_to_close.map(|p| p.0))
            .bind(&intent.reason)
            .bind(intent.created_at.0)
            .bind(intent.created_at.0)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::DuplicateIntent(r.client_order_id.clone()));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn mark_sent<'a>(&'a self, id: &'a ClientOrderId, at: Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let current = fetch_intent(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::UnknownIntent(id.clone()))?;
            if current.status() != IntentStatus::Pending {
                return Err(StoreError::illegal(
                    id,
                    current.status(),
                    IntentStatus::Sent,
                ));
            }
            set_intent_status(&mut tx, id, IntentStatus::Sent, at, None, None, None).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn record_answer<'a>(
        &'a self,
        answer: &'a OrderAnswer,
        at: Timestamp,
    ) -> StoreFuture<'a, AnswerRecorded> {
        Box::pin(async move {
            let id = answer.client_order_id();
            crate::store::check_answer(answer)?;
            let mut tx = self.begin().await?;
            let current = fetch_intent(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::UnknownIntent(id.clone()))?;
            let next = next_status(id, current.status(), answer.target_status())?;
            let mut fill_outcome = None;
            let (broker_order_id, position, note) = match answer {
                OrderAnswer::Accepted {
                    broker_order_id, ..
                } => (Some(*broker_order_id), None, None),
                OrderAnswer::Rejected { reason, .. } => (None, None, Some(reason.as_str())),
                OrderAnswer::Filled { fill, position, .. } => {
                    fill_outcome = Some(record_fill_tx(&mut tx, fill, position).await?);
                    (Some(fill.order_id), Some(fill.position_id), None)
                }
            };
            let status = match next {
                Some(status) => {
                    set_intent_status(&mut tx, id, status, at, broker_order_id, position, note)
                        .await?;
                    status
                }
                None => current.status(),
            };
            tx.commit().await?;
            Ok(AnswerRecorded {
                status,
                fill: fill_outcome,
            })
        })
    }

    fn record_fill<'a>(
        &'a self,
        fill: &'a Fill,
        position: &'a Position,
    ) -> StoreFuture<'a, FillRecorded> {
        Box::pin(async move {
            check_fill(fill, position)?;
            let mut tx = self.begin().await?;
            let outcome = record_fill_tx(&mut tx, fill, position).await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }

    fn intent<'a>(&'a self, id: &'a ClientOrderId) -> StoreFuture<'a, Option<StoredIntent>> {
        Box::pin(async move {
            let mut conn = self.reader.acquire().await?;
            fetch_intent(&mut conn, id).await
        })
    }

    fn intents_in_flight(&self) -> StoreFuture<'_, Vec<StoredIntent>> {
        Box::pin(async move {
            let rows: Vec<IntentRow> = sqlx::query_as(concat!(
                "SELECT ",
                intent_columns!(),
                " FROM order_intents \
                 WHERE status IN ('pending', 'sent', 'accepted') \
                 ORDER BY created_at, client_order_id"
            ))
            .fetch_all(&self.reader)
            .await?;
            rows.into_iter().map(IntentRow::into_domain).collect()
        })
    }

    fn position(&self, id: PositionId) -> StoreFuture<'_, Option<Position>> {
        Box::pin(async move {
            let row: Option<PositionRow> = sqlx::query_as(concat!(
                "SELECT ",
                position_columns!(),
                " FROM positions WHERE position_id = ?"
            ))
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?;
            row.map(PositionRow::into_domain).transpose()
        })
    }

    fn open_positions(&self) -> StoreFuture<'_, Vec<Position>> {
        Box::pin(async move {
            let rows: Vec<PositionRow> = sqlx::query_as(concat!(
                "SELECT ",
                position_columns!(),
                " FROM positions WHERE status = 'open' ORDER BY position_id"
            ))
            .fetch_all(&self.reader)
            .await?;
            rows.into_iter().map(PositionRow::into_domain).collect()
        })
    }

    fn positions(&self, query: PositionQuery) -> StoreFuture<'_, Vec<Position>> {
        Box::pin(async move {
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows: Vec<PositionRow> = sqlx::query_as(concat!(
                "SELECT ",
                position_columns!(),
                " FROM positions WHERE (?1 IS NULL OR status = ?1) \
                 ORDER BY entry_time DESC, position_id DESC LIMIT ?2"
            ))
            .bind(query.status.map(PositionStatus::as_str))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.into_iter().map(PositionRow::into_domain).collect()
        })
    }

    fn fills(&self, limit: usize) -> StoreFuture<'_, Vec<Fill>> {
        Box::pin(async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows: Vec<FillRow> = sqlx::query_as(concat!(
                "SELECT ",
                fill_columns!(),
                " FROM fills ORDER BY time DESC, deal_id DESC LIMIT ?"
            ))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.into_iter().map(FillRow::into_domain).collect()
        })
    }

    fn apply<'a>(&'a self, plan: &'a ReconcilePlan, at: Timestamp) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            for c in &plan.corrections {
                apply_correction(&mut tx, c, at).await?;
                insert_audit(&mut tx, at, c).await?;
            }
            if let Some(until) = plan.deals_until {
                sqlx::query(
                    "UPDATE bot_state SET reconciled_until = \
                     MAX(COALESCE(reconciled_until, ?1), ?1) WHERE id = 1",
                )
                .bind(until.0)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(plan.corrections.len())
        })
    }

    fn audit_log(&self, limit: usize) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM reconcile_audit ORDER BY seq DESC LIMIT ?"
            ))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(audit_from_row).collect()
        })
    }

    fn open_findings(&self) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM reconcile_audit WHERE check_by_hand = 1 AND acknowledged_at IS NULL \
                 ORDER BY seq"
            ))
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(audit_from_row).collect()
        })
    }

    fn acknowledge<'a>(
        &'a self,
        which: Acknowledge<'a>,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let seqs: Vec<i64> = match which {
                Acknowledge::All => {
                    sqlx::query_scalar(
                        "SELECT seq FROM reconcile_audit \
                     WHERE check_by_hand = 1 AND acknowledged_at IS NULL ORDER BY seq",
                    )
                    .fetch_all(&mut *tx)
                    .await?
                }
                Acknowledge::Rows(seqs) => {
                    let mut open = Vec::new();
                    for seq in seqs {
                        let row: Option<(bool, Option<i64>)> = sqlx::query_as(
                            "SELECT check_by_hand, acknowledged_at FROM reconcile_audit \
                             WHERE seq = ?",
                        )
                        .bind(seq)
                        .fetch_optional(&mut *tx)
                        .await?;
                        crate::store::check_acknowledgeable(*seq, row.map(|(f, _)| f))?;
                        if matches!(row, Some((true, None))) && !open.contains(seq) {
                            open.push(*seq);
                        }
                    }
                    open.sort_unstable();
                    open
                }
            };
            let mut done = Vec::with_capacity(seqs.len());
            for seq in seqs {
                let row = sqlx::query(concat!(
                    "UPDATE reconcile_audit SET acknowledged_at = ? WHERE seq = ? RETURNING ",
                    audit_columns!()
                ))
                .bind(at.0)
                .bind(seq)
                .fetch_one(&mut *tx)
                .await?;
                done.push(audit_from_row(&row)?);
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    fn reconciled_until(&self) -> StoreFuture<'_, Option<Timestamp>> {
        Box::pin(async move {
            let v: Option<i64> =
                sqlx::query_scalar("SELECT reconciled_until FROM bot_state WHERE id = 1")
                    .fetch_optional(&self.reader)
                    .await?
                    .flatten();
            Ok(v.map(Timestamp))
        })
    }

    fn kill_switch(&self) -> StoreFuture<'_, KillSwitchState> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT kill_engaged, kill_reason, kill_engaged_at, equity_peak_minor, \
                 equity_peak_digits, day_start_equity_minor, day_start_equity_digits, day, \
                 money_currency, marked_balance_minor, marked_balance_digits, marked_balance_at \
                 FROM bot_state WHERE id = 1",
            )
            .fetch_optional(&self.reader)
            .await?;
            let Some(r) = row else {
                return Ok(KillSwitchState::default());
            };
            let money =
                |minor: Option<i64>, digits: Option<i64>| -> Result<Option<Money>, StoreError> {
                    crate::rows::money_from_parts("bot_state", "1", minor, digits)
                };
            Ok(KillSwitchState {
                engaged: r.try_get("kill_engaged")?,
                reason: r.try_get("kill_reason")?,
                engaged_at: r
                    .try_get::<Option<i64>, _>("kill_engaged_at")?
                    .map(Timestamp),
                equity_peak: money(
                    r.try_get("equity_peak_minor")?,
                    r.try_get("equity_peak_digits")?,
                )?,
                day_start_equity: money(
                    r.try_get("day_start_equity_minor")?,
                    r.try_get("day_start_equity_digits")?,
                )?,
                day: r.try_get("day")?,
                currency: r.try_get("money_currency")?,
                marked_balance: money(
                    r.try_get("marked_balance_minor")?,
                    r.try_get("marked_balance_digits")?,
                )?,
                marked_balance_at: r
                    .try_get::<Option<i64>, _>("marked_balance_at")?
                    .map(Timestamp),
            })
        })
    }

    fn save_kill_switch<'a>(&'a self, state: &'a KillSwitchState) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (peak_minor, peak_digits) = money_parts(state.equity_peak);
            let (day_minor, day_digits) = money_parts(state.day_start_equity);
            let (marked_minor, marked_digits) = money_parts(state.marked_balance);
            let mut tx = self.begin().await?;
            sqlx::query(
                "UPDATE bot_state SET kill_engaged = ?, kill_reason = ?, kill_engaged_at = ?, \
                 equity_peak_minor = ?, equity_peak_digits = ?, day_start_equity_minor = ?, \
                 day_start_equity_digits = ?, day = ?, money_currency = ?, \
                 marked_balance_minor = ?, marked_balance_digits = ?, marked_balance_at = ? \
                 WHERE id = 1",
            )
            .bind(state.engaged)
            .bind(state.reason.as_deref())
            .bind(state.engaged_at.map(|t| t.0))
            .bind(peak_minor)
            .bind(peak_digits)
            .bind(day_minor)
            .bind(day_digits)
            .bind(state.day)
            .bind(state.currency.as_deref())
            .bind(marked_minor)
            .bind(marked_digits)
            .bind(state.marked_balance_at.map(|t| t.0))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn record_sentiment<'a>(&'a self, reading: &'a SentimentReading) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            check_sentiment(reading)?;
            let mut tx = self.begin().await?;
            sqlx::query(
                "INSERT INTO sentiment_readings \
                 (known_at, source, score, confidence, item_count, summary) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(reading.known_at.0)
            .bind(&reading.source)
            .bind(reading.score)
            .bind(reading.confidence)
            .bind(i64::from(reading.item_count))
            .bind(&reading.summary)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn sentiment_at<'a>(
        &'a self,
        at: Timestamp,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Option<SentimentReading>> {
        Box::pin(async move {
            let row: Option<SentimentRow> = sqlx::query_as(
                "SELECT id, known_at, source, score, confidence, item_count, summary \
                 FROM sentiment_readings WHERE known_at <= ?1 AND (?2 IS NULL OR source = ?2) \
                 ORDER BY known_at DESC, id DESC LIMIT 1",
            )
            .bind(at.0)
            .bind(source)
            .fetch_optional(&self.reader)
            .await?;
            row.map(SentimentRow::into_domain).transpose()
        })
    }

    fn save_tokens<'a>(&'a self, tokens: &'a SealedTokens) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            sqlx::query(
                "INSERT INTO broker_tokens \
                 (account_id, sealed, source_fingerprint, issued_at, expires_at, stored_at) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (account_id) DO UPDATE SET sealed = excluded.sealed, \
                 source_fingerprint = excluded.source_fingerprint, issued_at = excluded.issued_at, \
                 expires_at = excluded.expires_at, stored_at = excluded.stored_at",
            )
            .bind(tokens.account_id)
            .bind(tokens.sealed.as_slice())
            .bind(tokens.source_fingerprint.as_str())
            .bind(tokens.issued_at.0)
            .bind(tokens.expires_at.map(|t| t.0))
            .bind(tokens.stored_at.0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn tokens(&self, account_id: i64) -> StoreFuture<'_, Option<SealedTokens>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT sealed, source_fingerprint, issued_at, expires_at, stored_at \
                 FROM broker_tokens WHERE account_id = ?",
            )
            .bind(account_id)
            .fetch_optional(&self.reader)
            .await?;
            let Some(r) = row else {
                return Ok(None);
            };
            Ok(Some(SealedTokens {
                account_id,
                sealed: r.try_get("sealed")?,
                source_fingerprint: r.try_get("source_fingerprint")?,
                issued_at: Timestamp(r.try_get("issued_at")?),
                expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp),
                stored_at: Timestamp(r.try_get("stored_at")?),
            }))
        })
    }
}
