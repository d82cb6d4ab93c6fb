//! `backup FILE`: a consistent copy of the store, safe while the bot runs. The database is
//! opened read-only and copied with `VACUUM INTO` (one read transaction: the copy is one
//! committed state); the copy is then opened, checked with `integrity_check` and counted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use persistence::{CopyReport, SqliteTradeStore, StoreError};

use crate::commands::positions::print_from_store;

/// Options of `backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist (a backup never overwrites a file).
    #[arg(value_name = "FILE")]
    pub target: PathBuf,
}

/// Runs `backup`: 0 with the copy written and checked; 2 when the settings are invalid or there
/// is no database; 3 when the database is refused (corrupt, not ours, newer); 1 when the copy
/// could not be written (target exists, folder missing, disk full) or failed its check.
pub fn run(config_path: Option<&Path>, args: &BackupArgs) -> ExitCode {
    let target = args.target.clone();
    print_from_store(config_path, async move |store: &SqliteTradeStore| {
        let report = store.backup_to(&target).await?;
        if report.integrity != "ok" {
            return Err(StoreError::Corrupt {
                path: report.path,
                detail: report.integrity,
            });
        }
        Ok(describe(store.path(), &report))
    })
}

/// One paragraph for the operator: where the copy is and what it holds.
fn describe(source: &Path, report: &CopyReport) -> String {
    let tables: Vec<String> = report
        .tables
        .iter()
        .map(|(name, rows)| format!("{name} {rows}"))
        .collect();
    format!(
        "backed up {} to {}: integrity {}; rows per table: {}\n",
        source.display(),
        report.path.display(),
        report.integrity,
        tables.join(", ")
    )
}
