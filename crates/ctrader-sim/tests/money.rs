//! Money in the account's deposit currency, over real TLS: the asset list, the conversion chain
//! (USDMYR, whose quotes move), swap at the daily rollover, commission, the broker's own unrealised
//! profit against the closing deal at a held quote, a ringgit account, and holding prices still.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{MONDAY_0300, PALM, TestClient, TestSim, error_code, market_buy, place};
use ctrader_proto::Payload;
use ctrader_proto::openapi::{
    ProtoOaAssetListReq, ProtoOaClosePositionReq, ProtoOaDealListReq, ProtoOaExecutionEvent,
    ProtoOaGetPositionUnrealizedPnLReq, ProtoOaGetPositionUnrealizedPnLRes, ProtoOaLightSymbol,
    ProtoOaNewOrderReq, ProtoOaReconcileReq, ProtoOaSubscribeSpotsReq, ProtoOaSymbolByIdReq,
    ProtoOaSymbolsForConversionReq, ProtoOaSymbolsListReq, ProtoOaTraderReq,
};
use ctrader_sim::{AccountCurrency, USD_MYR_SYMBOL_ID};
use domain::{Price, Timestamp};

const USD: i64 = 2;
const MYR: i64 = 78;
const XAUUSD: i64 = 41;
const EURUSD: i64 = 1;
/// Monday 2025-11-24 21:58 UTC: two minutes before the daily rollover.
const MONDAY_2158: Timestamp = Timestamp(MONDAY_0300.0 + (18 * 60 + 58) * 60_000);
/// The rollover: Monday 22:00 UTC.
const MONDAY_2200: Timestamp = Timestamp(MONDAY_0300.0 + 19 * 3_600_000);

/// A simulator two simulated minutes (four real seconds) before the rollover, heartbeating every
/// second so a quiet (frozen) market still sends frames while the test waits.
async fn before_rollover() -> TestSim {
    TestSim::start(|c| {
        c.start_time = Some(MONDAY_2158);
        c.speed = 30.0;
        c.heartbeat_interval = Duration::from_secs(1);
    })
    .await
}

fn price_units(price: Option<f64>) -> i64 {
    Price::from_f64(price.unwrap()).unwrap().0
}

async fn deposit_asset(client: &mut TestClient, account: i64) -> (i64, u32, i64) {
    let reply = client
        .request(ProtoOaTraderReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::TraderRes(trader) = reply else {
        panic!("{reply:?}")
    };
    (
        trader.trader.deposit_asset_id,
        trader.trader.money_digits.unwrap(),
        trader.trader.balance,
    )
}

async fn chain(client: &mut TestClient, account: i64, first: i64, last: i64) -> Payload {
    client
        .request(ProtoOaSymbolsForConversionReq {
            ctid_trader_account_id: account,
            first_asset_id: first,
            last_asset_id: last,
            ..Default::default()
        })
        .await
}

fn chain_ids(reply: &Payload) -> Vec<i64> {
    let Payload::SymbolsForConversionRes(res) = reply else {
        panic!("{reply:?}")
    };
    res.symbol.iter().map(|s| s.symbol_id).collect()
}

async fn unrealized(client: &mut TestClient, account: i64) -> ProtoOaGetPositionUnrealizedPnLRes {
    let reply = client
        .request(ProtoOaGetPositionUnrealizedPnLReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::GetPositionUnrealizedPnlRes(res) = reply else {
        panic!("{reply:?}")
    };
    res
}

/// Opens a market order and returns the FILLED event.
async fn open(client: &mut TestClient, order: ProtoOaNewOrderReq) -> ProtoOaExecutionEvent {
    place(client, order)
        .await
        .into_iter()
        .find(|e| e.execution_type == 3)
        .expect("ORDER_FILLED")
}

/// Closes `volume` of a position and returns the FILLED event with the closing deal.
async fn close(
    client: &mut TestClient,
    account: i64,
    position_id: i64,
    volume: i64,
) -> ProtoOaExecutionEvent {
    let id = client
        .send(ProtoOaClosePositionReq {
            ctid_trader_account_id: account,
            position_id,
            volume,
            ..Default::default()
        })
        .await;
    client
        .replies_until(&id, |p| match p {
            Payload::ExecutionEvent(e) => e.execution_type == 3,
            _ => true,
        })
        .await
        .into_iter()
        .map(|p| match p {
            Payload::ExecutionEvent(e) => e,
            other => panic!("close refused: {other:?}"),
        })
        .find(|e| e.execution_type == 3)
        .unwrap()
}

fn order_on(account: i64, symbol_id: i64, side: i32, volume: i64) -> ProtoOaNewOrderReq {
    ProtoOaNewOrderReq {
        symbol_id,
        trade_side: side,
        client_order_id: None,
        ..market_buy(account, volume, None, None)
    }
}

/// `amount × 10^digits` rounded, for comparisons in minor units.
#[allow(clippy::cast_possible_truncation)]
fn minor(amount: f64, digits: u32) -> i64 {
    (amount * 10_f64.powi(i32::try_from(digits).unwrap())).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_list_names_every_asset_the_symbols_use_and_the_deposit_asset() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaAssetListReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::AssetListRes(list) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(list.ctid_trader_account_id, account);
    let name_of = |id: i64| {
        list.asset
            .iter()
            .find(|a| a.asset_id == id)
            .map(|a| (a.name.clone(), a.digits))
    };
    assert_eq!(name_of(USD), Some(("USD".to_owned(), Some(2))));
    assert_eq!(name_of(MYR), Some(("MYR".to_owned(), Some(2))));
    assert_eq!(name_of(1).unwrap().0, "EUR");
    assert_eq!(name_of(3).unwrap().0, "XAU");
    let (deposit, digits, _) = deposit_asset(&mut client, account).await;
    assert_eq!((deposit, digits), (USD, 2));

    let reply = client
        .request(ProtoOaSymbolsListReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::SymbolsListRes(symbols) = reply else {
        panic!("{reply:?}")
    };
    for symbol in &symbols.symbol {
        for asset in [symbol.base_asset_id, symbol.quote_asset_id] {
            assert!(
                name_of(asset.unwrap()).is_some(),
                "{symbol:?} names an asset missing from the list"
            );
        }
    }
    let usdmyr = symbols
        .symbol
        .iter()
        .find(|s| s.symbol_name.as_deref() == Some("USDMYR"))
        .unwrap();
    assert_eq!(
        (
            usdmyr.symbol_id,
            usdmyr.base_asset_id,
            usdmyr.quote_asset_id
        ),
        (USD_MYR_SYMBOL_ID, Some(USD), Some(MYR))
    );
    let palm = symbols.symbol.iter().find(|s| s.symbol_id == PALM).unwrap();
    assert_eq!(palm.quote_asset_id, Some(MYR));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbols_for_conversion_give_the_chain_or_the_error() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    let reply = chain(&mut client, account, MYR, USD).await;
    assert_eq!(chain_ids(&reply), vec![USD_MYR_SYMBOL_ID]);
    let Payload::SymbolsForConversionRes(res) = &reply else {
        unreachable!()
    };
    let ProtoOaLightSymbol {
        symbol_name,
        base_asset_id,
        quote_asset_id,
        ..
    } = &res.symbol[0];
    assert_eq!(symbol_name.as_deref(), Some("USDMYR"));
    assert_eq!((*base_asset_id, *quote_asset_id), (Some(USD), Some(MYR)));
    assert_eq!(res.ctid_trader_account_id, account);
    let reply = chain(&mut client, account, USD, MYR).await;
    assert_eq!(chain_ids(&reply), vec![USD_MYR_SYMBOL_ID]);
    let reply = chain(&mut client, account, USD, USD).await;
    assert!(chain_ids(&reply).is_empty(), "same asset: no chain");
    let reply = chain(&mut client, account, 3, MYR).await;
    assert_eq!(chain_ids(&reply), vec![XAUUSD, USD_MYR_SYMBOL_ID]);
    for (first, last) in [(999, USD), (MYR, 12_345)] {
        let reply = chain(&mut client, account, first, last).await;
        assert_eq!(error_code(&reply), "ENTITY_NOT_FOUND");
        let Payload::ErrorRes(error) = reply else {
            unreachable!()
        };
        let description = error.description.unwrap();
        assert!(
            description.contains(&first.max(last).to_string()),
            "{description}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdmyr_is_a_symbol_whose_quotes_move_during_a_run() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaSymbolByIdReq {
            ctid_trader_account_id: account,
            symbol_id: vec![USD_MYR_SYMBOL_ID],
            ..Default::default()
        })
        .await;
    let Payload::SymbolByIdRes(full) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!((full.symbol[0].digits, full.symbol[0].pip_position), (5, 4));
    let id = client
        .send(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![USD_MYR_SYMBOL_ID],
            ..Default::default()
        })
        .await;
    assert!(matches!(
        client.reply_to(&id).await,
        Payload::SubscribeSpotsRes(_)
    ));
    let mut bids = BTreeSet::new();
    for _ in 0..400 {
        let (_, payload) = client.next().await;
        if let Payload::SpotEvent(spot) = payload {
            assert_eq!(spot.symbol_id, USD_MYR_SYMBOL_ID);
            if let Some(bid) = spot.bid {
                assert!((400_000..=500_000).contains(&bid), "USDMYR bid {bid}");
                bids.insert(bid);
            }
        }
        if bids.len() >= 5 {
            break;
        }
    }
    assert!(bids.len() >= 5, "USDMYR moved only through {bids:?}");
    let rate = sim.handle.quote_to_deposit_rate(PALM).unwrap();
    assert!((1.0 / 4.8..1.0 / 4.1).contains(&rate), "{rate}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_gross_profit_is_the_price_move_over_the_usdmyr_mid_at_the_close() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    sim.handle.freeze_prices();
    sim.handle
        .set_quote(PALM, 412_300_000, 412_500_000)
        .unwrap();
    sim.handle
        .set_quote(USD_MYR_SYMBOL_ID, 446_050, 446_250)
        .unwrap();
    let filled = open(&mut client, market_buy(account, 300, None, None)).await;
    let position = filled.position.unwrap();
    let entry = price_units(position.price);
    assert_eq!(entry, 412_500_000, "a buy pays the ask");
    assert!(
        position.commission.unwrap() < 0,
        "opening commission charged"
    );
    let opening_deal_commission = filled.deal.unwrap().commission.unwrap();
    assert_eq!(position.commission, Some(opening_deal_commission));

    // Palm oil +37 MYR, and the ringgit weaker than at the open: the rate at the close counts.
    sim.handle
        .set_quote(PALM, 416_200_000, 416_400_000)
        .unwrap();
    let (fx_bid, fx_ask) = (452_310, 452_490);
    sim.handle
        .set_quote(USD_MYR_SYMBOL_ID, fx_bid, fx_ask)
        .unwrap();
    let (_, digits, before) = deposit_asset(&mut client, account).await;
    let closed = close(&mut client, account, position.position_id, 300).await;
    let deal = closed.deal.unwrap();
    let detail = deal.close_position_detail.unwrap();
    let mid = (fx_bid + fx_ask) as f64 / 2.0 / 100_000.0;
    let expected = (4162.0 - 4125.0) * 3.0 / mid;
    assert!(
        (detail.gross_profit - minor(expected, digits)).abs() <= 1,
        "gross {} vs {expected}",
        detail.gross_profit
    );
    let rate = detail.quote_to_deposit_conversion_rate.unwrap();
    assert!((rate - 1.0 / mid).abs() < 1e-12, "{rate} vs 1/{mid}");
    assert_eq!(detail.money_digits, Some(digits));
    assert!(
        deal.commission.unwrap() < 0,
        "closing commission on the deal"
    );
    assert_eq!(
        detail.commission,
        deal.commission.unwrap() + opening_deal_commission,
        "both sides' commission realised with the close"
    );
    let (_, _, after) = deposit_asset(&mut client, account).await;
    assert_eq!(
        after - before,
        detail.gross_profit + detail.swap + detail.commission
    );
    assert_eq!(detail.balance, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_held_across_the_rollover_gets_a_swap_event_and_realises_its_swap() {
    let sim = before_rollover().await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaSymbolByIdReq {
            ctid_trader_account_id: account,
            symbol_id: vec![PALM],
            ..Default::default()
        })
        .await;
    let Payload::SymbolByIdRes(full) = reply else {
        panic!("{reply:?}")
    };
    let palm = &full.symbol[0];
    assert_eq!((palm.swap_long, palm.swap_short), (Some(-6.0), Some(-3.0)));
    assert_eq!(palm.swap_calculation_type, Some(1), "PERCENTAGE");
    assert_eq!(palm.swap_rollover3_days, Some(3), "WEDNESDAY");
    assert_eq!((palm.swap_time, palm.swap_period), (Some(1320), Some(24)));

    let filled = open(&mut client, market_buy(account, 1_000, None, None)).await;
    let position_id = filled.position.unwrap().position_id;
    assert!(
        sim.handle.sim_time() < MONDAY_2200,
        "opened before the rollover"
    );
    let (id, swap) = client
        .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 9))
        .await;
    assert_eq!(id, None, "the server's own event");
    let Payload::ExecutionEvent(swap) = swap else {
        unreachable!()
    };
    assert_eq!(swap.is_server_event, Some(true));
    assert!(swap.deal.is_none() && swap.order.is_none());
    let charged = swap.position.as_ref().unwrap();
    assert_eq!(charged.position_id, position_id);
    assert_eq!(charged.money_digits, Some(2));
    // 10 t × ~4000 MYR × 6 % / 360 / ~4.47 ≈ 1.5 USD, paid by the long.
    assert!((-200..=-100).contains(&charged.swap), "{}", charged.swap);
    assert!(sim.handle.sim_time() >= MONDAY_2200);
    let record = sim.handle.open_positions();
    assert_eq!(record[0].swap, charged.swap);
    assert_eq!(Some(record[0].commission), charged.commission);

    let reply = client
        .request(ProtoOaReconcileReq {
            ctid_trader_account_id: account,
            ..Default::default()
        })
        .await;
    let Payload::ReconcileRes(open_now) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(open_now.position[0].swap, charged.swap);

    let (_, _, before) = deposit_asset(&mut client, account).await;
    let closed = close(&mut client, account, position_id, 400).await;
    let first = closed.deal.unwrap().close_position_detail.unwrap();
    assert_eq!(
        first.swap,
        charged.swap * 4 / 10,
        "pro rata to the volume closed"
    );
    assert_eq!(closed.position.unwrap().swap, charged.swap - first.swap);
    let closed = close(&mut client, account, position_id, 600).await;
    let second = closed.deal.unwrap().close_position_detail.unwrap();
    assert_eq!(first.swap + second.swap, charged.swap);
    let (_, _, after) = deposit_asset(&mut client, account).await;
    assert_eq!(
        after - before,
        first.gross_profit
            + first.swap
            + first.commission
            + second.gross_profit
            + second.swap
            + second.commission,
        "each deal's net result is exactly what moved the balance"
    );
}

/// A small seeded generator, so the cases are varied but the same on every run.
struct Cases(u64);

impl Cases {
    fn pick(&mut self, low: i64, high: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let span = u64::try_from(high - low + 1).unwrap();
        low + i64::try_from((self.0 >> 33) % span).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_unrealized_pnl_at_a_held_quote_equals_the_closing_deal_at_that_quote() {
    // Positions opened before the rollover carry swap as well as commission.
    let sim = before_rollover().await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    sim.handle.freeze_prices();
    assert!(sim.handle.prices_frozen());
    let mut cases = Cases(12);
    let mut positions = Vec::new();
    for _ in 0..6 {
        let side = i32::try_from(cases.pick(1, 2)).unwrap();
        let volume = cases.pick(1, 30) * 100;
        let filled = open(&mut client, order_on(account, PALM, side, volume)).await;
        positions.push((filled.position.unwrap().position_id, volume));
    }
    for _ in 0..positions.len() {
        client
            .wait_for(|_, p| matches!(p, Payload::ExecutionEvent(e) if e.execution_type == 9))
            .await;
    }
    for (position_id, volume) in positions {
        let palm = cases.pick(3_500, 4_600) * 100_000;
        let fx_mid = cases.pick(430_000, 470_000);
        let fx_half = cases.pick(1, 150);
        sim.handle
            .set_quote(PALM, palm, palm + cases.pick(1, 3) * 100_000)
            .unwrap();
        sim.handle
            .set_quote(USD_MYR_SYMBOL_ID, fx_mid - fx_half, fx_mid + fx_half)
            .unwrap();
        let pnl = unrealized(&mut client, account).await;
        assert_eq!(pnl.money_digits, 2);
        let mine = pnl
            .position_unrealized_pn_l
            .iter()
            .find(|p| p.position_id == position_id)
            .copied()
            .unwrap();
        let record = sim
            .handle
            .open_positions()
            .into_iter()
            .find(|p| p.id == position_id)
            .unwrap();
        assert!(record.swap != 0, "held over the rollover: {record:?}");
        assert_eq!(
            record.unrealized,
            Some((mine.gross_unrealized_pn_l, mine.net_unrealized_pn_l))
        );
        assert_eq!(
            mine.net_unrealized_pn_l,
            mine.gross_unrealized_pn_l + record.swap + record.commission
        );
        let closed = close(&mut client, account, position_id, volume).await;
        let deal = closed.deal.unwrap();
        let detail = deal.close_position_detail.unwrap();
        let net_result = detail.gross_profit + detail.swap + detail.commission;
        assert!(
            (mine.gross_unrealized_pn_l - detail.gross_profit).abs() <= 1,
            "{mine:?} vs {detail:?}"
        );
        // netUnrealizedPnL leaves out the closing commission, which the deal carries itself.
        assert!(
            (mine.net_unrealized_pn_l - (net_result - deal.commission.unwrap())).abs() <= 1,
            "{mine:?} vs {detail:?} and closing commission {:?}",
            deal.commission
        );
    }
    assert!(
        unrealized(&mut client, account)
            .await
            .position_unrealized_pn_l
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringgit_account_trades_palm_oil_without_conversion_and_dollars_through_usdmyr() {
    let sim = TestSim::start(|c| c.account_currency = AccountCurrency::Myr).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    assert_eq!(sim.handle.account_currency(), AccountCurrency::Myr);
    let (deposit, digits, _) = deposit_asset(&mut client, account).await;
    assert_eq!(deposit, MYR);
    let reply = chain(&mut client, account, MYR, MYR).await;
    assert!(chain_ids(&reply).is_empty(), "palm oil needs no chain");
    let reply = chain(&mut client, account, USD, MYR).await;
    assert_eq!(chain_ids(&reply), vec![USD_MYR_SYMBOL_ID]);
    assert_eq!(sim.handle.quote_to_deposit_rate(PALM), Some(1.0));

    sim.handle.freeze_prices();
    sim.handle
        .set_quote(PALM, 400_000_000, 400_200_000)
        .unwrap();
    sim.handle.set_quote(EURUSD, 108_500, 108_510).unwrap();
    let (fx_bid, fx_ask) = (447_950, 448_050);
    sim.handle
        .set_quote(USD_MYR_SYMBOL_ID, fx_bid, fx_ask)
        .unwrap();
    let rate = sim.handle.quote_to_deposit_rate(EURUSD).unwrap();
    assert!(
        (rate - 4.48).abs() < 1e-12,
        "USD → MYR multiplies by the mid"
    );

    let palm = open(&mut client, market_buy(account, 200, None, None)).await;
    let palm_id = palm.position.unwrap().position_id;
    let eur = open(&mut client, order_on(account, EURUSD, 1, 100_000)).await;
    let eur_id = eur.position.unwrap().position_id;
    sim.handle
        .set_quote(PALM, 402_500_000, 402_700_000)
        .unwrap();
    sim.handle.set_quote(EURUSD, 108_610, 108_620).unwrap();

    let pnl = unrealized(&mut client, account).await;
    let gross_of = |id: i64| {
        pnl.position_unrealized_pn_l
            .iter()
            .find(|p| p.position_id == id)
            .unwrap()
            .gross_unrealized_pn_l
    };
    // 2 t × (4025 − 4002) MYR = 46.00 MYR, no conversion.
    assert_eq!(gross_of(palm_id), minor(46.0, digits));
    // 1,000 EUR × (1.08610 − 1.08510) USD = 1 USD × 4.48 = 4.48 MYR.
    assert_eq!(gross_of(eur_id), minor(4.48, digits));

    let closed = close(&mut client, account, palm_id, 200).await;
    let detail = closed.deal.unwrap().close_position_detail.unwrap();
    assert_eq!(detail.gross_profit, minor(46.0, digits));
    assert_eq!(detail.quote_to_deposit_conversion_rate, Some(1.0));
    let closed = close(&mut client, account, eur_id, 100_000).await;
    let detail = closed.deal.unwrap().close_position_detail.unwrap();
    assert_eq!(detail.gross_profit, minor(4.48, digits));
    assert!((detail.quote_to_deposit_conversion_rate.unwrap() - 4.48).abs() < 1e-12);

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
    assert_eq!(list.deal.len(), 4);
    assert!(list.deal.iter().all(|d| d.money_digits == Some(digits)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_prices_send_no_spots_until_released_and_time_runs_on() {
    let sim = TestSim::start(|_| {}).await;
    let account = sim.account();
    let mut client = sim.authorised().await;
    let reply = client
        .request(ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![PALM, USD_MYR_SYMBOL_ID],
            ..Default::default()
        })
        .await;
    assert!(matches!(reply, Payload::SubscribeSpotsRes(_)));
    sim.handle.freeze_prices();
    let held = (
        sim.handle.quote(PALM).unwrap(),
        sim.handle.quote(USD_MYR_SYMBOL_ID).unwrap(),
    );
    let rate = sim.handle.quote_to_deposit_rate(PALM).unwrap();
    // Drain what was published before the freeze, then nothing more comes for a while.
    let started = sim.handle.sim_time();
    let mut quiet = false;
    for _ in 0..200 {
        match client.next_frame_within(Duration::from_millis(500)).await {
            Err(()) => {
                quiet = true;
                break;
            }
            Ok(frame) => {
                frame.expect("open").expect("well-formed");
            }
        }
    }
    assert!(quiet, "spots kept coming while prices were frozen");
    assert!(sim.handle.sim_time() > started, "the clock runs on");
    assert_eq!(
        (
            sim.handle.quote(PALM).unwrap(),
            sim.handle.quote(USD_MYR_SYMBOL_ID).unwrap()
        ),
        held
    );
    assert_eq!(sim.handle.quote_to_deposit_rate(PALM), Some(rate));

    // A set quote is published once and stays.
    sim.handle
        .set_quote(USD_MYR_SYMBOL_ID, 455_000, 455_200)
        .unwrap();
    let (_, spot) = client
        .wait_for(|_, p| matches!(p, Payload::SpotEvent(_)))
        .await;
    let Payload::SpotEvent(spot) = spot else {
        unreachable!()
    };
    assert_eq!(
        (spot.symbol_id, spot.bid, spot.ask),
        (USD_MYR_SYMBOL_ID, Some(455_000), Some(455_200))
    );
    let rate = sim.handle.quote_to_deposit_rate(PALM).unwrap();
    assert!((rate - 1.0 / 4.551).abs() < 1e-12, "{rate}");
    assert!(sim.handle.set_quote(USD_MYR_SYMBOL_ID, 5, 4).is_err());
    assert!(sim.handle.set_quote(12_345, 5, 6).is_err());

    sim.handle.release_prices();
    assert!(!sim.handle.prices_frozen());
    client
        .wait_for(|_, p| matches!(p, Payload::SpotEvent(_)))
        .await;
}
