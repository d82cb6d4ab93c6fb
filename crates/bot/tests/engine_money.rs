//! Money in the account's currency, end to end over the in-memory broker: a USD account trading
//! the MYR-priced palm oil CFD through the broker's USDMYR conversion chain. Each test reproduces a
//! report of a user (a MYR move shown as USD, sizing that risked a fifth of what was asked, a
//! kill-switch peak persisted from a phantom gain) and shows it fixed.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/engine_harness.rs"]
mod engine_harness;

use ctrader_client::Broker;
use domain::{
    ConversionChain, ConversionStep, KillSwitchState, Money, Price, SymbolId, SymbolSpec,
    TradingSchedule, Volume,
};
use engine_harness::*;
use persistence::TradeStore;
use strategy::{RiskConfig, SizingRule};

const USDMYR: SymbolId = SymbolId(900);

/// A harness whose account is in USD while PALMOIL is quoted in MYR, converted through USDMYR.
fn usd_account() -> Harness {
    let h = Harness::new();
    h.broker.set_account_currency(15, "USD");
    h.broker.add_symbol(SymbolSpec {
        id: USDMYR,
        name: "USDMYR".into(),
        digits: 5,
        pip_position: 4,
        lot_size: Volume(10_000_000),
        min_volume: Volume(100_000),
        max_volume: Volume(100_000_000),
        step_volume: Volume(100_000),
        schedule: TradingSchedule::always_open(),
        commission: None,
    });
    h.broker.set_conversion(
        PALM,
        ConversionChain {
            quote_currency: "MYR".into(),
            steps: vec![ConversionStep {
                symbol: USDMYR,
                name: "USDMYR".into(),
                multiply: false,
            }],
        },
    );
    h
}

/// USDMYR at `mid` (in 1/100000), with a two-point spread around it.
fn usdmyr(h: &Harness, mid: i64) {
    h.broker.set_quote(USDMYR, Price(mid - 2), Price(mid + 2));
}

fn account(h: &Harness) -> observability::AccountView {
    h.obs.status.live().account.expect("account figures")
}

fn metric(h: &Harness, line_start: &str) -> Option<f64> {
    h.metrics()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_myr_position_is_valued_in_usd_at_the_live_rate_on_every_card() {
    let mut h = usd_account();
    usdmyr(&h, 450_000);
    h.run().await;
    h.cross_down().await; // opens 1 unit at the ask 4101
    assert_eq!(h.broker.orders_sent().len(), 1);

    // Bid 4144: 43 MYR per unit; at USDMYR 4.5 that is 9.56 USD, not 43.
    h.quote_at(2 * MIN + 5_000, 4_145).await;
    let live = h.obs.status.live();
    let a = live.account.clone().unwrap();
    assert_eq!(a.currency, "USD");
    assert!((a.unrealized_pnl - 9.56).abs() < 1e-9, "{a:?}");
    assert!((a.equity - 10_009.56).abs() < 1e-9, "{a:?}");
    // The position card and the account card show the same number at the same moment.
    assert_eq!(
        live.position.unwrap().unrealized_pnl,
        Some(a.unrealized_pnl)
    );
    // ... which is the broker's own figure.
    let broker = h.broker.unrealized_pnl().await.unwrap();
    assert_eq!(broker[0].net, Money::new(956, 2));
    let conversion = live.conversion.unwrap();
    assert_eq!(conversion.via, ["USDMYR"]);
    assert!((conversion.rate.unwrap() - 1.0 / 4.5).abs() < 1e-9);

    // The ringgit strengthens to 4.3: the same MYR gain is worth more USD, at once.
    usdmyr(&h, 430_000);
    h.settle().await;
    let a = account(&h);
    assert!((a.unrealized_pnl - 10.0).abs() < 1e-9, "{a:?}");
    assert_eq!(metric(&h, "palm_oil_bot_equity"), Some(10_010.0));
    h.stop().await;
}

#[tokio::test]
async fn risk_per_trade_risks_the_fraction_of_equity_in_the_account_currency() {
    let mut h = usd_account();
    h.risk = RiskConfig {
        sizing: SizingRule::RiskFraction { bps: 100 },
        ..RiskConfig::default()
    };
    usdmyr(&h, 450_000);
    h.run().await;
    h.cross_down().await;
    // 1% of 10,000 USD = 100 USD = 450 MYR; a 40 MYR stop plus the 2 MYR spread a stop may
    // slip by affords 10.7 units: 10, not 2.
    let sent = h.broker.orders_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].volume, Volume(1_000));

    // The stop (4061) is hit: the loss is within 1% of equity in USD, and above half of it.
    h.quote_at(2 * MIN + 5_000, 4_062).await;
    let closed = h.all_positions().await;
    let pnl = closed[0].pnl.expect("a realized PnL");
    // 40 MYR x 10 units = 400 MYR = 88.89 USD.
    assert_eq!(pnl, Money::new(-8_889, 2));
    // It is the broker's net result of the closing deal, and the balance moved by exactly that.
    assert_eq!(h.broker.balance(), Money::new(1_000_000 + pnl.minor, 2));
    let a = account(&h);
    assert!((a.realized_pnl - pnl.to_f64()).abs() < 1e-9);
    h.stop().await;
}

#[tokio::test]
async fn without_a_conversion_rate_no_entry_is_sized_and_readiness_says_why() {
    let mut h = usd_account();
    // No USDMYR quote ever arrives.
    h.run().await;
    h.cross_down().await;
    assert!(h.broker.orders_sent().is_empty());
    assert!(
        h.has_event("no fresh rate from MYR to USD"),
        "{:?}",
        h.events()
    );
    assert_eq!(
        metric(
            &h,
            "palm_oil_bot_entries_refused_total{reason=\"no_conversion_rate\""
        ),
        Some(1.0)
    );
    let readiness = h.obs.status.readiness();
    let check = readiness
        .checks
        .iter()
        .find(|c| c.name == "conversion_rate")
        .unwrap();
    assert!(!check.ok && check.detail.contains("USDMYR"), "{check:?}");
    assert!(!readiness.ready);

    // The first USDMYR quote makes the rate usable again.
    usdmyr(&h, 450_000);
    h.settle().await;
    assert!(
        h.obs
            .status
            .readiness()
            .checks
            .iter()
            .all(|c| c.name != "conversion_rate" || c.ok)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_kill_switch_peak_stored_in_mixed_units_is_reset_not_trusted() {
    let mut h = usd_account();
    usdmyr(&h, 450_000);
    // An older version persisted a peak inflated by a MYR move counted as USD (the user saw 10,059).
    h.store
        .save_kill_switch(&KillSwitchState {
            equity_peak: Some(Money::new(1_005_900, 2)),
            day_start_equity: Some(Money::new(1_005_900, 2)),
            day: Some(20_416),
            ..KillSwitchState::default()
        })
        .await
        .unwrap();
    h.run().await;
    h.bar(0, 4_150).await;
    h.bar(1, 4_150).await;
    let kill = h.store.kill_switch().await.unwrap();
    assert_eq!(kill.currency.as_deref(), Some("USD"));
    assert_eq!(kill.equity_peak, Some(Money::new(1_000_000, 2)));
    assert!(!kill.engaged);
    h.stop().await;
}

#[tokio::test]
async fn the_daily_loss_limit_is_measured_in_the_account_currency() {
    let mut h = usd_account();
    h.risk = RiskConfig {
        sizing: SizingRule::Fixed(Volume(5_000)),
        daily_loss_limit_bps: Some(300),
        max_drawdown_bps: None,
    };
    usdmyr(&h, 450_000);
    h.run().await;
    h.cross_down().await; // long 50 units at 4101
    assert_eq!(h.broker.orders_sent()[0].volume, Volume(5_000));
    // Bid 4081: -20 MYR x 50 = -1,000 MYR = -222.22 USD, 2.2 % of 10,000 USD (counted as USD,
    // -1,000 would have been 10 % and engaged the switch).
    h.bar(2, 4_082).await;
    h.bar(3, 4_082).await;
    assert!(!h.store.kill_switch().await.unwrap().engaged);
    // Bid 4071: -30 MYR x 50 = -1,500 MYR = -333.33 USD: 3.3 %, past the 3 % limit.
    h.bar(4, 4_072).await;
    h.bar(5, 4_072).await;
    let kill = h.store.kill_switch().await.unwrap();
    assert!(kill.engaged, "{kill:?}");
    assert!(
        kill.reason
            .as_deref()
            .unwrap()
            .starts_with("daily loss 3.33%"),
        "{kill:?}"
    );
    h.stop().await;
}
