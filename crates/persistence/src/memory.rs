//! An in-memory [`TradeStore`] that behaves like the SQLite one (same checks, same ordering,
//! all-or-nothing writes), for tests (feature `test-util`, never in a production build). Nothing
//! survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use domain::{
    ClientOrderId, Fill, IntentStatus, KillSwitchState, OrderIntent, Position, PositionId,
    PositionStatus, SentimentReading, Timestamp,
};

use crate::StoreError;
use crate::intent::StoredIntent;
use crate::reconcile::{Correction, ReconcilePlan};
use crate::rows::FillRow;
use crate::store::{
    Acknowledge, AnswerRecorded, AuditEntry, FillRecorded, OrderAnswer, PositionQuery,
    SealedTokens, StoreFuture, TradeStore, check_answer, check_fill, check_new_intent,
    check_resolution, check_same_deal, check_sentiment, next_status,
};

#[derive(Debug, Clone, Default)]
struct State {
    intents: BTreeMap<String, StoredIntent>,
    positions: BTreeMap<PositionId, Position>,
    fills: BTreeMap<i64, Fill>,
    audit: Vec<AuditEntry>,
    kill: KillSwitchState,
    reconciled_until: Option<Timestamp>,
    sentiment: Vec<SentimentReading>,
    tokens: BTreeMap<i64, SealedTokens>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryTradeStore {
    state: Mutex<State>,
}

impl MemoryTradeStore {
    /// An empty store.
    pub fn new() -> MemoryTradeStore {
        MemoryTradeStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written state: every write works on
        // a copy or validates before mutating, so the data behind a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a single-record write on the state. Each such `f` checks everything that can fail
    /// before its first change, so an error leaves the state as it was (no copy needed).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&mut self.lock())
    }

    /// Runs `f` on a copy of the state and keeps the copy only if `f` succeeds: a transaction
    /// for multi-step writes (a reconciliation plan).
    fn transaction<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        *guard = copy;
        Ok(out)
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl State {
    fn intent_mut(&mut self, id: &ClientOrderId) -> Result<&mut StoredIntent, StoreError> {
        self.intents
            .get_mut(id.as_str())
            .ok_or_else(|| StoreError::UnknownIntent(id.clone()))
    }

    fn upsert_position(&mut self, p: &Position) {
        let mut p = p.clone();
        if let Some(old) = self.positions.get(&p.id) {
            // As in SQL: a report without label or client order id keeps the known ones.
            if p.label.is_none() {
                p.label.clone_from(&old.label);
            }
            if p.client_order_id.is_none() {
                p.client_order_id.clone_from(&old.client_order_id);
            }
        }
        self.positions.insert(p.id, p);
    }

    fn insert_fill(&mut self, f: &Fill) -> Result<FillRecorded, StoreError> {
        let f = FillRow::normalise(f)?;
        if let Some(stored) = self.fills.get(&f.deal_id) {
            check_same_deal(stored, &f)?;
            return Ok(FillRecorded::AlreadyRecorded);
        }
        if !self.positions.contains_key(&f.position_id) {
            return Err(StoreError::UnknownPosition {
                deal_id: f.deal_id,
                position: f.position_id,
            });
        }
        self.fills.insert(f.deal_id, f);
        Ok(FillRecorded::New)
    }

    fn record_fill(
        &mut self,
        fill: &Fill,
        position: &Position,
    ) -> Result<FillRecorded, StoreError> {
        if let Some(stored) = self.fills.get(&fill.deal_id) {
            check_same_deal(stored, &FillRow::normalise(fill)?)?;
            return Ok(FillRecorded::AlreadyRecorded);
        }
        // Validate the fill before touching the position, as the SQL transaction would roll back.
        FillRow::normalise(fill)?;
        // Like the SQL store: a close in several deals made the sum of them.
        let mut position = position.clone();
        if position.status == PositionStatus::Closed && fill.close.is_some() {
            let earlier = self.fills.values().filter(|f| f.position_id == position.id);
            if let Some((price, net)) = crate::closing::exit_of(earlier.chain([fill])) {
                position.exit_price = Some(price);
                position.pnl = Some(net);
            }
        }
        self.upsert_position(&position);
        self.insert_fill(fill)
    }

    fn set_status(
        &mut self,
        id: &ClientOrderId,
        status: IntentStatus,
        at: Timestamp,
        broker_order_id: Option<i64>,
        position: Option<PositionId>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let i = self.intent_mut(id)?;
        i.intent.status = status;
        i.updated_at = at;
        i.broker_order_id = broker_order_id.or(i.broker_order_id);
        i.position_id = position.or(i.position_id);
        if let Some(note) = note {
            i.note = Some(note.to_owned());
        }
        Ok(())
    }

    fn open_position_mut(
        &mut self,
        id: PositionId,
        c: &Correction,
    ) -> Result<&mut Position, StoreError> {
        self.positions
            .get_mut(&id)
            .filter(|p| p.status == PositionStatus::Open)
            .ok_or_else(|| {
                StoreError::StalePlan(format!("{} is no longer open in the store", c.subject()))
            })
    }

    fn apply_correction(&mut self, c: &Correction, at: Timestamp) -> Result<(), StoreError> {
        match c {
            Correction::SyncPosition {
                id, after, deals, ..
            } => {
                let p = self.open_position_mut(*id, c)?;
                p.volume = after.volume;
                p.stop_loss = after.stop_loss;
                p.take_profit = after.take_profit;
                for d in deals {
                    self.insert_fill(d)?;
                }
            }
            Correction::ClosePosition {
                id, exit, deals, ..
            } => {
                let p = self.open_position_mut(*id, c)?;
                p.status = PositionStatus::Closed;
                p.volume = p.volume.max(exit.volume);
                p.exit_price = Some(exit.price);
                p.exit_time = Some(exit.time);
                p.pnl = Some(exit.pnl);
                p.close_reason = Some(exit.reason);
                for d in deals {
                    self.insert_fill(d)?;
                }
            }
            Correction::CloseUnexplained { id, .. } => {
                let p = self.open_position_mut(*id, c)?;
                p.status = PositionStatus::Closed;
                p.close_reason = None;
            }
            Correction::AdoptPosition {
                position, deals, ..
            } => {
                self.upsert_position(position);
                for d in deals {
                    self.insert_fill(d)?;
                }
            }
            Correction::ResolveIntent {
                client_order_id,
                from,
                to,
                position,
                broker_order_id,
                evidence,
            } => {
                let current = self.intent_mut(client_order_id)?.intent.status;
                check_resolution(client_order_id, current, *from, *to)?;
                self.set_status(
                    client_order_id,
                    *to,
                    at,
                    *broker_order_id,
                    *position,
                    Some(evidence),
                )?;
            }
        }
        let seq = self.audit.last().map_or(1, |a| a.seq + 1);
        self.audit.push(AuditEntry {
            seq,
            at,
            kind: c.kind().to_owned(),
            subject: c.subject(),
            before: c.before(),
            after: c.after(),
            why: c.why(),
            flagged: c.flagged(),
            check_by_hand: c.check_by_hand(),
            acknowledged_at: None,
        });
        Ok(())
    }
}

impl TradeStore for MemoryTradeStore {
    fn commit_intent<'a>(&'a self, intent: &'a OrderIntent) -> StoreFuture<'a, ()> {
        ready(check_new_intent(intent).and_then(|()| {
            self.write(|s| {
                let id = &intent.request.client_order_id;
                if s.intents.contains_key(id.as_str()) {
                    return Err(StoreError::DuplicateIntent(id.clone()));
                }
                s.intents.insert(
                    id.as_str().to_owned(),
                    StoredIntent {
                        intent: intent.clone(),
                        updated_at: intent.created_at,
                        broker_order_id: None,
                        position_id: None,
                        note: None,
                    },
                );
                Ok(())
            })
        }))
    }

    fn mark_sent<'a>(&'a self, id: &'a ClientOrderId, at: Timestamp) -> StoreFuture<'a, ()> {
        ready(self.write(|s| {
            let current = s.intent_mut(id)?.intent.status;
            if current != IntentStatus::Pending {
                return Err(StoreError::illegal(id, current, IntentStatus::Sent));
            }
            s.set_status(id, IntentStatus::Sent, at, None, None, None)
        }))
    }

    fn record_answer<'a>(
        &'a self,
        answer: &'a OrderAnswer,
        at: Timestamp,
    ) -> StoreFuture<'a, AnswerRecorded> {
        ready(check_answer(answer).and_then(|()| {
            self.write(|s| {
                let id = answer.client_order_id();
                let current = s.intent_mut(id)?.intent.status;
                let next = next_status(id, current, answer.target_status())?;
                let mut fill_outcome = None;
                let (broker_order_id, position, note) = match answer {
                    OrderAnswer::Accepted {
                        broker_order_id, ..
                    } => (Some(*broker_order_id), None, None),
                    OrderAnswer::Rejected { reason, .. } => (None, None, Some(reason.as_str())),
                    OrderAnswer::Filled { fill, position, .. } => {
                        fill_outcome = Some(s.record_fill(fill, position)?);
                        (Some(fill.order_id), Some(fill.position_id), None)
                    }
                };
                let status = match next {
                    Some(status) => {
                        s.set_status(id, status, at, broker_order_id, position, note)?;
                        status
                    }
                    None => current,
                };
                Ok(AnswerRecorded {
                    status,
                    fill: fill_outcome,
                })
            })
        }))
    }

    fn record_fill<'a>(
        &'a self,
        fill: &'a Fill,
        position: &'a Position,
    ) -> StoreFuture<'a, FillRecorded> {
        ready(
            check_fill(fill, position).and_then(|()| self.write(|s| s.record_fill(fill, position))),
        )
    }

    fn intent<'a>(&'a self, id: &'a ClientOrderId) -> StoreFuture<'a, Option<StoredIntent>> {
        ready(Ok(self.lock().intents.get(id.as_str()).cloned()))
    }

    fn intents_in_flight(&self) -> StoreFuture<'_, Vec<StoredIntent>> {
        let mut out: Vec<StoredIntent> = self
            .lock()
            .intents
            .values()
            .filter(|i| !i.status().is_final())
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.intent.created_at, a.id()).cmp(&(b.intent.created_at, b.id())));
        ready(Ok(out))
    }

    fn position(&self, id: PositionId) -> StoreFuture<'_, Option<Position>> {
        ready(Ok(self.lock().positions.get(&id).cloned()))
    }

    fn open_positions(&self) -> StoreFuture<'_, Vec<Position>> {
        ready(Ok(self
            .lock()
            .positions
            .values()
            .filter(|p| p.status == PositionStatus::Open)
            .cloned()
            .collect()))
    }

    fn positions(&self, query: PositionQuery) -> StoreFuture<'_, Vec<Position>> {
        let mut out: Vec<Position> = self
            .lock()
            .positions
            .values()
            .filter(|p| query.status.is_none_or(|s| p.status == s))
            .cloned()
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse((p.entry_time, p.id)));
        out.truncate(query.limit);
        ready(Ok(out))
    }

    fn fills(&self, limit: usize) -> StoreFuture<'_, Vec<Fill>> {
        let mut out: Vec<Fill> = self.lock().fills.values().cloned().collect();
        out.sort_by_key(|f| std::cmp::Reverse((f.time, f.deal_id)));
        out.truncate(limit);
        ready(Ok(out))
    }

    fn apply<'a>(&'a self, plan: &'a ReconcilePlan, at: Timestamp) -> StoreFuture<'a, usize> {
        ready(self.transaction(|s| {
            for c in &plan.corrections {
                s.apply_correction(c, at)?;
            }
            if let Some(until) = plan.deals_until {
                s.reconciled_until = Some(s.reconciled_until.map_or(until, |t| t.max(until)));
            }
            Ok(plan.corrections.len())
        }))
    }

    fn audit_log(&self, limit: usize) -> StoreFuture<'_, Vec<AuditEntry>> {
        ready(Ok(self
            .lock()
            .audit
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()))
    }

    fn open_findings(&self) -> StoreFuture<'_, Vec<AuditEntry>> {
        ready(Ok(self
            .lock()
            .audit
            .iter()
            .filter(|a| a.needs_acknowledgement())
            .cloned()
            .collect()))
    }

    fn acknowledge<'a>(
        &'a self,
        which: Acknowledge<'a>,
        at: Timestamp,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        ready(self.transaction(|s| {
            if let Acknowledge::Rows(seqs) = which {
                for seq in seqs {
                    crate::store::check_acknowledgeable(
                        *seq,
                        s.audit
                            .iter()
                            .find(|a| a.seq == *seq)
                            .map(|a| a.check_by_hand),
                    )?;
                }
            }
            let mut done = Vec::new();
            for a in &mut s.audit {
                let named = match which {
                    Acknowledge::All => true,
                    Acknowledge::Rows(seqs) => seqs.contains(&a.seq),
                };
                if named && a.needs_acknowledgement() {
                    a.acknowledged_at = Some(at);
                    done.push(a.clone());
                }
            }
            Ok(done)
        }))
    }

    fn reconciled_until(&self) -> StoreFuture<'_, Option<Timestamp>> {
        ready(Ok(self.lock().reconciled_until))
    }

    fn kill_switch(&self) -> StoreFuture<'_, KillSwitchState> {
        ready(Ok(self.lock().kill.clone()))
    }

    fn save_kill_switch<'a>(&'a self, state: &'a KillSwitchState) -> StoreFuture<'a, ()> {
        self.lock().kill = state.clone();
        ready(Ok(()))
    }

    fn record_sentiment<'a>(&'a self, reading: &'a SentimentReading) -> StoreFuture<'a, ()> {
        ready(check_sentiment(reading).map(|()| self.lock().sentiment.push(reading.clone())))
    }

    fn sentiment_at<'a>(
        &'a self,
        at: Timestamp,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Option<SentimentReading>> {
        let state = self.lock();
        // Latest known_at wins; among equal instants the one stored last (as SQL's id order).
        let found = state
            .sentiment
            .iter()
            .enumerate()
            .filter(|(_, r)| r.known_at <= at && source.is_none_or(|s| r.source == s))
            .max_by_key(|(i, r)| (r.known_at, *i))
            .map(|(_, r)| r.clone());
        ready(Ok(found))
    }

    fn save_tokens<'a>(&'a self, tokens: &'a SealedTokens) -> StoreFuture<'a, ()> {
        self.lock().tokens.insert(tokens.account_id, tokens.clone());
        ready(Ok(()))
    }

    fn tokens(&self, account_id: i64) -> StoreFuture<'_, Option<SealedTokens>> {
        ready(Ok(self.lock().tokens.get(&account_id).cloned()))
    }
}
