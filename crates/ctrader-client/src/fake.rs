//! An in-memory broker with the real client's behaviour, for the bot's and other crates' tests:
//! market orders fill at the quote (ask to buy, bid to sell), refusals come back as rejections,
//! SL/TP trigger on quotes, positions and deals are kept, and the event stream carries the same
//! events the cTrader client sends.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{
    AccountCurrency, Bar, BrokerPosition, ClientOrderId, Clock, CloseReason, ConversionChain,
    ConversionRate, DealCloseDetail, Fill, Money, OrderRequest, PendingOrder, PositionId, Price,
    Quote, Side, SymbolId, SymbolSpec, Timeframe, Timestamp, Volume, price_move_e7, unrealized_pnl,
};
use tokio::sync::mpsc;

use crate::BrokerError;
use crate::broker::{
    Broker, BrokerEvent, BrokerEvents, ExecutionKind, ExecutionReport, OpenState, OrderFill,
    OrderOutcome, OrderRejection, PositionPnl, Protection, SymbolState, TradingMode,
};

/// What the fake does with the next order instead of executing it normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeOrderScript {
    /// Refuse it with this broker error code (e.g. `NOT_ENOUGH_MONEY`).
    Reject(String),
    /// Fail before sending: nothing executes, the call returns this error.
    Fail(BrokerError),
    /// Execute it, then lose the answer: the call returns `OrderOutcomeUnknown`, as when the link
    /// drops after the order left. Reconciliation finds the position.
    ExecuteThenLoseAnswer,
}

/// An in-memory [`Broker`]; see the module documentation for what it models.
pub struct FakeBroker {
    state: Mutex<FakeState>,
    /// Behind a lock so a test can hand out a new stream, as a restarted client would have.
    events: Mutex<mpsc::UnboundedSender<BrokerEvent>>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<BrokerEvent>>>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct FakeState {
    symbols: Vec<SymbolSpec>,
    quotes: BTreeMap<SymbolId, Quote>,
    subscribed: HashSet<SymbolId>,
    positions: BTreeMap<PositionId, BrokerPosition>,
    orders: Vec<PendingOrder>,
    deals: Vec<Fill>,
    bars: Vec<Bar>,
    sent: Vec<OrderRequest>,
    /// Every execution report emitted, so a test can replay one exactly.
    executions: Vec<ExecutionReport>,
    scripts: VecDeque<FakeOrderScript>,
    balance: Money,
    /// The deposit currency (its digits are the balance's).
    currency: AccountCurrency,
    /// Conversion chains by symbol; a symbol without one is quoted in the deposit currency.
    chains: BTreeMap<SymbolId, ConversionChain>,
    next_id: i64,
    connected: bool,
    /// Market orders fill in up to this many deals (0 or 1: whole), as the simulator's
    /// `--partial-fills N` does.
    partial_deals: u32,
    /// Symbols whose trading is not enabled, and how.
    modes: BTreeMap<SymbolId, TradingMode>,
}

impl FakeState {
    /// The quote→deposit rate of `symbol` at the current quotes (`None` while a chain quote is missing).
    fn rate(&self, symbol: SymbolId) -> Option<ConversionRate> {
        match self.chains.get(&symbol) {
            None => Some(ConversionRate::IDENTITY),
            Some(chain) => chain.rate(|s| self.quotes.get(&s).copied()),
        }
    }
}

impl std::fmt::Debug for FakeBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBroker")
            .field("state", &*self.lock())
            .field("now", &self.clock.now())
            .finish_non_exhaustive()
    }
}

impl FakeBroker {
    /// An empty broker whose account holds `balance`; time comes from `clock`.
    pub fn new(clock: Arc<dyn Clock>, balance: Money) -> FakeBroker {
        let (events, receiver) = mpsc::unbounded_channel();
        FakeBroker {
            state: Mutex::new(FakeState {
                symbols: Vec::new(),
                quotes: BTreeMap::new(),
                subscribed: HashSet::new(),
                positions: BTreeMap::new(),
                orders: Vec::new(),
                deals: Vec::new(),
                bars: Vec::new(),
                sent: Vec::new(),
                executions: Vec::new(),
                scripts: VecDeque::new(),
                balance,
                currency: AccountCurrency {
                    asset_id: 1,
                    code: "MYR".to_owned(),
                    money_digits: balance.digits,
                },
                chains: BTreeMap::new(),
                next_id: 1,
                connected: true,
                partial_deals: 0,
                modes: BTreeMap::new(),
            }),
            events: Mutex::new(events),
            receiver: Mutex::new(Some(receiver)),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding the lock can only come from a test assertion; keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: BrokerEvent) {
        if let BrokerEvent::Execution(report) = &event {
            self.lock().executions.push((**report).clone());
        }
        // Nobody listening is fine: the owner may not have taken the stream.
        let _ = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(event);
    }

    /// Sends `event` on the stream as if the broker (or the link) had, for tests of events the
    /// fake does not cause itself: a duplicated execution, an order error, a token event.
    pub fn inject_event(&self, event: BrokerEvent) {
        self.emit(event);
    }

    /// Every execution report the fake has emitted (fills, SL/TP hits, amendments), in order.
    pub fn executions(&self) -> Vec<ExecutionReport> {
        self.lock().executions.clone()
    }

    /// A fresh event stream, as a restarted client connecting to the same account would get:
    /// later events go only to it (the previous stream ends once its queue is drained), and
    /// [`Broker::take_events`] hands it out. The account's positions, deals and bars are kept.
    pub fn restart_events(&self) {
        let (events, receiver) = mpsc::unbounded_channel();
        *self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = events;
        *self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(receiver);
    }

    /// Lists a symbol (its `name` is the broker's name, matched case-insensitively).
    pub fn add_symbol(&self, spec: SymbolSpec) {
        self.lock().symbols.push(spec);
    }

    /// Sets the best bid and ask; emits a quote when subscribed and triggers any SL/TP it crosses.
    pub fn set_quote(&self, symbol: SymbolId, bid: Price, ask: Price) {
        let now = self.clock.now();
        let quote = Quote {
            symbol,
            bid,
            ask,
            time: now,
        };
        let (subscribed, triggered) = {
            let mut st = self.lock();
            st.quotes.insert(symbol, quote);
            let triggered: Vec<(PositionId, Price, CloseReason)> = st
                .positions
                .values()
                .filter(|p| p.symbol == symbol)
                .filter_map(|p| protection_hit(p, bid, ask).map(|(px, why)| (p.id, px, why)))
                .collect();
            (st.subscribed.contains(&symbol), triggered)
        };
        if subscribed {
            self.emit(BrokerEvent::Quote(quote));
        }
        for (id, price, reason) in triggered {
            let report = {
                let mut st = self.lock();
                let volume = st.positions.get(&id).map(|p| p.volume).unwrap_or_default();
                close_in_state(&mut st, id, volume, price, now, None)
            };
            if let Ok(mut report) = report {
                if let Some(detail) = report.fill.as_mut().and_then(|f| f.close.as_mut()) {
                    detail.close_reason = Some(reason);
                }
                self.emit(BrokerEvent::Execution(Box::new(report)));
            }
        }
    }

    /// Names the deposit currency (the default is `MYR`, asset 1).
    pub fn set_account_currency(&self, asset_id: i64, code: &str) {
        let mut st = self.lock();
        st.currency.asset_id = asset_id;
        st.currency.code = code.to_owned();
    }

    /// Makes `symbol` quoted in another currency, converted through `chain` (whose symbols' quotes
    /// the test sets with [`FakeBroker::set_quote`]).
    pub fn set_conversion(&self, symbol: SymbolId, chain: ConversionChain) {
        self.lock().chains.insert(symbol, chain);
    }

    /// Charges swap and commission on an open position, as the broker does at rollover and on fills.
    pub fn charge_position(&self, position: PositionId, swap: Money, commission: Money) {
        if let Some(p) = self.lock().positions.get_mut(&position) {
            p.swap = p.swap.checked_add(swap).unwrap_or(p.swap);
            p.commission = p.commission.checked_add(commission).unwrap_or(p.commission);
        }
    }

    /// Stores bars that `trendbars` serves.
    pub fn add_bars(&self, bars: impl IntoIterator<Item = Bar>) {
        self.lock().bars.extend(bars);
    }

    /// Lists a pending order (for reconciliation tests).
    pub fn add_pending_order(&self, order: PendingOrder) {
        self.lock().orders.push(order);
    }

    /// Opens a position without an order, as a trade made in another app would.
    pub fn add_position(&self, position: BrokerPosition) {
        self.lock().positions.insert(position.id, position);
    }

    /// Fills market orders (opening and closing) in up to `deals` deals of whole volume steps from
    /// now on: the first answers the order as a partial fill, the others follow on the event
    /// stream (`PartialFill`, then `Filled`). 0 or 1 fills whole.
    pub fn set_partial_fills(&self, deals: u32) {
        self.lock().partial_deals = deals;
    }

    /// Replaces a listed symbol's details (e.g. a higher minimum volume) and says so on the
    /// stream, as the broker's `ProtoOASymbolChangedEvent` does.
    pub fn change_symbol(&self, spec: SymbolSpec) {
        let id = spec.id;
        {
            let mut st = self.lock();
            st.symbols.retain(|s| s.id != id);
            st.symbols.push(spec);
        }
        self.emit(BrokerEvent::SymbolChanged { symbols: vec![id] });
    }

    /// Sets a symbol's trading mode (orders are refused with `TRADING_DISABLED` unless it is
    /// enabled) and says so on the stream.
    pub fn set_trading_mode(&self, symbol: SymbolId, mode: TradingMode) {
        {
            let mut st = self.lock();
            if mode == TradingMode::Enabled {
                st.modes.remove(&symbol);
            } else {
                st.modes.insert(symbol, mode);
            }
        }
        self.emit(BrokerEvent::SymbolChanged {
            symbols: vec![symbol],
        });
    }

    /// Deposits (positive) or withdraws (negative) money, and says so on the stream with the new
    /// balance, as the broker's `ProtoOATraderUpdatedEvent` does.
    pub fn deposit(&self, amount: Money) -> Result<Money, BrokerError> {
        let balance = {
            let mut st = self.lock();
            let digits = st.balance.digits;
            st.balance = st
                .balance
                .checked_add(amount)
                .and_then(|b| b.rescale(digits))
                .ok_or_else(|| BrokerError::BadValue("balance overflows".into()))?;
            st.balance
        };
        self.emit(BrokerEvent::AccountChanged { balance });
        Ok(balance)
    }

    /// Makes the next order follow `script` instead of executing normally.
    pub fn script_next_order(&self, script: FakeOrderScript) {
        self.lock().scripts.push_back(script);
    }

    /// Every order and close request that reached the broker, in order.
    pub fn orders_sent(&self) -> Vec<OrderRequest> {
        self.lock().sent.clone()
    }

    /// The open positions now.
    pub fn positions(&self) -> Vec<BrokerPosition> {
        self.lock().positions.values().cloned().collect()
    }

    /// The account balance now.
    pub fn balance(&self) -> Money {
        self.lock().balance
    }

    /// Closes a position at the current quote as someone outside the bot would (emits the execution).
    pub fn close_externally(&self, position: PositionId) -> Result<(), BrokerError> {
        let now = self.clock.now();
        let report = {
            let mut st = self.lock();
            let p = st
                .positions
                .get(&position)
                .cloned()
                .ok_or_else(|| refused("close", "POSITION_NOT_FOUND"))?;
            let quote = st
                .quotes
                .get(&p.symbol)
                .copied()
                .ok_or_else(|| refused("close", "NO_QUOTES"))?;
            let price = exit_price(p.side, quote);
            close_in_state(&mut st, position, p.volume, price, now, None)?
        };
        self.emit(BrokerEvent::Execution(Box::new(report)));
        Ok(())
    }

    /// Drops the link (`false`: emits `Disconnected`, requests fail with `NotConnected`) or brings it
    /// back (`true`: emits `Reconnected`, "reconcile now").
    pub fn set_connected(&self, connected: bool) {
        let was = std::mem::replace(&mut self.lock().connected, connected);
        match (was, connected) {
            (true, false) => self.emit(BrokerEvent::Disconnected {
                reason: "fake link dropped".into(),
            }),
            (false, true) => {
                self.emit(BrokerEvent::Reconnected);
                // Like the client's resubscription: the latest prices of every subscribed symbol.
                let quotes: Vec<Quote> = {
                    let st = self.lock();
                    st.subscribed
                        .iter()
                        .filter_map(|s| st.quotes.get(s).copied())
                        .collect()
                };
                for q in quotes {
                    self.emit(BrokerEvent::Quote(q));
                }
            }
            _ => {}
        }
    }

    fn check_connected(&self) -> Result<(), BrokerError> {
        if self.lock().connected {
            Ok(())
        } else {
            Err(BrokerError::NotConnected)
        }
    }

    fn execute(&self, order: &OrderRequest) -> Result<OrderOutcome, BrokerError> {
        crate::broker::check_order(order)?;
        self.check_connected()?;
        let now = self.clock.now();
        let script = self.lock().scripts.pop_front();
        let lose_answer = match script {
            Some(FakeOrderScript::Fail(err)) => return Err(err),
            Some(FakeOrderScript::Reject(code)) => {
                self.lock().sent.push(order.clone());
                return Ok(rejection(&code));
            }
            Some(FakeOrderScript::ExecuteThenLoseAnswer) => true,
            None => false,
        };
        let (outcome, reports) = {
            let mut st = self.lock();
            st.sent.push(order.clone());
            execute_in_state(&mut st, order, now)
        };
        // Like the client: the answer goes to the caller only, unless it was lost on the way.
        for (report, answer) in reports {
            if !answer || lose_answer {
                self.emit(BrokerEvent::Execution(Box::new(report)));
            }
        }
        if lose_answer {
            return Err(BrokerError::OrderOutcomeUnknown {
                what: format!("order {}", order.client_order_id),
                client_order_id: Some(order.client_order_id.clone()),
                reason: "fake: answer lost after the order left".into(),
            });
        }
        Ok(outcome)
    }
}

impl Broker for FakeBroker {
    async fn resolve_symbol(&self, candidates: &[String]) -> Result<SymbolSpec, BrokerError> {
        self.check_connected()?;
        // Like the client: blank names are no candidates at all.
        if candidates.iter().all(|c| c.trim().is_empty()) {
            return Err(BrokerError::InvalidRequest(
                "no candidate symbol names given".into(),
            ));
        }
        let st = self.lock();
        candidates
            .iter()
            .find_map(|c| {
                st.symbols
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(c.trim()))
            })
            .cloned()
            .ok_or_else(|| BrokerError::SymbolNotFound {
                tried: candidates.to_vec(),
                listed: st.symbols.len(),
            })
    }

    async fn subscribe_quotes(&self, symbol: SymbolId) -> Result<(), BrokerError> {
        self.check_connected()?;
        let quote = {
            let mut st = self.lock();
            if !st.symbols.iter().any(|s| s.id == symbol) {
                return Err(refused("subscribe spots", "SYMBOL_NOT_FOUND"));
            }
            st.subscribed.insert(symbol);
            st.quotes.get(&symbol).copied()
        };
        // Like cTrader: the latest prices right after subscribing.
        if let Some(q) = quote {
            self.emit(BrokerEvent::Quote(q));
        }
        Ok(())
    }

    async fn trendbars(
        &self,
        symbol: SymbolId,
        timeframe: Timeframe,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Bar>, BrokerError> {
        self.check_connected()?;
        let bars = self
            .lock()
            .bars
            .iter()
            .filter(|b| b.symbol == symbol && b.timeframe == timeframe)
            .copied()
            .collect();
        Ok(crate::history::tidy(bars, from, to))
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderOutcome, BrokerError> {
        self.execute(order)
    }

    async fn close_position(
        &self,
        position: PositionId,
        volume: Volume,
    ) -> Result<OrderOutcome, BrokerError> {
        // Like the client: a volume that is not positive is refused before anything is sent.
        crate::broker::check_close(position, volume)?;
        self.check_connected()?;
        let now = self.clock.now();
        let result = {
            let mut st = self.lock();
            let Some(p) = st.positions.get(&position).cloned() else {
                return Ok(rejection("POSITION_NOT_FOUND"));
            };
            let spec = st.symbols.iter().find(|s| s.id == p.symbol);
            if bad_close_volume(spec, p.volume, volume) {
                return Ok(rejection("TRADING_BAD_VOLUME"));
            }
            let Some(quote) = st.quotes.get(&p.symbol).copied() else {
                return Ok(rejection("NO_QUOTES"));
            };
            close_in_parts(
                &mut st,
                position,
                volume,
                exit_price(p.side, quote),
                now,
                None,
            )?
        };
        // Like cTrader: the closing order is accepted, then filled (in parts, maybe); like the
        // client, the first fill answers the call and only the others go on the stream.
        let mut reports = result.into_iter();
        let Some(answer) = reports.next() else {
            return Ok(rejection("ORDER_REJECTED"));
        };
        let accepted = ExecutionReport {
            kind: ExecutionKind::Accepted,
            fill: None,
            position_closed: false,
            ..answer.clone()
        };
        self.emit(BrokerEvent::Execution(Box::new(accepted)));
        for report in reports {
            self.emit(BrokerEvent::Execution(Box::new(report)));
        }
        Ok(outcome_of(answer))
    }

    async fn amend_protection(
        &self,
        position: PositionId,
        protection: Protection,
    ) -> Result<(), BrokerError> {
        self.check_connected()?;
        let report = {
            let mut st = self.lock();
            let p = st
                .positions
                .get_mut(&position)
                .ok_or_else(|| refused("amend position", "POSITION_NOT_FOUND"))?;
            p.stop_loss = protection.stop_loss;
            p.take_profit = protection.take_profit;
            ExecutionReport {
                kind: ExecutionKind::Replaced,
                order_id: None,
                client_order_id: None,
                position: Some(p.clone()),
                position_closed: false,
                fill: None,
                error_code: None,
            }
        };
        self.emit(BrokerEvent::Execution(Box::new(report)));
        Ok(())
    }

    async fn account_currency(&self) -> Result<AccountCurrency, BrokerError> {
        self.check_connected()?;
        Ok(self.lock().currency.clone())
    }

    async fn conversion_chain(&self, symbol: SymbolId) -> Result<ConversionChain, BrokerError> {
        self.check_connected()?;
        let st = self.lock();
        if !st.symbols.iter().any(|s| s.id == symbol) {
            return Err(BrokerError::BadValue(format!(
                "symbol {symbol} is not listed"
            )));
        }
        Ok(st
            .chains
            .get(&symbol)
            .cloned()
            .unwrap_or_else(|| ConversionChain::same_currency(st.currency.code.clone())))
    }

    async fn unrealized_pnl(&self) -> Result<Vec<PositionPnl>, BrokerError> {
        self.check_connected()?;
        let st = self.lock();
        let digits = st.balance.digits;
        let mut out = Vec::new();
        for p in st.positions.values() {
            let (Some(quote), Some(rate)) = (st.quotes.get(&p.symbol), st.rate(p.symbol)) else {
                return Err(BrokerError::BadValue(format!(
                    "no price for position {} yet",
                    p.id
                )));
            };
            let bad = || BrokerError::BadValue("unrealized PnL overflows".into());
            let charges = p.swap.checked_add(p.commission).ok_or_else(bad)?;
            let gross = unrealized_pnl(
                p.side,
                p.entry_price,
                p.volume,
                quote,
                rate,
                Money::zero(digits),
                digits,
            )
            .ok_or_else(bad)?;
            let net = gross
                .checked_add(charges)
                .and_then(|m| m.rescale(digits))
                .ok_or_else(bad)?;
            out.push(PositionPnl {
                position: p.id,
                gross,
                net,
            });
        }
        Ok(out)
    }

    async fn balance(&self) -> Result<Money, BrokerError> {
        self.check_connected()?;
        Ok(FakeBroker::balance(self))
    }

    async fn open_state(&self) -> Result<OpenState, BrokerError> {
        self.check_connected()?;
        let st = self.lock();
        Ok(OpenState {
            positions: st.positions.values().cloned().collect(),
            orders: st.orders.clone(),
        })
    }

    async fn deals(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Fill>, BrokerError> {
        self.check_connected()?;
        Ok(self
            .lock()
            .deals
            .iter()
            .filter(|d| from <= d.time && d.time < to)
            .cloned()
            .collect())
    }

    async fn symbol_state(&self, symbol: SymbolId, name: &str) -> Result<SymbolState, BrokerError> {
        self.check_connected()?;
        let st = self.lock();
        let spec = st
            .symbols
            .iter()
            .find(|s| s.id == symbol)
            .cloned()
            .ok_or_else(|| {
                BrokerError::BadValue(format!(
                    "symbol {name} ({symbol}) is listed but its details were not returned"
                ))
            })?;
        Ok(SymbolState {
            spec,
            mode: st
                .modes
                .get(&symbol)
                .copied()
                .unwrap_or(TradingMode::Enabled),
        })
    }

    fn take_events(&self) -> Option<BrokerEvents> {
        self.receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(BrokerEvents::new)
    }
}

/// cTrader's rule for closing (part of) a position: a positive multiple of the symbol's volume
/// step, at most the open volume, leaving either nothing or at least the minimum volume.
fn bad_close_volume(spec: Option<&SymbolSpec>, open: Volume, volume: Volume) -> bool {
    let remaining = open.raw() - volume.raw();
    let off_step = spec
        .is_some_and(|s| s.step_volume.is_positive() && volume.raw() % s.step_volume.raw() != 0);
    let leaves_too_little = spec.is_some_and(|s| remaining > 0 && remaining < s.min_volume.raw());
    !volume.is_positive() || volume > open || off_step || leaves_too_little
}

fn refused(request: &'static str, code: &str) -> BrokerError {
    BrokerError::Refused {
        request,
        code: code.to_owned(),
        description: None,
    }
}

fn rejection(code: &str) -> OrderOutcome {
    OrderOutcome::Rejected(OrderRejection {
        code: code.to_owned(),
        description: None,
    })
}

fn outcome_of(report: ExecutionReport) -> OrderOutcome {
    match report.fill {
        Some(fill) => OrderOutcome::Filled(OrderFill {
            fill,
            position: report.position,
            position_closed: report.position_closed,
            partial: report.kind == ExecutionKind::PartialFill,
        }),
        None => rejection(report.error_code.as_deref().unwrap_or("ORDER_REJECTED")),
    }
}

/// The price a position of `side` closes at: a long sells at the bid, a short buys at the ask.
fn exit_price(side: Side, quote: Quote) -> Price {
    match side {
        Side::Buy => quote.bid,
        Side::Sell => quote.ask,
    }
}

/// The price and reason when a quote crosses a position's stop-loss or take-profit.
fn protection_hit(p: &BrokerPosition, bid: Price, ask: Price) -> Option<(Price, CloseReason)> {
    let exit = match p.side {
        Side::Buy => bid,
        Side::Sell => ask,
    };
    let (sl_hit, tp_hit) = match p.side {
        Side::Buy => (
            p.stop_loss.is_some_and(|sl| exit <= sl),
            p.take_profit.is_some_and(|tp| exit >= tp),
        ),
        Side::Sell => (
            p.stop_loss.is_some_and(|sl| exit >= sl),
            p.take_profit.is_some_and(|tp| exit <= tp),
        ),
    };
    if sl_hit {
        Some((exit, CloseReason::StopLoss))
    } else if tp_hit {
        Some((exit, CloseReason::TakeProfit))
    } else {
        None
    }
}

fn next_id(st: &mut FakeState) -> i64 {
    let id = st.next_id;
    st.next_id += 1;
    id
}

/// The volumes of the deals a market order of `volume` fills in: up to `deals` whole volume steps
/// each (the simulator's split), or one deal.
fn split_volume(deals: u32, volume: Volume, step: Volume) -> Vec<Volume> {
    let step = step.raw().max(1);
    let steps = volume.raw() / step;
    if deals < 2 || steps < 2 || volume.raw() % step != 0 {
        return vec![volume];
    }
    let n = i64::from(deals).min(steps);
    let (base, extra) = (steps / n, steps % n);
    (0..n)
        .map(|i| Volume((base + i64::from(i < extra)) * step))
        .collect()
}

/// Closes `volume` of a position in the deals [`split_volume`] gives, under one order: the reports
/// in order, the last `Filled`, those before it `PartialFill`.
fn close_in_parts(
    st: &mut FakeState,
    id: PositionId,
    volume: Volume,
    price: Price,
    now: Timestamp,
    order: Option<(i64, Option<ClientOrderId>)>,
) -> Result<Vec<ExecutionReport>, BrokerError> {
    let step = st
        .positions
        .get(&id)
        .and_then(|p| st.symbols.iter().find(|s| s.id == p.symbol))
        .map_or(volume, |s| s.step_volume);
    let parts = split_volume(st.partial_deals, volume, step);
    let order = match order {
        Some(order) => order,
        None => (next_id(st), None),
    };
    let last = parts.len() - 1;
    let mut reports = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let mut report = close_in_state(st, id, part, price, now, Some(order.clone()))?;
        if i < last {
            report.kind = ExecutionKind::PartialFill;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Validates and executes a market order; returns the outcome and the events it causes, each
/// marked true when it is the one that answers the order.
fn execute_in_state(
    st: &mut FakeState,
    order: &OrderRequest,
    now: Timestamp,
) -> (OrderOutcome, Vec<(ExecutionReport, bool)>) {
    let Some(spec) = st.symbols.iter().find(|s| s.id == order.symbol).cloned() else {
        return (rejection("SYMBOL_NOT_FOUND"), Vec::new());
    };
    if !spec.schedule.is_open(now) {
        return (rejection("MARKET_CLOSED"), Vec::new());
    }
    match st.modes.get(&spec.id) {
        Some(TradingMode::Disabled) => return (rejection("TRADING_DISABLED"), Vec::new()),
        Some(TradingMode::CloseOnly) if order.position_to_close.is_none() => {
            return (rejection("TRADING_DISABLED"), Vec::new());
        }
        _ => {}
    }
    let bad_volume = order.volume < spec.min_volume
        || order.volume > spec.max_volume
        || (spec.step_volume.is_positive() && order.volume.raw() % spec.step_volume.raw() != 0);
    if bad_volume {
        return (rejection("TRADING_BAD_VOLUME"), Vec::new());
    }
    let Some(quote) = st.quotes.get(&order.symbol).copied() else {
        return (rejection("NO_QUOTES"), Vec::new());
    };
    let order_id = next_id(st);
    let accepted = ExecutionReport {
        kind: ExecutionKind::Accepted,
        order_id: Some(order_id),
        client_order_id: Some(order.client_order_id.clone()),
        position: None,
        position_closed: false,
        fill: None,
        error_code: None,
    };
    if let Some(target) = order.position_to_close {
        let Some(p) = st.positions.get(&target).cloned() else {
            return (rejection("POSITION_NOT_FOUND"), Vec::new());
        };
        if p.side == order.side || bad_close_volume(Some(&spec), p.volume, order.volume) {
            return (rejection("TRADING_BAD_VOLUME"), Vec::new());
        }
        let price = exit_price(p.side, quote);
        return match close_in_parts(
            st,
            target,
            order.volume,
            price,
            now,
            Some((order_id, Some(order.client_order_id.clone()))),
        ) {
            Ok(reports) => {
                let outcome = outcome_of(reports[0].clone());
                let mut all = vec![(accepted, false)];
                all.extend(reports.into_iter().enumerate().map(|(i, r)| (r, i == 0)));
                (outcome, all)
            }
            Err(e) => (rejection(&e.to_string()), Vec::new()),
        };
    }
    let price = match order.side {
        Side::Buy => quote.ask,
        Side::Sell => quote.bid,
    };
    let sign = match order.side {
        Side::Buy => 1,
        Side::Sell => -1,
    };
    let level = |distance: Option<Price>, direction: i64| {
        distance.map(|d| Price(price.0 + direction * d.0).round_to_digits(spec.digits))
    };
    let mut position = BrokerPosition {
        id: PositionId(next_id(st)),
        symbol: order.symbol,
        side: order.side,
        volume: Volume::ZERO,
        entry_price: price,
        open_time: now,
        stop_loss: level(order.relative_stop_loss, -sign),
        take_profit: level(order.relative_take_profit, sign),
        label: Some(order.label.clone()),
        client_order_id: Some(order.client_order_id.clone()),
        swap: Money::zero(st.balance.digits),
        commission: Money::zero(st.balance.digits),
    };
    let parts = split_volume(st.partial_deals, order.volume, spec.step_volume);
    let last = parts.len() - 1;
    let mut reports = vec![(accepted.clone(), false)];
    let mut outcome = None;
    for (i, part) in parts.into_iter().enumerate() {
        position.volume = Volume(position.volume.raw() + part.raw());
        let fill = Fill {
            deal_id: next_id(st),
            order_id,
            position_id: position.id,
            client_order_id: Some(order.client_order_id.clone()),
            symbol: order.symbol,
            side: order.side,
            volume: part,
            price,
            time: now,
            commission: Money::zero(st.balance.digits),
            close: None,
        };
        st.positions.insert(position.id, position.clone());
        st.deals.push(fill.clone());
        let report = ExecutionReport {
            kind: if i == last {
                ExecutionKind::Filled
            } else {
                ExecutionKind::PartialFill
            },
            fill: Some(fill),
            position: Some(position.clone()),
            ..accepted.clone()
        };
        if i == 0 {
            outcome = Some(outcome_of(report.clone()));
        }
        reports.push((report, i == 0));
    }
    (
        outcome.unwrap_or_else(|| rejection("ORDER_REJECTED")),
        reports,
    )
}

/// Closes `volume` of a position at `price`, books the deal and the PnL, and reports it.
fn close_in_state(
    st: &mut FakeState,
    id: PositionId,
    volume: Volume,
    price: Price,
    now: Timestamp,
    order: Option<(i64, Option<ClientOrderId>)>,
) -> Result<ExecutionReport, BrokerError> {
    let digits = st.balance.digits;
    let mut p = st
        .positions
        .get(&id)
        .cloned()
        .ok_or_else(|| refused("close position", "POSITION_NOT_FOUND"))?;
    let overflow = || BrokerError::BadValue("profit overflows".into());
    let rate = st
        .rate(p.symbol)
        .ok_or_else(|| refused("close position", "NO_QUOTES"))?;
    let gross = price_move_e7(p.side, p.entry_price, price, volume)
        .and_then(|e7| rate.convert_e7(e7, digits))
        .ok_or_else(overflow)?;
    // The closed share of the swap and commission charged on the position is realized with it.
    let share = |m: Money| -> Option<Money> {
        let part =
            i128::from(m.minor) * i128::from(volume.raw()) / i128::from(p.volume.raw().max(1));
        Some(Money::new(i64::try_from(part).ok()?, m.digits))
    };
    let (swap, commission) = (
        share(p.swap).ok_or_else(overflow)?,
        share(p.commission).ok_or_else(overflow)?,
    );
    p.swap = p.swap.checked_sub(swap).ok_or_else(overflow)?;
    p.commission = p.commission.checked_sub(commission).ok_or_else(overflow)?;
    let net = gross
        .checked_add(swap)
        .and_then(|m| m.checked_add(commission))
        .ok_or_else(overflow)?;
    st.balance = st
        .balance
        .checked_add(net)
        .and_then(|b| b.rescale(digits))
        .ok_or_else(|| BrokerError::BadValue("balance overflows".into()))?;
    let (order_id, client_order_id) = match order {
        Some((o, c)) => (o, c),
        None => (next_id(st), None),
    };
    let fill = Fill {
        deal_id: next_id(st),
        order_id,
        position_id: id,
        client_order_id: client_order_id.clone(),
        symbol: p.symbol,
        side: p.side.opposite(),
        volume,
        price,
        time: now,
        commission: Money::zero(digits),
        close: Some(DealCloseDetail {
            entry_price: p.entry_price,
            gross_profit: gross,
            swap,
            commission,
            balance: st.balance,
            closed_volume: volume,
            close_reason: None,
        }),
    };
    st.deals.push(fill.clone());
    p.volume = Volume(p.volume.raw() - volume.raw());
    let closed = !p.volume.is_positive();
    if closed {
        st.positions.remove(&id);
    } else {
        st.positions.insert(id, p.clone());
    }
    Ok(ExecutionReport {
        kind: ExecutionKind::Filled,
        order_id: Some(order_id),
        client_order_id,
        position: Some(p),
        position_closed: closed,
        fill: Some(fill),
        error_code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{FixedClock, TradingSchedule};

    const PALM: SymbolId = SymbolId(310);

    fn spec() -> SymbolSpec {
        SymbolSpec {
            id: PALM,
            name: "PALMOIL".into(),
            digits: 0,
            pip_position: 0,
            lot_size: Volume(2_500),
            min_volume: Volume(100),
            max_volume: Volume(100_000),
            step_volume: Volume(100),
            schedule: TradingSchedule::always_open(),
            commission: None,
        }
    }

    fn broker() -> FakeBroker {
        let b = FakeBroker::new(
            Arc::new(FixedClock::new(Timestamp(1_763_950_000_000))),
            Money::new(1_000_000, 2),
        );
        b.add_symbol(spec());
        b
    }

    fn order(side: Side, volume: i64) -> OrderRequest {
        OrderRequest {
            client_order_id: ClientOrderId::new("pob-1").unwrap(),
            symbol: PALM,
            side,
            volume: Volume(volume),
            relative_stop_loss: Some(Price(4_000_000)),
            relative_take_profit: Some(Price(8_000_000)),
            label: "pob pob-1".into(),
            position_to_close: None,
        }
    }

    #[tokio::test]
    async fn resolves_case_insensitively_and_never_defaults() {
        let b = broker();
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let spec = b
            .resolve_symbol(&names(&["FCPO", "palmoil"]))
            .await
            .unwrap();
        assert_eq!(spec.id, PALM);
        let err = b
            .resolve_symbol(&names(&["FCPO", "CPO"]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BrokerError::SymbolNotFound {
                tried: names(&["FCPO", "CPO"]),
                listed: 1
            }
        );
    }

    #[tokio::test]
    async fn fills_at_the_quote_with_absolute_protection_and_closes_with_pnl() {
        let b = broker();
        let mut events = b.take_events().unwrap();
        assert!(b.take_events().is_none());
        b.subscribe_quotes(PALM).await.unwrap();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        assert!(matches!(events.try_next(), Some(BrokerEvent::Quote(_))));

        let OrderOutcome::Filled(fill) = b.place_order(&order(Side::Buy, 200)).await.unwrap()
        else {
            panic!("not filled")
        };
        assert_eq!(fill.fill.price, Price(412_500_000));
        let pos = fill.position.unwrap();
        assert_eq!(pos.stop_loss, Some(Price(408_500_000)));
        assert_eq!(pos.take_profit, Some(Price(420_500_000)));
        let kinds: Vec<_> = std::iter::from_fn(|| events.try_next())
            .map(|e| match e {
                BrokerEvent::Execution(r) => r.kind,
                other => panic!("{other:?}"),
            })
            .collect();
        // Like the client: the fill answers the order and is not repeated on the stream.
        assert_eq!(kinds, vec![ExecutionKind::Accepted]);

        // Price rises 10 MYR: closing half at the bid books 10 x 1 = +10.00.
        b.set_quote(PALM, Price(413_500_000), Price(413_700_000));
        let OrderOutcome::Filled(close) = b.close_position(pos.id, Volume(100)).await.unwrap()
        else {
            panic!("close not filled")
        };
        let detail = close.fill.close.unwrap();
        assert_eq!(detail.gross_profit, Money::new(1_000, 2));
        assert!(!close.position_closed);
        assert_eq!(b.balance(), Money::new(1_001_000, 2));
        assert_eq!(
            b.open_state().await.unwrap().positions[0].volume,
            Volume(100)
        );
    }

    #[tokio::test]
    async fn rejects_like_the_broker() {
        let b = broker();
        let r = b.place_order(&order(Side::Buy, 100)).await.unwrap();
        assert_eq!(r, rejection("NO_QUOTES"));
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        let r = b.place_order(&order(Side::Buy, 150)).await.unwrap();
        assert_eq!(r, rejection("TRADING_BAD_VOLUME"));
        b.script_next_order(FakeOrderScript::Reject("NOT_ENOUGH_MONEY".into()));
        let r = b.place_order(&order(Side::Buy, 100)).await.unwrap();
        assert_eq!(r, rejection("NOT_ENOUGH_MONEY"));
        assert!(b.positions().is_empty());
        assert_eq!(b.orders_sent().len(), 3);
    }

    #[tokio::test]
    async fn a_lost_answer_is_unknown_but_reconcile_finds_the_position() {
        let b = broker();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        b.script_next_order(FakeOrderScript::ExecuteThenLoseAnswer);
        let err = b.place_order(&order(Side::Sell, 100)).await.unwrap_err();
        assert!(err.needs_reconcile());
        let snap = b.snapshot(Timestamp(0), Timestamp(i64::MAX)).await.unwrap();
        assert_eq!(snap.positions.len(), 1);
        assert_eq!(snap.positions[0].entry_price, Price(412_300_000));
        assert_eq!(snap.deals.len(), 1);
    }

    #[tokio::test]
    async fn stop_loss_triggers_on_a_quote() {
        let b = broker();
        let mut events = b.take_events().unwrap();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        b.place_order(&order(Side::Buy, 100)).await.unwrap();
        b.set_quote(PALM, Price(408_000_000), Price(408_200_000));
        assert!(b.positions().is_empty());
        let last = std::iter::from_fn(|| events.try_next()).last().unwrap();
        let BrokerEvent::Execution(report) = last else {
            panic!("{last:?}")
        };
        assert!(report.position_closed);
        let detail = report.fill.unwrap().close.unwrap();
        assert_eq!(detail.close_reason, Some(CloseReason::StopLoss));
        // Long 1 unit from 4125 to 4080: -45.00.
        assert_eq!(detail.gross_profit, Money::new(-4_500, 2));
    }

    #[tokio::test]
    async fn history_deals_carry_the_client_order_id_of_the_order_that_made_them() {
        let b = broker();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        let OrderOutcome::Filled(first) = b.place_order(&order(Side::Buy, 100)).await.unwrap()
        else {
            panic!("not filled")
        };
        let closer = OrderRequest {
            client_order_id: ClientOrderId::new("pob-2").unwrap(),
            position_to_close: Some(first.fill.position_id),
            ..order(Side::Sell, 100)
        };
        b.place_order(&closer).await.unwrap();
        let third = OrderRequest {
            client_order_id: ClientOrderId::new("pob-3").unwrap(),
            ..order(Side::Buy, 100)
        };
        b.place_order(&third).await.unwrap();
        // The stop loss closes the third order's position: the broker's order, no id of ours.
        b.set_quote(PALM, Price(408_000_000), Price(408_200_000));
        assert!(b.positions().is_empty());
        let deals = b.deals(Timestamp(0), Timestamp(i64::MAX)).await.unwrap();
        let ids: Vec<Option<&str>> = deals
            .iter()
            .map(|d| d.client_order_id.as_ref().map(ClientOrderId::as_str))
            .collect();
        assert_eq!(ids, vec![Some("pob-1"), Some("pob-2"), Some("pob-3"), None]);
        assert_eq!(deals[1].position_id, first.fill.position_id);
        assert!(deals[3].close.is_some());
    }

    #[tokio::test]
    async fn partial_fills_answer_with_the_first_deal_and_stream_the_rest() {
        let b = broker();
        let mut events = b.take_events().unwrap();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        b.set_partial_fills(2);
        let OrderOutcome::Filled(first) = b.place_order(&order(Side::Buy, 300)).await.unwrap()
        else {
            panic!("not filled")
        };
        assert!(first.partial);
        assert_eq!(first.fill.volume, Volume(200));
        assert_eq!(first.position.as_ref().unwrap().volume, Volume(200));
        let reports: Vec<ExecutionReport> = std::iter::from_fn(|| events.try_next())
            .filter_map(|e| match e {
                BrokerEvent::Execution(r) => Some(*r),
                _ => None,
            })
            .collect();
        let kinds: Vec<_> = reports.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![ExecutionKind::Accepted, ExecutionKind::Filled]);
        assert_eq!(reports[1].fill.as_ref().unwrap().volume, Volume(100));
        assert_eq!(reports[1].position.as_ref().unwrap().volume, Volume(300));
        // The close fills in two deals too, under one order: the position shrinks, then closes.
        let id = first.fill.position_id;
        let OrderOutcome::Filled(close) = b.close_position(id, Volume(300)).await.unwrap() else {
            panic!("close not filled")
        };
        assert!(close.partial && !close.position_closed);
        let rest: Vec<ExecutionReport> = std::iter::from_fn(|| events.try_next())
            .filter_map(|e| match e {
                BrokerEvent::Execution(r) if r.fill.is_some() => Some(*r),
                _ => None,
            })
            .collect();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].position_closed);
        assert_eq!(rest[0].fill.as_ref().unwrap().order_id, close.fill.order_id);
        assert!(b.positions().is_empty());
    }

    #[tokio::test]
    async fn symbol_changes_and_cash_movements_are_announced() {
        let b = broker();
        let mut events = b.take_events().unwrap();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        b.set_trading_mode(PALM, TradingMode::Disabled);
        assert_eq!(
            events.try_next(),
            Some(BrokerEvent::SymbolChanged {
                symbols: vec![PALM]
            })
        );
        let state = b.symbol_state(PALM, "PALMOIL").await.unwrap();
        assert_eq!(state.mode, TradingMode::Disabled);
        let OrderOutcome::Rejected(r) = b.place_order(&order(Side::Buy, 100)).await.unwrap() else {
            panic!("a suspended symbol traded")
        };
        assert_eq!(r.code, "TRADING_DISABLED");
        b.set_trading_mode(PALM, TradingMode::Enabled);
        b.change_symbol(SymbolSpec {
            min_volume: Volume(200),
            ..spec()
        });
        let state = b.symbol_state(PALM, "PALMOIL").await.unwrap();
        assert_eq!(
            (state.mode, state.spec.min_volume),
            (TradingMode::Enabled, Volume(200))
        );
        let balance = b.deposit(Money::new(-5_000, 2)).unwrap();
        assert_eq!(balance, Money::new(995_000, 2));
        let last = std::iter::from_fn(|| events.try_next()).last();
        assert_eq!(last, Some(BrokerEvent::AccountChanged { balance }));
    }

    #[tokio::test]
    async fn a_restarted_stream_gets_later_events_and_replays_are_exact() {
        let b = broker();
        let mut first = b.take_events().unwrap();
        b.set_quote(PALM, Price(412_300_000), Price(412_500_000));
        b.place_order(&order(Side::Buy, 100)).await.unwrap();
        // The acceptance went on the stream; the fill answered the call.
        let reports = b.executions();
        assert_eq!(reports.len(), 1);
        b.restart_events();
        let mut second = b.take_events().unwrap();
        assert!(b.take_events().is_none());
        b.inject_event(BrokerEvent::Execution(Box::new(reports[0].clone())));
        assert_eq!(
            second.try_next(),
            Some(BrokerEvent::Execution(Box::new(reports[0].clone())))
        );
        // The old stream keeps what was queued before the restart, and nothing after.
        assert_eq!(std::iter::from_fn(|| first.try_next()).count(), 1);
        assert_eq!(b.executions().len(), 2);
    }

    #[tokio::test]
    async fn a_dropped_link_refuses_requests_and_asks_to_reconcile() {
        let b = broker();
        let mut events = b.take_events().unwrap();
        b.set_connected(false);
        assert_eq!(b.open_state().await.unwrap_err(), BrokerError::NotConnected);
        b.set_connected(true);
        assert!(matches!(
            events.try_next(),
            Some(BrokerEvent::Disconnected { .. })
        ));
        assert_eq!(events.try_next(), Some(BrokerEvent::Reconnected));
    }
}
