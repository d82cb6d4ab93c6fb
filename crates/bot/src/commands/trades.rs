//! `trades`: list the fills (broker deals) the store holds, as a table or JSON. The database is
//! opened read-only, so this is safe while the bot runs and never creates or migrates a file.

use std::path::Path;
use std::process::ExitCode;

use persistence::{SqliteTradeStore, TradeStore, TradesReport};

use crate::commands::positions::{parse_limit, print_from_store, render};

/// Options of `trades`.
#[derive(Debug, Clone, clap::Args)]
pub struct TradesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 100, value_parser = parse_limit)]
    pub limit: usize,
}

/// Runs `trades`: 0 with the list printed; 2 when the settings are invalid or there is no
/// database; 3 when the file is refused (corrupt, not ours, newer); 1 when a read fails.
pub fn run(config_path: Option<&Path>, args: &TradesArgs) -> ExitCode {
    let (limit, json) = (args.limit, args.json);
    print_from_store(config_path, async move |store: &SqliteTradeStore| {
        let fills = store.fills(limit).await?;
        let report = TradesReport::new(&fills, store.kill_switch().await?.currency);
        render(&report, json, || serde_json::to_string_pretty(&report))
    })
}
