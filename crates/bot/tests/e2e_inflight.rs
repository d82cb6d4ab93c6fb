//! Orders in flight when the bot is killed: one whose position is opened and then closed at the
//! broker before the restart (the restart must still record both deals and the closed position),
//! and one the broker works only after the restart has looked for it.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ORDER_SENT, RECONCILED, World};
use ctrader_sim::FaultPlan;
use domain::IntentStatus;
use persistence::TradeStore;

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

/// Found by the year soak: an order reached the broker after the restart had looked for it, was
/// concluded lost, and its deals never reached the store. Here the broker works every order 2.5 s
/// after it arrives (a busy server's queue) and the bot is killed just after sending one: the new
/// process must not conclude "lost" while the order may still be on its way (ORDER_ARRIVAL_GRACE),
/// must not trade meanwhile, and must record the order as the broker worked it.
#[test]
fn an_order_the_broker_works_after_the_restart_looked_is_waited_for_not_lost() {
    let world = World::start(240.0, 43, FaultPlan::default());
    let env = [
        ("STOP_LOSS", "150"),
        ("TAKE_PROFIT", "300"),
        ("ORDER_ARRIVAL_GRACE", "6"),
    ];
    let mut bot = world.spawn_bot(&env);
    bot.expect_message(0, RECONCILED, Duration::from_secs(30));
    world
        .sim
        .faults()
        .delay_orders(Some(Duration::from_millis(2_500)))
        .unwrap();
    let from = bot.line_count();
    let sent = bot.expect_message(from, ORDER_SENT, Duration::from_secs(60));
    let id = bot.lines()[sent].field("client_order_id").unwrap();
    // Long enough for the order to leave the process, far shorter than the broker's delay.
    std::thread::sleep(Duration::from_millis(100));
    bot.kill();
    world.sim.faults().delay_orders(None).unwrap();
    assert!(
        world
            .sim
            .received_orders()
            .iter()
            .all(|o| o.client_order_id.as_deref() != Some(id.as_str())),
        "the broker must not have worked {id} before the restart looks for it"
    );

    let mut bot = world.spawn_bot(&env);
    let waiting = bot.expect_message(
        0,
        "an order sent earlier shows no trace at the broker yet: it may still be on its way, so trading waits before concluding it lost",
        Duration::from_secs(30),
    );
    assert_eq!(
        bot.lines()[waiting].field("client_order_id").as_deref(),
        Some(id.as_str())
    );
    let ready = bot.expect_message(waiting, RECONCILED, Duration::from_secs(30));
    assert!(
        bot.lines()[..ready]
            .iter()
            .all(|l| l.message.as_deref() != Some(ORDER_SENT)),
        "no order may leave while {id} may still fill\n{}",
        bot.transcript()
    );
    assert_eq!(
        world.intent_status(&id),
        Some(IntentStatus::Filled),
        "{}",
        world.describe_intents()
    );
    let cid = domain::ClientOrderId::new(id.clone()).unwrap();
    let note = world
        .read_store(async |store| store.intent(&cid).await)
        .unwrap()
        .unwrap()
        .unwrap()
        .note
        .unwrap_or_default();
    assert!(
        !note.contains("concluded lost"),
        "{id} was concluded lost before the broker worked it: {note}"
    );
    world.assert_store_matches_broker(
        Duration::from_secs(8),
        &format!("order {id} worked by the broker after the restart looked"),
        &bot,
    );
    world.assert_no_duplicate_orders();
    assert_eq!(bot.terminate(Duration::from_secs(20)).code(), Some(0));
}
