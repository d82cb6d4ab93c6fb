//! The shared vocabulary of palm-oil-bot.
//!
//! `domain` owns the types every other crate speaks in: fixed-point [`Price`], [`Volume`] and
//! [`Money`], [`Side`], symbols and their specification, quotes and bars, order intents, fills,
//! positions, the broker's view of them, sentiment readings, the kill switch, and the [`Clock`]
//! that lets logic take time from its inputs. It must never do I/O, depend on an async runtime,
//! know a wire format, or use floating point where a price is compared: prices, volumes and money
//! are integers until the edge where a person reads them.

mod conversion;
mod error;
mod market;
mod money;
mod order_label;
mod risk;
mod secret;
mod sentiment;
mod time;
mod trading;

pub use conversion::{
    AccountCurrency, ConversionChain, ConversionRate, ConversionStep, NotionalCommission,
    closing_price, loss_at_distance, price_move_e7, realized_pnl, unrealized_pnl, volume_for_loss,
};
pub use error::DomainError;
pub use market::{
    Bar, Holiday, Quote, ScheduleChange, Side, SymbolId, SymbolSpec, Timeframe, TradingSchedule,
    WeeklySession,
};
pub use money::{Money, PRICE_SCALE, Price, VOLUME_SCALE, Volume};
pub use order_label::{DecisionId, LabelPrefix, OrderPurpose};
pub use risk::KillSwitchState;
pub use secret::Secret;
pub use sentiment::{SentimentReading, SentimentUnavailable};
pub use time::{AcceleratedClock, Clock, FixedClock, SystemClock, Timestamp};
pub use trading::{
    BrokerDeal, BrokerPosition, BrokerSnapshot, ClientOrderId, CloseReason, DealCloseDetail, Fill,
    IntentStatus, OrderIntent, OrderRequest, PendingOrder, Position, PositionId, PositionStatus,
};
