//! One module per `palm-oil-bot` command; `main.rs` only parses and dispatches.

pub mod check_config;
