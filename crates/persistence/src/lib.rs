//! `persistence` owns the bot's durable memory: positions, order intents and their lifecycle,
//! fills, the reconciliation audit log, the kill switch and equity marks, and sentiment readings,
//! in one SQLite file (WAL, `synchronous = FULL`, versioned migrations) behind the [`TradeStore`]
//! trait, with an in-memory twin for tests (feature `test-util`); and the pure reconciliation [`plan`] that
//! diffs a broker snapshot against the store, broker winning; and who owns a store: the account it
//! is bound to, the lease and OS lock file of the one process trading it, checked backups. It
//! must never send an order, talk to
//! the network, read environment variables, install globals, or overwrite, recreate or migrate a
//! database it does not fully understand (foreign, corrupt or newer): it refuses with an error
//! that names the file.

mod backup;
mod binding;
mod closing;
mod error;
mod intent;
#[cfg(any(test, feature = "test-util"))]
mod memory;
mod reconcile;
mod report;
mod rows;
mod sqlite;
mod store;

pub use backup::{CopyReport, inspect_copy};
pub use binding::{Binding, Lease, StoreIdentity, StoreLock, lock_path};
pub use error::StoreError;
pub use intent::StoredIntent;
#[cfg(any(test, feature = "test-util"))]
pub use memory::MemoryTradeStore;
pub use reconcile::{
    Correction, ExitRecord, Exposure, IntentResolution, PositionLevels, ReasonBasis,
    ReconcileError, ReconcilePlan, deal_history_start, infer_close_reason, plan, resolve_in_flight,
};
pub use report::{
    CorrectionRow, ExposureRow, ForeignPositionRow, PositionRow, PositionsReport, ReconcileReport,
    TradeRow, TradesReport,
};
pub use sqlite::{
    DEFAULT_DATABASE_PATH, DurabilitySettings, MIGRATOR, SqliteStoreConfig, SqliteTradeStore,
    schema_version,
};
pub use store::{
    Acknowledge, AnswerRecorded, AuditEntry, FillRecorded, OrderAnswer, PositionQuery,
    SealedTokens, StoreFuture, TradeStore,
};
