//! Observability for palm-oil-bot: it owns the log pipeline (JSON or readable lines, UTC
//! timestamps, standard trading field names, secret scrubbing, the heartbeat line), the metrics
//! registry with typed recording methods exported in the Prometheus text format, and the HTTP
//! server for `/metrics`, health, readiness, the dashboard and `/api/status`, all fed by a
//! [`StatusHandle`] the bot publishes to. It knows no trading logic and must never install a
//! global (subscriber or meter provider) on its own, read the environment, or block the quote
//! path: recording a metric is a few atomic operations.

mod dashboard;
mod error;
mod logging;
mod metrics;
mod server;
mod status;

pub use dashboard::CONTENT_SECURITY_POLICY;
pub use error::ObservabilityError;
pub use logging::{
    LogConfig, LogFormat, Redacted, RedactingMakeWriter, RedactingWriter, TradeEvent, UtcRfc3339,
    build_subscriber, build_subscriber_as, fields, log_heartbeat, log_trade_event, parse_filter,
    run_heartbeat,
};
pub use metrics::{
    METRIC_PREFIX, Metrics, OrderOutcome, PROMETHEUS_CONTENT_TYPE, SentimentResult, TradeOutcome,
};
pub use server::{DEFAULT_PORT, HttpServer, ServerConfig};
pub use status::{
    AccountView, CheckResult, ConnectionState, ConversionView, DecisionRecord, EquityPoint,
    EventLevel, EventRecord, FillRecord, KillSwitchView, LiveStatus, PositionView, QuoteView,
    Readiness, SentimentView, StatusConfig, StatusHandle, StatusSnapshot, evaluate_readiness,
};
