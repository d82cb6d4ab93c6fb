//! The log pipeline: JSON lines that parse and carry the trading fields, the level filter,
//! the readable format, the heartbeat line, and secrets that never reach a line.

// Capture helpers live outside #[test] functions; a failed set-up must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use domain::{
    ClientOrderId, FixedClock, PositionId, Price, Secret, Side, SymbolId, Timestamp, Volume,
};
use observability::{
    AccountView, ConnectionState, EventLevel, LiveStatus, LogConfig, LogFormat, ObservabilityError,
    PositionView, QuoteView, Redacted, StatusConfig, StatusHandle, TradeEvent, build_subscriber_as,
    fields, log_heartbeat, log_trade_event,
};
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything written, for inspection.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
    fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;
    fn make_writer(&'a self) -> CapturedWriter {
        CapturedWriter(Arc::clone(&self.0))
    }
}

fn with_logs(config: LogConfig, format: LogFormat, body: impl FnOnce()) -> Captured {
    let out = Captured::default();
    let subscriber = build_subscriber_as(&config, format, out.clone()).unwrap();
    tracing::subscriber::with_default(subscriber, body);
    out
}

fn json_config(filter: &str) -> LogConfig {
    LogConfig {
        filter: Some(filter.to_owned()),
        format: LogFormat::Json,
        redact: Vec::new(),
    }
}

#[test]
fn trade_events_are_json_lines_with_the_standard_fields() {
    let coid = ClientOrderId::new("pob-20251124-0001").unwrap();
    let out = with_logs(json_config("info"), LogFormat::Json, || {
        log_trade_event(
            EventLevel::Info,
            "order filled",
            &TradeEvent {
                trade_id: Some("T-42"),
                symbol_id: Some(SymbolId(10_026)),
                client_order_id: Some(&coid),
                position_id: Some(PositionId(90_001)),
                side: Some(Side::Sell),
                volume: Some(Volume(1_000)),
                price: Some(Price(401_250_000)),
                reason: Some("rsi above 70"),
            },
        );
        log_trade_event(
            EventLevel::Warn,
            "order rejected",
            &TradeEvent {
                client_order_id: Some(&coid),
                reason: Some("NOT_ENOUGH_MONEY"),
                ..TradeEvent::default()
            },
        );
    });
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    let first = &lines[0];
    assert_eq!(first["message"], "order filled");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "trading");
    assert_eq!(first[fields::TRADE_ID], "T-42");
    assert_eq!(first[fields::SYMBOL_ID], 10_026);
    assert_eq!(first[fields::CLIENT_ORDER_ID], "pob-20251124-0001");
    assert_eq!(first[fields::POSITION_ID], 90_001);
    assert_eq!(first[fields::SIDE], "sell");
    // Exact decimals in the domain's own notation, not rounded floats.
    assert_eq!(first[fields::VOLUME], Volume(1_000).to_string());
    assert_eq!(
        first[fields::VOLUME]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        10.0
    );
    assert_eq!(first[fields::PRICE], Price(401_250_000).to_string());
    assert_eq!(
        first[fields::PRICE]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        4012.5
    );
    assert_eq!(first[fields::REASON], "rsi above 70");
    for name in fields::ALL {
        assert!(first.get(name).is_some(), "field {name} missing");
    }
    // UTC RFC 3339 with a Z suffix.
    let ts = first["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "{ts}");
    let parsed = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
    assert_eq!(parsed.offset().local_minus_utc(), 0);

    // Absent fields are left out rather than written as null.
    let second = &lines[1];
    assert_eq!(second["level"], "WARN");
    assert_eq!(second[fields::REASON], "NOT_ENOUGH_MONEY");
    assert!(second.get(fields::POSITION_ID).is_none());
    assert!(second.get(fields::PRICE).is_none());
}

#[test]
fn the_filter_drops_lower_levels_and_bad_filters_are_typed_errors() {
    let out = with_logs(json_config("warn"), LogFormat::Json, || {
        tracing::info!("routine");
        tracing::warn!("attention");
    });
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "attention");

    let per_target = with_logs(json_config("warn,trading=info"), LogFormat::Json, || {
        tracing::info!(target: "trading", "kept");
        tracing::info!(target: "other", "dropped");
    });
    let lines = per_target.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message"], "kept");

    let err = build_subscriber_as(
        &json_config("info,[[[bad"),
        LogFormat::Json,
        Captured::default(),
    )
    .err()
    .expect("a malformed filter must be refused");
    assert!(matches!(err, ObservabilityError::InvalidLogFilter { .. }));
    assert!(err.to_string().contains("[[[bad"));

    // Blank means info.
    let blank = with_logs(json_config("  "), LogFormat::Json, || {
        tracing::debug!("hidden");
        tracing::info!("shown");
    });
    assert_eq!(blank.json_lines().len(), 1);
}

#[test]
fn the_readable_format_is_not_json_and_keeps_fields() {
    let out = with_logs(json_config("info"), LogFormat::Pretty, || {
        tracing::info!(trade_id = "T-7", "position opened");
    });
    let text = out.text();
    assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    assert!(text.contains("position opened"), "{text}");
    assert!(text.contains("T-7"), "{text}");
    assert!(text.contains('Z'), "timestamp in UTC: {text}");
}

#[test]
fn formats_resolve_and_parse() {
    assert_eq!(LogFormat::Auto.resolve(true), LogFormat::Pretty);
    assert_eq!(LogFormat::Auto.resolve(false), LogFormat::Json);
    assert_eq!(LogFormat::Json.resolve(true), LogFormat::Json);
    assert_eq!(LogFormat::Pretty.resolve(false), LogFormat::Pretty);
    assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
    assert_eq!("".parse::<LogFormat>().unwrap(), LogFormat::Auto);
    assert!("xml".parse::<LogFormat>().is_err());
}

#[test]
fn secrets_never_reach_a_log_line() {
    let token = "tok-\"quoted\"-SECRET-9f3a";
    let client_secret = "cs-ABCDEF123456";
    let config = LogConfig {
        filter: Some("info".into()),
        format: LogFormat::Json,
        redact: vec![
            Secret::new(token),
            Secret::new(client_secret),
            Secret::new(""),
        ],
    };
    for format in [LogFormat::Json, LogFormat::Pretty] {
        let out = with_logs(config.clone(), format, || {
            // Every way careless code might log a credential.
            tracing::info!(access_token = token, "authorising");
            tracing::info!(secret = ?client_secret, "debug-formatted");
            tracing::info!("in the message: {client_secret} and {token}");
            tracing::info!(wrapped = ?Redacted::new(client_secret), shown = %Redacted::new(7), "wrapped");
            tracing::info!(domain_secret = %Secret::new(client_secret), "domain type");
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 5, "{text}");
        for leaked in [token, client_secret, "SECRET-9f3a", "ABCDEF123456"] {
            assert!(!text.contains(leaked), "{format:?} leaked {leaked}: {text}");
        }
        assert!(text.contains("***"));
        if format == LogFormat::Json {
            // Scrubbing keeps every line valid JSON.
            assert_eq!(out.json_lines()[0]["access_token"], "***");
        }
    }
    let r = Redacted::new("hunter2");
    assert_eq!(format!("{r} {r:?} {r:#?}"), "*** *** ***");
    assert_eq!(*r.expose(), "hunter2");
}

#[test]
fn heartbeat_line_reports_link_quotes_position_and_equity() {
    let clock = Arc::new(FixedClock::new(Timestamp(1_763_950_030_000)));
    let status = StatusHandle::new(StatusConfig::default(), clock);
    status.update(|l| {
        *l = LiveStatus {
            connection: ConnectionState::Authenticated,
            reconciled: true,
            market_open: true,
            store_writable: true,
            last_quote: Some(QuoteView {
                bid: 1.0,
                ask: 1.1,
                received_at_ms: 1_763_950_027_500,
                quoted_at_ms: 1_763_950_027_460,
            }),
            position: Some(PositionView {
                position_id: 5,
                side: "buy".into(),
                volume_units: 10.0,
                entry_price: 4000.0,
                opened_at_ms: 0,
                stop_loss: None,
                take_profit: None,
                unrealized_pnl: Some(3.0),
            }),
            account: Some(AccountView {
                equity: 10_003.0,
                balance: 10_000.0,
                unrealized_pnl: 3.0,
                ..AccountView::default()
            }),
            ..LiveStatus::default()
        };
    });
    let out = with_logs(json_config("info"), LogFormat::Json, || {
        log_heartbeat(&status.snapshot());
        status.update(|l| l.connection = ConnectionState::Disconnected);
        log_heartbeat(&status.snapshot());
    });
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2);
    let hb = &lines[0];
    assert_eq!(hb["target"], "heartbeat");
    assert_eq!(hb["message"], "heartbeat");
    assert_eq!(hb["connection"], "authenticated");
    assert_eq!(hb["last_quote_age_s"], 2.5);
    assert_eq!(hb[fields::POSITION_ID], 5);
    assert_eq!(hb[fields::SIDE], "buy");
    assert_eq!(hb[fields::VOLUME], 10.0);
    assert_eq!(hb["equity"], 10_003.0);
    assert_eq!(hb["ready"], true);
    assert_eq!(hb["failing_checks"], "");
    let down = &lines[1];
    assert_eq!(down["connection"], "disconnected");
    assert_eq!(down["ready"], false);
    assert_eq!(down["failing_checks"], "connected,authenticated");
}

#[tokio::test(start_paused = true)]
async fn heartbeat_runs_on_its_period_until_shutdown() {
    let clock = Arc::new(FixedClock::new(Timestamp(0)));
    let status = StatusHandle::new(StatusConfig::default(), clock);
    let out = Captured::default();
    let subscriber =
        build_subscriber_as(&json_config("info"), LogFormat::Json, out.clone()).unwrap();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = observability::run_heartbeat(status, std::time::Duration::from_secs(30), async {
        let _ = stopped.await;
    });
    let driver = async {
        // Ticks at 0, 30, 60 and 90 s; then stop before the fifth.
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        stop.send(()).unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(200), async {
        tokio::join!(task, driver);
    })
    .await
    .expect("heartbeat did not stop on shutdown");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|l| l["message"] == "heartbeat"));
}
