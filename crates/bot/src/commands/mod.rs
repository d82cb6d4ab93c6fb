//! One module per `palm-oil-bot` command; `main.rs` only parses and dispatches.

pub mod acknowledge;
pub mod auth;
pub mod backtest;
pub mod backup;
pub mod check_config;
pub mod demo;
pub mod history;
pub mod optimize;
pub mod positions;
pub mod reconcile;
pub mod run;
pub mod sentiment;
pub mod simulate;
pub mod trades;
