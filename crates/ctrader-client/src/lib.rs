//! `ctrader-client` owns the connection to the cTrader Open API and the [`Broker`] boundary the bot
//! trades through: TLS (rustls, webpki roots plus an optional private CA, verification never off),
//! one reader and one writer task per link, replies matched by `clientMsgId`, heartbeats, client-side
//! rate limits, reconnection with capped exponential backoff and full jitter, token refresh, and the
//! conversion of protocol integers into the domain's fixed-point types at its edge; beside it sits
//! `FakeBroker`, an in-memory broker with the same behaviour for tests (feature `test-util`, never
//! in a production build). It must never decide to
//! trade and never retry an order: an order is sent once, and an unknown outcome is reported so
//! the owner reconciles.

mod backoff;
mod broker;
mod client;
mod config;
mod convert;
mod error;
#[cfg(any(test, feature = "test-util"))]
mod fake;
mod history;
mod limits;
mod link;
mod quotes;
mod schedule;
mod tls;
mod tokens;

pub use broker::{
    Broker, BrokerEvent, BrokerEvents, ExecutionKind, ExecutionReport, MarginCallKind, OpenState,
    OrderFill, OrderOutcome, OrderRejection, PositionPnl, Protection, SymbolState, TradingMode,
};
pub use client::CTraderClient;
pub use config::{
    CTraderConfig, Credentials, DEFAULT_PORT, DEMO_HOST, ExtraCa, LIVE_HOST, LiveExpectation,
    RateLimits, ReconnectPolicy, Timing, TokenExpiry,
};
pub use error::BrokerError;
#[cfg(any(test, feature = "test-util"))]
pub use fake::{FakeBroker, FakeOrderScript};
pub use history::{HistoricalTick, QuoteSide, max_span_ms, pages as trendbar_pages};
pub use tokens::{InMemoryTokens, KeepFuture, RefreshedTokens, TokenKeeper};
