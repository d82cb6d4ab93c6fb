//! `palm-oil-bot`: the command-line entry point.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[arg(long, global = true, value_name = "FILE", env = "PALM_OIL_BOT_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trade the configured cTrader account (needs the CTRADER_* secrets; live needs --confirm-live).
    Run(commands::run::RunArgs),
    /// Obtain the first cTrader tokens: prints the authorisation address, exchanges the code.
    Auth(commands::auth::AuthArgs),
    /// Trade against a built-in simulated broker: no credentials, no network (unless --live-sentiment); serves the dashboard.
    Demo(commands::demo::DemoArgs),
    /// Run the checks `run` runs before connecting (settings, secrets by name, log filter, hosts) and print the effective settings.
    CheckConfig,
    /// Replay the strategy over a CSV of bars: table on the terminal, JSON, trades CSV, SVG, HTML report.
    Backtest(Box<commands::backtest::BacktestArgs>),
    /// Download the broker's trendbars (or ticks) into the CSV the backtester reads; a rerun fetches only what is missing.
    History(commands::history::HistoryArgs),
    /// Backtest every combination of strategy and risk parameters on all cores and rank them; walk forward.
    Optimize(Box<commands::optimize::OptimizeArgs>),
    /// Fetch one sentiment reading through the configured sources and print it with its source.
    Sentiment(commands::sentiment::SentimentArgs),
    /// Serve a simulated cTrader broker over TLS on a loopback port, with its own CA and faults.
    #[command(after_help = commands::simulate::SIMULATE_EXAMPLE)]
    Simulate(Box<commands::simulate::SimulateArgs>),
    /// Compare the broker's positions and deals with the store and record the differences.
    Reconcile(commands::reconcile::ReconcileArgs),
    /// List the stored positions (read-only; safe while the bot runs).
    Positions(commands::positions::PositionsArgs),
    /// List the stored fills, newest first (read-only; safe while the bot runs).
    Trades(commands::trades::TradesArgs),
    /// Write a consistent, checked copy of the database to FILE (safe while the bot runs).
    Backup(commands::backup::BackupArgs),
    /// List the reconciliation findings to check by hand, or acknowledge them so trading resumes.
    Acknowledge(commands::acknowledge::AcknowledgeArgs),
}

fn main() -> ExitCode {
    // `--help` lists every setting with its environment variable (they are read from the
    // environment and the file by `settings`, not by clap, so the list is added here).
    let help = bot::settings::help_text();
    let command = Cli::command()
        .after_help("Every setting is an environment variable: `--help` lists them all.")
        .after_long_help(help.clone())
        .mut_subcommand("run", |c| c.after_long_help(help.clone()))
        .mut_subcommand("check-config", |c| c.after_long_help(help));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Run(args) => commands::run::run(cli.config.as_deref(), &args),
        Command::Auth(args) => commands::auth::run(cli.config.as_deref(), &args),
        Command::Demo(args) => commands::demo::run(cli.config.as_deref(), &args),
        Command::CheckConfig => commands::check_config::run(cli.config.as_deref()),
        Command::Backtest(args) => commands::backtest::run(cli.config.as_deref(), &args),
        Command::History(args) => commands::history::run(cli.config.as_deref(), &args),
        Command::Optimize(args) => commands::optimize::run(cli.config.as_deref(), &args),
        Command::Sentiment(args) => commands::sentiment::run(cli.config.as_deref(), &args),
        Command::Simulate(args) => commands::simulate::run(cli.config.as_deref(), &args),
        Command::Reconcile(args) => commands::reconcile::run(cli.config.as_deref(), &args),
        Command::Positions(args) => commands::positions::run(cli.config.as_deref(), &args),
        Command::Trades(args) => commands::trades::run(cli.config.as_deref(), &args),
        Command::Backup(args) => commands::backup::run(cli.config.as_deref(), &args),
        Command::Acknowledge(args) => commands::acknowledge::run(cli.config.as_deref(), &args),
    }
}
