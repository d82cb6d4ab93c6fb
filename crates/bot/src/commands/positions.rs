//! `positions`: list the positions the store holds, as a table or JSON. The database is opened
//! read-only, so this is safe while the bot runs and never creates or migrates a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use domain::PositionStatus;
use persistence::{
    PositionQuery, PositionsReport, SqliteStoreConfig, SqliteTradeStore, StoreError, TradeStore,
};

use crate::commands::check_config::load_settings;
use crate::config::Config;
use crate::runtime::{EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};

/// Options of `positions`.
#[derive(Debug, Clone, clap::Args)]
pub struct PositionsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only open positions.
    #[arg(long, conflicts_with = "closed")]
    pub open: bool,
    /// Only closed positions.
    #[arg(long)]
    pub closed: bool,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100, value_parser = parse_limit)]
    pub limit: usize,
}

/// Parses a `--limit`: a whole number of at least 1.
pub fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

/// Why the store could not be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum StoreAccessError {
    /// `DATABASE_URL` does not name a file.
    #[error("DATABASE_URL: {0}")]
    BadUrl(StoreError),
    /// No database file there: nothing was stored yet (or the setting points elsewhere).
    #[error(
        "no database at {} (DATABASE_URL): nothing has been stored there yet; check DATABASE_URL or start the bot first",
        .0.display()
    )]
    Missing(PathBuf),
    /// The file is there but cannot be used (not a database, corrupt, newer, unreadable).
    #[error("{0}")]
    Refused(StoreError),
}

/// Opens the store named by `url` read-only, without creating or migrating anything: it works
/// on a file this process may not write, and creates no `-wal`/`-shm` file beside one that has
/// no write-ahead log (it is opened immutable then; see `persistence::SqliteStoreConfig`).
pub async fn open_read_only(url: &str) -> Result<SqliteTradeStore, StoreAccessError> {
    let mut config = SqliteStoreConfig::from_url(url).map_err(StoreAccessError::BadUrl)?;
    if !config.path.exists() {
        return Err(StoreAccessError::Missing(config.path));
    }
    config.read_only = true;
    SqliteTradeStore::open(config)
        .await
        .map_err(StoreAccessError::Refused)
}

/// Exit status for a store that could not be opened: 2 for a setting to fix, 3 for a file that
/// was refused (not a database, corrupt, newer schema, unreadable).
pub const fn access_exit_code(error: &StoreAccessError) -> u8 {
    match error {
        StoreAccessError::BadUrl(_) | StoreAccessError::Missing(_) => EXIT_CONFIG,
        StoreAccessError::Refused(_) => EXIT_REFUSED,
    }
}

/// Loads the settings and runs `read` against the read-only store on a small runtime; prints
/// what it returns. Shared by `positions`, `trades` and `backup`.
#[allow(clippy::print_stdout, clippy::print_stderr)] // listing the store is the command's output
pub fn print_from_store<F>(config_path: Option<&Path>, read: F) -> ExitCode
where
    F: AsyncFnOnce(&SqliteTradeStore) -> Result<String, StoreError>,
{
    let (_, config): (_, Config) = match load_settings(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let url = match crate::store::database_file_url(&config) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("DATABASE_URL: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let outcome = tokio.block_on(async {
        let store = match open_read_only(&url).await {
            Ok(store) => store,
            Err(e) => return Err((access_exit_code(&e), e.to_string())),
        };
        let result = read(&store)
            .await
            .map_err(|e| (EXIT_RUNTIME, format!("cannot read the store: {e}")));
        store.close().await;
        result
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::from(EXIT_OK)
        }
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// A report as a table or, with `json`, as pretty JSON (`encode` gives the JSON text).
pub fn render(
    table: &dyn std::fmt::Display,
    json: bool,
    encode: impl FnOnce() -> serde_json::Result<String>,
) -> Result<String, StoreError> {
    if json {
        encode()
            .map(|j| format!("{j}\n"))
            .map_err(|e| StoreError::InvalidRecord(format!("cannot encode as JSON: {e}")))
    } else {
        Ok(table.to_string())
    }
}

/// Runs `positions`: 0 with the list printed; 2 when the settings are invalid or there is no
/// database; 3 when the file is refused (corrupt, not ours, newer); 1 when a read fails.
pub fn run(config_path: Option<&Path>, args: &PositionsArgs) -> ExitCode {
    let status = if args.open {
        Some(PositionStatus::Open)
    } else if args.closed {
        Some(PositionStatus::Closed)
    } else {
        None
    };
    let query = PositionQuery {
        status,
        limit: args.limit,
    };
    let json = args.json;
    print_from_store(config_path, async move |store: &SqliteTradeStore| {
        let positions = store.positions(query).await?;
        let report = PositionsReport::new(&positions, store.kill_switch().await?.currency);
        render(&report, json, || serde_json::to_string_pretty(&report))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_positive_whole_numbers() {
        assert_eq!(parse_limit("5"), Ok(5));
        assert!(parse_limit("0").is_err());
        assert!(parse_limit("-1").is_err());
        assert!(parse_limit("lots").is_err());
    }

    #[tokio::test]
    async fn a_missing_file_is_named_and_not_created() {
        let dir = std::env::temp_dir().join(format!("pob-missing-{}", std::process::id()));
        let path = dir.join("nothing.db");
        let url = format!("sqlite://{}", path.display());
        match open_read_only(&url).await {
            Err(e @ StoreAccessError::Missing(_)) => {
                assert_eq!(access_exit_code(&e), EXIT_CONFIG);
                assert!(e.to_string().contains("nothing.db"), "{e}");
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        assert!(!path.exists() && !dir.exists());
        match open_read_only("sqlite://a.db?mode=rwc").await {
            Err(e @ StoreAccessError::BadUrl(_)) => assert_eq!(access_exit_code(&e), EXIT_CONFIG),
            other => panic!("expected BadUrl, got {other:?}"),
        }
    }
}
