//! The bot's money arithmetic agrees with the broker's: over seeded random palm oil prices, USDMYR
//! rates, volumes, sides and account money digits, for a USD and a MYR account, the unrealized PnL
//! the bot computes at a quote (`domain::unrealized_pnl`, from the position and quotes the client
//! reports) equals the broker's own `netUnrealizedPnL` (`ProtoOAGetPositionUnrealizedPnLReq`) and
//! the net result of the closing deal the broker books at that same quote, within one money unit.
//! The real client talks TLS to the simulator on loopback; prices are held still between steps.

// Test helpers panic on purpose: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::within;

use std::time::Duration;

use ctrader_client::{Broker, CTraderClient, OrderOutcome};
use ctrader_sim::{
    AccountCurrency, CertificateSource, MarketHours, PALM_OIL_SYMBOL_ID, SimConfig, SimHandle,
    Simulator, USD_MYR_SYMBOL_ID,
};
use domain::{
    ClientOrderId, OrderRequest, Quote, Side, SymbolId, Timestamp, Volume, realized_pnl,
    unrealized_pnl,
};

const PALM: SymbolId = SymbolId(PALM_OIL_SYMBOL_ID);
/// Random cases per account.
const CASES: u64 = 6;

/// SplitMix64, so a failing case can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + i64::try_from(self.next() % u64::try_from(high - low + 1).unwrap()).unwrap()
    }
}

async fn start(
    currency: AccountCurrency,
    money_digits: u32,
) -> (SimHandle, CTraderClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        certificates: CertificateSource::Directory(dir.path().join("certs")),
        market_hours: MarketHours::AlwaysOpen,
        history: Duration::from_secs(3_600),
        tick_interval: Duration::from_millis(20),
        account_currency: currency,
        money_digits,
        // A million of the deposit currency, whatever its digits: margin is never the limit here.
        initial_balance: 1_000_000 * 10_i64.pow(money_digits),
        ..SimConfig::default()
    };
    let sim = within("simulator start", Simulator::start(config))
        .await
        .unwrap();
    let client = common::connect(&sim).await;
    (sim, client, dir)
}

fn quote(sim: &SimHandle, symbol: i64) -> Quote {
    let (bid, ask) = sim.quote(symbol).unwrap();
    Quote {
        symbol: SymbolId(symbol),
        bid: domain::Price(bid),
        ask: domain::Price(ask),
        time: Timestamp(0),
    }
}

async fn agree(currency: AccountCurrency, money_digits: u32, seed: u64) {
    let (sim, client, _dir) = start(currency, money_digits).await;
    let account = within("account", client.account_currency()).await.unwrap();
    assert_eq!(account.code, currency.code());
    assert_eq!(u32::from(account.money_digits), money_digits);
    let chain = within("chain", client.conversion_chain(PALM))
        .await
        .unwrap();
    match currency {
        AccountCurrency::Usd => {
            let names: Vec<&str> = chain.steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["USDMYR"]);
            assert!(!chain.steps[0].multiply, "MYR → USD divides by USDMYR");
        }
        AccountCurrency::Myr => assert!(chain.steps.is_empty()),
    }
    let mut rng = Rng(seed);
    sim.freeze_prices();
    for case in 0..CASES {
        let what = format!("{currency:?} digits {money_digits} seed {seed} case {case}");
        let mid = rng.between(3_500, 4_800) * 100_000 + rng.between(0, 99) * 1_000;
        let spread = rng.between(1, 4) * 100_000;
        sim.set_quote(PALM_OIL_SYMBOL_ID, mid - spread / 2, mid + spread / 2)
            .unwrap();
        let fx = rng.between(420_000, 480_000);
        sim.set_quote(
            USD_MYR_SYMBOL_ID,
            fx - rng.between(1, 30),
            fx + rng.between(1, 30),
        )
        .unwrap();
        let side = if rng.next().is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let volume = Volume(rng.between(1, 40) * 100);
        let id = ClientOrderId::new(format!("mc-{seed}-{case}")).unwrap();
        let order = OrderRequest {
            label: id.to_string(),
            client_order_id: id,
            symbol: PALM,
            side,
            volume,
            relative_stop_loss: None,
            relative_take_profit: None,
            position_to_close: None,
        };
        let opened = match within("open", client.place_order(&order)).await.unwrap() {
            OrderOutcome::Filled(opened) => opened,
            OrderOutcome::Rejected(why) => panic!("{what}: the order was refused: {why:?}"),
        };
        let position_id = opened.fill.position_id;
        // The market moves to a new held quote (and a new rate).
        let exit_mid = mid + rng.between(-150, 150) * 100_000;
        sim.set_quote(
            PALM_OIL_SYMBOL_ID,
            exit_mid - spread / 2,
            exit_mid + spread / 2,
        )
        .unwrap();
        let fx = rng.between(420_000, 480_000);
        sim.set_quote(
            USD_MYR_SYMBOL_ID,
            fx - rng.between(1, 30),
            fx + rng.between(1, 30),
        )
        .unwrap();

        // The bot's figure, from what the client reports and the held quotes.
        let open = within("open state", client.open_state()).await.unwrap();
        let p = open.positions.iter().find(|p| p.id == position_id).unwrap();
        let palm = quote(&sim, PALM_OIL_SYMBOL_ID);
        let rate = chain
            .rate(|_| Some(quote(&sim, USD_MYR_SYMBOL_ID)))
            .unwrap();
        let digits = account.money_digits;
        let charges = p.swap.checked_add(p.commission).unwrap();
        let ours = unrealized_pnl(
            p.side,
            p.entry_price,
            p.volume,
            &palm,
            rate,
            charges,
            digits,
        )
        .unwrap();
        // The broker's own.
        let theirs = within("unrealized", client.unrealized_pnl()).await.unwrap();
        let theirs = theirs
            .iter()
            .find(|u| u.position == position_id)
            .unwrap()
            .net;
        assert!(
            (ours.minor - theirs.minor).abs() <= 1,
            "{what}: ours {ours}, broker {theirs}"
        );
        // The closing deal at the same quote, less the closing commission the unrealized
        // figure leaves out by definition.
        let OrderOutcome::Filled(closed) =
            within("close", client.close_position(position_id, volume))
                .await
                .unwrap()
        else {
            panic!("{what}: the close was refused");
        };
        let detail = closed.fill.close.expect("a closing deal");
        let booked = realized_pnl(&detail).unwrap();
        let closing_commission = closed.fill.commission;
        let expected = ours.checked_add(closing_commission).unwrap();
        assert!(
            (booked.minor - expected.minor).abs() <= 1,
            "{what}: booked {booked}, unrealized {ours} + closing commission {closing_commission}"
        );
        assert_eq!(booked.digits, digits, "{what}");
    }
    client.shutdown();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usd_account_agrees_with_the_broker_to_the_cent() {
    agree(AccountCurrency::Usd, 2, 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usd_account_with_six_money_digits_agrees_too() {
    agree(AccountCurrency::Usd, 6, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_myr_account_agrees_with_the_broker() {
    agree(AccountCurrency::Myr, 2, 13).await;
}
