//! `palm-oil-bot-tests` holds the workspace's cross-crate tests in `tests/tests/`, such as the
//! conformance test that runs one broker scenario against both `ctrader_client::FakeBroker` and
//! the real `ctrader_client::CTraderClient` talking TLS to `ctrader_sim::Simulator` on loopback, so
//! the in-memory twin the bot's engine tests rely on cannot drift from the real client unnoticed.
//! It has no library code of its own, touches nothing beyond this machine, and is never a
//! dependency of the bot.
