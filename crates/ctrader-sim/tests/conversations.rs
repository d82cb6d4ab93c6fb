//! Conversations with the simulator over real TLS on 127.0.0.1, held the way a client holds them.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{MONDAY_0300, PALM, SATURDAY_NOON, TestSim, error_code, market_buy, place};
use ctrader_proto::Payload;
use ctrader_proto::openapi::{
    ProtoHeartbeatEvent, ProtoOaAccountAuthReq, ProtoOaAmendPositionSltpReq,
    ProtoOaApplicationAuthReq, ProtoOaCancelOrderReq, ProtoOaClosePositionReq, ProtoOaDealListReq,
    ProtoOaGetAccountListByAccessTokenReq, ProtoOaGetTrendbarsReq, ProtoOaNewOrderReq,
    ProtoOaOrderListReq, ProtoOaReconcileReq, ProtoOaRefreshTokenReq,
    ProtoOaSubscribeLiveTrendbarReq, ProtoOaSubscribeSpotsReq, ProtoOaSymbolByIdReq,
    ProtoOaSymbolsListReq, ProtoOaTraderReq, ProtoOaUnsubscribeSpotsReq, ProtoOaVersionReq,
};
use ctrader_proto::{ProtoMessage, openapi::ProtoOaExecutionEvent};
use ctrader_sim::MarketHours;
use domain::{Price, WeeklySession};

fn app_auth(client_id: &str, secret: &str) -> ProtoOaApplicationAuthReq {
    ProtoOaApplicationAuthReq {
        client_id: client_id.to_owned(),
        client_secret: secret.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_auth_checks_credentials() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.connect().await;
    let id = client.send(app_auth("palm-oil-sim", "wrong")).await;
    let reply = client.reply_to(&id).await;
    assert_eq!(error_code(&reply), "CH_CLIENT_AUTH_FAILURE");
    let reply = client
        .request(app_auth("someone-else", "palm-oil-sim-secret"))
        .await;
    assert_eq!(error_code(&reply), "CH_CLIENT_AUTH_FAILURE");
    let reply = client
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    assert!(matches!(reply, Payload::ApplicationAuthRes(_)), "{reply:?}");
    let reply = client
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    assert_eq!(error_code(&reply), "CH_CLIENT_ALREADY_AUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_before_application_auth() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.connect().await;
    for request in [
        client
            .send(ProtoOaSymbolsListReq {
                ctid_trader_account_id: sim.account(),
                ..Default::default()
            })
            .await,
        client.send(ProtoOaVersionReq::default()).await,
        client
            .send(ProtoOaAccountAuthReq {
                ctid_trader_account_id: sim.account(),
                access_token: "palm-oil-sim-access-token".into(),
                ..Default::default()
            })
            .await,
    ] {
        let reply = client.reply_to(&request).await;
        assert_eq!(error_code(&reply), "CH_CLIENT_NOT_AUTHENTICATED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_auth_and_accounts_by_token() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.connect().await;
    let reply = client
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    assert!(matches!(reply, Payload::ApplicationAuthRes(_)));
    let account = sim.account();
    let auth = |token: &str, account: i64| ProtoOaAccountAuthReq {
        ctid_trader_account_id: account,
        access_token: token.to_owned(),
        ..Default::default()
    };
    let reply = client.request(auth("stolen", account)).await;
    assert_eq!(error_code(&reply), "CH_ACCESS_TOKEN_INVALID");
    let reply = client
        .request(auth("palm-oil-sim-access-token", account + 1))
        .await;
    assert_eq!(error_code(&reply), "CH_CTID_TRADER_ACCOUNT_NOT_FOUND");
    // Not authorised yet: account requests are refused.
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "ACCOUNT_NOT_AUTHORIZED");
    let reply = client
        .request(ProtoOaGetAccountListByAccessTokenReq {
            access_token: "palm-oil-sim-access-token".into(),
            ..Default::default()
        })
        .await;
    let Payload::GetAccountListByAccessTokenRes(list) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(list.ctid_trader_account.len(), 1);
    assert_eq!(
        list.ctid_trader_account[0].ctid_trader_account_id,
        account.unsigned_abs()
    );
    assert_eq!(list.ctid_trader_account[0].is_live, Some(false));
    let reply = client
        .request(ProtoOaGetAccountListByAccessTokenReq {
            access_token: "nope".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "CH_ACCESS_TOKEN_INVALID");
    let reply = client
        .request(auth("palm-oil-sim-access-token", account))
        .await;
    let Payload::AccountAuthRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.ctid_trader_account_id, account);
    let reply = client
        .request(auth("palm-oil-sim-access-token", account))
        .await;
    assert_eq!(error_code(&reply), "ALREADY_LOGGED_IN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trader_and_symbols() {
    let sim = TestSim::start(|c| {
        c.palm_oil_symbol = "FCPO".into();
        c.market_hours = MarketHours::Realistic;
    })
    .await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::TraderRes(trader) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(trader.trader.balance, 1_000_000);
    assert_eq!(trader.trader.money_digits, Some(2));

    let reply = client
        .request(ProtoOaSymbolsListReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::SymbolsListRes(list) = reply else {
        panic!("{reply:?}")
    };
    let names: Vec<&str> = list
        .symbol
        .iter()
        .filter_map(|s| s.symbol_name.as_deref())
        .collect();
    for name in ["EURUSD", "XAUUSD", "BRENT", "FCPO"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let palm = list
        .symbol
        .iter()
        .find(|s| s.symbol_name.as_deref() == Some("FCPO"))
        .unwrap();
    assert_eq!(palm.symbol_id, PALM);

    let reply = client
        .request(ProtoOaSymbolByIdReq {
            ctid_trader_account_id: account,
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    let Payload::SymbolByIdRes(symbols) = reply else {
        panic!("{reply:?}")
    };
    let palm = &symbols.symbol[0];
    assert_eq!((palm.digits, palm.pip_position), (0, 0));
    assert_eq!(palm.lot_size, Some(2_500));
    assert_eq!(
        (palm.min_volume, palm.step_volume, palm.max_volume),
        (Some(100), Some(100), Some(250_000))
    );
    assert_eq!(palm.schedule_time_zone.as_deref(), Some("UTC"));
    // Bursa's sessions: Monday 02:30-04:30 UTC is the first one.
    assert_eq!(
        (palm.schedule[0].start_second, palm.schedule[0].end_second),
        (86_400 + 9_000, 86_400 + 16_200)
    );
    assert_eq!(palm.schedule.len(), 14);
    assert!(
        palm.holiday
            .iter()
            .any(|h| h.name == "Christmas Day" && h.is_recurring)
    );

    let reply = client
        .request(ProtoOaSymbolByIdReq {
            ctid_trader_account_id: account,
            symbol_id: vec![424_242],
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "SYMBOL_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spots_start_at_once_then_follow_prices() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let subscribe = ProtoOaSubscribeSpotsReq {
        ctid_trader_account_id: account,
        symbol_id: vec![PALM],
        subscribe_to_spot_timestamp: Some(true),
        ..Default::default()
    };
    let id = client.send(subscribe.clone()).await;
    let (reply_id, reply) = client.next().await;
    assert_eq!(reply_id.as_deref(), Some(id.as_str()));
    assert!(matches!(reply, Payload::SubscribeSpotsRes(_)), "{reply:?}");
    let (_, first) = client.next().await;
    let Payload::SpotEvent(first) = first else {
        panic!("first spot expected at once, got {first:?}")
    };
    assert_eq!(first.symbol_id, PALM);
    let (bid, ask) = (first.bid.unwrap(), first.ask.unwrap());
    assert!(
        ask > bid && bid % 100_000 == 0 && ask % 100_000 == 0,
        "{bid} {ask}"
    );
    assert!(first.timestamp.unwrap() >= MONDAY_0300.0 - 6 * 3_600_000);

    // Then one per price update, each with at least one side, later in time.
    let mut last_time = first.timestamp.unwrap();
    for _ in 0..5 {
        let (_, next) = client
            .wait_for(|_, p| matches!(p, Payload::SpotEvent(_)))
            .await;
        let Payload::SpotEvent(spot) = next else {
            unreachable!()
        };
        assert!(spot.bid.is_some() || spot.ask.is_some());
        assert!(spot.timestamp.unwrap() >= last_time);
        last_time = spot.timestamp.unwrap();
    }
    let reply = client.request(subscribe).await;
    assert_eq!(error_code(&reply), "ALREADY_SUBSCRIBED");
    let unsubscribe = ProtoOaUnsubscribeSpotsReq {
        ctid_trader_account_id: account,
        symbol_id: vec![PALM],
        ..Default::default()
    };
    let reply = client.request(unsubscribe.clone()).await;
    assert!(
        matches!(reply, Payload::UnsubscribeSpotsRes(_)),
        "{reply:?}"
    );
    let reply = client.request(unsubscribe).await;
    assert_eq!(error_code(&reply), "NOT_SUBSCRIBED_TO_SPOTS");
    // No more spots after unsubscribing (heartbeats aside).
    let quiet = tokio::time::Instant::now() + Duration::from_millis(700);
    while tokio::time::Instant::now() < quiet {
        if let Ok(Some(Ok(frame))) = client.next_frame_within(Duration::from_millis(100)).await {
            assert_ne!(frame.payload_type, 2131, "spot after unsubscribe");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_trendbars_ride_on_spots() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let live = ProtoOaSubscribeLiveTrendbarReq {
        ctid_trader_account_id: account,
        period: 1,
        symbol_id: PALM,
        ..Default::default()
    };
    let reply = client.request(live).await;
    assert_eq!(error_code(&reply), "NOT_SUBSCRIBED_TO_SPOTS");
    let reply = client
        .request(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::SubscribeSpotsRes(_)));
    let reply = client.request(live).await;
    assert!(
        matches!(reply, Payload::SubscribeLiveTrendbarRes(_)),
        "{reply:?}"
    );
    let (_, spot) = client
        .wait_for(|_, p| matches!(p, Payload::SpotEvent(s) if !s.trendbar.is_empty()))
        .await;
    let Payload::SpotEvent(spot) = spot else {
        unreachable!()
    };
    let bar = &spot.trendbar[0];
    assert_eq!(bar.period, Some(1));
    assert!(bar.low.unwrap() > 0 && bar.delta_high.unwrap() >= bar.delta_close.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trendbar_history_and_its_span_limits() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let now = sim.handle.sim_time().0;
    let request = |period: i32, from: i64, to: i64, count: Option<u32>| ProtoOaGetTrendbarsReq {
        ctid_trader_account_id: account,
        from_timestamp: Some(from),
        to_timestamp: Some(to),
        period,
        symbol_id: PALM,
        count,
        ..Default::default()
    };
    let reply = client.request(request(1, now - 3_600_000, now, None)).await;
    let Payload::GetTrendbarsRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert!(
        res.trendbar.len() >= 50,
        "an hour of minute bars, got {}",
        res.trendbar.len()
    );
    let minutes: Vec<u32> = res
        .trendbar
        .iter()
        .map(|b| b.utc_timestamp_in_minutes.unwrap())
        .collect();
    assert!(minutes.windows(2).all(|w| w[0] < w[1]), "oldest first");
    for bar in &res.trendbar {
        let low = bar.low.unwrap();
        assert_eq!(low % 100_000, 0, "on the RM1 grid");
        assert!(bar.delta_high.unwrap() >= bar.delta_open.unwrap().max(bar.delta_close.unwrap()));
    }
    let reply = client
        .request(request(9, now - 5 * 3_600_000, now, Some(3)))
        .await;
    let Payload::GetTrendbarsRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.trendbar.len(), 3);
    assert_eq!(res.has_more, Some(true));
    assert_eq!(
        res.trendbar[0].utc_timestamp_in_minutes.unwrap() % 60,
        0,
        "H1 bars start on the hour"
    );
    // M1 may span at most 3.5 days per request.
    let reply = client
        .request(request(1, now - 4 * 86_400_000, now, None))
        .await;
    assert_eq!(error_code(&reply), "INCORRECT_BOUNDARIES");
    let reply = client.request(request(1, now, now - 1, None)).await;
    assert_eq!(error_code(&reply), "INCORRECT_BOUNDARIES");
    let reply = client
        .request(request(13, now - 86_400_000, now, None))
        .await;
    assert_eq!(error_code(&reply), "INVALID_REQUEST");
}

fn filled(events: &[ProtoOaExecutionEvent]) -> &ProtoOaExecutionEvent {
    events
        .iter()
        .find(|e| e.execution_type == 3)
        .expect("ORDER_FILLED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_order_is_accepted_then_filled() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let id = client
        .send(market_buy(account, 100, Some(4_000_000), Some(8_000_000)))
        .await;
    let (reply_id, accepted) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    assert_eq!(reply_id.as_deref(), Some(id.as_str()), "clientMsgId echoed");
    let Payload::ExecutionEvent(accepted) = accepted else {
        unreachable!()
    };
    assert_eq!(accepted.execution_type, 2, "ORDER_ACCEPTED first");
    let (reply_id, filled) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(_)))
        .await;
    assert_eq!(reply_id.as_deref(), Some(id.as_str()));
    let Payload::ExecutionEvent(filled) = filled else {
        unreachable!()
    };
    assert_eq!(filled.execution_type, 3, "then ORDER_FILLED");
    assert_eq!(filled.ctid_trader_account_id, account);
    let position = filled.position.as_ref().unwrap();
    assert_eq!(position.position_status, 1);
    assert_eq!(position.trade_data.volume, 100);
    assert_eq!(position.trade_data.trade_side, 1);
    assert_eq!(position.trade_data.label.as_deref(), Some("pob"));
    let price = position.price.unwrap();
    assert_eq!(position.stop_loss, Some(price - 40.0));
    assert_eq!(position.take_profit, Some(price + 80.0));
    assert_eq!(position.money_digits, Some(2));
    let order = filled.order.as_ref().unwrap();
    assert_eq!(order.order_status, 2);
    assert_eq!(order.client_order_id.as_deref(), Some("pob-test-1"));
    assert_eq!(order.position_id, Some(position.position_id));
    let deal = filled.deal.as_ref().unwrap();
    assert_eq!(
        (deal.volume, deal.filled_volume, deal.deal_status),
        (100, 100, 2)
    );
    assert_eq!(deal.execution_price, Some(price));
    // The buyer paid the ask.
    let (_, ask) = sim.handle.quote(PALM).unwrap();
    assert!(
        (price * 100_000.0 - ask as f64).abs() < 2_000_000.0,
        "{price} vs ask {ask}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_loss_triggers_on_the_price_path_and_the_deal_shows_the_loss() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let events = place(&mut client, market_buy(account, 200, Some(2_000_000), None)).await;
    let position = filled(&events).position.clone().unwrap();
    let entry = Price::from_f64(position.price.unwrap()).unwrap().0;
    // A shock 150 MYR down: the 20 MYR stop is hit on the next simulated second.
    sim.handle.set_mid_price(PALM, entry - 15_000_000).unwrap();
    let (id, event) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3))
        .await;
    assert_eq!(id, None, "unsolicited: no clientMsgId");
    let Payload::ExecutionEvent(event) = event else {
        unreachable!()
    };
    assert_eq!(event.is_server_event, Some(true));
    let closed = event.position.as_ref().unwrap();
    assert_eq!(
        (closed.position_id, closed.position_status),
        (position.position_id, 2)
    );
    let order = event.order.as_ref().unwrap();
    assert_eq!(order.order_type, 4, "STOP_LOSS_TAKE_PROFIT");
    assert_eq!(order.closing_order, Some(true));
    let detail = event.deal.as_ref().unwrap().close_position_detail.unwrap();
    assert!(detail.gross_profit < 0, "a loss: {}", detail.gross_profit);
    assert_eq!(detail.closed_volume, Some(200));
    assert_eq!(
        detail.balance,
        1_000_000 + detail.gross_profit + detail.commission
    );

    // The deal list tells the same story, and the balance moved.
    let reply = client
        .request(ProtoOaDealListReq {
            ctid_trader_account_id: account,
            from_timestamp: Some(0),
            to_timestamp: Some(sim.handle.sim_time().0),
            ..Default::default()
        })
        .await;
    let Payload::DealListRes(list) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(list.deal.len(), 2);
    assert!(!list.has_more);
    let closing = list
        .deal
        .iter()
        .find(|d| d.close_position_detail.is_some())
        .unwrap();
    assert_eq!(
        closing.close_position_detail.as_ref().unwrap().gross_profit,
        detail.gross_profit
    );
    assert_eq!(closing.position_id, position.position_id);
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::TraderRes(trader) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(trader.trader.balance, detail.balance);
    assert_eq!(sim.handle.balance(), Some(detail.balance));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_list_ties_history_deals_to_the_client_order_id() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let before = sim.handle.sim_time().0;
    let events = place(&mut client, market_buy(account, 100, Some(2_000_000), None)).await;
    let opening = filled(&events).order.clone().unwrap();
    let position = filled(&events).position.clone().unwrap();
    let entry = Price::from_f64(position.price.unwrap()).unwrap().0;
    sim.handle.set_mid_price(PALM, entry - 15_000_000).unwrap();
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3))
        .await;
    let Payload::ExecutionEvent(event) = event else {
        unreachable!()
    };
    let closing = event.order.unwrap();
    let now = sim.handle.sim_time().0;
    let list = |from: i64, to: i64| ProtoOaOrderListReq {
        ctid_trader_account_id: account,
        from_timestamp: Some(from),
        to_timestamp: Some(to),
        ..Default::default()
    };

    let reply = client.request(list(before, now + 1)).await;
    let Payload::OrderListRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.ctid_trader_account_id, account);
    assert!(!res.has_more);
    let ids: Vec<i64> = res.order.iter().map(|o| o.order_id).collect();
    assert_eq!(
        ids,
        vec![opening.order_id, closing.order_id],
        "oldest first"
    );
    // The opening order: our clientOrderId and label as sent, the position it opened, filled.
    let first = &res.order[0];
    assert_eq!(first.client_order_id.as_deref(), Some("pob-test-1"));
    assert_eq!(first.trade_data.label.as_deref(), Some("pob"));
    assert_eq!(first.position_id, Some(position.position_id));
    assert_eq!(first.order_status, 2, "FILLED");
    // The stop loss that closed it: the broker's order, no clientOrderId, same position.
    let second = &res.order[1];
    assert_eq!(second.client_order_id, None);
    assert_eq!(second.position_id, Some(position.position_id));
    assert_eq!((second.order_type, second.closing_order), (4, Some(true)));
    // Each history deal names an order of the list.
    let reply = client
        .request(ProtoOaDealListReq {
            ctid_trader_account_id: account,
            from_timestamp: Some(before),
            to_timestamp: Some(now),
            ..Default::default()
        })
        .await;
    let Payload::DealListRes(deals) = reply else {
        panic!("{reply:?}")
    };
    let mut deal_orders: Vec<i64> = deals.deal.iter().map(|d| d.order_id).collect();
    deal_orders.sort_unstable();
    assert_eq!(deal_orders, ids);

    // The range is half-open and filters: nothing before the order, nothing at `to` itself.
    let reply = client.request(list(0, before)).await;
    let Payload::OrderListRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert!(res.order.is_empty(), "{:?}", res.order);
    let reply = client.request(list(now, before)).await;
    assert_eq!(error_code(&reply), "INCORRECT_BOUNDARIES");
    // An account not authorised on this session is refused, not answered with its orders.
    let reply = client
        .request(ProtoOaOrderListReq {
            ctid_trader_account_id: account + 1,
            ..list(before, now + 1)
        })
        .await;
    assert_eq!(error_code(&reply), "ACCOUNT_NOT_AUTHORIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_profit_triggers_too() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let events = place(&mut client, market_buy(account, 100, None, Some(3_000_000))).await;
    let entry = Price::from_f64(filled(&events).position.as_ref().unwrap().price.unwrap())
        .unwrap()
        .0;
    sim.handle.set_mid_price(PALM, entry + 15_000_000).unwrap();
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3))
        .await;
    let Payload::ExecutionEvent(event) = event else {
        unreachable!()
    };
    assert!(
        event
            .deal
            .unwrap()
            .close_position_detail
            .unwrap()
            .gross_profit
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_finds_the_same_position() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let position_id = {
        let mut client = sim.authorised().await;
        let events = place(&mut client, market_buy(account, 300, None, None)).await;
        filled(&events).position.as_ref().unwrap().position_id
        // The client goes away here.
    };
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.position.len(), 1);
    assert_eq!(res.position[0].position_id, position_id);
    assert_eq!(res.position[0].trade_data.volume, 300);
    assert_eq!(res.position[0].trade_data.label.as_deref(), Some("pob"));
    assert_eq!(sim.handle.open_position_ids(), vec![position_id]);

    // Partial close, then the rest.
    let close = |volume| ProtoOaClosePositionReq {
        ctid_trader_account_id: account,
        position_id,
        volume,
        ..Default::default()
    };
    let id = client.send(close(100)).await;
    let replies = client
        .replies_until(
            &id,
            |p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3),
        )
        .await;
    let Some(Payload::ExecutionEvent(partial)) = replies.last() else {
        panic!("{replies:?}")
    };
    let remaining = partial.position.as_ref().unwrap();
    assert_eq!(
        (remaining.position_status, remaining.trade_data.volume),
        (1, 200)
    );
    assert_eq!(
        partial
            .deal
            .as_ref()
            .unwrap()
            .close_position_detail
            .as_ref()
            .unwrap()
            .closed_volume,
        Some(100)
    );
    let reply = client.request(close(500)).await;
    assert_eq!(error_code(&reply), "TRADING_BAD_VOLUME");
    let id = client.send(close(200)).await;
    let replies = client
        .replies_until(
            &id,
            |p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3),
        )
        .await;
    let Some(Payload::ExecutionEvent(full)) = replies.last() else {
        panic!("{replies:?}")
    };
    assert_eq!(full.position.as_ref().unwrap().position_status, 2);
    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert!(res.position.is_empty());
    let reply = client.request(close(100)).await;
    assert_eq!(error_code(&reply), "POSITION_NOT_OPEN");
    let reply = client
        .request(ProtoOaClosePositionReq {
            ctid_trader_account_id: account,
            position_id: 1,
            volume: 100,
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "POSITION_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amending_protection() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let events = place(&mut client, market_buy(account, 100, None, None)).await;
    let position = filled(&events).position.clone().unwrap();
    let price = position.price.unwrap();
    let amend = |sl: f64, tp: f64| ProtoOaAmendPositionSltpReq {
        ctid_trader_account_id: account,
        position_id: position.position_id,
        stop_loss: Some(sl),
        take_profit: Some(tp),
        ..Default::default()
    };
    let reply = client.request(amend(price + 100.0, price + 200.0)).await;
    assert_eq!(
        error_code(&reply),
        "TRADING_BAD_STOPS",
        "a long's stop must be below the market"
    );
    let reply = client.request(amend(price - 100.0, price + 200.0)).await;
    let Payload::ExecutionEvent(event) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(event.execution_type, 4, "ORDER_REPLACED");
    let amended = event.position.unwrap();
    assert_eq!(
        (amended.stop_loss, amended.take_profit),
        (Some(price - 100.0), Some(price + 200.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_checked_like_ctrader_does() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let reply = client.request(market_buy(account, 150, None, None)).await;
    let Payload::OrderErrorEvent(error) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.error_code, "TRADING_BAD_VOLUME");
    let reply = client
        .request(market_buy(account, 200_000, None, None))
        .await;
    assert_eq!(error_code(&reply), "NOT_ENOUGH_MONEY");
    let mut absolute = market_buy(account, 100, None, None);
    absolute.stop_loss = Some(3000.0);
    let reply = client.request(absolute).await;
    let Payload::ErrorRes(error) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.error_code, "INVALID_REQUEST");
    let mut unknown = market_buy(account, 100, None, None);
    unknown.symbol_id = 999;
    assert_eq!(
        error_code(&client.request(unknown).await),
        "SYMBOL_NOT_FOUND"
    );
    // A limit order far below the market waits, shows in reconcile, and can be cancelled.
    let limit = ProtoOaNewOrderReq {
        order_type: 2,
        limit_price: Some(1000.0),
        ..market_buy(account, 100, None, None)
    };
    let reply = client.request(limit).await;
    let Payload::ExecutionEvent(accepted) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(accepted.execution_type, 2);
    let order_id = accepted.order.unwrap().order_id;
    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.order.len(), 1);
    let reply = client
        .request(ProtoOaCancelOrderReq {
            ctid_trader_account_id: account,
            order_id,
            ..Default::default()
        })
        .await;
    let Payload::ExecutionEvent(cancelled) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(cancelled.execution_type, 5, "ORDER_CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_market_refuses_orders_but_still_quotes() {
    let sim = TestSim::start(|c| {
        c.market_hours = MarketHours::Realistic;
        c.start_time = Some(SATURDAY_NOON);
        c.history = Duration::from_secs(2 * 86_400);
    })
    .await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let reply = client.request(market_buy(account, 100, None, None)).await;
    let Payload::OrderErrorEvent(error) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.error_code, "MARKET_CLOSED");
    assert_eq!(error.description.as_deref(), Some("Market is closed"));
    // The first spot still comes, with Friday's last prices.
    let id = client
        .send(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    assert!(matches!(
        client.reply_to(&id).await,
        Payload::SubscribeSpotsRes(_)
    ));
    let (_, spot) = client.next().await;
    assert!(matches!(spot, Payload::SpotEvent(s) if s.bid.is_some() && s.ask.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurable_palm_oil_sessions() {
    // Open only on Saturdays: trading works on Saturday noon.
    let sim = TestSim::start(|c| {
        c.market_hours = MarketHours::PalmSessions(vec![WeeklySession {
            start_second: 6 * 86_400,
            end_second: 7 * 86_400,
        }]);
        c.start_time = Some(SATURDAY_NOON);
        c.history = Duration::from_secs(3600);
    })
    .await;
    let mut client = sim.authorised().await;
    let events = place(&mut client, market_buy(sim.account(), 100, None, None)).await;
    assert_eq!(events.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_limits_answer_blocked_payload_type() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    // 2 requests already sent (the auths); 60 more at once.
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(
            client
                .send(ProtoOaSymbolsListReq {
                    ctid_trader_account_id: account,
                    ..Default::default()
                })
                .await,
        );
    }
    let mut blocked = 0;
    for id in &ids {
        let reply = client.reply_to(id).await;
        if let Payload::ErrorRes(error) = &reply {
            assert_eq!(error.error_code, "BLOCKED_PAYLOAD_TYPE");
            assert!(error.retry_after.unwrap() >= 1);
            blocked += 1;
        }
    }
    assert!(blocked >= 10, "{blocked} blocked");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Historical requests: 5 per second.
    let now = sim.handle.sim_time().0;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            client
                .send(ProtoOaGetTrendbarsReq {
                    ctid_trader_account_id: account,
                    from_timestamp: Some(now - 600_000),
                    to_timestamp: Some(now),
                    period: 1,
                    symbol_id: PALM,
                    ..Default::default()
                })
                .await,
        );
    }
    let mut blocked = 0;
    for id in &ids {
        if let Payload::ErrorRes(error) = client.reply_to(id).await {
            assert_eq!(error.error_code, "BLOCKED_PAYLOAD_TYPE");
            blocked += 1;
        }
    }
    assert!(blocked >= 3, "{blocked} of 8 historical requests blocked");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Order lists are historical requests too.
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(
            client
                .send(ProtoOaOrderListReq {
                    ctid_trader_account_id: account,
                    from_timestamp: Some(now - 600_000),
                    to_timestamp: Some(now),
                    ..Default::default()
                })
                .await,
        );
    }
    let mut blocked = 0;
    for id in &ids {
        match client.reply_to(id).await {
            Payload::ErrorRes(error) => {
                assert_eq!(error.error_code, "BLOCKED_PAYLOAD_TYPE");
                blocked += 1;
            }
            Payload::OrderListRes(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(blocked >= 3, "{blocked} of 8 order lists blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_invalidates_the_old_token() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    let reply = client
        .request(ProtoOaRefreshTokenReq {
            refresh_token: "wrong".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "CH_ACCESS_TOKEN_INVALID");
    let reply = client
        .request(ProtoOaRefreshTokenReq {
            refresh_token: "palm-oil-sim-refresh-token".into(),
            ..Default::default()
        })
        .await;
    let Payload::RefreshTokenRes(tokens) = reply else {
        panic!("{reply:?}")
    };
    assert_ne!(tokens.access_token, "palm-oil-sim-access-token");
    assert_ne!(tokens.refresh_token, "palm-oil-sim-refresh-token");
    assert!(tokens.expires_in > 0);
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::AccountsTokenInvalidatedEvent(_)))
        .await;
    let Payload::AccountsTokenInvalidatedEvent(event) = event else {
        unreachable!()
    };
    assert_eq!(event.ctid_trader_account_ids, vec![account]);
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "ACCOUNT_NOT_AUTHORIZED");
    let auth = |token: String| ProtoOaAccountAuthReq {
        ctid_trader_account_id: account,
        access_token: token,
        ..Default::default()
    };
    assert_eq!(
        error_code(
            &client
                .request(auth("palm-oil-sim-access-token".into()))
                .await
        ),
        "CH_ACCESS_TOKEN_INVALID"
    );
    assert!(matches!(
        client.request(auth(tokens.access_token)).await,
        Payload::AccountAuthRes(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_both_ways_and_idle_clients_are_disconnected() {
    let sim = TestSim::start(|c| {
        c.heartbeat_interval = Duration::from_millis(200);
        c.client_idle_timeout = Some(Duration::from_millis(800));
    })
    .await;
    let mut client = sim.connect().await;
    // Client heartbeats keep the session alive past the idle timeout; the server sends its own.
    let mut heartbeats = 0;
    for _ in 0..12 {
        client
            .send_frame(ProtoMessage::wrap(&ProtoHeartbeatEvent::default(), None))
            .await;
        if let Ok(Some(frame)) = client.next_frame_within(Duration::from_millis(100)).await {
            let frame = frame.unwrap();
            assert_ne!(frame.payload_type, 2148, "disconnected despite heartbeats");
            heartbeats += usize::from(frame.payload_type == 51);
        }
    }
    assert!(heartbeats >= 2, "{heartbeats} server heartbeats");
    // Silence: the server says goodbye and closes.
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::ClientDisconnectEvent(_)))
        .await;
    let Payload::ClientDisconnectEvent(event) = event else {
        unreachable!()
    };
    assert!(event.reason.unwrap().contains("heartbeat"));
    assert!(client.closed_within(Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_close_the_connection_and_garbage_does_not_crash_the_server() {
    let sim = TestSim::start(|_| {}).await;
    let mut bystander = sim.authorised().await;

    let mut big = sim.connect().await;
    big.send_raw(&(2 * 1024 * 1024_u32).to_be_bytes()).await;
    assert!(
        big.closed_within(Duration::from_secs(3)).await,
        "frame over the cap closes"
    );

    let mut garbage = sim.connect().await;
    garbage
        .send_raw(&[0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
        .await;
    assert!(garbage.closed_within(Duration::from_secs(3)).await);

    // A well-framed envelope of an unknown type, and a known type with a broken body, are answered.
    let mut odd = sim.connect().await;
    odd.send_frame(ProtoMessage {
        payload_type: 9_999,
        payload: Some(vec![1, 2, 3].into()),
        client_msg_id: Some("u".into()),
    })
    .await;
    let reply = odd.reply_to("u").await;
    assert_eq!(error_code(&reply), "CH_CLIENT_NOT_AUTHENTICATED");
    odd.send_frame(ProtoMessage {
        payload_type: 2100,
        payload: Some(vec![0x0A, 0x05, 0x01].into()),
        client_msg_id: Some("m".into()),
    })
    .await;
    assert_eq!(error_code(&odd.reply_to("m").await), "INVALID_REQUEST");
    let reply = odd
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    assert!(matches!(reply, Payload::ApplicationAuthRes(_)));
    odd.send_frame(ProtoMessage {
        payload_type: 9_999,
        payload: None,
        client_msg_id: Some("u2".into()),
    })
    .await;
    assert_eq!(error_code(&odd.reply_to("u2").await), "UNSUPPORTED_MESSAGE");

    // The server still serves everyone else.
    let reply = bystander
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: sim.account(),
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::ReconcileRes(_)));
    let _ = sim.authorised().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_share_one_broker() {
    let sim = std::sync::Arc::new(TestSim::start(|_| {}).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let sim = std::sync::Arc::clone(&sim);
        tasks.push(tokio::spawn(async move {
            let mut client = sim.authorised().await;
            let events = place(&mut client, market_buy(sim.account(), 100, None, None)).await;
            events
                .iter()
                .find(|e| e.execution_type == 3)
                .unwrap()
                .position
                .as_ref()
                .unwrap()
                .position_id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16, "every client got its own position");
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: sim.account(),
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.position.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_reach_every_session_of_the_account() {
    let sim = TestSim::start(|_| {}).await;
    let mut trader = sim.authorised().await;
    let mut watcher = sim.authorised().await;
    place(&mut trader, market_buy(sim.account(), 100, None, None)).await;
    let (id, event) = watcher
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 3))
        .await;
    assert_eq!(id, None, "other sessions get no clientMsgId");
    assert!(
        matches!(event, Payload::ExecutionEvent(e) if e.order.as_ref().unwrap().client_order_id.as_deref() == Some("pob-test-1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let TestSim {
        handle,
        config: _,
        _dir,
    } = sim;
    let stop = tokio::spawn(handle.shutdown());
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::ClientDisconnectEvent(_)))
        .await;
    assert!(matches!(event, Payload::ClientDisconnectEvent(e) if e.reason.is_some()));
    assert!(client.closed_within(Duration::from_secs(3)).await);
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn some_spots_carry_only_one_side() {
    // Faster time so enough price changes happen quickly.
    let sim = TestSim::start(|c| c.speed = 120.0).await;
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: sim.account(),
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::SubscribeSpotsRes(_)));
    let (_, spot) = client
        .wait_for(|_, p| matches!(p, Payload::SpotEvent(s) if s.bid.is_none() != s.ask.is_none()))
        .await;
    assert!(matches!(spot, Payload::SpotEvent(s) if s.symbol_id == PALM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_time_runs_at_the_chosen_speed() {
    // One simulated minute per 100 ms.
    let sim = TestSim::start(|c| c.speed = 600.0).await;
    let before = sim.handle.sim_time();
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let real = started.elapsed().as_millis();
    let simulated = u128::try_from(sim.handle.sim_time().0 - before.0).unwrap();
    // 600 × real time, give or take a market tick on each side.
    assert!(
        simulated >= 600 * (real.saturating_sub(100)),
        "{simulated} ms in {real} ms"
    );
    assert!(
        simulated <= 600 * (real + 100),
        "{simulated} ms in {real} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_prices_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fcpo.csv");
    let mut csv = String::from("time,open,high,low,close\n");
    // Two hours of flat minute bars at 3,950 MYR/t, then a rise to 4,200.
    for minute in 0..180 {
        let price = if minute < 120 { 3950 } else { 4200 };
        let at = MONDAY_0300.0 / 1000 + minute * 60;
        csv.push_str(&format!("{at},{price},{price},{price},{price}\n"));
    }
    std::fs::write(&path, csv).unwrap();
    let sim = TestSim::start(|c| {
        c.prices = ctrader_sim::PriceSource::Csv(path.clone());
        c.start_time = None;
        c.history = Duration::from_secs(3600);
    })
    .await;
    assert_eq!(
        sim.handle.sim_time(),
        MONDAY_0300.plus_millis(3_600_000),
        "starts after the history"
    );
    let mut client = sim.authorised().await;
    let id = client
        .send(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: sim.account(),
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    assert!(matches!(
        client.reply_to(&id).await,
        Payload::SubscribeSpotsRes(_)
    ));
    let (_, first) = client.next().await;
    let Payload::SpotEvent(first) = first else {
        panic!("{first:?}")
    };
    // Mid 3,950 with the two-tick spread: 3,949 / 3,951.
    assert_eq!(
        (first.bid, first.ask),
        (Some(394_900_000), Some(395_100_000))
    );
    assert!(
        sim.handle.set_mid_price(PALM, 400_000_000).is_err(),
        "a replay follows its file"
    );
    let reply = client
        .request(ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: sim.account(),
            from_timestamp: Some(MONDAY_0300.0),
            to_timestamp: Some(sim.handle.sim_time().0),
            period: 9,
            symbol_id: PALM,
            ..Default::default()
        })
        .await;
    let Payload::GetTrendbarsRes(bars) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(bars.trendbar.len(), 1, "the replayed hour is history");
    assert_eq!(bars.trendbar[0].low, Some(394_900_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_list_says_whether_the_account_is_live() {
    for live in [false, true] {
        let sim = TestSim::start(|c| c.live_account = live).await;
        let mut client = sim.connect().await;
        let reply = client
            .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
            .await;
        assert!(matches!(reply, Payload::ApplicationAuthRes(_)), "{reply:?}");
        let reply = client
            .request(ProtoOaGetAccountListByAccessTokenReq {
                access_token: "palm-oil-sim-access-token".into(),
                ..Default::default()
            })
            .await;
        let Payload::GetAccountListByAccessTokenRes(list) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(list.ctid_trader_account[0].is_live, Some(live));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_announced_and_refused_but_the_refresh_token_still_works() {
    let sim = TestSim::start(|c| c.token_lifetime = Duration::from_secs(1)).await;
    let mut client = sim.authorised().await;
    let account = sim.account();
    // The token expires a second after the start: the session hears it and loses the account.
    let (_, event) = client
        .wait_for(|_, p| matches!(p, Payload::AccountsTokenInvalidatedEvent(_)))
        .await;
    let Payload::AccountsTokenInvalidatedEvent(event) = event else {
        unreachable!()
    };
    assert_eq!(event.ctid_trader_account_ids, vec![account]);
    assert_eq!(event.reason.as_deref(), Some("Access token expired"));
    let reply = client
        .request(ProtoOaAccountAuthReq {
            ctid_trader_account_id: account,
            access_token: "palm-oil-sim-access-token".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "CH_ACCESS_TOKEN_INVALID");
    let reply = client
        .request(ProtoOaRefreshTokenReq {
            refresh_token: "palm-oil-sim-refresh-token".into(),
            ..Default::default()
        })
        .await;
    let Payload::RefreshTokenRes(res) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(res.expires_in, 1, "expires_in is the configured lifetime");
    let reply = client
        .request(ProtoOaAccountAuthReq {
            ctid_trader_account_id: account,
            access_token: res.access_token.clone(),
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::AccountAuthRes(_)), "{reply:?}");
    // Single-use: the same refresh token is refused the second time.
    let reply = client
        .request(ProtoOaRefreshTokenReq {
            refresh_token: "palm-oil-sim-refresh-token".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(error_code(&reply), "CH_ACCESS_TOKEN_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_drops_clients_and_refuses_everyone_until_it_ends() {
    let sim = TestSim::start(|_| {}).await;
    let mut client = sim.authorised().await;
    let end = sim
        .handle
        .faults()
        .announce_maintenance(Duration::from_secs(2))
        .unwrap();
    let (_, error) = client
        .wait_for(|_, p| matches!(p, Payload::ErrorRes(_)))
        .await;
    let Payload::ErrorRes(error) = error else {
        unreachable!()
    };
    assert_eq!(error.error_code, "SERVER_IS_UNDER_MAINTENANCE");
    assert_eq!(error.maintenance_end_timestamp, Some(end));
    assert!(client.closed_within(Duration::from_secs(5)).await);
    // A new connection is answered with the same error and closed while the window lasts.
    let mut late = sim.connect().await;
    let reply = late
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    let Payload::ErrorRes(error) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.error_code, "SERVER_IS_UNDER_MAINTENANCE");
    assert_eq!(error.maintenance_end_timestamp, Some(end));
    assert!(late.closed_within(Duration::from_secs(5)).await);
    // After the end, the server serves again.
    use domain::Clock as _;
    let wait_ms = end * 1000 - domain::SystemClock.now().millis();
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(wait_ms.max(0)).unwrap() + 50,
    ))
    .await;
    let mut after = sim.connect().await;
    let reply = after
        .request(app_auth("palm-oil-sim", "palm-oil-sim-secret"))
        .await;
    assert!(matches!(reply, Payload::ApplicationAuthRes(_)), "{reply:?}");
    assert!(
        sim.handle
            .faults()
            .announce_maintenance(Duration::ZERO)
            .is_err(),
        "a window must last at least a second"
    );
}
