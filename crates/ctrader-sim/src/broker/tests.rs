use super::*;
use crate::symbols::{MarketHours, PALM_OIL_SYMBOL_ID, catalog};

const ACCOUNT: i64 = 44_556_677;
const T0: Timestamp = Timestamp(1_763_950_000_000); // Monday 02:06 UTC
const PALM: i64 = PALM_OIL_SYMBOL_ID;

fn q(bid: i64, ask: i64) -> TwoSided {
    TwoSided {
        bid: bid * 100_000,
        ask: ask * 100_000,
    }
}

fn broker(hours: &MarketHours) -> Broker {
    let mut broker = Broker::new(&catalog("PALMOIL", hours));
    broker.open_account(ACCOUNT, 1_000_000, 2, T0);
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
    }
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
    let err = broker.place_order(market(Side::Buy, 100), T0).unwrap_err();
    assert_eq!(err.code, "MARKET_CLOSED");
    assert_eq!(err.reply, RejectAs::OrderError);
    let open = Timestamp(T0.0 + 30 * 60_000);
    assert!(broker.place_order(market(Side::Buy, 100), open).is_ok());
}

#[test]
fn absolute_protection_on_market_orders_and_long_strings_are_request_errors() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    let mut order = market(Side::Buy, 100);
    order.stop_loss = Some(400_000_000);
    let err = broker.place_order(order, T0).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.reply),
        ("INVALID_REQUEST", RejectAs::ErrorRes)
    );
    let mut order = market(Side::Buy, 100);
    order.client_order_id = Some("x".repeat(51));
    assert_eq!(
        broker.place_order(order, T0).unwrap_err().code,
        "INVALID_REQUEST"
    );
    let mut order = market(Side::Buy, 100);
    order.relative_stop_loss = Some(0);
    assert_eq!(
        broker.place_order(order, T0).unwrap_err().code,
        "TRADING_BAD_STOPS"
    );
    let mut order = market(Side::Buy, 100);
    order.symbol_id = 999;
    assert_eq!(
        broker.place_order(order, T0).unwrap_err().code,
        "SYMBOL_NOT_FOUND"
    );
}

#[test]
fn margin_is_checked() {
    let mut broker = broker(&MarketHours::AlwaysOpen);
    // 10,000 USD at 1:10 carries about 108 t of palm oil (924 USD notional per tonne).
    let err = broker
        .place_order(market(Side::Buy, 11_000), T0)
        .unwrap_err();
    assert_eq!(err.code, "NOT_ENOUGH_MONEY");
    assert!(broker.place_order(market(Side::Buy, 10_000), T0).is_ok());
    // The first position's margin is used: another 10 t no longer fits.
    let err = broker
        .place_order(market(Side::Sell, 1_000), T0)
        .unwrap_err();
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
    // 1 t × -41 MYR × 0.224 = -9.18 USD.
    assert_eq!(close.gross_profit, -918);
    assert!(close.commission < 0);
    assert_eq!(close.balance, 1_000_000 - 918 + close.commission);
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
    // 2 t × 50 MYR × 0.224 = 22.40 USD.
    assert_eq!(close.gross_profit, 2_240);
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
    assert_eq!(first.gross_profit, 224, "1 t × 10 MYR × 0.224");
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
    let mut same_side = market(Side::Buy, 100);
    same_side.position_id = Some(open_long(&mut broker));
    assert_eq!(
        broker.place_order(same_side, T0).unwrap_err().code,
        "INVALID_REQUEST"
    );
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
