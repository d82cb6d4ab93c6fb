//! Account and market events a real cTrader server sends on its own, end to end: the
//! `palm-oil-bot run` binary against the simulator driven through its handle. A deposit and a
//! withdrawal (trader updates) refresh the balance shown; a suspended symbol pauses trading until
//! it trades again; a margin call trigger engages the kill switch (the documented protective
//! action), in the store and on the metrics; the account logged out by the server is authorised
//! again and reconciled. Each checks the logs, the metrics or the store. Every wait is bounded.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/http.rs"]
mod http;

use std::time::{Duration, Instant};

use common::{Bot, RECONCILED, World};
use ctrader_sim::{FaultPlan, MarginCallType, PALM_OIL_SYMBOL_ID};
use http::{free_port, get};
use persistence::TradeStore;

const LIMIT: Duration = Duration::from_secs(60);

fn wait_for<T>(what: &str, bot: &Bot, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            bot.transcript()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_balance(port: u16) -> Option<f64> {
    let (code, body) = get(port, "/api/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
    v["live"]["account"]["balance"].as_f64()
}

fn metric(port: u16, line_start: &str) -> Option<f64> {
    let (_, body) = get(port, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(line_start))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn start(seed: u64) -> (World, Bot, u16) {
    let world = World::start(30.0, seed, FaultPlan::default());
    let port = free_port();
    let port_text = port.to_string();
    let bot = world.spawn_bot(&[("PORT", &port_text)]);
    bot.expect_message(0, RECONCILED, LIMIT);
    (world, bot, port)
}

#[test]
fn deposits_and_withdrawals_refresh_the_balance_shown() {
    let (world, mut bot, port) = start(21);
    let before = bot.line_count();
    let after_deposit = world.sim.deposit(250_000).unwrap();
    wait_for("the deposit on the status", &bot, || {
        status_balance(port).filter(|b| (b - after_deposit as f64 / 100.0).abs() < 0.005)
    });
    let after_withdrawal = world.sim.withdraw(100_000).unwrap();
    wait_for("the withdrawal on the status", &bot, || {
        status_balance(port).filter(|b| (b - after_withdrawal as f64 / 100.0).abs() < 0.005)
    });
    let logged = bot.lines()[before..]
        .iter()
        .filter(|l| {
            l.message
                .as_deref()
                .is_some_and(|m| m.starts_with("account balance changed by the broker"))
        })
        .count();
    assert_eq!(logged, 2, "{}", bot.transcript());
    assert_eq!(
        metric(
            port,
            "palm_oil_bot_broker_events_total{kind=\"account_changed\""
        ),
        Some(2.0)
    );
    bot.terminate(Duration::from_secs(20));
}

#[test]
fn a_suspended_symbol_pauses_trading_until_it_trades_again() {
    let (world, mut bot, port) = start(22);
    let before = bot.line_count();
    world.sim.suspend_trading(PALM_OIL_SYMBOL_ID).unwrap();
    let paused = wait_for("the pause", &bot, || {
        bot.lines()[before..].iter().position(|l| {
            l.message.as_deref() == Some("trading paused")
                && l.field("reason").is_some_and(|r| r.contains("DISABLED"))
        })
    });
    // Nothing reaches the broker while the symbol is suspended.
    let orders_then = world.sim.received_orders().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(world.sim.received_orders().len(), orders_then);
    world.sim.resume_trading(PALM_OIL_SYMBOL_ID).unwrap();
    wait_for("the resumption", &bot, || {
        bot.lines()[before + paused..]
            .iter()
            .find(|l| {
                l.message
                    .as_deref()
                    .is_some_and(|m| m.contains("is tradable again: trading resumed"))
            })
            .map(|_| ())
    });
    // The raised minimum volume is read again: ORDER_VOLUME 1 no longer fits.
    world
        .sim
        .set_symbol_min_volume(PALM_OIL_SYMBOL_ID, 200)
        .unwrap();
    wait_for("the sizing warning", &bot, || {
        bot.lines()
            .iter()
            .find(|l| {
                l.message.as_deref().is_some_and(|m| {
                    m.contains("no longer fits") && m.contains("entries will be refused")
                })
            })
            .map(|_| ())
    });
    assert!(
        metric(
            port,
            "palm_oil_bot_broker_events_total{kind=\"symbol_changed\""
        )
        .unwrap()
            >= 3.0
    );
    bot.terminate(Duration::from_secs(20));
}

#[test]
fn a_margin_call_trigger_engages_the_kill_switch() {
    let (world, mut bot, port) = start(23);
    world
        .sim
        .update_margin_call(MarginCallType::Threshold1, 120.0);
    world
        .sim
        .trigger_margin_call(MarginCallType::Threshold1, 120.0);
    wait_for("the kill switch", &bot, || {
        metric(port, "palm_oil_bot_kill_switch_engaged").filter(|v| *v == 1.0)
    });
    assert!(bot.lines().iter().any(|l| {
        l.message.as_deref()
            == Some("margin call: the account's margin level crossed the broker's threshold")
            && l.field("threshold").as_deref() == Some("MARGIN_LEVEL_THRESHOLD_1")
    }));
    assert_eq!(
        metric(
            port,
            "palm_oil_bot_broker_events_total{kind=\"margin_call_trigger\""
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            port,
            "palm_oil_bot_broker_events_total{kind=\"margin_call_update\""
        ),
        Some(1.0)
    );
    bot.terminate(Duration::from_secs(20));
    let kill = world
        .read_store(async |store| store.kill_switch().await)
        .unwrap()
        .unwrap();
    assert!(kill.engaged);
    assert!(kill.reason.unwrap().contains("margin call"));
}

#[test]
fn an_account_logged_out_by_the_server_is_authorised_again_and_reconciled() {
    let (world, mut bot, _port) = start(24);
    let before = bot.line_count();
    world.sim.disconnect_account();
    bot.expect_message(before, RECONCILED, LIMIT);
    let after = bot.line_count();
    world
        .sim
        .faults()
        .disconnect_clients("simulated session end");
    bot.expect_message(after, RECONCILED, LIMIT);
    bot.terminate(Duration::from_secs(20));
}

#[test]
fn a_stop_out_is_recorded_as_one() {
    let (world, mut bot, _port) = start(25);
    // A position of the bot's opens on its own (RSI 2, levels 45/55, M1 bars at 30x).
    // Prices held, so its stop-loss or take-profit cannot close it first.
    let position = wait_for("a position", &bot, || {
        world.sim.open_position_ids().first()?;
        world.sim.freeze_prices();
        let open = world.sim.open_position_ids().first().copied();
        if open.is_none() {
            world.sim.release_prices();
        }
        open
    });
    world.sim.stop_out(position).unwrap();
    let stored = wait_for("the stop-out in the store", &bot, || {
        world
            .read_store(async |store| store.position(domain::PositionId(position)).await)
            .ok()?
            .ok()?
            .filter(|p| p.status == domain::PositionStatus::Closed)
    });
    assert_eq!(stored.close_reason, Some(domain::CloseReason::StopOut));
    assert!(stored.pnl.is_some());
    bot.terminate(Duration::from_secs(20));
}

/// Reproduces the soak's finding: a withdrawal of 5 % made while the bot was down, with a daily
/// loss limit of 3 %, engaged the kill switch on the next start, for good. Cash that moved while
/// the bot was away must move its marks, not count as a loss.
#[test]
fn a_withdrawal_while_the_bot_is_down_is_not_taken_for_a_loss() {
    let world = World::start(30.0, 23, FaultPlan::default());
    let port = free_port();
    let port_text = port.to_string();
    let env = [("PORT", port_text.as_str()), ("DAILY_LOSS_LIMIT", "0.03")];
    let mut bot = world.spawn_bot(&env);
    bot.expect_message(0, RECONCILED, LIMIT);
    // The day's start equity is marked at the first closed bar.
    wait_for("the day's start equity in the store", &bot, || {
        world
            .read_store(async |s| s.kill_switch().await)
            .ok()?
            .ok()?
            .day_start_equity
    });
    bot.kill();
    let balance = world.sim.balance().unwrap();
    world.sim.withdraw(balance / 20).unwrap();

    let bot = world.spawn_bot(&env);
    bot.expect_message(0, RECONCILED, LIMIT);
    wait_for("the withdrawal told apart from a loss", &bot, || {
        bot.lines()
            .iter()
            .find(|l| {
                l.message
                    .as_deref()
                    .is_some_and(|m| m.contains("while the bot was away") && m.contains("-"))
            })
            .cloned()
    });
    // Bars go on closing and equity is marked; the kill switch stays off.
    std::thread::sleep(Duration::from_secs(3));
    let kill = world
        .read_store(async |s| s.kill_switch().await)
        .unwrap()
        .unwrap();
    assert!(!kill.engaged, "{kill:?}\n{}", bot.transcript());
    assert_eq!(
        kill.marked_balance.map(|m| m.minor),
        Some(balance - balance / 20),
        "{kill:?}"
    );
}
