//! Reconciliation as the bot runs it: ask the broker, plan the corrections, apply them (unless a
//! dry run), and tell logs and metrics. Anything that fails here stops trading (fail closed).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ctrader_client::{Broker, BrokerError};
use domain::{BrokerSnapshot, ClientOrderId, Clock, IntentStatus, LabelPrefix, Timestamp};
use persistence::{
    AuditEntry, Correction, ReconcileError, ReconcilePlan, ReconcileReport, StoreError,
    StoredIntent, TradeStore,
};

/// How far back the deal history goes when the store has no watermark and nothing open: a fresh
/// database has nothing to learn from older deals.
const FRESH_HISTORY_MS: i64 = 3 * Timestamp::DAY_MS;

/// How far before the history start and past our clock the deal history is asked for (see
/// [`reconcile`]).
const CLOCK_SLACK_MS: i64 = Timestamp::DAY_MS;

/// Orders sent whose fate the broker does not show yet, and since when this process has looked
/// for them in vain. An order can still be on its way (in a dead process's socket buffer, in the
/// broker's queue) when the process or link that sent it dies, and "lost" is final (the same
/// decision is never sent again), so it is concluded only once an order has stayed unseen for the
/// grace (`ORDER_ARRIVAL_GRACE`); until then trading waits, because the order may still fill.
#[derive(Debug)]
pub struct UnseenOrders {
    grace: Duration,
    first_unseen: HashMap<ClientOrderId, Instant>,
}

impl UnseenOrders {
    /// Orders are concluded lost after `grace` unseen (zero: at the first look).
    pub fn new(grace: Duration) -> UnseenOrders {
        UnseenOrders {
            grace,
            first_unseen: HashMap::new(),
        }
    }

    /// True when `id` has been unseen for the grace now; remembers it from its first look.
    fn may_conclude_lost(&mut self, id: &ClientOrderId, now: Instant) -> bool {
        let first = *self.first_unseen.entry(id.clone()).or_insert(now);
        now.duration_since(first) >= self.grace
    }

    /// Forgets every order not in `still_unseen` (found, or concluded).
    fn keep_only(&mut self, still_unseen: &[ClientOrderId]) {
        self.first_unseen.retain(|id, _| still_unseen.contains(id));
    }

    /// The orders still waited for, in order of their ids.
    pub fn waiting(&self) -> Vec<ClientOrderId> {
        let mut out: Vec<_> = self.first_unseen.keys().cloned().collect();
        out.sort();
        out
    }

    /// When the first order waited for will have been unseen for the grace: the moment to look
    /// again; `None` when none is waited for.
    pub fn next_due(&self) -> Option<Instant> {
        self.first_unseen
            .values()
            .min()
            .map(|first| *first + self.grace)
    }

    /// The grace.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

/// Why reconciliation could not finish; trading must not start (or resume).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileFailure {
    /// The broker could not be asked.
    #[error("reconciliation failed: the broker did not answer: {0}")]
    Broker(#[from] BrokerError),
    /// The store could not be read or written.
    #[error("reconciliation failed: the store: {0}")]
    Store(#[from] StoreError),
    /// The broker's view and ours could not be matched safely.
    #[error("reconciliation failed: {0}")]
    Plan(#[from] ReconcileError),
    /// Findings to "check it by hand" wait for an operator: trading stays off until each is
    /// acknowledged (`palm-oil-bot acknowledge`).
    #[error(
        "{} reconciliation finding(s) must be checked by hand before trading: {}; compare each with the broker, then run `palm-oil-bot acknowledge --all` (or `acknowledge N`)",
        .0.len(),
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Unacknowledged(Vec<AuditEntry>),
}

/// Reconciliation as trading needs it: refused while the store holds a finding to check by hand
/// that no operator acknowledged (checked before asking the broker, so waiting costs no request), then
/// [`reconcile_and_report`], then the same check again for the findings it just recorded. A dry
/// run (`apply == false`) sends no order, so it is not gated.
pub async fn reconcile<B: Broker>(
    broker: &B,
    store: &dyn TradeStore,
    clock: &dyn Clock,
    label_prefix: &LabelPrefix,
    apply: bool,
    unseen: &mut UnseenOrders,
) -> Result<(ReconcilePlan, ReconcileReport), ReconcileFailure> {
    if apply {
        require_acknowledged(store).await?;
    }
    let done = reconcile_and_report(broker, store, clock, label_prefix, apply, unseen).await?;
    if apply {
        require_acknowledged(store).await?;
    }
    Ok(done)
}

/// Fails with [`ReconcileFailure::Unacknowledged`] while a finding waits for a person.
pub async fn require_acknowledged(store: &dyn TradeStore) -> Result<(), ReconcileFailure> {
    let open = store.open_findings().await?;
    if open.is_empty() {
        Ok(())
    } else {
        Err(ReconcileFailure::Unacknowledged(open))
    }
}

/// Runs one reconciliation; `apply == false` plans only (nothing is written). Does not look at
/// earlier findings: `palm-oil-bot reconcile` reports, [`reconcile`] gates trading. A sent order
/// without a trace at the broker stays in flight until `unseen` lets it be concluded lost.
pub async fn reconcile_and_report<B: Broker>(
    broker: &B,
    store: &dyn TradeStore,
    clock: &dyn Clock,
    label_prefix: &LabelPrefix,
    apply: bool,
    unseen: &mut UnseenOrders,
) -> Result<(ReconcilePlan, ReconcileReport), ReconcileFailure> {
    let now = clock.now();
    let mut in_flight = store.intents_in_flight().await?;
    let open = store.open_positions().await?;
    let watermark = store.reconciled_until().await?;
    // The broker stamps deals with its clock, intents carry ours: start a day early so a broker
    // clock running behind ours cannot hide the deal an intent caused. Deals already recorded are
    // matched by id, so reading them again changes nothing.
    let since = persistence::deal_history_start(watermark, &in_flight, &open)
        .map_or(Timestamp(now.millis() - FRESH_HISTORY_MS), |start| {
            Timestamp(start.millis() - CLOCK_SLACK_MS)
        });
    if let Some(oldest) = in_flight.first()
        && watermark.is_none_or(|w| oldest.intent.created_at < w)
    {
        tracing::info!(
            since = %since,
            client_order_id = %oldest.id(),
            status = oldest.status().as_str(),
            created_at = %oldest.intent.created_at,
            "reading the broker's deals back to the oldest intent still in flight"
        );
    }
    // Likewise a broker clock may run ahead of ours; a real server has no deals in the future, so
    // asking a day past our now costs nothing and misses nothing.
    let open_state = broker.open_state().await?;
    let deals = broker.deals(since, now.plus_millis(CLOCK_SLACK_MS)).await?;
    let snapshot = BrokerSnapshot {
        positions: open_state.positions,
        orders: open_state.orders,
        deals,
        taken_at: now,
    };
    in_flight.extend(contradicted_lost(store, &snapshot, &in_flight, label_prefix).await?);
    let mut plan = persistence::plan(&open, &in_flight, &snapshot, label_prefix)?;
    let known: HashSet<ClientOrderId> = unseen.first_unseen.keys().cloned().collect();
    let waiting = not_yet_lost(&plan, unseen);
    if !waiting.is_empty() {
        // Planned again without them: they stay in flight, and trading waits for them.
        in_flight.retain(|i| !waiting.contains(i.id()));
        plan = persistence::plan(&open, &in_flight, &snapshot, label_prefix)?;
        for id in waiting.iter().filter(|id| !known.contains(*id)) {
            tracing::warn!(
                client_order_id = %id,
                grace_s = unseen.grace().as_secs_f64(),
                "an order sent earlier shows no trace at the broker yet: it may still be on its way, so trading waits before concluding it lost"
            );
        }
    }
    unseen.keep_only(&waiting);
    for d in &snapshot.deals {
        tracing::trace!(deal_id = d.deal_id, order_id = d.order_id, position_id = d.position_id.0, client_order_id = ?d.client_order_id, time = %d.time, "deal read");
    }
    tracing::debug!(
        since = %since,
        deals = snapshot.deals.len(),
        deals_until = ?plan.deals_until,
        watermark = ?watermark,
        "deal history read"
    );
    if apply {
        // Applied even when clean: it advances the deal watermark.
        store.apply(&plan, now).await?;
    }
    let report = ReconcileReport::new(&plan, apply);
    for correction in &plan.corrections {
        let (kind, subject) = (correction.kind(), correction.subject());
        let (before, after, why) = (correction.before(), correction.after(), correction.why());
        if correction.flagged() {
            tracing::warn!(
                kind,
                subject,
                before,
                after,
                reason = why,
                applied = apply,
                "reconciliation correction needs a look"
            );
        } else {
            tracing::info!(
                kind,
                subject,
                before,
                after,
                reason = why,
                applied = apply,
                "reconciliation correction"
            );
        }
    }
    for p in &plan.foreign {
        tracing::info!(position_id = p.id.0, symbol_id = p.symbol.0, side = p.side.as_str(), volume = %p.volume, "position not ours: left untouched, counted as exposure");
    }
    for w in &plan.warnings {
        tracing::warn!("reconciliation: {w}");
    }
    Ok((plan, report))
}

/// Intents concluded lost that the broker's snapshot names after all (a position, pending order
/// or deal carries their id: the order reached the broker after the verdict), to be planned again
/// with those in flight so the broker's view wins and their deals are stored.
async fn contradicted_lost(
    store: &dyn TradeStore,
    snapshot: &BrokerSnapshot,
    in_flight: &[StoredIntent],
    label_prefix: &LabelPrefix,
) -> Result<Vec<StoredIntent>, StoreError> {
    let from_label = |label: &Option<String>| {
        label
            .as_deref()
            .and_then(|l| label_prefix.client_order_id_in(l))
    };
    let named: HashSet<ClientOrderId> = snapshot
        .positions
        .iter()
        .flat_map(|p| [p.client_order_id.clone(), from_label(&p.label)])
        .chain(
            snapshot
                .orders
                .iter()
                .flat_map(|o| [o.client_order_id.clone(), from_label(&o.label)]),
        )
        .chain(snapshot.deals.iter().map(|d| d.client_order_id.clone()))
        .flatten()
        .filter(|id| label_prefix.is_ours(id.as_str()))
        .filter(|id| !in_flight.iter().any(|i| i.id() == id))
        .collect();
    let mut out = Vec::new();
    for id in named {
        if let Some(intent) = store.intent(&id).await?
            && intent.status() == IntentStatus::Lost
        {
            out.push(intent);
        }
    }
    out.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(out)
}

/// The sent orders `plan` would conclude lost that `unseen` says to wait for still.
fn not_yet_lost(plan: &ReconcilePlan, unseen: &mut UnseenOrders) -> Vec<ClientOrderId> {
    let now = Instant::now();
    plan.corrections
        .iter()
        .filter_map(|c| match c {
            Correction::ResolveIntent {
                client_order_id,
                from: IntentStatus::Sent,
                to: IntentStatus::Lost,
                ..
            } if !unseen.may_conclude_lost(client_order_id, now) => Some(client_order_id.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientOrderId {
        ClientOrderId::new(s).unwrap()
    }

    #[test]
    fn an_unseen_order_is_concluded_lost_only_after_the_grace_and_is_looked_at_then() {
        let grace = Duration::from_secs(30);
        let mut unseen = UnseenOrders::new(grace);
        let t0 = Instant::now();
        assert_eq!(unseen.next_due(), None);
        assert!(!unseen.may_conclude_lost(&id("pob-a"), t0), "first look");
        assert_eq!(unseen.next_due(), Some(t0 + grace));
        assert!(!unseen.may_conclude_lost(&id("pob-a"), t0 + grace / 2));
        assert!(!unseen.may_conclude_lost(&id("pob-b"), t0 + grace / 2));
        assert_eq!(unseen.next_due(), Some(t0 + grace), "the oldest decides");
        assert!(unseen.may_conclude_lost(&id("pob-a"), t0 + grace));
        unseen.keep_only(&[id("pob-b")]);
        assert_eq!(unseen.next_due(), Some(t0 + grace / 2 + grace));
        assert_eq!(unseen.waiting(), vec![id("pob-b")]);
        assert!(UnseenOrders::new(Duration::ZERO).may_conclude_lost(&id("pob-c"), t0));
    }
}
