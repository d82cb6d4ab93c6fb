//! `ctrader-sim` owns the simulated cTrader broker that tests, the demo and
//! `palm-oil-bot simulate` talk to: a TLS server on a loopback address (with its own CA) that speaks
//! the Open API through `ctrader-proto`'s codec closely enough for a client written against the real
//! server, and behind it the broker itself: credentials and tokens, accounts and symbols (a palm oil
//! CFD among a few others), seeded synthetic or replayed prices, trendbars and tick history, market orders with
//! protection marked to market, deals with realised profit, swap and commission in the account's
//! deposit currency (converted through the broker's own chain of symbols, USDMYR for palm oil),
//! cTrader's rate limits and schedule checks, and faults injected on demand. Its state lives as long as the process, independent of
//! connections. It shares no state or code with the client beyond the wire crate, never installs a
//! global (crypto provider, subscriber), never reads the environment, and is never used for live
//! trading.

mod bars;
mod broker;
mod config;
mod conversion;
mod error;
mod exchange;
mod faults;
mod market;
mod prices;
mod ratelimit;
mod rng;
mod rollover;
mod server;
mod symbols;
mod ticks;
mod tls;
mod wire;

pub use config::{AccountCurrency, MaintenanceWindow, SimConfig, SimCredentials};
pub use error::SimError;
pub use faults::{FaultPlan, PartialFills};
pub use prices::PriceSource;
pub use ratelimit::RateLimits;
pub use server::{
    DealRecord, FaultControl, HistoricalRequest, MarginCallType, OpenPositionRecord, ReceivedOrder,
    SimHandle, Simulator,
};
pub use symbols::{MarketHours, PALM_OIL_SYMBOL_ID, USD_MYR_SYMBOL_ID};
pub use tls::{
    CA_FILE, CertificateSource, GeneratedCertificates, SERVER_CERT_FILE, SERVER_KEY_FILE,
    generate_certificates,
};
