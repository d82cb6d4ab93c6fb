//! Money in the account's currency, end to end: the `palm-oil-bot run` binary against the
//! simulator, for a USD account trading the MYR-priced palm oil CFD (USDMYR moving) and for a MYR
//! account. With RISK_PER_TRADE=0.01 every stop-out loses between 0.5 % and 1 % of equity in the
//! account's currency; at every sample, equity on `/api/status` equals the broker's balance plus
//! the broker's own unrealized PnL (`ProtoOAGetPositionUnrealizedPnLRes`, as the simulator
//! computes it) within one money unit; and the daily-loss kill switch fires where the loss,
//! measured in the account's currency, reaches its limit. Every wait is bounded.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use common::{Bot, World};
use ctrader_sim::{AccountCurrency, FaultPlan, PALM_OIL_SYMBOL_ID, USD_MYR_SYMBOL_ID};
use domain::Timestamp;
use http::{free_port, get};

/// Stop-outs each scenario provokes.
const STOP_OUTS: usize = 3;
/// The longest the whole scenario may take.
const SCENARIO: Duration = Duration::from_secs(150);

/// The simulator's clock starts at yesterday 01:00 UTC and, at 30×, stays inside that UTC day
/// (and behind this machine's clock) for the whole test, so the daily-loss limit has one day.
fn world(currency: AccountCurrency, seed: u64) -> World {
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .try_into()
            .unwrap(),
    );
    let start = Timestamp((now.epoch_day() - 1) * Timestamp::DAY_MS + 3_600_000);
    World::start_configured(30.0, seed, FaultPlan::default(), Some(start), |c| {
        c.account_currency = currency;
    })
}

fn status(port: u16) -> serde_json::Value {
    let (code, body) = get(port, "/api/status").expect("/api/status answers");
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap()
}

fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With prices held, waits until the bot has seen the broker's last quotes, then checks that
/// equity on the status equals balance + the broker's net unrealized PnL within one money unit.
fn assert_equity_matches_the_broker(world: &World, port: u16, bot: &Bot, position: i64) {
    let (bid, ask) = world.sim.quote(PALM_OIL_SYMBOL_ID).unwrap();
    let rate = world.sim.quote_to_deposit_rate(PALM_OIL_SYMBOL_ID).unwrap();
    let live = wait_for(
        "the bot to see the held quotes",
        Duration::from_secs(10),
        || {
            let s = status(port);
            let live = s["live"].clone();
            let q = &live["last_quote"];
            let seen_rate = live["conversion"]["rate"].as_f64().unwrap_or(1.0);
            let same_quote = (q["bid"].as_f64()? - bid as f64 / 1e5).abs() < 1e-9
                && (q["ask"].as_f64()? - ask as f64 / 1e5).abs() < 1e-9;
            let same_position = live["position"]["position_id"].as_i64() == Some(position);
            (same_quote && same_position && (seen_rate - rate).abs() < 1e-12).then_some(live)
        },
    );
    let open = world.sim.open_positions();
    let broker_net: i64 = open.iter().filter_map(|p| p.unrealized.map(|u| u.1)).sum();
    let balance = world.sim.balance().unwrap();
    let equity = live["account"]["equity"].as_f64().unwrap();
    let expected = (balance + broker_net) as f64 / 100.0;
    assert!(
        (equity - expected).abs() <= 0.010_000_1,
        "status equity {equity} vs broker balance {balance} + unrealized {broker_net}\n{}",
        bot.transcript()
    );
    assert_eq!(
        live["account"]["currency"],
        world.sim.account_currency().code()
    );
}

/// Runs the scenario: returns each stop-out's loss as a fraction of the balance before it.
fn stop_outs(currency: AccountCurrency, seed: u64) -> Vec<f64> {
    let world = world(currency, seed);
    let port = free_port();
    let port_text = port.to_string();
    let mut bot = world.spawn_bot(&[
        ("RISK_PER_TRADE", "0.01"),
        ("STOP_LOSS", "40"),
        ("TAKE_PROFIT", "400"),
        ("PORT", &port_text),
    ]);
    let started = Instant::now();
    let mut losses = Vec::new();
    let mut rates = [440_000_i64, 452_000, 447_500].into_iter().cycle();
    while losses.len() < STOP_OUTS {
        assert!(
            started.elapsed() < SCENARIO,
            "only {} stop-outs in {SCENARIO:?}\n{}",
            losses.len(),
            bot.transcript()
        );
        // A position of the bot's opens on its own (RSI 2, levels 45/55, M1 bars at 30x).
        let Some(position) = world.sim.open_positions().into_iter().next() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        world.sim.freeze_prices();
        let still_open = world
            .sim
            .open_positions()
            .into_iter()
            .any(|p| p.id == position.id);
        if !still_open {
            world.sim.release_prices();
            continue;
        }
        assert_equity_matches_the_broker(&world, port, &bot, position.id);
        if currency == AccountCurrency::Usd {
            // The ringgit moves: the bot revalues at once, and still agrees with the broker. Then
            // it moves back, so the stop-out below loses what was sized at the entry's rate.
            let (fx_bid, fx_ask) = world.sim.quote(USD_MYR_SYMBOL_ID).unwrap();
            let mid = rates.next().unwrap();
            world
                .sim
                .set_quote(USD_MYR_SYMBOL_ID, mid - 20, mid + 20)
                .unwrap();
            assert_equity_matches_the_broker(&world, port, &bot, position.id);
            world
                .sim
                .set_quote(USD_MYR_SYMBOL_ID, fx_bid, fx_ask)
                .unwrap();
            assert_equity_matches_the_broker(&world, port, &bot, position.id);
        }
        // Hit the stop exactly: a long's bid, a short's ask reaches it.
        let stop = position.stop_loss.expect("every position has a stop-loss");
        let (bid, _) = world.sim.quote(PALM_OIL_SYMBOL_ID).unwrap();
        let before = world.sim.balance().unwrap();
        let quoted = if stop < bid {
            world
                .sim
                .set_quote(PALM_OIL_SYMBOL_ID, stop, stop + 200_000)
        } else {
            world
                .sim
                .set_quote(PALM_OIL_SYMBOL_ID, stop - 200_000, stop)
        };
        quoted.unwrap();
        wait_for("the stop-out", Duration::from_secs(10), || {
            (!world.sim.open_position_ids().contains(&position.id)).then_some(())
        });
        let after = world.sim.balance().unwrap();
        // Shown when a check below fails.
        eprintln!(
            "stop-out of {} (volume {}) at {stop}: balance {before} -> {after}",
            position.id, position.volume
        );
        losses.push((before - after) as f64 / before as f64);
        world.sim.release_prices();
    }
    let exit = bot.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}\n{}", bot.transcript());
    losses
}

#[test]
fn a_usd_account_on_the_myr_symbol_risks_one_percent_in_usd_and_agrees_with_the_broker() {
    let losses = stop_outs(AccountCurrency::Usd, 71);
    for loss in &losses {
        assert!(
            (0.005..=0.01).contains(loss),
            "stop-out lost {loss:.5} of equity: {losses:?}"
        );
    }
}

#[test]
fn a_myr_account_risks_one_percent_in_myr_and_agrees_with_the_broker() {
    let losses = stop_outs(AccountCurrency::Myr, 72);
    for loss in &losses {
        assert!(
            (0.005..=0.01).contains(loss),
            "stop-out lost {loss:.5} of equity: {losses:?}"
        );
    }
}

/// DAILY_LOSS_LIMIT=0.015 with 1 % stop-outs: the first loss (about 0.98 % in USD) leaves the kill
/// switch off, the second (about 1.96 %) engages it, and no order follows. Counted in MYR, the
/// first loss alone would have been over 4 %.
#[test]
fn the_daily_loss_limit_fires_where_the_usd_loss_reaches_it() {
    let world = world(AccountCurrency::Usd, 73);
    let port = free_port();
    let port_text = port.to_string();
    let mut bot = world.spawn_bot(&[
        ("RISK_PER_TRADE", "0.01"),
        ("STOP_LOSS", "40"),
        ("TAKE_PROFIT", "400"),
        ("DAILY_LOSS_LIMIT", "0.015"),
        ("PORT", &port_text),
    ]);
    let started = Instant::now();
    let mut stopped = 0;
    while stopped < 2 {
        assert!(started.elapsed() < SCENARIO, "{}", bot.transcript());
        let Some(position) = world.sim.open_positions().into_iter().next() else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        world.sim.freeze_prices();
        if !world.sim.open_position_ids().contains(&position.id) {
            world.sim.release_prices();
            continue;
        }
        let stop = position.stop_loss.unwrap();
        let (bid, _) = world.sim.quote(PALM_OIL_SYMBOL_ID).unwrap();
        if stop < bid {
            world
                .sim
                .set_quote(PALM_OIL_SYMBOL_ID, stop, stop + 200_000)
                .unwrap();
        } else {
            world
                .sim
                .set_quote(PALM_OIL_SYMBOL_ID, stop - 200_000, stop)
                .unwrap();
        }
        wait_for("the stop-out", Duration::from_secs(10), || {
            (!world.sim.open_position_ids().contains(&position.id)).then_some(())
        });
        stopped += 1;
        let engaged = || status(port)["live"]["kill_switch"]["engaged"].as_bool();
        if stopped == 1 {
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(engaged(), Some(false), "{}", bot.transcript());
        } else {
            wait_for("the kill switch", Duration::from_secs(10), || {
                (engaged() == Some(true)).then_some(())
            });
            let reason = status(port)["live"]["kill_switch"]["reason"].clone();
            assert!(
                reason.as_str().unwrap().starts_with("daily loss 1."),
                "{reason}"
            );
        }
        world.sim.release_prices();
    }
    // No new position is opened after the switch engaged.
    let orders = world.sim.received_orders().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.sim.received_orders().len(), orders);
    assert!(world.sim.open_positions().is_empty());
    let exit = bot.terminate(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}
