//! Stored rows and their conversion to domain values: every column is checked on the way out,
//! so a damaged or hand-edited row is a named error, never a panic.

use domain::{
    ClientOrderId, CloseReason, DealCloseDetail, Fill, IntentStatus, Money, OrderIntent,
    OrderRequest, Position, PositionId, PositionStatus, Price, SentimentReading, Side, SymbolId,
    Timestamp, Volume,
};

use crate::StoreError;
use crate::intent::StoredIntent;

/// Splits optional money into its two columns.
pub(crate) fn money_parts(m: Option<Money>) -> (Option<i64>, Option<i64>) {
    match m {
        Some(m) => (Some(m.minor), Some(i64::from(m.digits))),
        None => (None, None),
    }
}

/// Joins two columns into optional money; both or neither must be set.
pub(crate) fn money_from_parts(
    table: &'static str,
    key: &str,
    minor: Option<i64>,
    digits: Option<i64>,
) -> Result<Option<Money>, StoreError> {
    match (minor, digits) {
        (None, None) => Ok(None),
        (Some(minor), Some(digits)) => Ok(Some(Money::new(minor, digits_u8(table, key, digits)?))),
        _ => Err(bad(
            table,
            key,
            "money amount without its digits (or the reverse)",
        )),
    }
}

fn digits_u8(table: &'static str, key: &str, digits: i64) -> Result<u8, StoreError> {
    u8::try_from(digits)
        .ok()
        .filter(|d| *d <= 18)
        .ok_or_else(|| bad(table, key, &format!("money digits {digits} out of range")))
}

fn bad(table: &'static str, key: &str, detail: &str) -> StoreError {
    StoreError::BadRow {
        table,
        key: key.to_owned(),
        detail: detail.to_owned(),
    }
}

fn side(table: &'static str, key: &str, s: &str) -> Result<Side, StoreError> {
    s.parse()
        .map_err(|_| bad(table, key, &format!("side {s:?}")))
}

fn coid(
    table: &'static str,
    key: &str,
    s: Option<String>,
) -> Result<Option<ClientOrderId>, StoreError> {
    s.map(|s| ClientOrderId::new(s).map_err(|e| bad(table, key, &e.to_string())))
        .transpose()
}

fn close_reason(
    table: &'static str,
    key: &str,
    s: Option<String>,
) -> Result<Option<CloseReason>, StoreError> {
    s.map(|s| s.parse::<CloseReason>().map_err(|e| bad(table, key, &e)))
        .transpose()
}

/// A row of `order_intents`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IntentRow {
    client_order_id: String,
    symbol_id: i64,
    side: String,
    volume: i64,
    relative_stop_loss: Option<i64>,
    relative_take_profit: Option<i64>,
    label: String,
    position_to_close: Option<i64>,
    status: String,
    reason: String,
    created_at: i64,
    updated_at: i64,
    broker_order_id: Option<i64>,
    position_id: Option<i64>,
    note: Option<String>,
}

impl IntentRow {
    pub(crate) fn into_domain(self) -> Result<StoredIntent, StoreError> {
        const T: &str = "order_intents";
        let key = self.client_order_id.clone();
        let id =
            ClientOrderId::new(self.client_order_id).map_err(|e| bad(T, &key, &e.to_string()))?;
        let status: IntentStatus = self.status.parse().map_err(|e: String| bad(T, &key, &e))?;
        Ok(StoredIntent {
            intent: OrderIntent {
                request: OrderRequest {
                    client_order_id: id,
                    symbol: SymbolId(self.symbol_id),
                    side: side(T, &key, &self.side)?,
                    volume: Volume(self.volume),
                    relative_stop_loss: self.relative_stop_loss.map(Price),
                    relative_take_profit: self.relative_take_profit.map(Price),
                    label: self.label,
                    position_to_close: self.position_to_close.map(PositionId),
                },
                status,
                created_at: Timestamp(self.created_at),
                reason: self.reason,
            },
            updated_at: Timestamp(self.updated_at),
            broker_order_id: self.broker_order_id,
            position_id: self.position_id.map(PositionId),
            note: self.note,
        })
    }
}

/// A row of `positions`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PositionRow {
    position_id: i64,
    symbol_id: i64,
    side: String,
    volume: i64,
    entry_price: i64,
    entry_time: i64,
    stop_loss: Option<i64>,
    take_profit: Option<i64>,
    label: Option<String>,
    client_order_id: Option<String>,
    status: String,
    exit_price: Option<i64>,
    exit_time: Option<i64>,
    pnl_minor: Option<i64>,
    pnl_digits: Option<i64>,
    close_reason: Option<String>,
}

impl PositionRow {
    pub(crate) fn into_domain(self) -> Result<Position, StoreError> {
        const T: &str = "positions";
        let key = self.position_id.to_string();
        let status = match self.status.as_str() {
            "open" => PositionStatus::Open,
            "closed" => PositionStatus::Closed,
            other => return Err(bad(T, &key, &format!("status {other:?}"))),
        };
        Ok(Position {
            id: PositionId(self.position_id),
            symbol: SymbolId(self.symbol_id),
            side: side(T, &key, &self.side)?,
            volume: Volume(self.volume),
            entry_price: Price(self.entry_price),
            entry_time: Timestamp(self.entry_time),
            stop_loss: self.stop_loss.map(Price),
            take_profit: self.take_profit.map(Price),
            label: self.label,
            client_order_id: coid(T, &key, self.client_order_id)?,
            status,
            exit_price: self.exit_price.map(Price),
            exit_time: self.exit_time.map(Timestamp),
            pnl: money_from_parts(T, &key, self.pnl_minor, self.pnl_digits)?,
            close_reason: close_reason(T, &key, self.close_reason)?,
        })
    }
}

/// A row of `fills`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FillRow {
    pub(crate) deal_id: i64,
    pub(crate) order_id: i64,
    pub(crate) position_id: i64,
    pub(crate) client_order_id: Option<String>,
    pub(crate) symbol_id: i64,
    pub(crate) side: String,
    pub(crate) volume: i64,
    pub(crate) price: i64,
    pub(crate) time: i64,
    pub(crate) commission_minor: i64,
    pub(crate) commission_digits: i64,
    pub(crate) close_entry_price: Option<i64>,
    pub(crate) close_gross_profit_minor: Option<i64>,
    pub(crate) close_swap_minor: Option<i64>,
    pub(crate) close_commission_minor: Option<i64>,
    pub(crate) close_balance_minor: Option<i64>,
    pub(crate) close_money_digits: Option<i64>,
    pub(crate) close_volume: Option<i64>,
    pub(crate) close_reason: Option<String>,
}

impl FillRow {
    /// The columns of a fill. The close detail's amounts share one precision column: cTrader
    /// reports them all with the deal's `moneyDigits`; they are stored at the finest of them.
    pub(crate) fn from_domain(f: &Fill) -> Result<FillRow, StoreError> {
        let close = match &f.close {
            None => None,
            Some(c) => {
                let digits = c
                    .gross_profit
                    .digits
                    .max(c.swap.digits)
                    .max(c.commission.digits)
                    .max(c.balance.digits);
                let at = |m: Money| {
                    m.rescale(digits).map(|m| m.minor).ok_or_else(|| {
                        StoreError::InvalidRecord(format!(
                            "deal {}: amount {m} does not fit at {digits} decimals",
                            f.deal_id
                        ))
                    })
                };
                Some((
                    c,
                    digits,
                    at(c.gross_profit)?,
                    at(c.swap)?,
                    at(c.commission)?,
                    at(c.balance)?,
                ))
            }
        };
        Ok(FillRow {
            deal_id: f.deal_id,
            order_id: f.order_id,
            position_id: f.position_id.0,
            client_order_id: f.client_order_id.as_ref().map(|c| c.as_str().to_owned()),
            symbol_id: f.symbol.0,
            side: f.side.as_str().to_owned(),
            volume: f.volume.0,
            price: f.price.0,
            time: f.time.0,
            commission_minor: f.commission.minor,
            commission_digits: i64::from(f.commission.digits),
            close_entry_price: close.map(|(c, ..)| c.entry_price.0),
            close_gross_profit_minor: close.map(|(_, _, g, ..)| g),
            close_swap_minor: close.map(|(_, _, _, s, ..)| s),
            close_commission_minor: close.map(|(_, _, _, _, c, _)| c),
            close_balance_minor: close.map(|(.., b)| b),
            close_money_digits: close.map(|(_, d, ..)| i64::from(d)),
            close_volume: close.map(|(c, ..)| c.closed_volume.0),
            close_reason: close.and_then(|(c, ..)| c.close_reason.map(|r| r.as_str().to_owned())),
        })
    }

    /// What a fill looks like after a trip through the table (amounts at one precision).
    #[cfg(feature = "test-util")] // only the memory store needs it
    pub(crate) fn normalise(f: &Fill) -> Result<Fill, StoreError> {
        FillRow::from_domain(f)?.into_domain()
    }

    pub(crate) fn into_domain(self) -> Result<Fill, StoreError> {
        const T: &str = "fills";
        let key = self.deal_id.to_string();
        let close = match (
            self.close_entry_price,
            self.close_gross_profit_minor,
            self.close_swap_minor,
            self.close_commission_minor,
            self.close_balance_minor,
            self.close_money_digits,
            self.close_volume,
        ) {
            (None, None, None, None, None, None, None) => None,
            (
                Some(entry),
                Some(gross),
                Some(swap),
                Some(comm),
                Some(balance),
                Some(d),
                Some(vol),
            ) => {
                let d = digits_u8(T, &key, d)?;
                Some(DealCloseDetail {
                    entry_price: Price(entry),
                    gross_profit: Money::new(gross, d),
                    swap: Money::new(swap, d),
                    commission: Money::new(comm, d),
                    balance: Money::new(balance, d),
                    closed_volume: Volume(vol),
                    close_reason: close_reason(T, &key, self.close_reason)?,
                })
            }
            _ => return Err(bad(T, &key, "close detail partly missing")),
        };
        Ok(Fill {
            deal_id: self.deal_id,
            order_id: self.order_id,
            position_id: PositionId(self.position_id),
            client_order_id: coid(T, &key, self.client_order_id)?,
            symbol: SymbolId(self.symbol_id),
            side: side(T, &key, &self.side)?,
            volume: Volume(self.volume),
            price: Price(self.price),
            time: Timestamp(self.time),
            commission: Money::new(
                self.commission_minor,
                digits_u8(T, &key, self.commission_digits)?,
            ),
            close,
        })
    }
}

/// A row of `sentiment_readings`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SentimentRow {
    id: i64,
    known_at: i64,
    source: String,
    score: f64,
    confidence: f64,
    item_count: i64,
    summary: String,
}

impl SentimentRow {
    pub(crate) fn into_domain(self) -> Result<SentimentReading, StoreError> {
        let key = self.id.to_string();
        Ok(SentimentReading {
            score: self.score,
            confidence: self.confidence,
            source: self.source,
            known_at: Timestamp(self.known_at),
            item_count: u32::try_from(self.item_count)
                .map_err(|_| bad("sentiment_readings", &key, "item count out of range"))?,
            summary: self.summary,
        })
    }
}
