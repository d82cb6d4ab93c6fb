//! Faults while `palm-oil-bot run` trades a simulated broker: a disconnect storm, and positions
//! closed while the bot was down (by a person in the cTrader app, and by their stop-loss), which
//! must be recorded with the right reason on restart.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Bot, ORDER_SENT, RECONCILED, World};
use ctrader_sim::{FaultPlan, PALM_OIL_SYMBOL_ID};
use domain::{CloseReason, PositionId, PositionStatus};
use persistence::TradeStore;

const RECONNECTED: &str = "reconnected: reconciling before trading resumes";
/// Stops far enough that only the test closes positions by their stop.
const WIDE: &[(&str, &str)] = &[("STOP_LOSS", "150"), ("TAKE_PROFIT", "300")];

#[test]
fn a_disconnect_storm_pauses_reconciles_and_trades_on_without_duplicates() {
    let world = World::start(240.0, 21, FaultPlan::default());
    let mut bot = world.spawn_bot(&[]);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    let storm_from_line = bot.line_count();
    let storm_started = world.sim.sim_time();
    // A minute of the link being cut every four seconds.
    let mut drops = 0;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(4));
        world.sim.faults().drop_connections();
        drops += 1;
    }
    let last_drop_line = bot.line_count();
    bot.expect_message(last_drop_line, RECONCILED, Duration::from_secs(30));
    // The client backs off harder while the link keeps failing, so some cuts land while it is
    // still reconnecting, or while it reconciles: several reconnects, each followed by a
    // reconciliation or by the next cut (never by trading without one).
    let reconnects = bot.count_messages(storm_from_line, RECONNECTED);
    let reconciles = bot.count_messages(storm_from_line, RECONCILED);
    let mut awaiting: Option<usize> = None;
    let mut unreconciled = 0;
    for (i, line) in bot.lines().iter().enumerate().skip(storm_from_line) {
        match line.message.as_deref() {
            Some(RECONNECTED) => {
                if awaiting.is_some() {
                    unreconciled += 1;
                }
                awaiting = Some(i);
            }
            Some(RECONCILED) | Some("trading paused") => awaiting = None,
            _ => {}
        }
    }
    assert!(
        reconnects >= 4 && reconciles >= 4 && unreconciled == 0 && awaiting.is_none(),
        "{drops} drops gave {reconnects} reconnects and {reconciles} reconciliations \
         ({unreconciled} reconnects followed by neither a reconciliation nor a cut):\n{}",
        bot.transcript()
    );
    // No order leaves between a pause and the reconciliation that ends it.
    let mut paused = false;
    for line in bot.lines().iter().skip(storm_from_line) {
        match line.message.as_deref() {
            Some("trading paused") => paused = true,
            Some(RECONCILED) => paused = false,
            Some(ORDER_SENT) => assert!(
                !paused,
                "an order left while trading was paused: {}\n{}",
                line.raw,
                bot.transcript()
            ),
            _ => {}
        }
    }
    let traded_in_storm = world
        .sim
        .deals()
        .iter()
        .filter(|d| d.client_order_id.is_some() && d.executed >= storm_started)
        .count();
    assert!(
        traded_in_storm >= 1,
        "no order of the bot filled during the storm:\n{}",
        bot.transcript()
    );
    world.assert_no_duplicate_orders();
    world.assert_store_matches_broker(Duration::from_secs(8), "after the storm", &bot);
    let status = bot.terminate(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", bot.transcript());
}

/// Runs the bot until it holds a position, then stops it gracefully (SIGTERM, exit 0); returns
/// the position left open at the broker.
fn stop_while_holding(world: &World) -> (Bot, i64) {
    for _ in 0..8 {
        let mut bot = world.spawn_bot(WIDE);
        bot.expect_message(0, RECONCILED, Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        while world.sim.open_positions().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = bot.terminate(Duration::from_secs(20));
        assert_eq!(status.code(), Some(0), "{}", bot.transcript());
        // The strategy may have closed it in the meantime: then try again.
        if let Some(p) = world.sim.open_positions().first() {
            return (bot, p.id);
        }
    }
    panic!("the bot never held a position when stopped");
}

/// The stored position `id` after a restart has reconciled.
fn stored_after_restart(world: &World, id: i64) -> (Bot, domain::Position) {
    let bot = world.spawn_bot(WIDE);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    let stored = world
        .read_store(async |store| store.position(PositionId(id)).await)
        .unwrap()
        .unwrap()
        .unwrap_or_else(|| panic!("position {id} is not in the store"));
    (bot, stored)
}

#[test]
fn positions_closed_while_the_bot_was_down_get_the_right_reason() {
    let world = World::start(240.0, 31, FaultPlan::default());

    // Closed by a person in the cTrader app while the bot was stopped.
    let (stopped, manual) = stop_while_holding(&world);
    world.assert_store_matches_broker(Duration::from_secs(2), "stopped holding", &stopped);
    world
        .sim
        .faults()
        .close_position_externally(manual)
        .unwrap();
    let (mut bot, stored) = stored_after_restart(&world, manual);
    assert_eq!(stored.status, PositionStatus::Closed, "{stored:?}");
    assert_eq!(stored.close_reason, Some(CloseReason::Manual), "{stored:?}");
    assert!(
        stored.exit_price.is_some() && stored.pnl.is_some(),
        "{stored:?}"
    );
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));

    // Hit by its stop-loss while the bot was stopped: a price shock through the stop.
    let (stopped, hit) = stop_while_holding(&world);
    world.assert_store_matches_broker(Duration::from_secs(2), "stopped holding", &stopped);
    let position = world
        .sim
        .open_positions()
        .into_iter()
        .find(|p| p.id == hit)
        .unwrap();
    let (sl, tp) = (position.stop_loss.unwrap(), position.take_profit.unwrap());
    let shock = 2_000_000; // 20 MYR past the stop
    let through = if sl < tp { sl - shock } else { sl + shock };
    world
        .sim
        .set_mid_price(PALM_OIL_SYMBOL_ID, through)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while world.sim.open_positions().iter().any(|p| p.id == hit) {
        assert!(Instant::now() < deadline, "the stop-loss never triggered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut bot, stored) = stored_after_restart(&world, hit);
    assert_eq!(stored.status, PositionStatus::Closed, "{stored:?}");
    assert_eq!(
        stored.close_reason,
        Some(CloseReason::StopLoss),
        "{stored:?}"
    );
    world.assert_store_matches_broker(Duration::from_secs(8), "after both restarts", &bot);
    world.assert_no_duplicate_orders();
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}
