//! Whose store this is and who trades it: the identity a store is bound to on first use (broker
//! host, account, live or demo), the lease row that names the process trading it, and the OS
//! lock file beside the database that makes that process the only one.
//!
//! The OS lock is the authority: it dies with its process, so a store left by a killed process is
//! taken over without anyone's help. The lease row only names the holder (to a second process,
//! and after a crash as evidence of who was there).

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::Timestamp;
use sqlx::Row;

use crate::StoreError;
use crate::sqlite::SqliteTradeStore;

/// The broker host, account and environment a store belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// The cTrader host, lower case, without a trailing dot.
    pub broker_host: String,
    /// The `ctidTraderAccountId`.
    pub account_id: i64,
    /// True for a live (real money) account.
    pub live: bool,
}

impl StoreIdentity {
    /// An identity with the host normalised (case and a trailing dot do not make another host).
    pub fn new(broker_host: &str, account_id: i64, live: bool) -> StoreIdentity {
        StoreIdentity {
            broker_host: broker_host.trim_end_matches('.').to_ascii_lowercase(),
            account_id,
            live,
        }
    }

    /// `live` or `demo`.
    pub const fn environment(&self) -> &'static str {
        if self.live { "live" } else { "demo" }
    }
}

impl fmt::Display for StoreIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} account {} on {}",
            self.environment(),
            self.account_id,
            self.broker_host
        )
    }
}

/// What [`SqliteTradeStore::bind`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The store was not bound: it now belongs to the identity given.
    BoundNow,
    /// The store already belonged to the identity given.
    Matches,
}

/// The process trading a store, as its lease row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Process id.
    pub pid: u32,
    /// Machine name.
    pub host: String,
    /// When the process took the store.
    pub started_at: Timestamp,
    /// What it runs (`run`, `demo`, `reconcile`).
    pub command: String,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "palm-oil-bot {} (pid {} on host {}, since {})",
            self.command, self.pid, self.host, self.started_at
        )
    }
}

/// The lock file beside a database: `{file}.lock`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive OS lock on the lock file beside a database, held until dropped (or until the
/// process ends, however it ends). The file is never deleted: deleting a lock file another
/// process holds would let a third one lock a new file beside it.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    path: PathBuf,
}

/// How long a refused process waits for the holder's name to appear in the lock file (the
/// holder writes it right after locking; two processes started together can meet in between).
const HOLDER_NAME_WAIT: Duration = Duration::from_secs(2);

impl StoreLock {
    /// Takes the lock for `database` (creating the lock file and its folder when missing) and
    /// writes `holder` into it; refuses with [`StoreError::Locked`] naming the current holder.
    pub fn acquire(database: &Path, holder: &Lease) -> Result<StoreLock, StoreError> {
        let path = lock_path(database);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| lock_error(&path, &e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| lock_error(&path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: database.to_path_buf(),
                    holder: read_holder(&mut file),
                    lock: path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(lock_error(&path, &e)),
        }
        let text = format!("{holder}\n");
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| lock_error(&path, &e))?;
        Ok(StoreLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // The lock goes with the file handle; emptying the file first leaves no stale name.
        let _emptied = self.file.set_len(0);
    }
}

/// The holder's name as written in the lock file, waiting briefly for a holder that has just
/// locked it to write it.
fn read_holder(file: &mut File) -> String {
    let deadline = Instant::now() + HOLDER_NAME_WAIT;
    loop {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        let name = text.trim();
        if read.is_ok() && !name.is_empty() {
            return name.to_owned();
        }
        if Instant::now() >= deadline {
            return "another process (it has not written its name)".to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lock_error(path: &Path, err: &std::io::Error) -> StoreError {
    StoreError::Unreadable {
        path: path.to_path_buf(),
        detail: format!("cannot take the store's lock file: {err}"),
    }
}

impl SqliteTradeStore {
    /// The identity the store is bound to, if any.
    pub async fn identity(&self) -> Result<Option<StoreIdentity>, StoreError> {
        let row = sqlx::query(
            "SELECT broker_host, account_id, environment FROM store_identity WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(StoreIdentity {
                broker_host: r.try_get("broker_host")?,
                account_id: r.try_get("account_id")?,
                live: r.try_get::<String, _>("environment")? == "live",
            })
        })
        .transpose()
    }

    /// Binds the store to `identity` on first use; refuses another identity with
    /// [`StoreError::BoundElsewhere`] naming both. One transaction, so two first starts cannot
    /// both bind.
    pub async fn bind(
        &self,
        identity: &StoreIdentity,
        at: Timestamp,
    ) -> Result<Binding, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT broker_host, account_id, environment FROM store_identity WHERE id = 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = row {
            let bound = StoreIdentity {
                broker_host: r.try_get("broker_host")?,
                account_id: r.try_get("account_id")?,
                live: r.try_get::<String, _>("environment")? == "live",
            };
            return if &bound == identity {
                Ok(Binding::Matches)
            } else {
                Err(StoreError::BoundElsewhere {
                    path: self.path().to_path_buf(),
                    bound,
                    offered: identity.clone(),
                })
            };
        }
        sqlx::query(
            "INSERT INTO store_identity (id, broker_host, account_id, environment, bound_at) \
             VALUES (1, ?, ?, ?, ?)",
        )
        .bind(&identity.broker_host)
        .bind(identity.account_id)
        .bind(identity.environment())
        .bind(at.0)
        .execute(&mut *tx)
        .await?;
        // Fills written before the binding (account 0) are this account's.
        sqlx::query("UPDATE fills SET account_id = ? WHERE account_id = 0")
            .bind(identity.account_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Binding::BoundNow)
    }

    /// The lease row, if a process holds (or held, before a crash) the store.
    pub async fn lease(&self) -> Result<Option<Lease>, StoreError> {
        let row =
            sqlx::query("SELECT pid, host, started_at, command FROM store_lease WHERE id = 1")
                .fetch_optional(&self.reader)
                .await?;
        row.map(|r| lease_from_row(&r)).transpose()
    }

    /// Writes the lease of the process that holds the store's lock; returns the lease it
    /// replaces (left by a process that ended without releasing it, e.g. one killed).
    pub async fn take_lease(&self, lease: &Lease) -> Result<Option<Lease>, StoreError> {
        let mut tx = self.begin().await?;
        let previous =
            sqlx::query("SELECT pid, host, started_at, command FROM store_lease WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| lease_from_row(&r))
                .transpose()?;
        sqlx::query(
            "INSERT INTO store_lease (id, pid, host, started_at, command) VALUES (1, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, host = excluded.host, \
             started_at = excluded.started_at, command = excluded.command",
        )
        .bind(i64::from(lease.pid))
        .bind(&lease.host)
        .bind(lease.started_at.0)
        .bind(&lease.command)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// Removes the lease of process `pid` (a clean stop); another process's lease stays.
    pub async fn release_lease(&self, pid: u32) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM store_lease WHERE id = 1 AND pid = ?")
            .bind(i64::from(pid))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn lease_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Lease, StoreError> {
    let pid: i64 = r.try_get("pid")?;
    Ok(Lease {
        pid: u32::try_from(pid).map_err(|_| StoreError::BadRow {
            table: "store_lease",
            key: "1".to_owned(),
            detail: format!("pid {pid} out of range"),
        })?,
        host: r.try_get("host")?,
        started_at: Timestamp(r.try_get("started_at")?),
        command: r.try_get("command")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn lease(pid: u32) -> Lease {
        Lease {
            pid,
            host: "box".to_owned(),
            started_at: Timestamp(1_700_000_000_000),
            command: "run".to_owned(),
        }
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bot.db");
        let first = StoreLock::acquire(&db, &lease(111)).unwrap();
        assert_eq!(first.path(), dir.path().join("bot.db.lock"));
        match StoreLock::acquire(&db, &lease(222)) {
            Err(StoreError::Locked { holder, lock, path }) => {
                assert!(
                    holder.contains("pid 111") && holder.contains("box"),
                    "{holder}"
                );
                assert_eq!(lock, dir.path().join("bot.db.lock"));
                assert_eq!(path, db);
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        let again = StoreLock::acquire(&db, &lease(333)).unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(
            text.contains("pid 333") && !text.contains("pid 111"),
            "{text}"
        );
    }

    #[test]
    fn identities_ignore_host_case_and_trailing_dot() {
        assert_eq!(
            StoreIdentity::new("Demo.CTraderAPI.com.", 7, false),
            StoreIdentity::new("demo.ctraderapi.com", 7, false)
        );
        assert_ne!(
            StoreIdentity::new("demo.ctraderapi.com", 7, false),
            StoreIdentity::new("demo.ctraderapi.com", 7, true)
        );
        assert_eq!(
            StoreIdentity::new("h", 7, true).to_string(),
            "live account 7 on h"
        );
    }
}
