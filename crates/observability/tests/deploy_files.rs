//! The alert rules and the Grafana dashboard in `deploy/` name only metrics this crate exports,
//! so a renamed metric cannot silently leave an alert that never fires.

// Helpers live outside #[test] functions; a failed set-up must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::parse_exposition;
use domain::{FixedClock, Timestamp};
use observability::{ConnectionState, Metrics, OrderOutcome, SentimentResult, TradeOutcome};

fn deploy_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `palm_oil_bot_*` and `process_*` token in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = names_with(text, "palm_oil_bot_");
    out.extend(names_with(text, "process_"));
    out
}

fn names_with(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // The bare prefix (as in a comment about naming) is not a metric.
        if end > prefix.len() {
            out.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// Names the exporter produces once every instrument has a value.
fn exported_names() -> BTreeSet<String> {
    let m = Metrics::new(Arc::new(FixedClock::new(Timestamp(0)))).unwrap();
    m.set_connection_state(ConnectionState::Authenticated);
    m.record_reconnect();
    m.record_quote(Timestamp(0));
    m.record_order(OrderOutcome::Filled);
    m.record_order_rejection("X");
    m.observe_order_latency(Duration::from_millis(1));
    m.observe_tick_to_decision(Duration::from_micros(1));
    m.record_trade(TradeOutcome::Win);
    m.set_win_rate(1.0);
    m.set_realized_pnl(1.0);
    m.set_unrealized_pnl(1.0);
    m.set_equity(1.0);
    m.set_balance(1.0);
    m.set_drawdown(0.0);
    m.set_drawdown_limit(0.1);
    m.set_position_volume(0.0);
    m.set_rsi(50.0);
    m.set_market_open(true);
    m.set_kill_switch(false);
    m.set_sentiment_score("s", 0.0);
    m.record_sentiment_request("s", SentimentResult::Ok, Timestamp(0));
    m.record_sentiment_cache(true);
    m.record_reconciliation_correction("k");
    m.record_notification("webhook", "sent");
    m.set_account_currency("USD");
    let e = parse_exposition(&m.encode().unwrap()).unwrap();
    e.samples.iter().map(|s| s.name.clone()).collect()
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    let exported = exported_names();
    for file in [
        "prometheus/alerts.yml",
        "prometheus/alerts_test.yml",
        "grafana/palm-oil-bot.json",
    ] {
        let used = metric_names(&deploy_file(file));
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the bot does not export: {unknown:?}"
        );
    }
}

#[test]
fn every_alert_named_in_the_brief_exists_and_is_unit_tested() {
    let rules = deploy_file("prometheus/alerts.yml");
    let tests = deploy_file("prometheus/alerts_test.yml");
    for alert in [
        "PalmOilBotDown",
        "BrokerDisconnected",
        "BrokerReconnectStorm",
        "OrderRejected",
        "StaleQuotes",
        "DrawdownLimitExceeded",
        "KillSwitchEngaged",
        "SentimentUnavailable",
        "NotificationsFailing",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}")),
            "rule {alert} missing"
        );
        let cases = tests.matches(&format!("alertname: {alert}\n")).count();
        // At least one case expecting silence and one expecting the alert.
        assert!(cases >= 2, "{alert} has {cases} test cases");
    }
}

#[test]
fn grafana_dashboard_is_valid_and_every_panel_queries_something() {
    let dash: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/palm-oil-bot.json")).unwrap();
    assert_eq!(dash["uid"], "palm-oil-bot");
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert!(!t["expr"].as_str().unwrap().trim().is_empty());
        }
    }
    // Nothing loads from outside: the data source is chosen by the installer.
    assert!(dash["templating"]["list"][0]["type"] == "datasource");
}
