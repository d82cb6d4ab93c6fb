//! The palm-oil-bot application.
//!
//! `bot` owns configuration (non-secret settings from defaults, a TOML file and the environment;
//! secrets from the environment only), the network allow-list, the commands of the `palm-oil-bot`
//! binary, and the trading loop that wires broker, strategy, store, sentiment and observability
//! together. It is the only crate that reads the environment or installs process-wide globals
//! (tracing subscriber, rustls crypto provider, metrics provider). It must never put a secret's
//! value into a log line, an error message or a panic, and never send an order whose intent is
//! not durable.

pub mod allowlist;
pub mod commands;
pub mod config;
pub mod engine;
pub mod live_guard;
pub mod market_hours;
pub mod notifications;
pub mod reconcile;
pub mod runtime;
pub mod sentiment_setup;
pub mod setting_kind;
pub mod settings;
pub mod store;
pub mod strategy_setup;
pub mod token_vault;
