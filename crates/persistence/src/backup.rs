//! A consistent copy of a live store (`VACUUM INTO`: one read transaction, so the copy is one
//! committed state even while the bot writes), checked after it is written.

use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use crate::StoreError;
use crate::error::open_error;
use crate::sqlite::SqliteTradeStore;

/// What a written copy holds, as read back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The copy.
    pub path: PathBuf,
    /// `PRAGMA integrity_check`'s verdict (`ok` for an intact file).
    pub integrity: String,
    /// Every table of the copy with its number of rows, by name.
    pub tables: Vec<(String, i64)>,
}

impl CopyReport {
    /// The rows of `table`, if the copy has it.
    pub fn rows(&self, table: &str) -> Option<i64> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
    }
}

impl SqliteTradeStore {
    /// Writes a consistent copy of the database to `target` (which must not exist yet; its
    /// folder must) and checks it: the copy is opened, passes `integrity_check`, and its tables
    /// are counted. Works on a read-only store and beside a running bot.
    pub async fn backup_to(&self, target: &Path) -> Result<CopyReport, StoreError> {
        let refuse = |detail: &str| StoreError::BackupTarget {
            path: target.to_path_buf(),
            detail: detail.to_owned(),
        };
        if target.exists() {
            return Err(refuse("the file exists; a backup never overwrites one"));
        }
        let Some(text) = target.to_str() else {
            return Err(refuse("the path is not valid UTF-8"));
        };
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(refuse("its folder does not exist"));
        }
        sqlx::query("VACUUM INTO ?")
            .bind(text)
            .execute(&self.reader)
            .await
            .map_err(|e| refuse(&StoreError::from(e).to_string()))?;
        inspect_copy(target).await
    }
}

/// Opens a database file read-only and immutable (it must be complete on its own, with no
/// write-ahead log), checks its integrity and counts the rows of every table.
pub async fn inspect_copy(path: &Path) -> Result<CopyReport, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| open_error(path, e))?;
    let report = read_copy(&mut conn, path).await;
    // Closing a read-only connection writes nothing; a failure to close changes no verdict.
    let _closed = conn.close().await;
    report
}

async fn read_copy(conn: &mut SqliteConnection, path: &Path) -> Result<CopyReport, StoreError> {
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check(1)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| open_error(path, e))?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // Table names come from the file's own schema, and quoting keeps any name a name (a
        // quote inside it is doubled): the statement can only count rows.
        let quoted = name.replace('"', "\"\"");
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{quoted}\""
        )))
        .fetch_one(&mut *conn)
        .await?;
        tables.push((name, row.try_get::<i64, _>(0)?));
    }
    Ok(CopyReport {
        path: path.to_path_buf(),
        integrity,
        tables,
    })
}
