//! The broker's schedule time zone, client against simulator: hours reported in London time
//! (daylight saving) or Kuala Lumpur time come back to the client as the same UTC sessions the
//! simulator keeps, in winter and in summer.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::within;
use ctrader_client::Broker;
use ctrader_sim::{CertificateSource, MarketHours, SimConfig, Simulator};
use domain::{Timestamp, TradingSchedule};

/// Wednesday 2026-01-14 03:00 UTC (London on GMT) and Wednesday 2026-07-15 03:00 UTC (BST).
const WINTER: Timestamp = Timestamp(1_768_359_600_000);
const SUMMER: Timestamp = Timestamp(1_784_084_400_000);

/// Palm oil's schedule as the client reads it from a simulator reporting in `zone` at `at`.
async fn palm_schedule(zone: &str, at: Timestamp) -> TradingSchedule {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        certificates: CertificateSource::Directory(dir.path().join("certs")),
        market_hours: MarketHours::Realistic,
        schedule_time_zone: zone.to_owned(),
        start_time: Some(at),
        history: Duration::from_secs(3_600),
        speed: 1.0,
        ..SimConfig::default()
    };
    let sim = within("simulator start", Simulator::start(config))
        .await
        .unwrap();
    let client = common::connect(&sim).await;
    let spec = within(
        "resolve symbol",
        client.resolve_symbol(&["PALMOIL".to_owned()]),
    )
    .await
    .unwrap();
    client.shutdown();
    spec.schedule
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn london_hours_come_back_as_the_same_utc_sessions_in_winter_and_summer() {
    for at in [WINTER, SUMMER] {
        let utc = palm_schedule("UTC", at).await;
        let london = palm_schedule("Europe/London", at).await;
        assert!(!utc.sessions.is_empty());
        assert!(utc.changes.is_empty());
        assert_eq!(london.sessions_at(at), utc.sessions.as_slice(), "at {at}");
        // The same answer, hour by hour, for the week around `at`.
        for hour in -84..84 {
            let t = at.plus_millis(hour * Timestamp::HOUR_MS + 60_000);
            assert_eq!(london.is_open(t), utc.is_open(t), "at {t}");
        }
        assert_eq!(
            london.changes.len(),
            200,
            "two changes a year, 2000 to 2099"
        );
    }
    // Hours reported in summer time are an hour earlier in UTC than the same local hours in
    // winter: the client keeps both and picks by date.
    let london = palm_schedule("Europe/London", SUMMER).await;
    assert_ne!(london.sessions_at(WINTER), london.sessions_at(SUMMER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kuala_lumpur_hours_come_back_as_the_same_utc_sessions() {
    let utc = palm_schedule("UTC", SUMMER).await;
    let kl = palm_schedule("Asia/Kuala_Lumpur", SUMMER).await;
    assert_eq!(kl.sessions, utc.sessions);
    assert!(kl.changes.is_empty(), "Kuala Lumpur keeps UTC+8 all year");
}
