//! Conformance of `FakeBroker` (the in-memory broker the bot's engine tests trade through) with the
//! real `CTraderClient` talking TLS to the simulated cTrader broker on loopback: ONE scenario,
//! generic over `Broker`, runs against both and asserts the behaviour the bot relies on (symbol
//! lookup, fills and rejections, protection levels, open state, closes, the deal history and the
//! balance). Where the two legitimately differ (the simulator's price moves by itself, converts
//! MYR profit into the USD account and charges commission; the fake does neither) the scenario
//! asserts relationships rather than exact amounts. Every wait is bounded.

// Test helpers panic on purpose: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::within;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctrader_client::{
    Broker, BrokerError, BrokerEvent, BrokerEvents, CTraderClient, ExecutionKind, FakeBroker,
    OrderFill, OrderOutcome, TradingMode,
};
use ctrader_sim::{
    CertificateSource, MarketHours, PALM_OIL_SYMBOL_ID, PartialFills, SimConfig, SimHandle,
    Simulator,
};
use domain::{
    ClientOrderId, FixedClock, Money, OrderRequest, PositionId, Price, Side, SymbolId, SymbolSpec,
    Timestamp, Volume,
};
use tempfile::TempDir;

const PALM: SymbolId = SymbolId(PALM_OIL_SYMBOL_ID);
/// One MYR in price units (1/100000).
const MYR: i64 = 100_000;
/// Where the scenario opens (4,000 MYR/t) and where it moves the market before closing.
const ENTRY_MID: Price = Price(4_000 * MYR);
const EXIT_MID: Price = Price(4_060 * MYR);
/// Protection distances: far enough that the 60 MYR move triggers neither.
const STOP_DISTANCE: Price = Price(100 * MYR);
const TARGET_DISTANCE: Price = Price(200 * MYR);

/// A broker plus the means to move its market, so one scenario drives both implementations.
trait Venue {
    /// The broker under test.
    type B: Broker;
    /// Which implementation, for assertion messages.
    const NAME: &'static str;
    fn broker(&self) -> &Self::B;
    /// The broker's time now (deal times are stamped with it).
    fn now(&self) -> Timestamp;
    /// The bid and ask the broker would trade at right now.
    fn quote(&self) -> (Price, Price);
    /// Moves the market's mid to about `mid` and returns once the broker trades near it.
    async fn move_mid(&self, mid: Price);
    /// Market orders fill in two deals (`true`) or whole.
    fn partial_fills(&self, on: bool);
    /// Suspends (`false`) or resumes (`true`) trading of palm oil.
    fn tradable(&self, on: bool);
    /// Deposits `minor` units of the account's money.
    fn deposit(&self, minor: i64);
}

/// The real client against the simulator.
struct Real {
    client: CTraderClient,
    sim: SimHandle,
    _dir: TempDir,
}

impl Real {
    async fn start() -> Real {
        let dir = tempfile::tempdir().unwrap();
        let config = SimConfig {
            certificates: CertificateSource::Directory(dir.path().join("certs")),
            market_hours: MarketHours::AlwaysOpen,
            // Little history: the scenario needs no bars, and generating them costs start-up time.
            history: Duration::from_secs(3_600),
            tick_interval: Duration::from_millis(20),
            ..SimConfig::default()
        };
        let sim = within("simulator start", Simulator::start(config))
            .await
            .unwrap();
        let client = common::connect(&sim).await;
        Real {
            client,
            sim,
            _dir: dir,
        }
    }
}

impl Venue for Real {
    type B = CTraderClient;
    const NAME: &'static str = "CTraderClient+Simulator";

    fn partial_fills(&self, on: bool) {
        let mode = if on {
            PartialFills::Deals(2)
        } else {
            PartialFills::Off
        };
        self.sim.faults().partial_fills(mode).unwrap();
    }

    fn tradable(&self, on: bool) {
        if on {
            self.sim.resume_trading(PALM_OIL_SYMBOL_ID).unwrap();
        } else {
            self.sim.suspend_trading(PALM_OIL_SYMBOL_ID).unwrap();
        }
    }

    fn deposit(&self, minor: i64) {
        self.sim.deposit(minor).unwrap();
    }

    fn broker(&self) -> &CTraderClient {
        &self.client
    }

    fn now(&self) -> Timestamp {
        self.sim.sim_time()
    }

    fn quote(&self) -> (Price, Price) {
        let (bid, ask) = self.sim.quote(PALM_OIL_SYMBOL_ID).unwrap();
        (Price(bid), Price(ask))
    }

    async fn move_mid(&self, mid: Price) {
        self.sim
            .set_mid_price(PALM_OIL_SYMBOL_ID, mid.raw())
            .unwrap();
        // The jump takes effect on the next simulated second; the path then wanders a tick or two.
        within("simulated price reaches the new mid", async {
            loop {
                let (bid, ask) = self.quote();
                if (Price::mid(bid, ask).raw() - mid.raw()).abs() <= 5 * MYR {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// The in-memory fake, listing exactly the symbol the simulator listed.
struct Fake {
    broker: FakeBroker,
    clock: Arc<FixedClock>,
    quote: Mutex<(Price, Price)>,
}

impl Fake {
    fn new(spec: SymbolSpec, start: Timestamp, balance: Money) -> Fake {
        let clock = Arc::new(FixedClock::new(start));
        let broker = FakeBroker::new(clock.clone(), balance);
        broker.add_symbol(spec);
        Fake {
            broker,
            clock,
            quote: Mutex::new((Price::ZERO, Price::ZERO)),
        }
    }
}

impl Venue for Fake {
    type B = FakeBroker;
    const NAME: &'static str = "FakeBroker";

    fn partial_fills(&self, on: bool) {
        self.broker.set_partial_fills(if on { 2 } else { 0 });
    }

    fn tradable(&self, on: bool) {
        let mode = if on {
            TradingMode::Enabled
        } else {
            TradingMode::Disabled
        };
        self.broker.set_trading_mode(PALM, mode);
    }

    fn deposit(&self, minor: i64) {
        let digits = self.broker.balance().digits;
        self.broker.deposit(Money::new(minor, digits)).unwrap();
    }

    fn broker(&self) -> &FakeBroker {
        &self.broker
    }

    fn now(&self) -> Timestamp {
        use domain::Clock;
        self.clock.now()
    }

    fn quote(&self) -> (Price, Price) {
        *self.quote.lock().unwrap()
    }

    async fn move_mid(&self, mid: Price) {
        // A second passes, as it does while the simulator's price moves; the spread is the
        // simulator's quiet palm oil spread (2 MYR).
        self.clock.advance(1_000);
        let (bid, ask) = (Price(mid.raw() - MYR), Price(mid.raw() + MYR));
        *self.quote.lock().unwrap() = (bid, ask);
        self.broker.set_quote(PALM, bid, ask);
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A market order as the bot sends it: the label is the client order id.
fn order(id: &str, side: Side, volume: Volume) -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::new(id).unwrap(),
        symbol: PALM,
        side,
        volume,
        relative_stop_loss: Some(STOP_DISTANCE),
        relative_take_profit: Some(TARGET_DISTANCE),
        label: id.to_owned(),
        position_to_close: None,
    }
}

/// The opposite-side order that closes `volume` of `position`, as the bot's exit sends it.
fn closing_order(id: &str, position: PositionId, volume: Volume) -> OrderRequest {
    OrderRequest {
        relative_stop_loss: None,
        relative_take_profit: None,
        position_to_close: Some(position),
        ..order(id, Side::Sell, volume)
    }
}

fn filled<V: Venue>(outcome: Result<OrderOutcome, BrokerError>, what: &str) -> OrderFill {
    match outcome {
        Ok(OrderOutcome::Filled(fill)) => fill,
        other => panic!("{}: {what} not filled: {other:?}", V::NAME),
    }
}

fn rejection_code<V: Venue>(outcome: Result<OrderOutcome, BrokerError>, what: &str) -> String {
    match outcome {
        Ok(OrderOutcome::Rejected(r)) => r.code,
        other => panic!("{}: {what} not rejected: {other:?}", V::NAME),
    }
}

/// Asserts `price` is the ask (or the bid) of the quote before or after the order: the simulator's
/// price may step once while an order is in flight, the fake's never does.
fn assert_traded_at<V: Venue>(what: &str, price: Price, before: Price, after: Price) {
    assert!(
        before.min(after) <= price && price <= before.max(after),
        "{}: {what} at {price:?}, the quote was {before:?} then {after:?}",
        V::NAME
    );
}

/// The next event that `pick` accepts, skipping quotes and progress.
async fn next_matching<T>(
    events: &mut BrokerEvents,
    what: &str,
    mut pick: impl FnMut(BrokerEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.next().await {
                Some(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                None => panic!("the event stream ended"),
            }
        }
    })
    .await
}

/// What a real server does that the first scenario never shows: an order filled in two deals
/// (the first answers it, the second arrives on the stream with the position's full volume), a
/// close in two deals whose net results add up to the balance change, a suspended symbol that
/// refuses orders and says so, and a deposit that announces the new balance.
async fn real_server_cases<V: Venue>(v: &V, events: &mut BrokerEvents, spec: &SymbolSpec) {
    let b = v.broker();
    let name = V::NAME;
    v.partial_fills(true);
    let volume = Volume(spec.step_volume.raw() * 2);
    let first = filled::<V>(
        within(
            "open in parts",
            b.place_order(&order("pf-open", Side::Buy, volume)),
        )
        .await,
        "open in parts",
    );
    assert!(first.partial, "{name}: {first:?}");
    assert_eq!(first.fill.volume, spec.step_volume, "{name}");
    let position = first.fill.position_id;
    let rest = next_matching(events, "the rest of the opening", |e| match e {
        BrokerEvent::Execution(r) if r.fill.as_ref().is_some_and(|f| f.position_id == position) => {
            Some(*r)
        }
        _ => None,
    })
    .await;
    assert_eq!(rest.kind, ExecutionKind::Filled, "{name}");
    assert_eq!(
        rest.fill.as_ref().unwrap().volume,
        spec.step_volume,
        "{name}"
    );
    assert_eq!(rest.position.as_ref().unwrap().volume, volume, "{name}");
    let before = within("balance", b.balance()).await.unwrap();
    let close = filled::<V>(
        within("close in parts", b.close_position(position, volume)).await,
        "close in parts",
    );
    assert!(close.partial && !close.position_closed, "{name}: {close:?}");
    let last = next_matching(events, "the rest of the close", |e| match e {
        BrokerEvent::Execution(r) if r.fill.as_ref().is_some_and(|f| f.position_id == position) => {
            Some(*r)
        }
        _ => None,
    })
    .await;
    assert!(last.position_closed, "{name}: {last:?}");
    let net = |f: &domain::Fill| domain::realized_pnl(f.close.as_ref().unwrap()).unwrap();
    let sum = net(&close.fill)
        .checked_add(net(last.fill.as_ref().unwrap()))
        .unwrap();
    let after = within("balance", b.balance()).await.unwrap();
    assert_eq!(after, before.checked_add(sum).unwrap(), "{name}");
    v.partial_fills(false);

    v.tradable(false);
    let changed = next_matching(events, "symbol change", |e| match e {
        BrokerEvent::SymbolChanged { symbols } => Some(symbols),
        _ => None,
    })
    .await;
    assert_eq!(changed, vec![PALM], "{name}");
    let state = within("symbol state", b.symbol_state(PALM, "PALMOIL"))
        .await
        .unwrap();
    assert_eq!(state.mode, TradingMode::Disabled, "{name}");
    let refused = within(
        "suspended order",
        b.place_order(&order("pf-off", Side::Buy, volume)),
    )
    .await;
    assert_eq!(
        rejection_code::<V>(refused, "suspended"),
        "TRADING_DISABLED",
        "{name}"
    );
    v.tradable(true);
    let state = within("symbol state", b.symbol_state(PALM, "PALMOIL"))
        .await
        .unwrap();
    assert_eq!(state.mode, TradingMode::Enabled, "{name}");
    assert_eq!(state.spec, *spec, "{name}");

    v.deposit(12_345);
    let balance = next_matching(events, "account change", |e| match e {
        BrokerEvent::AccountChanged { balance } => Some(balance),
        _ => None,
    })
    .await;
    assert_eq!(
        balance,
        after.checked_add(Money::new(12_345, after.digits)).unwrap(),
        "{name}"
    );
    assert_eq!(
        within("balance", b.balance()).await.unwrap(),
        balance,
        "{name}"
    );
}

/// What the two implementations are known to report differently; compared in the test below.
#[derive(Debug)]
struct Divergent {
    /// `client_order_id` of the position as `open_state` lists it.
    open_state_client_order_id: Option<ClientOrderId>,
    /// `client_order_id` of each deal as `deals` lists it, oldest first.
    deal_client_order_ids: Vec<Option<ClientOrderId>>,
    /// The opening deal's commission.
    opening_commission: Money,
}

/// The scenario: everything the bot relies on, asserted the same way for both brokers.
async fn scenario<V: Venue>(v: &V) -> (SymbolSpec, Divergent) {
    let b = v.broker();
    let name = V::NAME;
    let mut events = b
        .take_events()
        .expect("the event stream is handed out once");
    assert!(b.take_events().is_none(), "{name}: a second event stream");

    // Symbol lookup: case-insensitive, first candidate that exists; never a default.
    let spec = within(
        "resolve",
        b.resolve_symbol(&names(&["FCPO", "palmoil", "CPO"])),
    )
    .await
    .unwrap();
    assert_eq!((spec.id, spec.name.as_str()), (PALM, "PALMOIL"), "{name}");
    let missing = within(
        "resolve missing",
        b.resolve_symbol(&names(&["FCPO", "CPO"])),
    )
    .await;
    match &missing {
        Err(err @ BrokerError::SymbolNotFound { tried, listed }) => {
            assert_eq!(tried, &names(&["FCPO", "CPO"]), "{name}");
            assert!(*listed >= 1, "{name}: {listed}");
            assert!(!err.is_transient(), "{name}");
            assert!(err.to_string().contains("FCPO"), "{name}: {err}");
        }
        other => panic!("{name}: missing symbol gave {other:?}"),
    }
    let blank = within("resolve blank", b.resolve_symbol(&names(&["  "]))).await;
    assert!(
        matches!(blank, Err(BrokerError::InvalidRequest(_))),
        "{name}: blank candidates gave {blank:?}"
    );

    let opening_balance = within("balance", b.balance()).await.unwrap();
    v.move_mid(ENTRY_MID).await;
    let from = v.now();

    // Volumes the broker refuses: below the minimum, off the step. Nothing executes.
    let below_min = Volume(spec.min_volume.raw() / 2);
    let off_step = Volume(spec.min_volume.raw() + spec.step_volume.raw() / 2);
    for (id, volume) in [("cf-below", below_min), ("cf-offstep", off_step)] {
        let outcome = within("bad volume", b.place_order(&order(id, Side::Buy, volume))).await;
        assert_eq!(
            rejection_code::<V>(outcome, id),
            "TRADING_BAD_VOLUME",
            "{name}: {volume:?}"
        );
    }
    // A volume that is not positive never leaves the client.
    let zero = within(
        "zero volume",
        b.place_order(&order("cf-zero", Side::Buy, Volume::ZERO)),
    )
    .await;
    assert!(
        matches!(zero, Err(BrokerError::InvalidRequest(_))),
        "{name}: zero volume gave {zero:?}"
    );
    assert!(
        within("open state", b.open_state())
            .await
            .unwrap()
            .positions
            .is_empty(),
        "{name}"
    );

    // A market buy fills at the ask with our id, and the position carries absolute protection.
    let volume = Volume(spec.min_volume.raw() * 2);
    let (_, ask_before) = v.quote();
    let opened = within("open", b.place_order(&order("cf-open", Side::Buy, volume))).await;
    let (_, ask_after) = v.quote();
    let opened = filled::<V>(opened, "open");
    let fill = &opened.fill;
    assert_eq!(
        fill.client_order_id.as_ref().map(ClientOrderId::as_str),
        Some("cf-open"),
        "{name}"
    );
    assert_eq!(
        (fill.side, fill.volume, fill.symbol),
        (Side::Buy, volume, PALM),
        "{name}"
    );
    assert!(
        fill.close.is_none(),
        "{name}: an opening deal has no close details"
    );
    assert!(
        !opened.position_closed && !opened.partial,
        "{name}: {opened:?}"
    );
    assert_traded_at::<V>("buy", fill.price, ask_before, ask_after);
    let position = opened
        .position
        .clone()
        .expect("the fill names its position");
    let entry = fill.price;
    assert_eq!(position.id, fill.position_id, "{name}");
    assert_eq!(position.entry_price, entry, "{name}");
    assert_eq!(
        (position.side, position.volume),
        (Side::Buy, volume),
        "{name}"
    );
    assert_eq!(
        position.stop_loss,
        Some(Price(entry.raw() - STOP_DISTANCE.raw())),
        "{name}"
    );
    assert_eq!(
        position.take_profit,
        Some(Price(entry.raw() + TARGET_DISTANCE.raw())),
        "{name}"
    );
    assert_eq!(position.label.as_deref(), Some("cf-open"), "{name}");
    assert_eq!(
        position.client_order_id.as_ref().map(ClientOrderId::as_str),
        Some("cf-open"),
        "{name}: the fill's position names the order that opened it"
    );

    // Reconciliation finds it, marked as ours by the label.
    let open = within("open state", b.open_state()).await.unwrap();
    assert_eq!(open.positions.len(), 1, "{name}: {open:?}");
    let listed = &open.positions[0];
    assert_eq!(listed.id, position.id, "{name}");
    assert_eq!(listed.label.as_deref(), Some("cf-open"), "{name}");
    assert_eq!(
        (listed.entry_price, listed.volume),
        (entry, volume),
        "{name}"
    );
    assert_eq!(
        (listed.stop_loss, listed.take_profit),
        (position.stop_loss, position.take_profit),
        "{name}"
    );
    assert!(open.orders.is_empty(), "{name}: {open:?}");
    let open_state_client_order_id = listed.client_order_id.clone();

    // A partial close off the volume step is refused; the position is untouched.
    let bad_close = within(
        "off-step close",
        b.close_position(position.id, Volume(spec.step_volume.raw() / 2)),
    )
    .await;
    assert_eq!(
        rejection_code::<V>(bad_close, "off-step close"),
        "TRADING_BAD_VOLUME",
        "{name}"
    );
    let zero_close = within("zero close", b.close_position(position.id, Volume::ZERO)).await;
    assert!(
        matches!(zero_close, Err(BrokerError::InvalidRequest(_))),
        "{name}: zero-volume close gave {zero_close:?}"
    );

    // The price rises 60 MYR: half closes at the bid with a profit.
    v.move_mid(EXIT_MID).await;
    let half = spec.min_volume;
    let (bid_before, _) = v.quote();
    let partial = within("partial close", b.close_position(position.id, half)).await;
    let (bid_after, _) = v.quote();
    let partial = filled::<V>(partial, "partial close");
    assert_traded_at::<V>("partial close", partial.fill.price, bid_before, bid_after);
    assert!(!partial.position_closed, "{name}: {partial:?}");
    assert_eq!(
        (partial.fill.side, partial.fill.volume),
        (Side::Sell, half),
        "{name}"
    );
    assert_eq!(partial.fill.position_id, position.id, "{name}");
    assert_eq!(
        partial.fill.client_order_id, None,
        "{name}: a close request carries no id"
    );
    assert_eq!(
        partial.position.as_ref().map(|p| p.volume),
        Some(Volume(volume.raw() - half.raw())),
        "{name}"
    );
    let partial_detail = partial
        .fill
        .close
        .clone()
        .expect("a closing deal has close details");
    assert_eq!(partial_detail.entry_price, entry, "{name}");
    assert_eq!(partial_detail.closed_volume, half, "{name}");
    assert!(
        partial.fill.price > entry,
        "{name}: the bid rose above the entry"
    );
    assert!(
        partial_detail.gross_profit.minor > 0,
        "{name}: {partial_detail:?}"
    );

    // The rest closes with an opposite order naming the position, carrying our id.
    let (bid_before, _) = v.quote();
    let last = within(
        "closing order",
        b.place_order(&closing_order("cf-close", position.id, half)),
    )
    .await;
    let (bid_after, _) = v.quote();
    let last = filled::<V>(last, "closing order");
    assert_traded_at::<V>("final close", last.fill.price, bid_before, bid_after);
    assert!(last.position_closed, "{name}: {last:?}");
    assert_eq!(
        last.fill
            .client_order_id
            .as_ref()
            .map(ClientOrderId::as_str),
        Some("cf-close"),
        "{name}"
    );
    assert_eq!(
        (last.fill.side, last.fill.volume, last.fill.position_id),
        (Side::Sell, half, position.id),
        "{name}"
    );
    let last_detail = last
        .fill
        .close
        .clone()
        .expect("a closing deal has close details");
    assert_eq!(
        (last_detail.entry_price, last_detail.closed_volume),
        (entry, half),
        "{name}"
    );
    assert!(
        last_detail.gross_profit.minor > 0,
        "{name}: {last_detail:?}"
    );
    assert!(
        within("open state", b.open_state())
            .await
            .unwrap()
            .positions
            .is_empty(),
        "{name}"
    );

    // A market sell fills at the bid with its protection on the other side; closing it whole
    // buys at the ask, and the profit's sign follows the move from entry to exit.
    let (bid_before, _) = v.quote();
    let sold = within("sell", b.place_order(&order("cf-sell", Side::Sell, half))).await;
    let (bid_after, _) = v.quote();
    let sold = filled::<V>(sold, "sell");
    assert_traded_at::<V>("sell", sold.fill.price, bid_before, bid_after);
    let short_entry = sold.fill.price;
    let short = sold.position.clone().expect("the fill names its position");
    assert_eq!(
        (short.side, short.volume, short.entry_price),
        (Side::Sell, half, short_entry),
        "{name}"
    );
    assert_eq!(
        short.stop_loss,
        Some(Price(short_entry.raw() + STOP_DISTANCE.raw())),
        "{name}"
    );
    assert_eq!(
        short.take_profit,
        Some(Price(short_entry.raw() - TARGET_DISTANCE.raw())),
        "{name}"
    );
    let (_, ask_before) = v.quote();
    let covered = within("cover", b.close_position(short.id, half)).await;
    let (_, ask_after) = v.quote();
    let covered = filled::<V>(covered, "cover");
    assert_traded_at::<V>("cover", covered.fill.price, ask_before, ask_after);
    assert!(covered.position_closed, "{name}: {covered:?}");
    assert_eq!(
        (covered.fill.side, covered.fill.volume),
        (Side::Buy, half),
        "{name}"
    );
    let cover_detail = covered
        .fill
        .close
        .clone()
        .expect("a closing deal has close details");
    assert_eq!(
        (cover_detail.entry_price, cover_detail.closed_volume),
        (short_entry, half),
        "{name}"
    );
    // A short gains when the price falls.
    let fall = short_entry.raw() - covered.fill.price.raw();
    assert_eq!(
        cover_detail.gross_profit.minor.signum(),
        fall.signum(),
        "{name}: {cover_detail:?}"
    );

    // The history holds exactly these deals, oldest first, with the same close details.
    let to = v.now().plus_millis(1);
    let deals = within("deals", b.deals(from, to)).await.unwrap();
    let ids: Vec<i64> = deals.iter().map(|d| d.deal_id).collect();
    assert_eq!(
        ids,
        vec![
            fill.deal_id,
            partial.fill.deal_id,
            last.fill.deal_id,
            sold.fill.deal_id,
            covered.fill.deal_id
        ],
        "{name}: {deals:?}"
    );
    assert!(deals[0].close.is_none(), "{name}");
    assert_eq!(
        (deals[0].price, deals[0].side, deals[0].volume),
        (entry, Side::Buy, volume),
        "{name}"
    );
    assert_eq!(deals[1].close.as_ref(), Some(&partial_detail), "{name}");
    assert_eq!(deals[2].close.as_ref(), Some(&last_detail), "{name}");
    assert!(deals[3].close.is_none(), "{name}");
    assert_eq!(deals[4].close.as_ref(), Some(&cover_detail), "{name}");
    assert!(deals.windows(2).all(|w| w[0].time <= w[1].time), "{name}");

    // The balance moves by each closing deal's net profit, and matches what the deal reports.
    let net = |d: &domain::DealCloseDetail| {
        d.gross_profit
            .checked_add(d.commission)
            .and_then(|m| m.checked_add(d.swap))
            .unwrap()
    };
    let expected = opening_balance
        .checked_add(net(&partial_detail))
        .and_then(|m| m.checked_add(net(&last_detail)))
        .and_then(|m| m.checked_add(net(&cover_detail)))
        .unwrap();
    let balance = within("balance", b.balance()).await.unwrap();
    assert_eq!(balance, expected, "{name}: opened with {opening_balance:?}");
    assert_eq!(cover_detail.balance, balance, "{name}");

    // Each of those deals reached its owner once: as the answer to the call that asked for it,
    // never again on the event stream (which carried only the orders' progress).
    let answered: Vec<i64> = [&opened, &partial, &last, &sold, &covered]
        .iter()
        .map(|o| o.fill.deal_id)
        .collect();
    let streamed: Vec<i64> = std::iter::from_fn(|| events.try_next())
        .filter_map(|e| match e {
            BrokerEvent::Execution(r) => r.fill.map(|f| f.deal_id),
            _ => None,
        })
        .collect();
    assert!(
        streamed.iter().all(|d| !answered.contains(d)),
        "{name}: answered deals repeated on the stream: {streamed:?}"
    );

    real_server_cases(v, &mut events, &spec).await;

    let divergent = Divergent {
        open_state_client_order_id,
        deal_client_order_ids: deals.iter().map(|d| d.client_order_id.clone()).collect(),
        opening_commission: fill.commission,
    };
    (spec, divergent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_broker_behaves_like_the_client_against_the_simulator() {
    let real = Real::start().await;
    let opening_balance = within("balance", real.client.balance()).await.unwrap();
    let (real_spec, real_seen) = scenario(&real).await;

    // The fake lists exactly what the real broker listed and starts with the same account.
    let fake = Fake::new(real_spec.clone(), real.sim.sim_time(), opening_balance);
    let (fake_spec, fake_seen) = scenario(&fake).await;
    assert_eq!(fake_spec, real_spec);

    // cTrader's positions and deal lists carry no clientOrderId (the client may recover a deal's
    // from the order history); the fake always names ours. Wherever the real side names an id,
    // it must be the one the fake names.
    let id = |s: &str| Some(ClientOrderId::new(s).unwrap());
    assert_eq!(fake_seen.open_state_client_order_id, id("cf-open"));
    assert_eq!(
        fake_seen.deal_client_order_ids,
        vec![id("cf-open"), None, id("cf-close"), id("cf-sell"), None]
    );
    let real_ids = std::iter::once(&real_seen.open_state_client_order_id)
        .chain(&real_seen.deal_client_order_ids);
    let fake_ids = std::iter::once(&fake_seen.open_state_client_order_id)
        .chain(&fake_seen.deal_client_order_ids);
    for (real_id, fake_id) in real_ids.zip(fake_ids) {
        assert!(
            real_id.is_none() || real_id == fake_id,
            "real {real_id:?}, fake {fake_id:?}: {real_seen:?}"
        );
    }
    // The simulator charges commission (settled on close); the fake charges none.
    assert!(
        real_seen.opening_commission.minor < 0,
        "{:?}",
        real_seen.opening_commission
    );
    assert_eq!(fake_seen.opening_commission.minor, 0);
}
