//! The HTTP server over real sockets on 127.0.0.1: metrics scrape, health and readiness,
//! dashboard and status, routing errors and hostile requests.

mod common;

use std::time::{Duration, Instant};

use common::{T0, TestServer, parse_exposition, send_raw};
use domain::Timestamp;
use observability::{
    AccountView, ConnectionState, DecisionRecord, EventLevel, KillSwitchView, LiveStatus,
    OrderOutcome, PositionView, QuoteView, SentimentResult, SentimentView, StatusSnapshot,
    TradeOutcome,
};

fn ready_state(received_at_ms: i64) -> LiveStatus {
    LiveStatus {
        symbol: "CPO".into(),
        connection: ConnectionState::Authenticated,
        reconciled: true,
        market_open: true,
        store_writable: true,
        last_quote: Some(QuoteView {
            bid: 4012.5,
            ask: 4013.0,
            received_at_ms,
            quoted_at_ms: received_at_ms - 40,
        }),
        ..LiveStatus::default()
    }
}

#[tokio::test]
async fn metrics_scrape_reports_known_events_with_names_types_and_values() {
    let server = TestServer::start().await;
    let m = &server.metrics;
    m.set_connection_state(ConnectionState::Authenticated);
    m.record_reconnect();
    m.record_reconnect();
    m.record_quote(Timestamp(T0 - 2_500));
    m.record_quote(Timestamp(T0 - 1_500));
    m.record_order(OrderOutcome::Filled);
    m.record_order_rejection("NOT_ENOUGH_MONEY");
    m.record_entry_refused("no_conversion_rate");
    m.observe_order_latency(Duration::from_millis(180));
    m.observe_tick_to_decision(Duration::from_micros(30));
    m.observe_tick_to_decision(Duration::from_micros(800));
    m.record_trade(TradeOutcome::Win);
    m.record_trade(TradeOutcome::Win);
    m.record_trade(TradeOutcome::Loss);
    m.set_win_rate(2.0 / 3.0);
    m.set_realized_pnl(125.5);
    m.set_unrealized_pnl(-20.25);
    m.set_equity(10_105.25);
    m.set_balance(10_125.5);
    m.set_drawdown(0.031);
    m.set_drawdown_limit(0.1);
    m.set_position_volume(-10.0);
    m.set_rsi(71.25);
    m.set_market_open(true);
    m.set_kill_switch(false);
    m.set_sentiment_score("perplexity", 0.4);
    m.record_sentiment_request("perplexity", SentimentResult::Ok, Timestamp(T0 - 60_000));
    m.record_sentiment_request("nitter", SentimentResult::Timeout, Timestamp(T0));
    m.record_sentiment_cache(true);
    m.record_sentiment_cache(true);
    m.record_sentiment_cache(true);
    m.record_sentiment_cache(false);
    m.record_reconciliation_correction("closed_externally");

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = reply.text();
    let e = parse_exposition(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let p = "palm_oil_bot_";

    let expected_types = [
        ("broker_reconnects_total", "counter"),
        ("quotes_total", "counter"),
        ("orders_total", "counter"),
        ("order_rejections_total", "counter"),
        ("entries_refused_total", "counter"),
        ("trades_total", "counter"),
        ("sentiment_requests_total", "counter"),
        ("sentiment_cache_hits_total", "counter"),
        ("sentiment_cache_misses_total", "counter"),
        ("reconciliation_corrections_total", "counter"),
        ("order_latency_seconds", "histogram"),
        ("tick_to_decision_seconds", "histogram"),
        ("realized_pnl", "gauge"),
        ("unrealized_pnl", "gauge"),
        ("equity", "gauge"),
        ("balance", "gauge"),
        ("drawdown_ratio", "gauge"),
        ("drawdown_limit_ratio", "gauge"),
        ("win_rate_ratio", "gauge"),
        ("position_volume_units", "gauge"),
        ("rsi", "gauge"),
        ("market_open", "gauge"),
        ("kill_switch_engaged", "gauge"),
        ("broker_connected", "gauge"),
        ("broker_connection_state", "gauge"),
        ("sentiment_score", "gauge"),
        ("sentiment_cache_hit_ratio", "gauge"),
        ("last_quote_age_seconds", "gauge"),
        ("sentiment_staleness_seconds", "gauge"),
    ];
    for (name, kind) in expected_types {
        let full = format!("{p}{name}");
        assert_eq!(
            e.types.get(&full).map(String::as_str),
            Some(kind),
            "type of {full}"
        );
        assert!(
            e.help.get(&full).is_some_and(|h| !h.is_empty()),
            "help of {full}"
        );
    }
    // No scope or target labels leak in.
    assert!(!text.contains("otel_scope") && !text.contains("target_info"));

    let v = |name: &str, labels: &[(&str, &str)]| {
        e.value(&format!("{p}{name}"), labels)
            .unwrap_or_else(|| panic!("missing {name} {labels:?}"))
    };
    assert_eq!(v("broker_reconnects_total", &[]), 2.0);
    assert_eq!(v("quotes_total", &[]), 2.0);
    assert_eq!(v("orders_total", &[("outcome", "filled")]), 1.0);
    assert_eq!(v("orders_total", &[("outcome", "rejected")]), 1.0);
    assert_eq!(
        v("orders_total", &[("outcome", "cancelled")]),
        0.0,
        "pre-registered at zero"
    );
    assert_eq!(
        v("order_rejections_total", &[("code", "NOT_ENOUGH_MONEY")]),
        1.0
    );
    assert_eq!(
        v("entries_refused_total", &[("reason", "no_conversion_rate")]),
        1.0
    );
    assert_eq!(v("trades_total", &[("outcome", "win")]), 2.0);
    assert_eq!(v("trades_total", &[("outcome", "loss")]), 1.0);
    assert_eq!(v("trades_total", &[("outcome", "breakeven")]), 0.0);
    assert!((v("win_rate_ratio", &[]) - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(v("realized_pnl", &[]), 125.5);
    assert_eq!(v("unrealized_pnl", &[]), -20.25);
    assert_eq!(v("equity", &[]), 10_105.25);
    assert_eq!(v("balance", &[]), 10_125.5);
    assert_eq!(v("drawdown_ratio", &[]), 0.031);
    assert_eq!(v("drawdown_limit_ratio", &[]), 0.1);
    assert_eq!(v("position_volume_units", &[]), -10.0);
    assert_eq!(v("rsi", &[]), 71.25);
    assert_eq!(v("market_open", &[]), 1.0);
    assert_eq!(v("kill_switch_engaged", &[]), 0.0);
    assert_eq!(v("broker_connected", &[]), 1.0);
    assert_eq!(
        v("broker_connection_state", &[("state", "authenticated")]),
        1.0
    );
    assert_eq!(
        v("broker_connection_state", &[("state", "disconnected")]),
        0.0
    );
    assert_eq!(v("sentiment_score", &[("source", "perplexity")]), 0.4);
    assert_eq!(
        v(
            "sentiment_requests_total",
            &[("source", "perplexity"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "sentiment_requests_total",
            &[("source", "nitter"), ("result", "timeout")]
        ),
        1.0
    );
    assert_eq!(v("sentiment_cache_hits_total", &[]), 3.0);
    assert_eq!(v("sentiment_cache_misses_total", &[]), 1.0);
    assert_eq!(v("sentiment_cache_hit_ratio", &[]), 0.75);
    assert_eq!(
        v(
            "reconciliation_corrections_total",
            &[("kind", "closed_externally")]
        ),
        1.0
    );
    // Ages are computed at scrape time from the injected clock.
    assert_eq!(v("last_quote_age_seconds", &[]), 1.5);
    assert_eq!(v("sentiment_staleness_seconds", &[]), 60.0);

    // Histograms: bucket counts are cumulative and the sum is in seconds.
    assert_eq!(v("order_latency_seconds_count", &[]), 1.0);
    assert!((v("order_latency_seconds_sum", &[]) - 0.18).abs() < 1e-9);
    assert_eq!(v("order_latency_seconds_bucket", &[("le", "0.1")]), 0.0);
    assert_eq!(v("order_latency_seconds_bucket", &[("le", "0.25")]), 1.0);
    assert_eq!(v("order_latency_seconds_bucket", &[("le", "+Inf")]), 1.0);
    assert_eq!(v("tick_to_decision_seconds_count", &[]), 2.0);
    assert_eq!(
        v("tick_to_decision_seconds_bucket", &[("le", "0.00005")]),
        1.0
    );
    assert_eq!(
        v("tick_to_decision_seconds_bucket", &[("le", "0.001")]),
        2.0
    );

    // Ages move with the clock between scrapes.
    server.clock.advance(10_000);
    let e2 = parse_exposition(&server.get("/metrics").await.text()).unwrap();
    assert_eq!(
        e2.value("palm_oil_bot_last_quote_age_seconds", &[]),
        Some(11.5)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn before_any_quote_the_quote_age_counts_from_start() {
    let server = TestServer::start().await;
    server.clock.advance(42_000);
    let e = parse_exposition(&server.get("/metrics").await.text()).unwrap();
    assert_eq!(
        e.value("palm_oil_bot_last_quote_age_seconds", &[]),
        Some(42.0)
    );
    assert_eq!(
        e.value("palm_oil_bot_sentiment_staleness_seconds", &[]),
        Some(42.0)
    );
    // No lookups yet: no ratio rather than a made-up one.
    assert_eq!(e.value("palm_oil_bot_sentiment_cache_hit_ratio", &[]), None);
    assert_eq!(e.value("palm_oil_bot_broker_connected", &[]), Some(0.0));
    server.shutdown().await;
}

#[tokio::test]
async fn readiness_follows_its_checks() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/healthz").await.status, 200);

    let not_ready = server.get("/readyz").await;
    assert_eq!(not_ready.status, 503);
    let body = not_ready.json();
    assert_eq!(body["ready"], false);
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "connected",
            "authenticated",
            "reconciled",
            "quotes_fresh",
            "conversion_rate",
            "store_writable",
            "kill_switch_off"
        ]
    );

    server.status.update(|l| *l = ready_state(T0));
    for path in ["/readyz", "/health"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.json()["ready"], true);
    }

    // Quotes go stale while the market is open: unready, with the reason.
    server.clock.advance(61_000);
    let stale = server.get("/readyz").await;
    assert_eq!(stale.status, 503);
    let body = stale.json();
    let quotes = &body["checks"][3];
    assert_eq!(quotes["name"], "quotes_fresh");
    assert_eq!(quotes["ok"], false);
    assert!(quotes["detail"].as_str().unwrap().contains("61.0 s ago"));

    // A fresh quote restores readiness; a kill switch removes it again.
    server.status.update(|l| {
        l.last_quote.as_mut().unwrap().received_at_ms = T0 + 61_000;
    });
    assert_eq!(server.get("/readyz").await.status, 200);
    server.status.update(|l| {
        l.kill_switch = KillSwitchView {
            engaged: true,
            reason: Some("drawdown limit".into()),
        };
    });
    assert_eq!(server.get("/health").await.status, 503);
    server.status.update(|l| {
        l.kill_switch = KillSwitchView::default();
        l.store_writable = false;
    });
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["checks"][5]["name"], "store_writable");
    assert_eq!(reply.json()["checks"][5]["ok"], false);

    // No usable conversion rate while the market is open: unready, saying why; closed: ready.
    server.status.update(|l| {
        l.store_writable = true;
        l.conversion = Some(observability::ConversionView {
            quote_currency: "MYR".into(),
            account_currency: "USD".into(),
            rate: None,
            via: vec!["USDMYR".into()],
            unavailable: Some("no USDMYR quote since the link came up".into()),
        });
    });
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["checks"][4]["name"], "conversion_rate");
    assert!(
        body["checks"][4]["detail"]
            .as_str()
            .unwrap()
            .contains("USDMYR")
    );
    server.status.update(|l| l.market_open = false);
    assert_eq!(server.get("/readyz").await.status, 200);
    server.status.update(|l| {
        l.market_open = true;
        if let Some(c) = l.conversion.as_mut() {
            c.unavailable = None;
            c.rate = Some(0.2222);
        }
    });
    assert_eq!(server.get("/readyz").await.status, 200);
    // Liveness does not depend on readiness.
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn dashboard_and_status_render_a_known_state() {
    let server = TestServer::start().await;
    server.status.update(|l| {
        *l = ready_state(T0 - 500);
        l.position = Some(PositionView {
            position_id: 777,
            side: "buy".into(),
            volume_units: 10.0,
            entry_price: 4001.0,
            opened_at_ms: T0 - 3_600_000,
            stop_loss: Some(3950.0),
            take_profit: None,
            unrealized_pnl: Some(115.0),
        });
        l.account = Some(AccountView {
            currency: "USD".into(),
            balance: 10_000.0,
            equity: 10_115.0,
            realized_pnl: 250.0,
            unrealized_pnl: 115.0,
            drawdown_ratio: 0.02,
            drawdown_bps: 200,
            drawdown_limit_bps: Some(1_000),
            daily_loss_bps: 50,
            daily_loss_limit_bps: Some(300),
            win_rate: Some(0.6),
            closed_trades: 5,
        });
        l.rsi = Some(28.5);
        l.sentiment = Some(SentimentView {
            score: 0.35,
            confidence: 0.8,
            source: "perplexity".into(),
            summary: "exports up".into(),
            known_at_ms: T0 - 60_000,
        });
    });
    server.status.push_equity(Timestamp(T0 - 120_000), 10_050.0);
    server.status.push_equity(Timestamp(T0), 10_115.0);
    server.status.push_decision(DecisionRecord {
        at_ms: T0 - 3_600_000,
        action: "open_buy".into(),
        reason: "RSI 28 below 30, sentiment 0.35".into(),
        rsi: Some(28.0),
        sentiment: Some(0.35),
        price: Some(4001.0),
    });
    let hostile = "</script><script>alert(1)</script>";
    server
        .status
        .push_event(Timestamp(T0), EventLevel::Warn, hostile);

    let api = server.get("/api/status").await;
    assert_eq!(api.status, 200);
    assert_eq!(api.header("content-type"), Some("application/json"));
    let snap: StatusSnapshot = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(snap, server.status.snapshot());
    assert_eq!(snap.live.position.as_ref().unwrap().position_id, 777);
    assert_eq!(snap.equity_curve.len(), 2);
    assert_eq!(snap.decisions[0].action, "open_buy");
    assert_eq!(snap.events[0].message, hostile);
    assert_eq!(snap.last_quote_age_seconds, Some(0.5));
    assert!(snap.readiness.ready);

    let page = server.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let html = page.text();
    for id in [
        "position",
        "account",
        "rsi-value",
        "sentiment-value",
        "equity",
        "decisions",
        "events",
        "checks",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "dashboard lacks #{id}"
        );
    }
    assert!(
        html.contains("/api/status") && html.contains("setInterval"),
        "must poll"
    );
    // The embedded state is the known state, and the hostile message cannot close the script.
    assert!(!html.contains(hostile));
    let start =
        html.find("type=\"application/json\">").unwrap() + "type=\"application/json\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let embedded: StatusSnapshot = serde_json::from_str(&html[start..end]).unwrap();
    assert_eq!(embedded.live, snap.live);
    assert_eq!(embedded.events[0].message, hostile);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/nope").await.status, 404);
    assert_eq!(server.get("/metrics/extra").await.status, 404);
    assert_eq!(
        server.get("/metrics?format=x").await.status,
        200,
        "query is ignored"
    );
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let reply = server
            .send(format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    }
    let head = server
        .send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_without_harm() {
    let server = TestServer::start().await;
    // Garbage instead of HTTP.
    let garbage = send_raw(server.addr, b"\x00\x01\x02 not http at all\r\n\r\n").await;
    assert_eq!(garbage.status, 400);
    let bad_line = server.send(b"GET\r\n\r\n").await;
    assert_eq!(bad_line.status, 400);
    let bad_header = server.send(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n").await;
    assert_eq!(bad_header.status, 400);

    // A head larger than the limit (16 KiB by default).
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = server.send(big.as_bytes()).await;
    assert_eq!(reply.status, 431);

    // Declared bodies are refused before anything reads them.
    let body = server
        .send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await;
    assert_eq!(body.status, 413);
    let chunked = server
        .send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    assert_eq!(chunked.status, 413);

    // Still serving.
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start_with(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    // The head never completes: the server must close the connection by itself.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "server kept a slow client open past 5 s");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed too late: {waited:?}"
    );
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_others_still_served() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(3);
    })
    .await;
    let _a = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Give the accept loop time to take both slots.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0_u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("the extra connection should be closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop((_a, _b));
    // Slots free up when the idle clients leave.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(2), async {
            let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(
                &mut s,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            out
        })
        .await
        .unwrap_or_default();
        if reply.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "server never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = TestServer::start().await;
    let addr = server.addr;
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
    let refused =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect attempt hung");
    assert!(refused.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn binding_a_taken_port_is_a_typed_transient_error() {
    let server = TestServer::start().await;
    let clock = server.clock.clone();
    let err = observability::HttpServer::bind(
        observability::ServerConfig::at(server.addr),
        server.metrics.clone(),
        observability::StatusHandle::new(Default::default(), clock),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        err,
        observability::ObservabilityError::Bind { .. }
    ));
    assert!(err.is_transient());
    assert!(err.to_string().contains(&server.addr.to_string()));
    server.shutdown().await;
}

/// A small deterministic generator, so a failing input can be reproduced from its index.
struct XorShift(u64);

#[allow(clippy::cast_possible_truncation)]
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        // Test inputs stay far below u32::MAX, so the modulo fits any usize.
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

#[tokio::test]
async fn random_requests_always_get_an_http_answer() {
    let server =
        TestServer::start_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let any: Vec<u8> = (0..=255).collect();
    let path_chars: &[u8] = b"/abcmetricshealthzreadyapistatus?%&=.#~-_09\\\"' \t";
    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "BREW", "get", "G@T", "",
    ];
    for i in 0..300 {
        let raw = if i % 3 == 0 {
            // Pure noise, terminated so the server does not wait for more.
            let mut noise = rng.bytes(300, &any);
            noise.extend_from_slice(b"\r\n\r\n");
            noise
        } else {
            let method = methods[rng.below(methods.len())];
            let mut req = method.as_bytes().to_vec();
            req.push(b' ');
            req.extend(rng.bytes(40, path_chars));
            req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
            for _ in 0..rng.below(4) {
                req.extend(rng.bytes(20, b"abcXYZ-:; 019\x01\x7f\xff"));
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"\r\n");
            req
        };
        let reply = send_raw(server.addr, &raw).await;
        assert!(
            [200, 400, 404, 405, 413, 431, 503].contains(&reply.status),
            "input #{i} {:?} got {}",
            String::from_utf8_lossy(&raw),
            reply.status
        );
    }
    assert_eq!(server.get("/healthz").await.status, 200);
    server.shutdown().await;
}
