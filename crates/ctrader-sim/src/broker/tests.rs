use super::*;
use crate::symbols::{
    MYR_ASSET_ID, MarketHours, PALM_OIL_SYMBOL_ID, USD_ASSET_ID, USD_MYR_SYMBOL_ID, catalog,
};

const ACCOUNT: i64 = 44_556_677;
const T0: Timestamp = Timestamp(1_763_950_000_000); // Monday 02:06 UTC
const PALM: i64 = PALM_OIL_SYMBOL_ID;

fn q(bid: i64, ask: i64) -> TwoSided {
    TwoSided {
        bid: bid * 100_000,
        ask: ask * 100_000,
    }
}

/// USDMYR at 4.4795/4.4805: mid 4.48, so 1 MYR = 0.2232142… USD.
const USDMYR: TwoSided = TwoSided {
    bid: 447_950,
    ask: 448_050,
};

fn broker(hours: &MarketHours) -> Broker {
    broker_in(hours, USD_ASSET_ID)
}

fn broker_in(hours: &MarketHours, deposit_asset: i64) -> Broker {
    let mut broker = Broker::new(&catalog("PALMOIL", hours));
    broker.open_account(ACCOUNT, 1_000_000, 2, deposit_asset, T0);
    assert!(broker.on_quote(USD_MYR_SYMBOL_ID, USDMYR, T0).is_empty());
    assert!(broker.on_quote(PALM, q(4123, 4125), T0).is_empty());
    broker
}

fn market(side: Side, volume: i64) -> NewOrder {
    NewOrder {
        account: ACCOUNT,
        symbol_id: PALM,
        kind: OrderKind::Market,
        side,
        volume,
        limit_price: None,
        stop_price: None,
        stop_loss: None,
        take_profit: None,
        relative_stop_loss: None,
        relative_take_profit: None,
        label: Some("pob".into()),
        comment: None,
        client_order_id: Some("pob-000042".into()),
        position_id: None,
        time_in_force: None,
        guaranteed_stop_loss: false,
    }
}

/// A 1 t market buy, changed by `change`.
fn buy_1t(change: impl FnOnce(&mut NewOrder)) -> NewOrder {
    let mut order = market(Side::Buy, 100);
    change(&mut order);
    order
}

/// Why the broker refuses `order` at T0 (the test fails when it accepts it).
fn refusal(broker: &mut Broker, order: NewOrder) -> Rejection {
    broker.place_order(order, T0).unwrap_err()
}

/// What each report of one request was, in order.
fn kinds_of(reports: &[Execution]) -> Vec<ExecutionKind> {
    reports.iter().map(|r| r.kind).collect()
}

fn balance(broker: &Broker) -> i64 {
    broker.account(ACCOUNT).unwrap().balance
}

/// Opens a 1 t long with SL 40 and TP 80 below/above the fill and returns its id.
fn open_long(broker: &mut Broker) -> i64 {
    let mut order = market(Side::Buy, 100);
    order.relative_stop_loss = Some(4_000_000);
    order.relative_take_profit = Some(8_000_000);
    let reports = broker.place_order(order, T0).unwrap();
    reports[1].position.as_ref().unwrap().id
}

#[test]
fn market_order_is_accepted_then_filled_at_the_ask_with_relative_protection() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let mut order = market(Side::Buy, 100);
    order.relative_stop_loss = Some(4_000_000);
    order.relative_take_profit = Some(8_000_000);
    let reports = broker.place_order(order, T0).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].kind, ExecutionKind::Accepted);
    assert_eq!(
        reports[0].position.as_ref().unwrap().state,
        PositionState::Created
    );
    assert_eq!(
        reports[0].order.as_ref().unwrap().state,
        OrderState::Accepted
    );
    let filled = &reports[1];
    assert_eq!(filled.kind, ExecutionKind::Filled);
    assert!(!filled.server_event);
    let position = filled.position.as_ref().unwrap();
    assert_eq!(position.id, 900_001);
    assert_eq!(position.state, PositionState::Open);
    assert_eq!(position.open_price, 412_500_000, "a buy fills at the ask");
    assert_eq!(position.stop_loss, Some(408_500_000));
    assert_eq!(position.take_profit, Some(420_500_000));
    assert_eq!(position.label.as_deref(), Some("pob"));
    assert!(position.commission < 0);
    let order = filled.order.as_ref().unwrap();
    assert_eq!(order.state, OrderState::Filled);
    assert_eq!(order.client_order_id.as_deref(), Some("pob-000042"));
    assert_eq!(order.position_id, Some(position.id));
    let deal = filled.deal.as_ref().unwrap();
    assert_eq!(
        (deal.volume, deal.filled_volume, deal.execution_price),
        (100, 100, 412_500_000)
    );
    assert!(deal.close.is_none());
    // Opening does not move the balance: commission is realised with the close.
    assert_eq!(balance(&broker), 1_000_000);
    let (positions, orders) = broker.reconcile(ACCOUNT);
    assert_eq!(positions.len(), 1);
    assert!(orders.is_empty());
}

#[test]
fn bad_volumes_are_refused() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    for volume in [0, 50, 150, 250_100] {
        let err = broker
            .place_order(market(Side::Buy, volume), T0)
            .unwrap_err();
        assert_eq!(err.code, "TRADING_BAD_VOLUME", "volume {volume}");
        assert_eq!(err.reply, RejectAs::OrderError);
    }
    assert!(broker.reconcile(ACCOUNT).0.is_empty());
}

#[test]
fn closed_market_refuses_orders() {
    // 2025-11-24 02:06 UTC is before the 02:30 palm oil open.
    let mut broker = broker(&MarketHours::Realistic);
    let err = refusal(&mut broker, market(Side::Buy, 100));
    assert_eq!(err.code, "MARKET_CLOSED");
    assert_eq!(err.reply, RejectAs::OrderError);
    let open = Timestamp(T0.0 + 30 * 60_000);
    assert!(broker.place_order(market(Side::Buy, 100), open).is_ok());
}

#[test]
fn absolute_protection_on_market_orders_and_long_strings_are_request_errors() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let err = refusal(&mut broker, buy_1t(|o| o.stop_loss = Some(400_000_000)));
    assert_eq!(
        (err.code.as_str(), err.reply),
        ("INVALID_REQUEST", RejectAs::ErrorRes)
    );
    let long_id = buy_1t(|o| o.client_order_id = Some("x".repeat(51)));
    assert_eq!(refusal(&mut broker, long_id).code, "INVALID_REQUEST");
    let no_stop = buy_1t(|o| o.relative_stop_loss = Some(0));
    assert_eq!(refusal(&mut broker, no_stop).code, "TRADING_BAD_STOPS");
    let unknown = buy_1t(|o| o.symbol_id = 999);
    assert_eq!(refusal(&mut broker, unknown).code, "SYMBOL_NOT_FOUND");
}

#[test]
fn margin_is_checked() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    // 10,000 USD at 1:10 carries about 108 t of palm oil (924 USD notional per tonne).
    let err = refusal(&mut broker, market(Side::Buy, 11_000));
    assert_eq!(err.code, "NOT_ENOUGH_MONEY");
    assert!(broker.place_order(market(Side::Buy, 10_000), T0).is_ok());
    // The first position's margin is used: another 10 t no longer fits.
    let err = refusal(&mut broker, market(Side::Sell, 1_000));
    assert_eq!(err.code, "NOT_ENOUGH_MONEY");
}

#[test]
fn stop_loss_closes_the_position_on_the_price_path() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let id = open_long(&mut broker);
    // Bid 4100: above the 4085 stop.
    assert!(
        broker
            .on_quote(PALM, q(4100, 4102), T0.plus_millis(1000))
            .is_empty()
    );
    let at = T0.plus_millis(2000);
    let reports = broker.on_quote(PALM, q(4084, 4086), at);
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.server_event));
    let filled = &reports[1];
    assert_eq!(filled.kind, ExecutionKind::Filled);
    let order = filled.order.as_ref().unwrap();
    assert_eq!(order.kind, OrderKind::StopLossTakeProfit);
    assert!(order.closing);
    let position = filled.position.as_ref().unwrap();
    assert_eq!(
        (position.id, position.state, position.volume),
        (id, PositionState::Closed, 0)
    );
    let close = filled.deal.as_ref().unwrap().close.as_ref().unwrap();
    assert_eq!(close.entry_price, 412_500_000);
    assert_eq!(close.closed_volume, 100);
    // 1 t × -41 MYR / 4.48 = -9.15 USD.
    assert_eq!(close.gross_profit, -915);
    assert!((close.quote_to_deposit - 1.0 / 4.48).abs() < 1e-12);
    assert!(close.commission < 0);
    assert_eq!(close.balance, 1_000_000 - 915 + close.commission);
    assert_eq!(balance(&broker), close.balance);
    assert!(broker.reconcile(ACCOUNT).0.is_empty());
    // Nothing more happens on later prices.
    assert!(
        broker
            .on_quote(PALM, q(4000, 4002), at.plus_millis(1000))
            .is_empty()
    );
    let (deals, more) = broker.deals(ACCOUNT, T0, at, None);
    assert_eq!(deals.len(), 2);
    assert!(!more);
}

#[test]
fn take_profit_of_a_short_triggers_at_the_ask() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let mut order = market(Side::Sell, 200);
    order.relative_take_profit = Some(5_000_000);
    let reports = broker.place_order(order, T0).unwrap();
    let position = reports[1].position.as_ref().unwrap();
    assert_eq!(position.open_price, 412_300_000, "a sell fills at the bid");
    assert_eq!(position.take_profit, Some(407_300_000));
    assert!(
        broker
            .on_quote(PALM, q(4072, 4074), T0.plus_millis(1000))
            .is_empty()
    );
    let reports = broker.on_quote(PALM, q(4071, 4073), T0.plus_millis(2000));
    let close = reports[1].deal.as_ref().unwrap().close.as_ref().unwrap();
    // 2 t × 50 MYR / 4.48 = 22.32 USD.
    assert_eq!(close.gross_profit, 2_232);
}

#[test]
fn partial_then_full_close_realise_profit_and_keep_the_books_consistent() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let reports = broker.place_order(market(Side::Buy, 300), T0).unwrap();
    let id = reports[1].position.as_ref().unwrap().id;
    broker.on_quote(PALM, q(4135, 4137), T0.plus_millis(1000));
    let reports = broker
        .close_position(ACCOUNT, id, 100, T0.plus_millis(1000))
        .unwrap();
    let position = reports[1].position.as_ref().unwrap();
    assert_eq!(
        (position.state, position.volume),
        (PositionState::Open, 200)
    );
    let first = reports[1].deal.as_ref().unwrap().close.clone().unwrap();
    assert_eq!(first.gross_profit, 223, "1 t × 10 MYR / 4.48");
    let err = broker
        .close_position(ACCOUNT, id, 300, T0.plus_millis(1000))
        .unwrap_err();
    assert_eq!(err.code, "TRADING_BAD_VOLUME");
    let reports = broker
        .close_position(ACCOUNT, id, 200, T0.plus_millis(2000))
        .unwrap();
    let second = reports[1].deal.as_ref().unwrap().close.clone().unwrap();
    assert_eq!(
        reports[1].position.as_ref().unwrap().state,
        PositionState::Closed
    );
    let open_commission = broker.deals(ACCOUNT, T0, T0, None).0[0].commission;
    // Opening commission is realised in proportion to the closed volume.
    assert_eq!(
        first.commission + second.commission,
        open_commission
            + broker
                .deals(ACCOUNT, T0.plus_millis(1000), T0.plus_millis(2000), None)
                .0
                .iter()
                .map(|d| d.commission)
                .sum::<i64>()
    );
    assert_eq!(
        balance(&broker),
        1_000_000 + first.gross_profit + second.gross_profit + first.commission + second.commission
    );
    let err = broker
        .close_position(ACCOUNT, id, 100, T0.plus_millis(3000))
        .unwrap_err();
    assert_eq!(err.code, "POSITION_NOT_OPEN");
    let err = broker
        .close_position(ACCOUNT, 1, 100, T0.plus_millis(3000))
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.position_id),
        ("POSITION_NOT_FOUND", Some(1))
    );
    let err = broker
        .close_position(ACCOUNT + 1, id, 100, T0.plus_millis(3000))
        .unwrap_err();
    assert_eq!(
        err.code, "POSITION_NOT_FOUND",
        "another account's position is not found"
    );
}

#[test]
fn an_opposite_order_naming_the_position_closes_it() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let id = open_long(&mut broker);
    let mut order = market(Side::Sell, 100);
    order.position_id = Some(id);
    order.client_order_id = Some("close-1".into());
    let reports = broker.place_order(order, T0.plus_millis(500)).unwrap();
    assert_eq!(
        reports[1].position.as_ref().unwrap().state,
        PositionState::Closed
    );
    assert_eq!(
        reports[1]
            .order
            .as_ref()
            .unwrap()
            .client_order_id
            .as_deref(),
        Some("close-1")
    );
    let position = open_long(&mut broker);
    let same_side = buy_1t(|o| o.position_id = Some(position));
    assert_eq!(refusal(&mut broker, same_side).code, "INVALID_REQUEST");
}

#[test]
fn amending_protection_validates_the_side_of_the_market() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let id = open_long(&mut broker);
    let err = broker
        .amend_protection(ACCOUNT, id, Some(413_000_000), None, T0)
        .unwrap_err();
    assert_eq!(err.code, "TRADING_BAD_STOPS");
    let reports = broker
        .amend_protection(ACCOUNT, id, Some(411_000_000), None, T0)
        .unwrap();
    assert_eq!(reports[0].kind, ExecutionKind::Replaced);
    let position = reports[0].position.as_ref().unwrap();
    assert_eq!(
        (position.stop_loss, position.take_profit),
        (Some(411_000_000), None)
    );
    // The new stop triggers where the old one would not have.
    let reports = broker.on_quote(PALM, q(4110, 4112), T0.plus_millis(1000));
    assert_eq!(reports.len(), 2);
}

#[test]
fn limit_orders_wait_then_fill_and_can_be_cancelled() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let mut order = market(Side::Buy, 100);
    order.kind = OrderKind::Limit;
    order.limit_price = Some(410_000_000);
    order.relative_stop_loss = Some(2_000_000);
    let reports = broker.place_order(order.clone(), T0).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ExecutionKind::Accepted);
    let order_id = reports[0].order.as_ref().unwrap().id;
    assert_eq!(broker.reconcile(ACCOUNT).1.len(), 1);
    assert!(
        broker
            .on_quote(PALM, q(4100, 4102), T0.plus_millis(1000))
            .is_empty()
    );
    let reports = broker.on_quote(PALM, q(4098, 4100), T0.plus_millis(2000));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ExecutionKind::Filled);
    let position = reports[0].position.as_ref().unwrap();
    assert_eq!(position.open_price, 410_000_000);
    assert_eq!(position.stop_loss, Some(408_000_000));
    assert!(broker.reconcile(ACCOUNT).1.is_empty());
    assert_eq!(
        broker.cancel_order(ACCOUNT, order_id, T0).unwrap_err().code,
        "ORDER_NOT_FOUND"
    );

    let reports = broker.place_order(order, T0).unwrap();
    let order_id = reports[0].order.as_ref().unwrap().id;
    let reports = broker.cancel_order(ACCOUNT, order_id, T0).unwrap();
    assert_eq!(reports[0].kind, ExecutionKind::Cancelled);
    assert!(broker.reconcile(ACCOUNT).1.is_empty());
    assert!(
        broker
            .on_quote(PALM, q(4000, 4002), T0.plus_millis(3000))
            .iter()
            .all(|r| r.order.as_ref().unwrap().id != order_id)
    );
}

#[test]
fn closing_elsewhere_is_a_trader_event_without_a_request() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let id = open_long(&mut broker);
    let reports = broker.close_elsewhere(id, T0.plus_millis(100)).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(!reports[1].server_event);
    assert_eq!(reports[1].order.as_ref().unwrap().kind, OrderKind::Market);
    assert!(reports[1].deal.as_ref().unwrap().close.is_some());
    assert_eq!(
        broker.close_elsewhere(id, T0).unwrap_err().code,
        "POSITION_NOT_FOUND"
    );
}

#[test]
fn deal_list_pages_from_the_latest() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    for i in 0..3 {
        broker
            .place_order(market(Side::Buy, 100), T0.plus_millis(i * 1000))
            .unwrap();
    }
    let (deals, more) = broker.deals(ACCOUNT, T0, T0.plus_millis(10_000), Some(2));
    assert!(more);
    assert_eq!(deals.len(), 2);
    assert_eq!(deals[0].executed, T0.plus_millis(1000));
    let (deals, _) = broker.deals(ACCOUNT, T0.plus_millis(1), T0.plus_millis(1000), None);
    assert_eq!(deals.len(), 1);
    assert!(
        broker
            .deals(ACCOUNT + 1, T0, T0.plus_millis(10_000), None)
            .0
            .is_empty()
    );
}

/// The close in `reports` (the FILLED report's deal and its detail).
fn closing_deal(reports: &[Execution]) -> (Deal, CloseDetail) {
    let deal = reports
        .iter()
        .find(|r| r.kind == ExecutionKind::Filled)
        .and_then(|r| r.deal.clone())
        .unwrap();
    let detail = deal.close.clone().unwrap();
    (deal, detail)
}

#[test]
fn conversion_follows_the_live_usdmyr_mid() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let id = open_long(&mut broker);
    let later = T0.plus_millis(60_000);
    // The ringgit weakens to 4.60 per dollar, palm oil rises 10 MYR.
    let usdmyr = TwoSided {
        bid: 459_950,
        ask: 460_050,
    };
    broker.on_quote(USD_MYR_SYMBOL_ID, usdmyr, later);
    broker.on_quote(PALM, q(4135, 4137), later);
    let rate = broker
        .quote_to_deposit(broker.symbol(PALM).unwrap(), ACCOUNT)
        .unwrap();
    assert!((rate.to_f64() - 1.0 / 4.6).abs() < 1e-12);
    let pnl = broker.unrealized(ACCOUNT);
    assert_eq!(pnl.len(), 1);
    // 1 t × 10 MYR / 4.60 = 2.17 USD.
    assert_eq!((pnl[0].position_id, pnl[0].gross), (id, 217));
    let open_commission = broker.open_position(id).unwrap().commission;
    assert_eq!(pnl[0].net, 217 + open_commission);
    let reports = broker.close_position(ACCOUNT, id, 100, later).unwrap();
    let (_, close) = closing_deal(&reports);
    assert_eq!(close.gross_profit, 217);
    assert!((close.quote_to_deposit - 1.0 / 4.6).abs() < 1e-12);
    // A symbol quoted in dollars converts at exactly 1.
    let gold = broker.symbol(41).unwrap();
    assert_eq!(
        broker.quote_to_deposit(gold, ACCOUNT),
        Some(crate::conversion::Rate::ONE)
    );
}

#[test]
fn without_a_conversion_quote_nothing_opens() {
    let mut broker = Broker::new(&catalog("PALMOIL", &MarketHours::AlwaysOpen));
    broker.open_account(ACCOUNT, 1_000_000, 2, USD_ASSET_ID, T0);
    broker.on_quote(PALM, q(4123, 4125), T0);
    let err = refusal(&mut broker, market(Side::Buy, 100));
    assert_eq!(err.code, "NO_QUOTES");
    assert!(err.description.contains("PALMOIL"), "{}", err.description);
}

#[test]
fn a_ringgit_account_needs_no_chain_for_palm_oil_and_converts_dollars_the_other_way() {
    let mut broker = broker_in(&MarketHours::AlwaysOpen, MYR_ASSET_ID);
    let palm = broker.symbol(PALM).unwrap();
    assert_eq!(
        broker.quote_to_deposit(palm, ACCOUNT),
        Some(crate::conversion::Rate::ONE)
    );
    let id = open_long(&mut broker);
    broker.on_quote(PALM, q(4135, 4137), T0.plus_millis(1000));
    let reports = broker
        .close_position(ACCOUNT, id, 100, T0.plus_millis(1000))
        .unwrap();
    let (_, close) = closing_deal(&reports);
    assert_eq!(close.gross_profit, 1_000, "1 t × 10 MYR, no conversion");
    assert!((close.quote_to_deposit - 1.0).abs() < f64::EPSILON);

    // 1,000 EUR long, EURUSD up 10 points of 0.0001: 1.00 USD × 4.48 = 4.48 MYR.
    broker.on_quote(
        1,
        TwoSided {
            bid: 108_500,
            ask: 108_510,
        },
        T0.plus_millis(2000),
    );
    let mut order = market(Side::Buy, 100_000);
    order.symbol_id = 1;
    let reports = broker.place_order(order, T0.plus_millis(2000)).unwrap();
    let eur = reports[1].position.as_ref().unwrap().id;
    broker.on_quote(
        1,
        TwoSided {
            bid: 108_610,
            ask: 108_620,
        },
        T0.plus_millis(3000),
    );
    assert_eq!(broker.unrealized(ACCOUNT)[0].gross, 448);
    let reports = broker
        .close_position(ACCOUNT, eur, 100_000, T0.plus_millis(3000))
        .unwrap();
    let (_, close) = closing_deal(&reports);
    assert_eq!(close.gross_profit, 448);
    assert!((close.quote_to_deposit - 4.48).abs() < 1e-12);
}

#[test]
fn swap_is_charged_at_rollovers_and_realised_in_proportion_when_closing() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let reports = broker.place_order(market(Side::Buy, 300), T0).unwrap();
    let id = reports[1].position.as_ref().unwrap().id;
    let monday_night = crate::rollover::next_rollover(T0);
    let reports = broker.roll_over(monday_night);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, ExecutionKind::Swap);
    assert!(reports[0].server_event);
    assert!(reports[0].order.is_none() && reports[0].deal.is_none());
    let one_night = reports[0].position.as_ref().unwrap().swap;
    // 3 t × 4124 MYR × 6 % / 360 / 4.48 = 0.46 USD, paid by the long.
    assert_eq!(one_night, -46);
    let tuesday_night = crate::rollover::next_rollover(monday_night);
    broker.roll_over(tuesday_night);
    let wednesday_night = crate::rollover::next_rollover(tuesday_night);
    let reports = broker.roll_over(wednesday_night);
    let swap = reports[0].position.as_ref().unwrap().swap;
    assert_eq!(swap, 5 * one_night, "Wednesday counts three nights");
    assert_eq!(broker.open_position(id).unwrap().swap, swap);

    let before = balance(&broker);
    let at = wednesday_night.plus_millis(1000);
    let reports = broker.close_position(ACCOUNT, id, 100, at).unwrap();
    let (deal, first) = closing_deal(&reports);
    assert_eq!(
        first.swap,
        swap / 3,
        "a third of the volume, a third of the swap"
    );
    assert_eq!(
        reports[1].position.as_ref().unwrap().swap,
        swap - first.swap
    );
    assert!(deal.commission < 0);
    assert_eq!(
        balance(&broker) - before,
        first.gross_profit + first.swap + first.commission,
        "the net result is exactly what moves the balance"
    );
    let reports = broker.close_position(ACCOUNT, id, 200, at).unwrap();
    let (_, second) = closing_deal(&reports);
    assert_eq!(first.swap + second.swap, swap);
    assert_eq!(
        balance(&broker) - before,
        first.gross_profit
            + first.swap
            + first.commission
            + second.gross_profit
            + second.swap
            + second.commission
    );
    assert!(
        broker
            .roll_over(crate::rollover::next_rollover(at))
            .is_empty()
    );
}

#[test]
fn unrealized_pnl_equals_the_closing_deal_at_the_same_quote_for_seeded_cases() {
    let mut rng = crate::rng::SimRng::new(2026, 12);
    let mut pick = |low: i64, high: i64| {
        let span = u64::try_from(high - low + 1).unwrap();
        low + i64::try_from(rng.next_u64() % span).unwrap()
    };
    for case in 0..200 {
        let deposit = if case % 2 == 0 {
            USD_ASSET_ID
        } else {
            MYR_ASSET_ID
        };
        let digits = u32::try_from(pick(0, 8)).unwrap();
        let mut broker = Broker::new(&catalog("PALMOIL", &MarketHours::AlwaysOpen));
        // 1,000,000 units of the deposit currency, whatever the digits.
        let opening = 1_000_000 * 10_i64.pow(digits);
        broker.open_account(ACCOUNT, opening, digits, deposit, T0);
        let fx_mid = pick(420_000, 480_000);
        let fx_half_spread = pick(1, 200);
        broker.on_quote(
            USD_MYR_SYMBOL_ID,
            TwoSided {
                bid: fx_mid - fx_half_spread,
                ask: fx_mid + fx_half_spread,
            },
            T0,
        );
        let entry = pick(3_500, 4_500);
        broker.on_quote(PALM, q(entry, entry + pick(1, 3)), T0);
        let side = if pick(0, 1) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let volume = pick(1, 50) * 100;
        let reports = broker.place_order(market(side, volume), T0).unwrap();
        let id = reports[1].position.as_ref().unwrap().id;
        // Some positions carry swap from a rollover or two.
        let mut at = T0;
        for _ in 0..pick(0, 2) {
            at = crate::rollover::next_rollover(at);
            broker.roll_over(at);
        }
        // The market moves, the ringgit too; then the held quote is read and traded on.
        let fx_mid = pick(420_000, 480_000);
        broker.on_quote(
            USD_MYR_SYMBOL_ID,
            TwoSided {
                bid: fx_mid - fx_half_spread,
                ask: fx_mid + fx_half_spread,
            },
            at,
        );
        let held = pick(3_400, 4_600);
        broker.on_quote(PALM, q(held, held + 2), at);
        let pnl = broker.unrealized(ACCOUNT);
        assert_eq!(pnl.len(), 1);
        let before = balance(&broker);
        let reports = broker.close_position(ACCOUNT, id, volume, at).unwrap();
        let (deal, close) = closing_deal(&reports);
        let net_result = close.gross_profit + close.swap + close.commission;
        assert_eq!(pnl[0].gross, close.gross_profit, "case {case}");
        // The unrealised net leaves out only the closing side's commission (the deal's own).
        assert_eq!(
            pnl[0].net,
            net_result - deal.commission,
            "case {case}: {pnl:?} vs {close:?}"
        );
        assert_eq!(balance(&broker) - before, net_result, "case {case}");
    }
}

#[test]
fn a_market_order_fills_in_parts_and_each_closing_deal_settles_its_share() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    broker.set_partial_fills(PartialFills::Deals(2));
    let reports = broker.place_order(market(Side::Buy, 300), T0).unwrap();
    let kinds = kinds_of(&reports);
    assert_eq!(
        kinds,
        vec![
            ExecutionKind::Accepted,
            ExecutionKind::PartialFill,
            ExecutionKind::Filled
        ]
    );
    let deals: Vec<&Deal> = reports.iter().filter_map(|r| r.deal.as_ref()).collect();
    assert_eq!(
        deals.iter().map(|d| d.filled_volume).collect::<Vec<_>>(),
        vec![200, 100]
    );
    assert!(
        deals[0].partial && deals[1].partial,
        "each filled part of 300"
    );
    assert_eq!(reports[1].position.as_ref().unwrap().volume, 200);
    let position = reports[2].position.clone().unwrap();
    assert_eq!(position.volume, 300);
    assert_eq!(
        position.commission,
        deals[0].commission + deals[1].commission
    );
    assert_eq!(
        reports[1].order.as_ref().unwrap().state,
        OrderState::Accepted
    );
    assert_eq!(reports[2].order.as_ref().unwrap().state, OrderState::Filled);

    broker.on_quote(PALM, q(4135, 4137), T0.plus_millis(1000));
    let reports = broker
        .close_position(ACCOUNT, position.id, 300, T0.plus_millis(1000))
        .unwrap();
    let kinds = kinds_of(&reports);
    assert_eq!(
        kinds,
        vec![
            ExecutionKind::Accepted,
            ExecutionKind::PartialFill,
            ExecutionKind::Filled
        ]
    );
    let closes: Vec<CloseDetail> = reports
        .iter()
        .filter_map(|r| r.deal.as_ref()?.close.clone())
        .collect();
    assert_eq!(closes.len(), 2);
    let net: i64 = closes
        .iter()
        .map(|c| c.gross_profit + c.swap + c.commission)
        .sum();
    assert_eq!(balance(&broker), 1_000_000 + net);
    assert_eq!(closes[1].balance, balance(&broker));
    assert_eq!(
        reports[2].position.as_ref().unwrap().state,
        PositionState::Closed
    );
    // Both closing deals belong to one order.
    let orders: Vec<i64> = reports
        .iter()
        .filter_map(|r| r.deal.as_ref())
        .map(|d| d.order_id)
        .collect();
    assert_eq!(orders[0], orders[1]);
}

#[test]
fn a_cancelled_remainder_leaves_the_filled_part_open() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    broker.set_partial_fills(PartialFills::CancelRest);
    let reports = broker.place_order(market(Side::Sell, 500), T0).unwrap();
    let kinds = kinds_of(&reports);
    assert_eq!(
        kinds,
        vec![
            ExecutionKind::Accepted,
            ExecutionKind::PartialFill,
            ExecutionKind::Cancelled
        ]
    );
    let last = reports.last().unwrap();
    assert_eq!(last.order.as_ref().unwrap().state, OrderState::Cancelled);
    assert_eq!(last.order.as_ref().unwrap().executed_volume, 200);
    assert_eq!(last.position.as_ref().unwrap().volume, 200);
}

#[test]
fn a_suspended_symbol_refuses_orders_and_close_only_refuses_openings() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let reports = broker.place_order(market(Side::Buy, 100), T0).unwrap();
    let id = reports[1].position.as_ref().unwrap().id;
    assert!(broker.set_trading_mode(PALM, 1));
    assert_eq!(
        refusal(&mut broker, market(Side::Buy, 100)).code,
        "TRADING_DISABLED"
    );
    assert_eq!(
        broker
            .close_position(ACCOUNT, id, 100, T0)
            .unwrap_err()
            .code,
        "TRADING_DISABLED"
    );
    assert!(broker.set_trading_mode(PALM, 3));
    assert_eq!(
        refusal(&mut broker, market(Side::Buy, 100)).code,
        "TRADING_DISABLED"
    );
    assert!(broker.close_position(ACCOUNT, id, 100, T0).is_ok());
    assert!(broker.set_trading_mode(PALM, 0));
    assert!(broker.set_min_volume(PALM, 200));
    assert_eq!(
        refusal(&mut broker, market(Side::Buy, 100)).code,
        "TRADING_BAD_VOLUME"
    );
    assert!(!broker.set_min_volume(PALM, 150), "off the step");
}

#[test]
fn margin_running_out_stops_the_worst_position_out() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let reports = broker.place_order(market(Side::Buy, 1_000), T0).unwrap();
    let id = reports[1].position.as_ref().unwrap().id;
    // Most of the cash leaves: 600 USD against the 10 t position's 920.76 USD of margin.
    broker.accounts.get_mut(&ACCOUNT).unwrap().balance = 60_000;
    assert!(
        broker.on_quote(PALM, q(4123, 4125), T0).is_empty(),
        "still above 50 %"
    );
    // The price falls far enough that equity drops below half the used margin.
    let reports = broker.on_quote(PALM, q(3900, 3902), T0.plus_millis(1000));
    let stop = reports
        .iter()
        .find(|r| r.kind == ExecutionKind::Filled)
        .expect("a stop-out");
    assert!(stop.order.as_ref().unwrap().stop_out);
    assert!(stop.server_event);
    assert!(broker.open_position(id).is_none());
}

#[test]
fn cash_moves_and_money_digits_rescale() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    assert_eq!(
        broker.change_balance(ACCOUNT, 50_000).unwrap().balance,
        1_050_000
    );
    assert_eq!(
        broker.change_balance(ACCOUNT, -2_000_000).unwrap_err().code,
        "NOT_ENOUGH_MONEY"
    );
    let account = broker.set_money_digits(ACCOUNT, 4).unwrap();
    assert_eq!((account.balance, account.money_digits), (105_000_000, 4));
    assert!(broker.set_money_digits(ACCOUNT, 9).is_none());
}

#[test]
fn a_limited_risk_account_needs_a_guaranteed_stop_loss_far_enough_away() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let guaranteed = |distance| {
        buy_1t(move |o| {
            o.relative_stop_loss = Some(distance);
            o.guaranteed_stop_loss = true;
        })
    };
    let err = refusal(&mut broker, guaranteed(4_000_000));
    assert_eq!(err.code, "TRADING_BAD_STOPS", "not a limited-risk account");
    broker.set_limited_risk(ACCOUNT, true);
    let plain = buy_1t(|o| o.relative_stop_loss = Some(4_000_000));
    let err = refusal(&mut broker, plain);
    assert_eq!(err.code, "TRADING_BAD_STOPS", "{}", err.description);
    assert!(err.description.contains("guaranteed stop loss"));
    let err = refusal(&mut broker, guaranteed(500_000));
    assert_eq!(
        err.code, "TRADING_BAD_STOPS",
        "5 MYR is inside the 10 MYR minimum"
    );
    let reports = broker.place_order(guaranteed(1_000_000), T0).unwrap();
    let position = reports[1].position.as_ref().unwrap();
    assert!(position.guaranteed_stop_loss);
    let wire = crate::wire::position(position);
    assert_eq!(wire.guaranteed_stop_loss, Some(true));
    let err = refusal(&mut broker, buy_1t(|o| o.guaranteed_stop_loss = true));
    assert_eq!(err.code, "TRADING_BAD_STOPS", "a guarantee needs a stop");
}

#[test]
fn a_jump_through_the_stop_fills_a_plain_stop_at_the_market_and_a_guaranteed_one_at_its_price() {
    for guaranteed in [false, true] {
        let mut broker = broker(&MarketHours::AlwaysOpen);
        broker.set_limited_risk(ACCOUNT, guaranteed);
        let mut order = market(Side::Buy, 100);
        order.relative_stop_loss = Some(4_000_000);
        order.guaranteed_stop_loss = guaranteed;
        let reports = broker.place_order(order, T0).unwrap();
        let stop = reports[1].position.as_ref().unwrap().stop_loss.unwrap();
        assert_eq!(stop, 408_500_000);
        // The bid jumps from 4100 straight to 4000, far through the 4085 stop.
        let _ = broker.on_quote(PALM, q(4100, 4102), T0.plus_millis(1000));
        let reports = broker.on_quote(PALM, q(4000, 4002), T0.plus_millis(2000));
        let deal = reports
            .iter()
            .find_map(|r| r.deal.as_ref())
            .expect("the stop closed it");
        let expected = if guaranteed { stop } else { 400_000_000 };
        assert_eq!(deal.execution_price, expected, "guaranteed: {guaranteed}");
    }
}
