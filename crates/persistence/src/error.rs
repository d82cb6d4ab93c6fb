//! Everything that can go wrong in the store, named so an operator knows what to do.

use std::path::PathBuf;

use domain::{ClientOrderId, IntentStatus, PositionId};

use crate::binding::StoreIdentity;

/// A store failure. [`StoreError::is_transient`] tells a retry layer whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not an SQLite database (a text file, random bytes, another format).
    #[error("{path} is not a palm-oil-bot database (not SQLite); it was left untouched")]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is an SQLite database whose content is damaged.
    #[error("database {path} is corrupt ({detail}); it was left untouched: restore a backup")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The file or its folder cannot be read or created.
    #[error("cannot open database {path}: {detail}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system or SQLite reported.
        detail: String,
    },
    /// The database was written by a newer build: this build must not touch it.
    #[error(
        "database {path} has schema version {found}, newer than this build knows ({known}); \
         it was left untouched: run the newer palm-oil-bot"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Highest migration version found in the file.
        found: i64,
        /// Highest migration version this build carries.
        known: i64,
    },
    /// A migration was interrupted or its recorded checksum differs from this build's.
    #[error("database {path} has an unusable schema history: {detail}")]
    SchemaHistory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A read-only store met a schema older than this build's and cannot upgrade it.
    #[error(
        "database {path} needs an upgrade (version {found} < {known}); open it read-write once"
    )]
    NeedsUpgrade {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Version this build carries.
        known: i64,
    },
    /// The disk (or the configured size cap) is full: nothing of the failed write was kept.
    #[error("database is full (disk or size limit): {0}")]
    DiskFull(String),
    /// The database or its folder is read-only.
    #[error("database is read-only: {0}")]
    ReadOnly(String),
    /// Another process holds the database locked for longer than the busy timeout.
    #[error("database is busy: {0}")]
    Busy(String),
    /// An order intent with this client order id already exists.
    #[error("order intent {0} already exists: a decision is committed once")]
    DuplicateIntent(ClientOrderId),
    /// No order intent with this client order id.
    #[error("no order intent {0}")]
    UnknownIntent(ClientOrderId),
    /// The lifecycle forbids this step (e.g. filled → sent).
    #[error("order intent {id} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The intent.
        id: ClientOrderId,
        /// Its current status.
        from: &'static str,
        /// The refused status.
        to: &'static str,
    },
    /// A fill refers to a position that is not stored and did not come with it.
    #[error("fill {deal_id} refers to position {position}, which is not stored")]
    UnknownPosition {
        /// The deal.
        deal_id: i64,
        /// The position it names.
        position: PositionId,
    },
    /// A value given to the store is inconsistent (e.g. a fill whose position id differs).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A stored row cannot be read back as a domain value (a damaged or hand-edited row).
    #[error("stored {table} row {key} is invalid: {detail}")]
    BadRow {
        /// Which table.
        table: &'static str,
        /// Which row.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A reconciliation plan could not be applied because the store changed under it.
    #[error("reconciliation plan is stale: {0}")]
    StalePlan(String),
    /// Another process holds the store's lock file: one trading process per store.
    #[error(
        "database {path} is in use by {holder} (lock file {lock}); one trading process per store: \
         stop that process first"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// The lock file beside it.
        lock: PathBuf,
        /// Who holds it, as its lease says (pid, host, start time, command).
        holder: String,
    },
    /// The store was first used with another broker host, account or environment.
    #[error(
        "database {path} belongs to {bound}, not to {offered}: refusing to mix their records; \
         point DATABASE_URL at another file, or start with --new-store to move this one aside"
    )]
    BoundElsewhere {
        /// The database file.
        path: PathBuf,
        /// The identity stored in it.
        bound: StoreIdentity,
        /// The identity this start offered.
        offered: StoreIdentity,
    },
    /// A deal id the store already holds arrived with different content: something is wrong
    /// (another account's history, a broker error), and nothing is overwritten or dropped.
    #[error(
        "deal {deal_id} is already stored with different content: stored {stored}; received \
         {received}; nothing was written, trading stops until a person checks it"
    )]
    ConflictingFill {
        /// The deal id.
        deal_id: i64,
        /// The stored row, readable.
        stored: String,
        /// The new row, readable.
        received: String,
    },
    /// A backup could not be written where asked.
    #[error("cannot back up to {path}: {detail}")]
    BackupTarget {
        /// The target file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// True when the same call may succeed if retried later (lock contention, a pool timeout).
    /// Full disks, corrupt files, schema problems and lifecycle violations are permanent.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }

    /// An illegal lifecycle step.
    pub(crate) fn illegal(id: &ClientOrderId, from: IntentStatus, to: IntentStatus) -> StoreError {
        StoreError::IllegalTransition {
            id: id.clone(),
            from: from.as_str(),
            to: to.as_str(),
        }
    }
}

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_NOTADB: i64 = 26;

/// The SQLite primary result code of an error, when it is a database error.
pub(crate) fn sqlite_code(err: &sqlx::Error) -> Option<i64> {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        let text = err.to_string();
        match sqlite_code(&err) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => return StoreError::Busy(text),
            Some(SQLITE_READONLY) => return StoreError::ReadOnly(text),
            Some(SQLITE_FULL) => return StoreError::DiskFull(text),
            _ => {}
        }
        match err {
            sqlx::Error::PoolTimedOut => StoreError::Busy(text),
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                StoreError::DiskFull(io.to_string())
            }
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                StoreError::ReadOnly(io.to_string())
            }
            _ => StoreError::Database(text),
        }
    }
}

/// Maps an error met while opening `path` to one that names the file.
pub(crate) fn open_error(path: &std::path::Path, err: sqlx::Error) -> StoreError {
    let path = path.to_path_buf();
    let detail = err.to_string();
    match sqlite_code(&err) {
        Some(SQLITE_NOTADB) => StoreError::NotADatabase { path },
        Some(SQLITE_CORRUPT) => StoreError::Corrupt { path, detail },
        Some(SQLITE_CANTOPEN | SQLITE_IOERR) => StoreError::Unreadable { path, detail },
        _ => match StoreError::from(err) {
            StoreError::Database(detail) => StoreError::Unreadable { path, detail },
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_contention_is_transient() {
        assert!(StoreError::Busy("locked".into()).is_transient());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::DiskFull("full".into()).is_transient());
        assert!(
            !StoreError::NotADatabase {
                path: "x.db".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn errors_name_the_file() {
        let err = StoreError::NewerSchema {
            path: "/data/bot.db".into(),
            found: 9,
            known: 2,
        };
        let text = err.to_string();
        assert!(text.contains("/data/bot.db") && text.contains('9') && text.contains('2'));
    }
}
