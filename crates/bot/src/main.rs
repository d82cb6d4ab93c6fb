//! `palm-oil-bot`: the command-line entry point.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use bot::commands;

/// Trades a palm oil CFD on the cTrader Open API with an RSI strategy tempered by news sentiment.
#[derive(Debug, Parser)]
#[command(
    name = "palm-oil-bot",
    version,
    about = "Trades a palm oil CFD on the cTrader Open API with an RSI strategy tempered by news sentiment."
)]
struct Cli {
    /// TOML file with non-secret settings (keys are the lower-case setting names); the environment wins.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and print the effective non-secret settings.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => commands::check_config::run(cli.config.as_deref()),
    }
}
