//! The `TradeStore` boundary: what the bot records, and the order-intent protocol that makes
//! orders crash-safe.
//!
//! The protocol, in order, for every order:
//! 1. [`TradeStore::commit_intent`]: the decision is durable (status `pending`) before anything else.
//! 2. [`TradeStore::mark_sent`]: committed *before* the bytes leave, so after a crash `pending`
//!    proves the order never left, and `sent` means "maybe": reconciliation asks the broker.
//! 3. The client sends the order, with the client order id as `clientOrderId` and inside the label.
//! 4. [`TradeStore::record_answer`]: accepted, rejected, or filled (fill + position + intent status
//!    in one transaction).

use std::future::Future;
use std::pin::Pin;

use domain::{
    ClientOrderId, Fill, IntentStatus, KillSwitchState, OrderIntent, Position, PositionId,
    PositionStatus, SentimentReading, Timestamp,
};

use crate::StoreError;
use crate::intent::StoredIntent;
use crate::reconcile::ReconcilePlan;

/// What every store method returns: a boxed future, so the trait is dyn-compatible and the bot
/// can hold an `Arc<dyn TradeStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The broker's answer to an order, recorded by [`TradeStore::record_answer`].
// Answers are short-lived values passed by reference; boxing the fill would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderAnswer {
    /// The broker accepted the order (not filled yet).
    Accepted {
        /// Our id.
        client_order_id: ClientOrderId,
        /// The broker's order id.
        broker_order_id: i64,
    },
    /// The broker refused it.
    Rejected {
        /// Our id.
        client_order_id: ClientOrderId,
        /// The broker's reason, as text.
        reason: String,
    },
    /// The order was (partly) filled: `position` is the position as it stands after this fill
    /// (open, or closed with exit fields when the order closed it).
    Filled {
        /// Our id.
        client_order_id: ClientOrderId,
        /// The execution.
        fill: Fill,
        /// The position after the fill.
        position: Position,
    },
}

impl OrderAnswer {
    /// The intent this answer belongs to.
    pub fn client_order_id(&self) -> &ClientOrderId {
        match self {
            OrderAnswer::Accepted {
                client_order_id, ..
            }
            | OrderAnswer::Rejected {
                client_order_id, ..
            }
            | OrderAnswer::Filled {
                client_order_id, ..
            } => client_order_id,
        }
    }

    /// The status the answer moves the intent to.
    pub fn target_status(&self) -> IntentStatus {
        match self {
            OrderAnswer::Accepted { .. } => IntentStatus::Accepted,
            OrderAnswer::Rejected { .. } => IntentStatus::Rejected,
            OrderAnswer::Filled { .. } => IntentStatus::Filled,
        }
    }
}

/// Whether a fill was new or already known (a replayed execution event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillRecorded {
    /// First time this deal id was seen: fill and position were written.
    New,
    /// The deal id was already stored: nothing was written.
    AlreadyRecorded,
}

/// What [`TradeStore::record_answer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerRecorded {
    /// The intent's status afterwards.
    pub status: IntentStatus,
    /// For a fill: whether it was new.
    pub fill: Option<FillRecorded>,
}

/// Which stored positions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionQuery {
    /// Only open or only closed; `None` for both.
    pub status: Option<PositionStatus>,
    /// At most this many, newest entry first.
    pub limit: usize,
}

/// One row of the reconciliation audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The row's number (1, 2, ...): what `palm-oil-bot acknowledge` names.
    pub seq: i64,
    /// When the correction was applied.
    pub at: Timestamp,
    /// What kind of correction (e.g. `sync_position`, `close_position`, `resolve_intent`).
    pub kind: String,
    /// What it is about (a position id, a client order id).
    pub subject: String,
    /// The state before, readable.
    pub before: String,
    /// The state after, readable.
    pub after: String,
    /// Why.
    pub why: String,
    /// True when a person should look at it (e.g. a position closed for an unknown reason).
    pub flagged: bool,
    /// True for a finding a person must check against the broker before trading resumes (see
    /// `Correction::check_by_hand`).
    pub check_by_hand: bool,
    /// When an operator said the finding was checked; trading stays off until then.
    pub acknowledged_at: Option<Timestamp>,
}

impl AuditEntry {
    /// True for a finding to check by hand that no operator has acknowledged yet.
    pub fn needs_acknowledgement(&self) -> bool {
        self.check_by_hand && self.acknowledged_at.is_none()
    }
}

impl std::fmt::Display for AuditEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} {} {}: {} -> {} ({})",
            self.seq, self.at, self.kind, self.subject, self.before, self.after, self.why
        )
    }
}

/// Which findings to check by hand an operator acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledge<'a> {
    /// Every finding not acknowledged yet.
    All,
    /// These audit rows (by [`AuditEntry::seq`]); each must be a finding to check by hand.
    Rows(&'a [i64]),
}

/// An account's newest broker token pair as the store keeps it: sealed by the caller (the store
/// never sees the key or the tokens), with the fingerprint of the pair it descends from.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTokens {
    /// The `ctidTraderAccountId` the pair trades.
    pub account_id: i64,
    /// Nonce and AEAD ciphertext of the pair.
    pub sealed: Vec<u8>,
    /// A keyed hash of the environment's pair this one was refreshed from.
    pub source_fingerprint: String,
    /// When the broker issued the pair.
    pub issued_at: Timestamp,
    /// When its access token expires, when the broker said.
    pub expires_at: Option<Timestamp>,
    /// When it was stored.
    pub stored_at: Timestamp,
}

impl std::fmt::Debug for SealedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTokens")
            .field("account_id", &self.account_id)
            .field("sealed_len", &self.sealed.len())
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("stored_at", &self.stored_at)
            .finish_non_exhaustive()
    }
}

/// Durable trading records. Implementations: [`crate::SqliteTradeStore`] (production) and
/// `MemoryTradeStore` (tests, feature `test-util`); both pass one conformance suite.
pub trait TradeStore: Send + Sync + std::fmt::Debug {
    /// Step 1 of an order: commits a new intent with status `pending`. Refuses a second intent
    /// with the same client order id ([`StoreError::DuplicateIntent`]) and any status but pending.
    fn commit_intent<'a>(&'a self, intent: &'a OrderIntent) -> StoreFuture<'a, ()>;

    /// Step 2: the order is about to leave; commit this before writing to the network.
    fn mark_sent<'a>(&'a self, id: &'a ClientOrderId, at: Timestamp) -> StoreFuture<'a, ()>;

    /// Step 4: records the broker's answer. A fill writes the fill, the position and the intent's
    /// status in one transaction; a fill already recorded changes nothing and says so. Repeating
    /// the current status is a no-op; any other illegal step is [`StoreError::IllegalTransition`].
    fn record_answer<'a>(
        &'a self,
        answer: &'a OrderAnswer,
        at: Timestamp,
    ) -> StoreFuture<'a, AnswerRecorded>;

    /// Records a fill that no intent of ours caused (a stop-loss, take-profit or stop-out) with
    /// the position as it stands after it, in one transaction. A known deal id is a no-op.
    fn record_fill<'a>(
        &'a self,
        fill: &'a Fill,
        position: &'a Position,
    ) -> StoreFuture<'a, FillRecorded>;

    /// One intent by its client order id.
    fn intent<'a>(&'a self, id: &'a ClientOrderId) -> StoreFuture<'a, Option<StoredIntent>>;

    /// Intents not final yet (pending, sent, accepted), oldest first: what a restart must resolve.
    fn intents_in_flight(&self) -> StoreFuture<'_, Vec<StoredIntent>>;

    /// One position by its broker id.
    fn position(&self, id: PositionId) -> StoreFuture<'_, Option<Position>>;

    /// Open positions, by id.
    fn open_positions(&self) -> StoreFuture<'_, Vec<Position>>;

    /// Positions matching `query`, newest entry first.
    fn positions(&self, query: PositionQuery) -> StoreFuture<'_, Vec<Position>>;

    /// The latest `limit` fills, newest first.
    fn fills(&self, limit: usize) -> StoreFuture<'_, Vec<Fill>>;

    /// Applies a reconciliation plan in one transaction: every correction is written together
    /// with its audit row, and the deal watermark advances. Returns how many corrections were
    /// applied. Nothing is written if any step fails.
    fn apply<'a>(&'a self, plan: &'a ReconcilePlan, at: Timestamp) -> StoreFuture<'a, usize>;

    /// The latest `limit` audit rows, newest first.
    fn audit_log(&self, limit: usize) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// Findings to check by hand no operator has acknowledged, oldest first. While there is one,
    /// trading stays off (see the bot's reconciliation gate).
    fn open_findings(&self) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// Records that an operator checked findings; returns the rows acknowledged now
    /// (already acknowledged ones are left as they were). Naming a row that does not exist or
    /// is not a finding is [`StoreError::InvalidRecord`], and then nothing is written.
    fn acknowledge<'a>(
        &'a self,
        which: Acknowledge<'a>,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<AuditEntry>>;

    /// The time of the newest broker deal reconciliation has seen; the next deal list request
    /// starts here (see [`crate::deal_history_start`]).
    fn reconciled_until(&self) -> StoreFuture<'_, Option<Timestamp>>;

    /// The persisted kill switch and equity marks (default state on a new database).
    fn kill_switch(&self) -> StoreFuture<'_, KillSwitchState>;

    /// Persists the kill switch and equity marks.
    fn save_kill_switch<'a>(&'a self, state: &'a KillSwitchState) -> StoreFuture<'a, ()>;

    /// Stores a sentiment reading (refused when score or confidence is out of range).
    fn record_sentiment<'a>(&'a self, reading: &'a SentimentReading) -> StoreFuture<'a, ()>;

    /// The latest reading known at or before `at` (from `source` only, when given): what a
    /// backtest may use at `at`.
    fn sentiment_at<'a>(
        &'a self,
        at: Timestamp,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Option<SentimentReading>>;

    /// Durably replaces the account's token pair (committed when this returns `Ok`).
    fn save_tokens<'a>(&'a self, tokens: &'a SealedTokens) -> StoreFuture<'a, ()>;

    /// The account's stored token pair, if any.
    fn tokens(&self, account_id: i64) -> StoreFuture<'_, Option<SealedTokens>>;
}

/// Checks a fill and its position belong together.
pub(crate) fn check_fill(fill: &Fill, position: &Position) -> Result<(), StoreError> {
    if fill.position_id != position.id {
        return Err(StoreError::InvalidRecord(format!(
            "fill {} is for position {}, but position {} came with it",
            fill.deal_id, fill.position_id, position.id
        )));
    }
    if position.status == PositionStatus::Closed && position.exit_price.is_none() {
        return Err(StoreError::InvalidRecord(format!(
            "position {} is closed without an exit price",
            position.id
        )));
    }
    Ok(())
}

/// Checks that a deal arriving again is the deal already stored: the facts a deal cannot change
/// (order, position, symbol, side, volume, price, time, and our client order id when both name
/// one) must agree. Anything else means the id belongs to another deal (another account's
/// history reused, a broker fault): [`StoreError::ConflictingFill`] with both rows.
pub(crate) fn check_same_deal(stored: &Fill, received: &Fill) -> Result<(), StoreError> {
    let same = stored.deal_id == received.deal_id
        && stored.order_id == received.order_id
        && stored.position_id == received.position_id
        && stored.symbol == received.symbol
        && stored.side == received.side
        && stored.volume == received.volume
        && stored.price == received.price
        && stored.time == received.time
        && match (&stored.client_order_id, &received.client_order_id) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
    if same {
        Ok(())
    } else {
        Err(StoreError::ConflictingFill {
            deal_id: received.deal_id,
            stored: describe_fill(stored),
            received: describe_fill(received),
        })
    }
}

/// A fill as one readable line, for logs and errors.
pub(crate) fn describe_fill(f: &Fill) -> String {
    format!(
        "[deal {} order {} position {} symbol {} {} volume {} at {} on {}{}]",
        f.deal_id,
        f.order_id,
        f.position_id,
        f.symbol.0,
        f.side.as_str(),
        f.volume,
        f.price,
        f.time,
        f.client_order_id
            .as_ref()
            .map(|c| format!(" client order {c}"))
            .unwrap_or_default()
    )
}

/// Checks an operator may acknowledge audit row `seq` (`finding` is whether it is a finding to
/// check by hand; `None` when there is no such row).
pub(crate) fn check_acknowledgeable(seq: i64, finding: Option<bool>) -> Result<(), StoreError> {
    match finding {
        Some(true) => Ok(()),
        Some(false) => Err(StoreError::InvalidRecord(format!(
            "audit row #{seq} is not a finding to check by hand; nothing was acknowledged"
        ))),
        None => Err(StoreError::InvalidRecord(format!(
            "there is no audit row #{seq}; nothing was acknowledged"
        ))),
    }
}

/// Checks a new intent.
pub(crate) fn check_new_intent(intent: &OrderIntent) -> Result<(), StoreError> {
    if intent.status != IntentStatus::Pending {
        return Err(StoreError::InvalidRecord(format!(
            "intent {} must be committed as pending, not {}",
            intent.request.client_order_id,
            intent.status.as_str()
        )));
    }
    if !intent.request.volume.is_positive() {
        return Err(StoreError::InvalidRecord(format!(
            "intent {} has a non-positive volume",
            intent.request.client_order_id
        )));
    }
    Ok(())
}

/// The status an intent moves to for an answer, or why it cannot.
/// `Ok(None)` means "already there": a replayed answer changes nothing.
pub(crate) fn next_status(
    id: &ClientOrderId,
    current: IntentStatus,
    target: IntentStatus,
) -> Result<Option<IntentStatus>, StoreError> {
    if current == target {
        Ok(None)
    } else if current.may_become(target) {
        Ok(Some(target))
    } else {
        Err(StoreError::illegal(id, current, target))
    }
}

/// Checks a sentiment reading can be stored.
pub(crate) fn check_sentiment(reading: &SentimentReading) -> Result<(), StoreError> {
    if reading.is_valid() {
        Ok(())
    } else {
        Err(StoreError::InvalidRecord(format!(
            "sentiment from {} has score {} / confidence {} out of range",
            reading.source, reading.score, reading.confidence
        )))
    }
}

/// Checks an answer's parts agree (a fill must be this intent's and match its position).
pub(crate) fn check_answer(answer: &OrderAnswer) -> Result<(), StoreError> {
    if let OrderAnswer::Filled {
        client_order_id,
        fill,
        position,
    } = answer
    {
        check_fill(fill, position)?;
        if fill
            .client_order_id
            .as_ref()
            .is_some_and(|c| c != client_order_id)
        {
            return Err(StoreError::InvalidRecord(format!(
                "fill {} belongs to order {}, not to intent {client_order_id}",
                fill.deal_id,
                fill.client_order_id
                    .as_ref()
                    .map_or("-", ClientOrderId::as_str)
            )));
        }
    }
    Ok(())
}

/// Checks a reconciliation step on an intent still applies: the intent must be where the plan
/// saw it, and the step must follow the lifecycle. A pending intent the broker has evidence of
/// was sent (the crash fell between the send and its record), so `pending → sent → …` is a path;
/// a lost one the broker has evidence of arrived after all, so `lost → filled | accepted` is one.
pub(crate) fn check_resolution(
    id: &ClientOrderId,
    current: IntentStatus,
    from: IntentStatus,
    to: IntentStatus,
) -> Result<(), StoreError> {
    if current != from {
        return Err(StoreError::StalePlan(format!(
            "intent {id} is {} now, the plan expected {}",
            current.as_str(),
            from.as_str()
        )));
    }
    // The broker's view wins over our verdict: an order concluded lost that the broker later
    // shows (it reached the broker after all) becomes what the broker says it is.
    let contradicted_lost =
        from == IntentStatus::Lost && matches!(to, IntentStatus::Filled | IntentStatus::Accepted);
    let legal = from.may_become(to)
        || (from == IntentStatus::Pending && IntentStatus::Sent.may_become(to))
        || contradicted_lost;
    if legal {
        Ok(())
    } else {
        Err(StoreError::illegal(id, from, to))
    }
}
