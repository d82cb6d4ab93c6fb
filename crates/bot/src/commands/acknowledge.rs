//! `acknowledge`: an operator says the findings reconciliation marked "check it by hand" were
//! checked against the broker. Until every one is, `run` does not trade (start-up refuses with
//! exit 3; a running bot stays paused and resumes at its next check). Without arguments it lists
//! the findings waiting. Safe beside a running bot: it takes no lock and writes one row each.

use std::path::Path;
use std::process::ExitCode;

use domain::{Clock, SystemClock};
use persistence::{Acknowledge, SqliteStoreConfig, SqliteTradeStore, StoreError, TradeStore};

use crate::commands::check_config::load_settings;
use crate::runtime::{EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};

/// Options of `acknowledge`.
#[derive(Debug, Clone, clap::Args)]
pub struct AcknowledgeArgs {
    /// The findings checked, by number (as listed); none lists what waits.
    #[arg(value_name = "N", conflicts_with = "all")]
    pub findings: Vec<i64>,
    /// Every finding waiting.
    #[arg(long)]
    pub all: bool,
}

/// Runs `acknowledge`: 0 when done (or when listing); 2 for a setting to fix, a missing
/// database, or a number that is not a finding (then nothing is acknowledged); 3 when the
/// database is refused; 1 when the write fails.
#[allow(clippy::print_stdout, clippy::print_stderr)] // the list is this command's output
pub fn run(config_path: Option<&Path>, args: &AcknowledgeArgs) -> ExitCode {
    let (_, config) = match load_settings(config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let url = match crate::store::database_file_url(&config) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("DATABASE_URL: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let tokio = match crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match tokio.block_on(acknowledge(&url, args)) {
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

async fn acknowledge(url: &str, args: &AcknowledgeArgs) -> Result<String, (u8, String)> {
    let config = SqliteStoreConfig::from_url(url)
        .map_err(|e| (EXIT_CONFIG, format!("DATABASE_URL: {e}")))?;
    if !config.path.exists() {
        return Err((
            EXIT_CONFIG,
            format!(
                "no database at {} (DATABASE_URL): nothing to acknowledge",
                config.path.display()
            ),
        ));
    }
    let store = SqliteTradeStore::open(config)
        .await
        .map_err(|e| (EXIT_REFUSED, format!("cannot open the store: {e}")))?;
    let outcome = write(&store, args).await;
    store.close().await;
    outcome.map_err(|e| match e {
        StoreError::InvalidRecord(_) => (EXIT_CONFIG, e.to_string()),
        other => (EXIT_RUNTIME, format!("cannot acknowledge: {other}")),
    })
}

async fn write(store: &SqliteTradeStore, args: &AcknowledgeArgs) -> Result<String, StoreError> {
    let which = if args.all {
        Acknowledge::All
    } else if args.findings.is_empty() {
        return list(store).await;
    } else {
        Acknowledge::Rows(&args.findings)
    };
    let done = store.acknowledge(which, SystemClock.now()).await?;
    let waiting = store.open_findings().await?;
    let mut text = String::new();
    if done.is_empty() {
        text.push_str("nothing to acknowledge: no finding was waiting\n");
    }
    for finding in &done {
        tracing::info!(finding = %finding, "finding acknowledged by the operator");
        text.push_str(&format!("acknowledged {finding}\n"));
    }
    if waiting.is_empty() {
        text.push_str("no finding waits: trading may resume\n");
    } else {
        text.push_str(&format!(
            "{} finding(s) still wait: `palm-oil-bot acknowledge` lists them\n",
            waiting.len()
        ));
    }
    Ok(text)
}

async fn list(store: &SqliteTradeStore) -> Result<String, StoreError> {
    let waiting = store.open_findings().await?;
    if waiting.is_empty() {
        return Ok("no finding waits for a check\n".to_owned());
    }
    let mut text = format!(
        "{} finding(s) keep trading off until checked against the broker and acknowledged \
         (`palm-oil-bot acknowledge N` or `--all`):\n",
        waiting.len()
    );
    for finding in &waiting {
        text.push_str(&format!("  {finding}\n"));
    }
    Ok(text)
}
