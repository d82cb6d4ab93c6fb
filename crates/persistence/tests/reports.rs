//! What `positions` and `trades` print: a table for people, exact strings in JSON.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use domain::{CloseReason, Money, PositionStatus, Timestamp};
use persistence::{PositionsReport, TradesReport};

#[test]
fn positions_report_lists_open_and_closed_positions() {
    let open = open_position(1, Some("pob-1"), 1_000);
    let mut closed = open_position(2, None, 2_000);
    closed.status = PositionStatus::Closed;
    closed.exit_price = Some(price(4010));
    closed.exit_time = Some(Timestamp(3_000));
    closed.pnl = Some(Money::new(690, 2));
    closed.close_reason = Some(CloseReason::TakeProfit);
    let mut unexplained = open_position(3, None, 2_500);
    unexplained.status = PositionStatus::Closed;

    let report = PositionsReport::new(&[open.clone(), closed, unexplained], Some("USD".into()));
    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("POSITION  STATUS"), "{text}");
    assert!(lines[0].contains("PNL (USD)"), "{text}");
    assert!(
        lines[1].contains("pob-1") && lines[1].contains("open"),
        "{text}"
    );
    assert!(
        lines[2].contains("take_profit") && lines[2].contains("6.9"),
        "{text}"
    );
    assert!(lines[3].contains("unknown"), "{text}");

    let json = serde_json::to_value(&report).unwrap();
    let first = &json["positions"][0];
    assert_eq!(first["position_id"], 1);
    assert_eq!(first["entry_price"], open.entry_price.to_string());
    assert_eq!(first["entry_time"], "1970-01-01T00:00:01.000Z");
    assert_eq!(first["client_order_id"], "pob-1");
    assert!(first["exit_price"].is_null());
    assert_eq!(json["positions"][1]["pnl"], Money::new(690, 2).to_string());
    assert_eq!(json["positions"][2]["close_reason"], "unknown");
    assert_eq!(json["currency"], "USD");

    assert_eq!(
        PositionsReport::new(&[], None).to_string(),
        "No positions stored.\n"
    );
}

#[test]
fn trades_report_shows_each_deal_and_its_net_result() {
    let opening = opening_fill(10, 1, Some("pob-1"), 1_000);
    let closing = closing_fill(11, 1, price(4020), 2_000, Some(CloseReason::TakeProfit));
    let report = TradesReport::new(&[closing, opening], Some("MYR".into()));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["trades"][0]["effect"], "close");
    // gross 20.00 + swap -0.10 + commission -3.00
    assert_eq!(
        json["trades"][0]["net_pnl"],
        Money::new(1_690, 2).to_string()
    );
    assert_eq!(json["trades"][0]["close_reason"], "take_profit");
    assert_eq!(json["trades"][1]["effect"], "open");
    assert!(json["trades"][1]["net_pnl"].is_null());
    assert_eq!(json["trades"][1]["client_order_id"], "pob-1");
    let text = report.to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().next().unwrap().starts_with("DEAL"), "{text}");
    assert!(
        text.lines().next().unwrap().contains("NET PNL (MYR)"),
        "{text}"
    );
    assert_eq!(json["currency"], "MYR");
    assert_eq!(
        TradesReport::new(&[], None).to_string(),
        "No trades stored.\n"
    );
}
