//! Reconciliation as a pure diff: the broker's snapshot against what the store holds, turned
//! into typed corrections. The broker's view wins; nothing here does I/O, so the same plan can be
//! printed (`--dry-run`) or applied ([`crate::TradeStore::apply`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use domain::{
    BrokerPosition, BrokerSnapshot, ClientOrderId, CloseReason, Fill, IntentStatus, LabelPrefix,
    Money, PendingOrder, Position, PositionId, PositionStatus, Price, Side, SymbolId, Timestamp,
    Volume,
};

use crate::intent::StoredIntent;

/// Why no safe plan could be made; the bot must not trade until this is resolved (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The broker listed one position id twice.
    #[error("the broker snapshot lists position {0} twice")]
    DuplicateBrokerPosition(PositionId),
    /// The store handed in one position twice.
    #[error("stored open positions list position {0} twice")]
    DuplicateStoredPosition(PositionId),
    /// Two deals with one id but different content.
    #[error("the broker's deal list has two different deals with id {0}")]
    ConflictingDeal(i64),
    /// The store and the broker disagree on something that cannot change (side, symbol).
    #[error("position {id} contradicts the broker: {detail}")]
    Contradiction {
        /// The position.
        id: PositionId,
        /// What differs.
        detail: String,
    },
    /// The evidence for an intent points at more than one position.
    #[error("order intent {id} is ambiguous: {detail}")]
    AmbiguousIntent {
        /// The intent.
        id: ClientOrderId,
        /// What was found.
        detail: String,
    },
    /// The snapshot is older than an intent's last change: it cannot tell what became of it.
    #[error(
        "the broker snapshot ({taken_at}) is older than order intent {id} ({updated_at}): take a new one"
    )]
    StaleSnapshot {
        /// The intent.
        id: ClientOrderId,
        /// When the snapshot was taken.
        taken_at: Timestamp,
        /// When the intent last changed.
        updated_at: Timestamp,
    },
    /// Money sums overflowed (a corrupt deal list).
    #[error("money overflow while summing the deals of position {0}")]
    Overflow(PositionId),
}

impl ReconcileError {
    /// True when a fresh snapshot may succeed (only a stale snapshot).
    pub fn is_transient(&self) -> bool {
        matches!(self, ReconcileError::StaleSnapshot { .. })
    }
}

/// Where the next deal-list request must start: the older of the reconciliation watermark and
/// the oldest in-flight intent (an order sent before a crash may have been filled any time
/// after it). With no watermark, the oldest open position's entry bounds it. `None` means the
/// store has nothing to learn from history.
pub fn deal_history_start(
    reconciled_until: Option<Timestamp>,
    in_flight: &[StoredIntent],
    open_positions: &[Position],
) -> Option<Timestamp> {
    let intents = in_flight.iter().map(|i| i.intent.created_at).min();
    let base = reconciled_until.or_else(|| open_positions.iter().map(|p| p.entry_time).min());
    match (base, intents) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A position's volume and stop levels: what "sync" compares and copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionLevels {
    /// Open volume.
    pub volume: Volume,
    /// Absolute stop-loss.
    pub stop_loss: Option<Price>,
    /// Absolute take-profit.
    pub take_profit: Option<Price>,
}

impl PositionLevels {
    fn of(p: &Position) -> PositionLevels {
        PositionLevels {
            volume: p.volume,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
        }
    }

    fn of_broker(p: &BrokerPosition) -> PositionLevels {
        PositionLevels {
            volume: p.volume,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
        }
    }
}

impl fmt::Display for PositionLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "open vol {} sl {} tp {}",
            self.volume,
            opt(self.stop_loss),
            opt(self.take_profit)
        )
    }
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// How the reason a position closed was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonBasis {
    /// The broker said so (the client read the closing order's type or stop-out flag).
    Broker,
    /// The closing deal carries the client order id of one of our intents.
    OwnOrder,
    /// The exit price is at or beyond the position's stop-loss or take-profit.
    StopLevel,
    /// Nothing else explains it: someone closed it outside the bot.
    NoOtherExplanation,
}

impl ReasonBasis {
    /// Readable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonBasis::Broker => "reported by the broker",
            ReasonBasis::OwnOrder => "closed by our own order",
            ReasonBasis::StopLevel => "inferred from the exit price and the stop levels",
            ReasonBasis::NoOtherExplanation => {
                "inferred: no stop level or order of ours explains it"
            }
        }
    }
}

/// How a position ended, as learnt from its closing deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// Volume-weighted exit price of the closing deals.
    pub price: Price,
    /// Time of the last closing deal.
    pub time: Timestamp,
    /// The volume the closing deals closed: the position's whole volume, which the store may
    /// not have known (an opening order that filled in parts while we were away).
    pub volume: Volume,
    /// Net realised PnL: gross profit + swap + commission of the closing deals.
    pub pnl: Money,
    /// Why it closed.
    pub reason: CloseReason,
    /// How `reason` was established.
    pub basis: ReasonBasis,
}

/// One change reconciliation makes to the store, with enough to audit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correction {
    /// Open here and at the broker, but volume or stops differ: take the broker's.
    SyncPosition {
        /// The position.
        id: PositionId,
        /// As stored.
        before: PositionLevels,
        /// As the broker has it.
        after: PositionLevels,
        /// Its deals in the snapshot (e.g. a partial close while we were away), recorded as
        /// fills; deals already stored are skipped.
        deals: Vec<Fill>,
    },
    /// Open here, gone at the broker, and its closing deal(s) found: record how it closed.
    ClosePosition {
        /// The position.
        id: PositionId,
        /// As stored.
        before: PositionLevels,
        /// How it ended.
        exit: ExitRecord,
        /// Its deals in the snapshot, the closing ones and any opening part we missed, recorded
        /// as fills; deals already stored are skipped.
        deals: Vec<Fill>,
    },
    /// Open here, gone at the broker, and no closing deal found: closed, reason unknown (flagged).
    CloseUnexplained {
        /// The position.
        id: PositionId,
        /// As stored.
        before: PositionLevels,
        /// When the broker's snapshot showed it gone.
        noticed_at: Timestamp,
    },
    /// A position of ours the store does not know (open at the broker with our label, or opened
    /// and closed by an in-flight order): record it.
    AdoptPosition {
        /// The position to store (open, or closed with exit fields).
        position: Position,
        /// Its deals, recorded as fills.
        deals: Vec<Fill>,
        /// Why it is ours.
        why: String,
    },
    /// An intent left in flight, resolved from the broker's evidence.
    ResolveIntent {
        /// The intent.
        client_order_id: ClientOrderId,
        /// Its stored status.
        from: IntentStatus,
        /// Its resolved status.
        to: IntentStatus,
        /// The position it opened or closed, when found.
        position: Option<PositionId>,
        /// The broker's order id, when found.
        broker_order_id: Option<i64>,
        /// What the broker showed.
        evidence: String,
    },
}

impl Correction {
    /// Short machine name of the kind of correction (stored in the audit log).
    pub const fn kind(&self) -> &'static str {
        match self {
            Correction::SyncPosition { .. } => "sync_position",
            Correction::ClosePosition { .. } => "close_position",
            Correction::CloseUnexplained { .. } => "close_unexplained",
            Correction::AdoptPosition { .. } => "adopt_position",
            Correction::ResolveIntent { .. } => "resolve_intent",
        }
    }

    /// What it is about: `position 123` or `intent pob-1`.
    pub fn subject(&self) -> String {
        match self {
            Correction::SyncPosition { id, .. }
            | Correction::ClosePosition { id, .. }
            | Correction::CloseUnexplained { id, .. } => format!("position {id}"),
            Correction::AdoptPosition { position, .. } => format!("position {}", position.id),
            Correction::ResolveIntent {
                client_order_id, ..
            } => format!("intent {client_order_id}"),
        }
    }

    /// The state before, readable.
    pub fn before(&self) -> String {
        match self {
            Correction::SyncPosition { before, .. }
            | Correction::ClosePosition { before, .. }
            | Correction::CloseUnexplained { before, .. } => before.to_string(),
            Correction::AdoptPosition { .. } => "not stored".to_owned(),
            Correction::ResolveIntent { from, .. } => from.as_str().to_owned(),
        }
    }

    /// The state after, readable.
    pub fn after(&self) -> String {
        match self {
            Correction::SyncPosition { after, .. } => after.to_string(),
            Correction::ClosePosition { exit, .. } => format!(
                "closed at {} on {}, pnl {}, {}",
                exit.price,
                exit.time,
                exit.pnl,
                exit.reason.as_str()
            ),
            Correction::CloseUnexplained { .. } => "closed, reason unknown".to_owned(),
            Correction::AdoptPosition { position, .. } => match position.status {
                PositionStatus::Open => format!(
                    "open {} vol {} at {} sl {} tp {}",
                    position.side,
                    position.volume,
                    position.entry_price,
                    opt(position.stop_loss),
                    opt(position.take_profit)
                ),
                PositionStatus::Closed => format!(
                    "closed {} vol {} at {} -> {}, pnl {}, {}",
                    position.side,
                    position.volume,
                    position.entry_price,
                    opt(position.exit_price),
                    opt(position.pnl),
                    position
                        .close_reason
                        .map_or("reason unknown", CloseReason::as_str)
                ),
            },
            Correction::ResolveIntent { to, position, .. } => match position {
                Some(p) => format!("{} (position {p})", to.as_str()),
                None => to.as_str().to_owned(),
            },
        }
    }

    /// Why, readable.
    pub fn why(&self) -> String {
        match self {
            Correction::SyncPosition { deals, .. } if deals.iter().any(|d| d.close.is_some()) => {
                "partly closed at the broker while away; the broker's volume and stops win"
                    .to_owned()
            }
            Correction::SyncPosition { .. } => {
                "the broker's volume or stop levels differ; the broker wins".to_owned()
            }
            Correction::ClosePosition { exit, deals, .. } => format!(
                "closed at the broker while away ({} closing deal(s)); reason {}",
                deals.iter().filter(|d| d.close.is_some()).count(),
                exit.basis.as_str()
            ),
            Correction::CloseUnexplained { noticed_at, .. } => format!(
                "not open at the broker on {noticed_at} and no closing deal in the deal list: check it by hand"
            ),
            Correction::AdoptPosition { why, .. } => why.clone(),
            Correction::ResolveIntent { evidence, .. } => evidence.clone(),
        }
    }

    /// True when a person must check it against the broker before trading resumes: the store
    /// cannot account for how a position ended (gone at the broker, no closing deal). Such a
    /// finding keeps trading off until acknowledged.
    pub fn check_by_hand(&self) -> bool {
        matches!(self, Correction::CloseUnexplained { .. })
    }

    /// True when a person should look at it (logged as a warning; see also
    /// [`Correction::check_by_hand`]).
    pub fn flagged(&self) -> bool {
        match self {
            Correction::CloseUnexplained { .. } => true,
            Correction::AdoptPosition { position, .. } => {
                position.status == PositionStatus::Closed && position.close_reason.is_none()
            }
            // Our verdict was wrong for a while: the books are mended, but say so.
            Correction::ResolveIntent { from, .. } => *from == IntentStatus::Lost,
            Correction::ClosePosition { .. } | Correction::SyncPosition { .. } => false,
        }
    }
}

/// Open volume someone else holds (or we could not recognise) on one symbol and side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// The symbol.
    pub symbol: SymbolId,
    /// The side.
    pub side: Side,
    /// Total open volume.
    pub volume: Volume,
    /// How many positions.
    pub positions: usize,
}

/// Everything reconciliation would change, and what it found but must not touch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcilePlan {
    /// When the broker's snapshot was taken.
    pub taken_at: Timestamp,
    /// The corrections, in the order they are applied.
    pub corrections: Vec<Correction>,
    /// Stored open positions that match the broker exactly.
    pub in_sync: usize,
    /// Positions at the broker that are not ours: never touched, counted as exposure.
    pub foreign: Vec<BrokerPosition>,
    /// Findings that change nothing but deserve a look (e.g. an unknown pending order of ours).
    pub warnings: Vec<String>,
    /// Up to when the broker's deals are known after applying (the deal watermark): the moment
    /// the snapshot was taken, or a newer deal's time. Never only the newest deal's: with no deal
    /// for weeks (a kill switch waiting for a person, a quiet market) every start read all those
    /// weeks again, and a start took longer each day.
    pub deals_until: Option<Timestamp>,
}

impl ReconcilePlan {
    /// True when the store already matches the broker.
    pub fn is_clean(&self) -> bool {
        self.corrections.is_empty() && self.warnings.is_empty()
    }

    /// How many corrections want a person's attention.
    pub fn flagged(&self) -> usize {
        self.corrections.iter().filter(|c| c.flagged()).count()
    }

    /// Someone else's open volume, per symbol and side (sorted by symbol, buy first).
    pub fn foreign_exposure(&self) -> Vec<Exposure> {
        let mut out: Vec<Exposure> = Vec::new();
        for p in &self.foreign {
            match out
                .iter_mut()
                .find(|e| e.symbol == p.symbol && e.side == p.side)
            {
                Some(e) => {
                    e.volume = Volume(e.volume.0.saturating_add(p.volume.0));
                    e.positions += 1;
                }
                None => out.push(Exposure {
                    symbol: p.symbol,
                    side: p.side,
                    volume: p.volume,
                    positions: 1,
                }),
            }
        }
        out.sort_by_key(|e| (e.symbol, e.side == Side::Sell));
        out
    }
}

/// Evidence the broker holds about one client order id.
#[derive(Default)]
struct Evidence<'a> {
    positions: Vec<&'a BrokerPosition>,
    orders: Vec<&'a PendingOrder>,
    deals: Vec<&'a Fill>,
}

/// Diffs the store against the broker. `stored_open` are the store's open positions,
/// `in_flight` its unresolved intents (and any concluded lost that the snapshot names after all:
/// the broker's view wins), `snapshot` the broker's positions, pending orders and the
/// deals since [`deal_history_start`], `label_prefix` the bot's prefix (labels `{prefix}-…`).
///
/// The steps, in order (each a function below, each appending to the plan):
/// 0. `Views::index`: both sides indexed, refusing duplicates that would make "the" position
///    ambiguous, and the broker's evidence gathered per in-flight intent;
/// 1. `sync_or_close_stored`: stored open positions still open (sync) or closed while away;
/// 2. `adopt_unknown_positions`: broker positions the store does not hold, ours or foreign;
/// 3. `resolve_intents`: what became of each intent left in flight;
/// 4. `warn_unexplained_orders`: pending orders of ours no intent explains.
///
/// Errors when the data cannot be reconciled safely; the caller must then not trade.
pub fn plan(
    stored_open: &[Position],
    in_flight: &[StoredIntent],
    snapshot: &BrokerSnapshot,
    label_prefix: &LabelPrefix,
) -> Result<ReconcilePlan, ReconcileError> {
    let mut views = Views::index(stored_open, in_flight, snapshot, label_prefix)?;
    let mut out = ReconcilePlan {
        taken_at: snapshot.taken_at,
        deals_until: views
            .deals
            .iter()
            .map(|d| d.time)
            .max()
            .map_or(snapshot.taken_at, |newest| newest.max(snapshot.taken_at))
            .into(),
        ..ReconcilePlan::default()
    };
    sync_or_close_stored(&views, stored_open, snapshot.taken_at, &mut out)?;
    let adopted = adopt_unknown_positions(&views, snapshot, label_prefix, &mut out);
    resolve_intents(&mut views, in_flight, snapshot.taken_at, adopted, &mut out)?;
    warn_unexplained_orders(&views, snapshot, label_prefix, &mut out);
    Ok(out)
}

/// Both sides of the diff, indexed once for the steps of [`plan`].
struct Views<'a> {
    /// The broker's open positions by id.
    broker: HashMap<PositionId, &'a BrokerPosition>,
    /// The snapshot's deals, each id once, by time then id.
    deals: Vec<&'a Fill>,
    /// The same deals per position, in that order.
    deals_by_position: HashMap<PositionId, Vec<&'a Fill>>,
    /// The store's open positions by id.
    stored: HashMap<PositionId, &'a Position>,
    /// The client order ids of the intents in flight.
    intent_ids: HashSet<&'a ClientOrderId>,
    /// What the broker holds about each in-flight intent (taken out as step 3 resolves it).
    evidence: HashMap<ClientOrderId, Evidence<'a>>,
}

impl<'a> Views<'a> {
    /// Step 0: indexes the snapshot and the store, refusing a position listed twice on either
    /// side and two different deals with one id, and gathers each in-flight intent's evidence.
    fn index(
        stored_open: &'a [Position],
        in_flight: &'a [StoredIntent],
        snapshot: &'a BrokerSnapshot,
        label_prefix: &LabelPrefix,
    ) -> Result<Views<'a>, ReconcileError> {
        let mut broker: HashMap<PositionId, &BrokerPosition> =
            HashMap::with_capacity(snapshot.positions.len());
        for p in &snapshot.positions {
            if broker.insert(p.id, p).is_some() {
                return Err(ReconcileError::DuplicateBrokerPosition(p.id));
            }
        }
        let mut deal_by_id: HashMap<i64, &Fill> = HashMap::with_capacity(snapshot.deals.len());
        for d in &snapshot.deals {
            if let Some(seen) = deal_by_id.insert(d.deal_id, d)
                && seen != d
            {
                return Err(ReconcileError::ConflictingDeal(d.deal_id));
            }
        }
        let mut deals: Vec<&Fill> = deal_by_id.values().copied().collect();
        deals.sort_by_key(|d| (d.time, d.deal_id));
        let mut deals_by_position: HashMap<PositionId, Vec<&Fill>> = HashMap::new();
        for d in &deals {
            deals_by_position.entry(d.position_id).or_default().push(d);
        }

        let mut stored: HashMap<PositionId, &Position> = HashMap::with_capacity(stored_open.len());
        for p in stored_open {
            if stored.insert(p.id, p).is_some() {
                return Err(ReconcileError::DuplicateStoredPosition(p.id));
            }
        }

        let intent_ids: HashSet<&ClientOrderId> = in_flight.iter().map(StoredIntent::id).collect();
        let mut evidence: HashMap<ClientOrderId, Evidence<'_>> = HashMap::new();
        for p in &snapshot.positions {
            if let Some(id) = broker_client_order_id(&p.client_order_id, &p.label, label_prefix)
                && intent_ids.contains(&id)
            {
                evidence.entry(id).or_default().positions.push(p);
            }
        }
        for o in &snapshot.orders {
            if let Some(id) = broker_client_order_id(&o.client_order_id, &o.label, label_prefix)
                && intent_ids.contains(&id)
            {
                evidence.entry(id).or_default().orders.push(o);
            }
        }
        for d in &deals {
            if let Some(id) = &d.client_order_id
                && intent_ids.contains(id)
            {
                evidence.entry(id.clone()).or_default().deals.push(d);
            }
        }
        Ok(Views {
            broker,
            deals,
            deals_by_position,
            stored,
            intent_ids,
            evidence,
        })
    }

    /// The snapshot's deals of one position (none when it has none).
    fn deals_of(&self, id: PositionId) -> &[&'a Fill] {
        self.deals_by_position
            .get(&id)
            .map_or(&[][..], Vec::as_slice)
    }
}

/// The client order id the broker holds for a position or order: its `clientOrderId`, or else
/// the one our label carries.
fn broker_client_order_id(
    coid: &Option<ClientOrderId>,
    label: &Option<String>,
    label_prefix: &LabelPrefix,
) -> Option<ClientOrderId> {
    coid.clone().or_else(|| {
        label
            .as_deref()
            .and_then(|l| label_prefix.client_order_id_in(l))
    })
}

/// Step 1: each stored open position, by id: in sync, synced to the broker's volume and stops,
/// closed from its closing deals, or (no closing deal) closed unexplained for a person to check.
/// A position whose side or symbol differs at the broker is a contradiction: no plan.
fn sync_or_close_stored(
    views: &Views<'_>,
    stored_open: &[Position],
    taken_at: Timestamp,
    out: &mut ReconcilePlan,
) -> Result<(), ReconcileError> {
    let mut stored_sorted: Vec<&Position> = stored_open.iter().collect();
    stored_sorted.sort_by_key(|p| p.id);
    for s in stored_sorted {
        let before = PositionLevels::of(s);
        if let Some(b) = views.broker.get(&s.id) {
            if b.side != s.side || b.symbol != s.symbol {
                return Err(ReconcileError::Contradiction {
                    id: s.id,
                    detail: format!(
                        "stored {} on symbol {}, broker says {} on symbol {}",
                        s.side, s.symbol, b.side, b.symbol
                    ),
                });
            }
            let after = PositionLevels::of_broker(b);
            if before == after {
                out.in_sync += 1;
            } else {
                out.corrections.push(Correction::SyncPosition {
                    id: s.id,
                    before,
                    after,
                    deals: views.deals_of(s.id).iter().map(|d| (*d).clone()).collect(),
                });
            }
            continue;
        }
        let position_deals = views.deals_of(s.id);
        match exit_from_deals(
            s.id,
            s.side,
            s.stop_loss,
            s.take_profit,
            position_deals,
            &views.intent_ids,
        )? {
            // Every deal of it, not only the closing ones: the later parts of an opening order
            // that filled in parts may never have reached us either (the store skips known ones).
            Some(exit) => out.corrections.push(Correction::ClosePosition {
                id: s.id,
                before,
                exit,
                deals: position_deals.iter().map(|d| (*d).clone()).collect(),
            }),
            None => out.corrections.push(Correction::CloseUnexplained {
                id: s.id,
                before,
                noticed_at: taken_at,
            }),
        }
    }
    Ok(())
}

/// Step 2: broker positions the store does not hold, by id: ours (our label, or opened by an
/// in-flight intent) are adopted with their deals; anyone else's are only reported as foreign.
/// Returns the ids adopted.
fn adopt_unknown_positions(
    views: &Views<'_>,
    snapshot: &BrokerSnapshot,
    label_prefix: &LabelPrefix,
    out: &mut ReconcilePlan,
) -> HashSet<PositionId> {
    let mut adopted: HashSet<PositionId> = HashSet::new();
    let mut unknown: Vec<&BrokerPosition> = snapshot
        .positions
        .iter()
        .filter(|p| !views.stored.contains_key(&p.id))
        .collect();
    unknown.sort_by_key(|p| p.id);
    for b in unknown {
        let coid = broker_client_order_id(&b.client_order_id, &b.label, label_prefix);
        let labelled = b.label.as_deref().is_some_and(|l| label_prefix.is_ours(l));
        let from_intent = coid.as_ref().is_some_and(|c| views.intent_ids.contains(c));
        if !(labelled || from_intent) {
            out.foreign.push(b.clone());
            continue;
        }
        adopted.insert(b.id);
        let why = if from_intent {
            "open at the broker, opened by an order we sent before a restart".to_owned()
        } else {
            "open at the broker with our label, unknown to the store".to_owned()
        };
        out.corrections.push(Correction::AdoptPosition {
            position: Position {
                id: b.id,
                symbol: b.symbol,
                side: b.side,
                volume: b.volume,
                entry_price: b.entry_price,
                entry_time: b.open_time,
                stop_loss: b.stop_loss,
                take_profit: b.take_profit,
                label: b.label.clone(),
                client_order_id: coid,
                status: PositionStatus::Open,
                exit_price: None,
                exit_time: None,
                pnl: None,
                close_reason: None,
            },
            deals: views.deals_of(b.id).iter().map(|d| (*d).clone()).collect(),
            why,
        });
    }
    adopted
}

/// Step 3: each intent left in flight, oldest first, resolved from the broker's evidence
/// ([`resolve_in_flight`]'s rule); a position it opened that closed again while we were away is
/// rebuilt from its deals and adopted. A snapshot older than an intent's last change: no plan.
fn resolve_intents(
    views: &mut Views<'_>,
    in_flight: &[StoredIntent],
    taken_at: Timestamp,
    mut adopted: HashSet<PositionId>,
    out: &mut ReconcilePlan,
) -> Result<(), ReconcileError> {
    let mut intents: Vec<&StoredIntent> = in_flight.iter().collect();
    intents.sort_by(|a, b| (a.intent.created_at, a.id()).cmp(&(b.intent.created_at, b.id())));
    for i in intents {
        if taken_at < i.updated_at {
            return Err(ReconcileError::StaleSnapshot {
                id: i.id().clone(),
                taken_at,
                updated_at: i.updated_at,
            });
        }
        let ev = views.evidence.remove(i.id()).unwrap_or_default();
        let resolution = resolve_intent(i, &ev)?;
        if let IntentResolution::Filled { position, .. } = &resolution
            && let Some(pid) = position
            && i.intent.request.position_to_close.is_none()
            && !views.stored.contains_key(pid)
            && !views.broker.contains_key(pid)
            && !adopted.contains(pid)
        {
            // Opened and closed again while we were away: rebuild it from its deals.
            let position_deals = views.deals_of(*pid);
            if let Some(position) = closed_from_deals(*pid, i, position_deals, &views.intent_ids)? {
                adopted.insert(*pid);
                out.corrections.push(Correction::AdoptPosition {
                    position,
                    deals: position_deals.iter().map(|d| (*d).clone()).collect(),
                    why: format!(
                        "opened by intent {} and closed while we were away (from the deal list)",
                        i.id()
                    ),
                });
            }
        }
        let (to, position, broker_order_id, evidence_text) = match resolution {
            IntentResolution::Filled {
                position,
                broker_order_id,
                evidence,
            } => (IntentStatus::Filled, position, broker_order_id, evidence),
            IntentResolution::Accepted {
                broker_order_id,
                evidence,
            } => (
                IntentStatus::Accepted,
                None,
                Some(broker_order_id),
                evidence,
            ),
            IntentResolution::Lost { evidence } => (IntentStatus::Lost, None, None, evidence),
        };
        let evidence_text = if i.status() == IntentStatus::Lost {
            format!("concluded lost earlier, but it reached the broker after all: {evidence_text}")
        } else {
            evidence_text
        };
        if to != i.status() {
            out.corrections.push(Correction::ResolveIntent {
                client_order_id: i.id().clone(),
                from: i.status(),
                to,
                position,
                broker_order_id,
                evidence: evidence_text,
            });
        }
    }
    Ok(())
}

/// Step 4: pending orders of ours that no in-flight intent explains: nothing to change, but odd,
/// so a warning.
fn warn_unexplained_orders(
    views: &Views<'_>,
    snapshot: &BrokerSnapshot,
    label_prefix: &LabelPrefix,
    out: &mut ReconcilePlan,
) {
    for o in &snapshot.orders {
        let ours = o.label.as_deref().is_some_and(|l| label_prefix.is_ours(l));
        let explained = broker_client_order_id(&o.client_order_id, &o.label, label_prefix)
            .is_some_and(|c| views.intent_ids.contains(&c));
        if ours && !explained {
            out.warnings.push(format!(
                "pending order {} carries our label but no in-flight intent explains it",
                o.order_id
            ));
        }
    }
}

/// What became of one in-flight intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentResolution {
    /// It reached the broker and was filled.
    Filled {
        /// The position it opened or closed, when known.
        position: Option<PositionId>,
        /// The broker's order id, when a deal names it.
        broker_order_id: Option<i64>,
        /// What showed it.
        evidence: String,
    },
    /// It reached the broker and waits there as a pending order.
    Accepted {
        /// The broker's order id.
        broker_order_id: i64,
        /// What showed it.
        evidence: String,
    },
    /// No trace at the broker: it never arrived. Final, so it is never sent again.
    Lost {
        /// Why this is certain.
        evidence: String,
    },
}

/// The recovery rule for one intent left in flight by a crash, from what `snapshot` holds for
/// its client order id (in the broker's `clientOrderId` field or as our label): a position or
/// deal means filled, a pending order means accepted, and nothing at all means lost (it never
/// reached the broker). Lost is final, so the same decision never produces a second order.
/// [`plan`] applies this rule to every in-flight intent.
pub fn resolve_in_flight(
    intent: &StoredIntent,
    snapshot: &BrokerSnapshot,
    label_prefix: &LabelPrefix,
) -> Result<IntentResolution, ReconcileError> {
    if snapshot.taken_at < intent.updated_at {
        return Err(ReconcileError::StaleSnapshot {
            id: intent.id().clone(),
            taken_at: snapshot.taken_at,
            updated_at: intent.updated_at,
        });
    }
    let carries = |coid: &Option<ClientOrderId>, label: &Option<String>| {
        coid.as_ref() == Some(intent.id())
            || label
                .as_deref()
                .and_then(|l| label_prefix.client_order_id_in(l))
                .as_ref()
                == Some(intent.id())
    };
    let ev = Evidence {
        positions: snapshot
            .positions
            .iter()
            .filter(|p| carries(&p.client_order_id, &p.label))
            .collect(),
        orders: snapshot
            .orders
            .iter()
            .filter(|o| carries(&o.client_order_id, &o.label))
            .collect(),
        deals: snapshot
            .deals
            .iter()
            .filter(|d| d.client_order_id.as_ref() == Some(intent.id()))
            .collect(),
    };
    resolve_intent(intent, &ev)
}

fn resolve_intent(
    intent: &StoredIntent,
    ev: &Evidence<'_>,
) -> Result<IntentResolution, ReconcileError> {
    let mut positions: Vec<PositionId> = ev
        .positions
        .iter()
        .map(|p| p.id)
        .chain(ev.deals.iter().map(|d| d.position_id))
        .collect();
    positions.sort_unstable();
    positions.dedup();
    if positions.len() > 1 {
        return Err(ReconcileError::AmbiguousIntent {
            id: intent.id().clone(),
            detail: format!("evidence points at positions {positions:?}"),
        });
    }
    if let Some(&position) = positions.first() {
        let broker_order_id = ev.deals.first().map(|d| d.order_id);
        let evidence = match (ev.positions.is_empty(), ev.deals.len()) {
            (false, 0) => format!("position {position} at the broker carries this order's id"),
            (false, n) => {
                format!("position {position} at the broker and {n} deal(s) carry this order's id")
            }
            (true, n) => format!("{n} deal(s) of position {position} carry this order's id"),
        };
        return Ok(IntentResolution::Filled {
            position: Some(position),
            broker_order_id,
            evidence,
        });
    }
    match ev.orders.as_slice() {
        [] => {}
        [order] => {
            return Ok(IntentResolution::Accepted {
                broker_order_id: order.order_id,
                evidence: format!(
                    "pending order {} at the broker carries this order's id",
                    order.order_id
                ),
            });
        }
        more => {
            return Err(ReconcileError::AmbiguousIntent {
                id: intent.id().clone(),
                detail: format!("{} pending orders carry its id", more.len()),
            });
        }
    }
    let evidence = if intent.status() == IntentStatus::Pending {
        "never marked sent, and no position, pending order or deal at the broker carries its id"
    } else {
        "no position, pending order or deal at the broker carries its id: it never arrived"
    };
    Ok(IntentResolution::Lost {
        evidence: evidence.to_owned(),
    })
}

/// How a position ended, from its closing deals; `None` when it has none.
fn exit_from_deals(
    id: PositionId,
    side: Side,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    deals: &[&Fill],
    own_orders: &HashSet<&ClientOrderId>,
) -> Result<Option<ExitRecord>, ReconcileError> {
    let closing: Vec<&Fill> = deals
        .iter()
        .filter(|d| d.close.is_some())
        .copied()
        .collect();
    let Some(last) = closing.last() else {
        return Ok(None);
    };
    let mut weighted: i128 = 0;
    let mut volume: i128 = 0;
    let mut pnl: Option<Money> = None;
    for d in &closing {
        let Some(c) = &d.close else { continue };
        let v = i128::from(c.closed_volume.0.max(0));
        weighted = weighted
            .checked_add(
                i128::from(d.price.0)
                    .checked_mul(v)
                    .ok_or(ReconcileError::Overflow(id))?,
            )
            .ok_or(ReconcileError::Overflow(id))?;
        volume += v;
        let net = domain::realized_pnl(c).ok_or(ReconcileError::Overflow(id))?;
        pnl = Some(match pnl {
            None => net,
            Some(sum) => sum.checked_add(net).ok_or(ReconcileError::Overflow(id))?,
        });
    }
    let price = if volume > 0 {
        Price(i64::try_from(weighted / volume).map_err(|_| ReconcileError::Overflow(id))?)
    } else {
        last.price
    };
    let (reason, basis) = infer_close_reason(side, stop_loss, take_profit, last, own_orders);
    Ok(Some(ExitRecord {
        price,
        time: last.time,
        volume: Volume(i64::try_from(volume).map_err(|_| ReconcileError::Overflow(id))?),
        pnl: pnl.unwrap_or_default(),
        reason,
        basis,
    }))
}

/// Why a position closed, from its last closing deal: the broker's word when the client had it
/// (closing order type `STOP_LOSS_TAKE_PROFIT`, stop-out flag); else our own closing order; else
/// the exit price at or beyond a stop level; else someone closed it by hand. A stop-out is only
/// known from the broker's word.
pub fn infer_close_reason(
    side: Side,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    closing_deal: &Fill,
    own_orders: &HashSet<&ClientOrderId>,
) -> (CloseReason, ReasonBasis) {
    if let Some(reason) = closing_deal.close.as_ref().and_then(|c| c.close_reason) {
        return (reason, ReasonBasis::Broker);
    }
    if closing_deal
        .client_order_id
        .as_ref()
        .is_some_and(|c| own_orders.contains(c))
    {
        return (CloseReason::Strategy, ReasonBasis::OwnOrder);
    }
    let exit = closing_deal.price;
    // A long closes by selling: the stop is below, the target above (and the reverse for a short).
    let (hit_stop, hit_target) = match side {
        Side::Buy => (
            stop_loss.is_some_and(|sl| exit <= sl),
            take_profit.is_some_and(|tp| exit >= tp),
        ),
        Side::Sell => (
            stop_loss.is_some_and(|sl| exit >= sl),
            take_profit.is_some_and(|tp| exit <= tp),
        ),
    };
    if hit_stop {
        (CloseReason::StopLoss, ReasonBasis::StopLevel)
    } else if hit_target {
        (CloseReason::TakeProfit, ReasonBasis::StopLevel)
    } else {
        (CloseReason::Manual, ReasonBasis::NoOtherExplanation)
    }
}

/// A position opened by `intent` and closed again before we saw it, rebuilt from its deals.
fn closed_from_deals(
    id: PositionId,
    intent: &StoredIntent,
    deals: &[&Fill],
    own_orders: &HashSet<&ClientOrderId>,
) -> Result<Option<Position>, ReconcileError> {
    let opening = deals.iter().find(|d| d.close.is_none());
    let first_close = deals.iter().find_map(|d| d.close.as_ref());
    let (entry_price, entry_time, volume, symbol, side) = match (opening, first_close) {
        (Some(o), _) => (o.price, o.time, o.volume, o.symbol, o.side),
        (None, Some(c)) => (
            c.entry_price,
            intent.updated_at,
            intent.intent.request.volume,
            intent.intent.request.symbol,
            intent.intent.request.side,
        ),
        (None, None) => return Ok(None),
    };
    let exit = exit_from_deals(id, side, None, None, deals, own_orders)?;
    let (status, exit_price, exit_time, pnl, close_reason) = match exit {
        Some(e) => (
            PositionStatus::Closed,
            Some(e.price),
            Some(e.time),
            Some(e.pnl),
            // Without the stop levels only the broker's word or our own order explain the close.
            (e.basis != ReasonBasis::NoOtherExplanation).then_some(e.reason),
        ),
        // Opened, not closed, yet not open at the broker: the deal list is incomplete.
        None => (PositionStatus::Closed, None, None, None, None),
    };
    Ok(Some(Position {
        id,
        symbol,
        side,
        volume,
        entry_price,
        entry_time,
        stop_loss: None,
        take_profit: None,
        label: Some(intent.intent.request.label.clone()),
        client_order_id: Some(intent.id().clone()),
        status,
        exit_price,
        exit_time,
        pnl,
        close_reason,
    }))
}
