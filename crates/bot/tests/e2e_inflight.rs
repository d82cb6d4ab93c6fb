//! An order in flight when the bot is killed, whose position is opened and then closed at the
//! broker before the restart: the restart must still record both deals and the closed position.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ORDER_SENT, RECONCILED, World};
use ctrader_sim::FaultPlan;

#[test]
fn a_position_opened_by_an_in_flight_order_and_closed_while_down_is_recorded() {
    let world = World::start(240.0, 41, FaultPlan::default());
    let wide = [("STOP_LOSS", "150"), ("TAKE_PROFIT", "300")];
    let mut closed = None;
    for _ in 0..10 {
        let mut bot = world.spawn_bot(&wide);
        bot.expect_message(0, RECONCILED, Duration::from_secs(30));
        // The broker executes at once but its answer is held: the kill lands in between.
        world
            .sim
            .faults()
            .delay_replies(Some(Duration::from_secs(3)))
            .unwrap();
        let from = bot.line_count();
        let Some(at) = bot.wait_for_message(from, ORDER_SENT, Duration::from_secs(20)) else {
            continue;
        };
        std::thread::sleep(Duration::from_millis(300));
        bot.kill();
        world.sim.faults().delay_replies(None).unwrap();
        let opening = !bot.lines()[at].raw.contains("-X\"");
        let open = world.sim.open_positions();
        let unknown = world.store_view().unwrap().open;
        if let Some(p) = open
            .iter()
            .find(|p| opening && !unknown.contains_key(&p.id))
        {
            world.sim.faults().close_position_externally(p.id).unwrap();
            closed = Some(p.id);
            break;
        }
    }
    let closed = closed.expect("no kill landed between an opening order and its recorded fill");
    let mut bot = world.spawn_bot(&wide);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    world.assert_store_matches_broker(
        Duration::from_secs(8),
        &format!("position {closed} opened by an in-flight order, closed while down"),
        &bot,
    );
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}
