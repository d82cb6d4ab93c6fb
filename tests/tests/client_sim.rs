//! The cTrader client against the simulated broker, over TLS on loopback: authorisation, symbols,
//! quotes, orders, reconciliation, reconnection, heartbeats, rate limits, certificates and tokens.
//! Every wait is bounded, so a hang fails the test instead of blocking CI.

// Test helpers panic on purpose: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ctrader_client::{
    Broker, BrokerError, BrokerEvent, BrokerEvents, CTraderClient, CTraderConfig, ExecutionKind,
    ExtraCa, OrderFill, OrderOutcome, Protection, ReconnectPolicy,
};
use ctrader_sim::{
    CertificateSource, MarketHours, PALM_OIL_SYMBOL_ID, SimConfig, SimCredentials, SimHandle,
    Simulator,
};
use domain::{
    ClientOrderId, OrderRequest, Price, Secret, Side, SymbolId, Timeframe, Timestamp, Volume,
};
use tempfile::TempDir;

mod common;

const PALM: SymbolId = SymbolId(PALM_OIL_SYMBOL_ID);
const LIMIT: Duration = Duration::from_secs(20);

/// Fails the test when `fut` takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {limit:?}"),
    }
}

struct Env {
    sim: SimHandle,
    _dir: TempDir,
}

async fn start_sim(tweak: impl FnOnce(&mut SimConfig)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig {
        certificates: CertificateSource::Directory(dir.path().join("certs")),
        market_hours: MarketHours::AlwaysOpen,
        history: Duration::from_secs(6 * 86_400),
        tick_interval: Duration::from_millis(20),
        ..SimConfig::default()
    };
    tweak(&mut config);
    let sim = within(LIMIT, "simulator start", Simulator::start(config))
        .await
        .unwrap();
    Env { sim, _dir: dir }
}

impl Env {
    fn config(&self) -> CTraderConfig {
        let mut config = common::config(&self.sim);
        config.reconnect = ReconnectPolicy {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            max_attempts: None,
        };
        config
    }

    async fn connect(&self) -> (CTraderClient, BrokerEvents) {
        self.connect_with(self.config()).await
    }

    async fn connect_with(&self, config: CTraderConfig) -> (CTraderClient, BrokerEvents) {
        let client = within(LIMIT, "connect", CTraderClient::connect(config))
            .await
            .unwrap();
        let events = client.take_events().unwrap();
        (client, events)
    }
}

/// A default simulator and the client connected to it, with its event stream.
async fn connected() -> (Env, CTraderClient, BrokerEvents) {
    let env = start_sim(|_| {}).await;
    let (client, events) = env.connect().await;
    (env, client, events)
}

/// Waits for the first event that `wanted` accepts, skipping others.
async fn next_event(
    events: &mut BrokerEvents,
    what: &str,
    wanted: impl Fn(&BrokerEvent) -> bool,
) -> BrokerEvent {
    within(LIMIT, what, async {
        loop {
            match events.next().await {
                Some(e) if wanted(&e) => return e,
                Some(_) => {}
                None => panic!("{what}: event stream ended"),
            }
        }
    })
    .await
}

fn order(id: &str, side: Side, volume: Volume) -> OrderRequest {
    OrderRequest {
        client_order_id: ClientOrderId::new(id).unwrap(),
        symbol: PALM,
        side,
        volume,
        relative_stop_loss: Some(Price(4_000_000)),
        relative_take_profit: Some(Price(8_000_000)),
        label: format!("pob {id}"),
        position_to_close: None,
    }
}

/// `request` placed within the limit: the broker's outcome, or the client's error.
async fn place(
    client: &CTraderClient,
    what: &str,
    request: &OrderRequest,
) -> Result<OrderOutcome, BrokerError> {
    within(LIMIT, what, client.place_order(request)).await
}

/// The fill of `request`, which must fill.
async fn filled(client: &CTraderClient, request: &OrderRequest) -> OrderFill {
    match place(client, "order", request).await.unwrap() {
        OrderOutcome::Filled(filled) => filled,
        other => panic!("{other:?}"),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn authorises_and_resolves_the_symbol_by_name() {
    let (env, client, _events) = connected().await;
    assert!(client.is_connected());
    let spec = within(
        LIMIT,
        "resolve",
        client.resolve_symbol(&names(&["FCPO", "palmoil", "CPO"])),
    )
    .await
    .unwrap();
    assert_eq!(spec.id, PALM);
    assert_eq!(spec.name, "PALMOIL");
    assert!(spec.min_volume.is_positive() && spec.step_volume.is_positive());
    assert!(
        spec.schedule.is_open(env.sim.sim_time()),
        "always-open market"
    );

    let err = within(
        LIMIT,
        "resolve missing",
        client.resolve_symbol(&names(&["FCPO", "CPO"])),
    )
    .await
    .unwrap_err();
    match &err {
        BrokerError::SymbolNotFound { tried, listed } => {
            assert_eq!(tried, &names(&["FCPO", "CPO"]));
            assert!(*listed >= 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn quotes_arrive_with_both_sides() {
    let (_env, client, mut events) = connected().await;
    within(LIMIT, "subscribe", client.subscribe_quotes(PALM))
        .await
        .unwrap();
    for _ in 0..3 {
        let BrokerEvent::Quote(q) =
            next_event(&mut events, "quote", |e| matches!(e, BrokerEvent::Quote(_))).await
        else {
            unreachable!()
        };
        assert_eq!(q.symbol, PALM);
        assert!(q.bid.raw() > 0 && q.bid <= q.ask, "{q:?}");
        assert!(q.time.0 > 0);
    }
    // Subscribing twice is not an error.
    within(LIMIT, "subscribe again", client.subscribe_quotes(PALM))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_order_fills_then_closes_and_reconcile_and_deals_agree() {
    let (env, client, mut events) = connected().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();
    let (bid, ask) = env.sim.quote(PALM_OIL_SYMBOL_ID).unwrap();
    let before = env.sim.sim_time();

    let filled = filled(&client, &order("pob-1", Side::Buy, spec.min_volume)).await;
    assert_eq!(
        filled
            .fill
            .client_order_id
            .as_ref()
            .map(ClientOrderId::as_str),
        Some("pob-1")
    );
    assert_eq!(filled.fill.volume, spec.min_volume);
    assert_eq!(filled.fill.side, Side::Buy);
    // The synthetic price moves, but not by 1000 MYR between two ticks.
    assert!(
        (filled.fill.price.raw() - ask).abs() < 100_000_000,
        "{:?} vs {ask}",
        filled.fill.price
    );
    assert!(bid < ask);
    let position = filled.position.clone().unwrap();
    let entry = position.entry_price;
    assert_eq!(position.stop_loss, Some(Price(entry.raw() - 4_000_000)));
    assert_eq!(position.take_profit, Some(Price(entry.raw() + 8_000_000)));
    assert_eq!(position.label.as_deref(), Some("pob pob-1"));

    // The stream saw the order's progress; the fill reached only the call it answered.
    let exec = next_event(
        &mut events,
        "acceptance event",
        |e| matches!(e, BrokerEvent::Execution(r) if r.kind == ExecutionKind::Accepted),
    )
    .await;
    let BrokerEvent::Execution(report) = exec else {
        unreachable!()
    };
    assert_eq!(report.order_id, Some(filled.fill.order_id));
    assert!(report.fill.is_none());

    let open = within(LIMIT, "reconcile", client.open_state())
        .await
        .unwrap();
    assert_eq!(open.positions.len(), 1);
    assert_eq!(open.positions[0].id, position.id);
    assert_eq!(open.positions[0].entry_price, entry);
    assert!(open.orders.is_empty());

    // Move the stop-loss up, then close.
    let protection = Protection {
        stop_loss: Some(Price(entry.raw() - 2_000_000)),
        take_profit: position.take_profit,
    };
    within(
        LIMIT,
        "amend",
        client.amend_protection(position.id, protection),
    )
    .await
    .unwrap();
    let open = client.open_state().await.unwrap();
    assert_eq!(open.positions[0].stop_loss, protection.stop_loss);

    let closed = within(
        LIMIT,
        "close",
        client.close_position(position.id, spec.min_volume),
    )
    .await
    .unwrap();
    let OrderOutcome::Filled(closed) = closed else {
        panic!("{closed:?}")
    };
    assert!(closed.position_closed);
    let detail = closed.fill.close.clone().unwrap();
    assert_eq!(detail.entry_price, entry);
    assert_eq!(detail.closed_volume, spec.min_volume);
    assert_eq!(detail.gross_profit.digits, 2);
    assert!(client.open_state().await.unwrap().positions.is_empty());

    let after = env.sim.sim_time().plus_millis(1);
    let deals = within(LIMIT, "deals", client.deals(before, after))
        .await
        .unwrap();
    let ids: Vec<i64> = deals.iter().map(|d| d.deal_id).collect();
    assert_eq!(ids, vec![filled.fill.deal_id, closed.fill.deal_id]);
    assert_eq!(
        deals[1].close.as_ref().unwrap().gross_profit,
        detail.gross_profit
    );

    let balance = within(LIMIT, "balance", client.balance()).await.unwrap();
    assert_eq!(balance.minor, env.sim.balance().unwrap());
    assert_eq!(balance, detail.balance);
}

#[tokio::test]
async fn rejected_orders_come_back_as_rejections() {
    let (env, client, _events) = connected().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();

    env.sim
        .faults()
        .reject_next_order("NOT_ENOUGH_MONEY")
        .unwrap();
    let outcome = place(
        &client,
        "order",
        &order("pob-2", Side::Sell, spec.min_volume),
    )
    .await
    .unwrap();
    let OrderOutcome::Rejected(rejection) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(rejection.code, "NOT_ENOUGH_MONEY");

    // A volume off the step is refused by the broker's own validation.
    let odd = Volume(spec.min_volume.raw() + spec.step_volume.raw() / 2 + 1);
    let outcome = place(&client, "odd order", &order("pob-3", Side::Buy, odd))
        .await
        .unwrap();
    assert!(
        matches!(outcome, OrderOutcome::Rejected(ref r) if r.code == "TRADING_BAD_VOLUME"),
        "{outcome:?}"
    );
    assert!(env.sim.open_position_ids().is_empty());
}

#[tokio::test]
async fn reconnects_after_a_drop_resubscribes_and_asks_to_reconcile() {
    let (env, client, mut events) = connected().await;
    client.subscribe_quotes(PALM).await.unwrap();
    next_event(&mut events, "first quote", |e| {
        matches!(e, BrokerEvent::Quote(_))
    })
    .await;

    env.sim.faults().drop_connections();
    next_event(&mut events, "disconnected", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await;
    // Requests while down fail fast and say nothing was sent (or the link is already back).
    match client.open_state().await {
        Ok(_) | Err(BrokerError::NotConnected) => {}
        Err(other) => panic!("{other:?}"),
    }
    next_event(&mut events, "reconnected", |e| {
        matches!(e, BrokerEvent::Reconnected)
    })
    .await;
    // Quotes flow again without subscribing again.
    next_event(&mut events, "quote after reconnect", |e| {
        matches!(e, BrokerEvent::Quote(_))
    })
    .await;
    assert!(client.is_connected());
    within(LIMIT, "reconcile", client.open_state())
        .await
        .unwrap();

    // The server ending the session is handled the same way.
    env.sim.faults().disconnect_clients("maintenance");
    let BrokerEvent::Disconnected { reason } = next_event(&mut events, "disconnect event", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        reason.contains("maintenance") || reason.contains("closed"),
        "{reason}"
    );
    next_event(&mut events, "reconnected again", |e| {
        matches!(e, BrokerEvent::Reconnected)
    })
    .await;
}

#[tokio::test]
async fn an_order_whose_answer_is_lost_is_unknown_and_never_resent() {
    let (env, client, mut events) = connected().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();
    // The session so far: application auth, account auth, trader, symbols list, symbol by id.
    // The sixth message (the order) executes, then the connection is cut before the answer.
    env.sim.faults().drop_after_messages(Some(6)).unwrap();
    let err = place(
        &client,
        "order",
        &order("pob-4", Side::Buy, spec.min_volume),
    )
    .await
    .unwrap_err();
    assert!(err.needs_reconcile(), "{err:?}");
    assert!(!err.is_transient());
    env.sim.faults().drop_after_messages(None).unwrap();
    next_event(&mut events, "reconnected", |e| {
        matches!(e, BrokerEvent::Reconnected)
    })
    .await;
    let open = within(LIMIT, "reconcile", client.open_state())
        .await
        .unwrap();
    assert_eq!(open.positions.len(), 1, "the order executed exactly once");
    assert_eq!(env.sim.open_position_ids().len(), 1);
}

#[tokio::test]
async fn heartbeats_keep_an_idle_link_alive() {
    // The server drops clients silent for 600 ms; ours sends a heartbeat after 150 ms idle.
    let env = start_sim(|c| {
        c.client_idle_timeout = Some(Duration::from_millis(600));
        c.heartbeat_interval = Duration::from_millis(150);
    })
    .await;
    let mut config = env.config();
    config.timing.heartbeat_interval = Duration::from_millis(150);
    config.timing.silence_limit = Duration::from_millis(900);
    let (client, mut events) = env.connect_with(config).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(client.is_connected());
    while let Some(e) = events.try_next() {
        assert!(!matches!(e, BrokerEvent::Disconnected { .. }), "{e:?}");
    }
    within(LIMIT, "request after idling", client.open_state())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_silent_server_is_detected() {
    let env = start_sim(|c| c.heartbeat_interval = Duration::from_millis(100)).await;
    let mut config = env.config();
    config.timing.heartbeat_interval = Duration::from_millis(100);
    config.timing.silence_limit = Duration::from_millis(500);
    let (_client, mut events) = env.connect_with(config).await;
    env.sim.faults().silence_heartbeats(true).unwrap();
    let BrokerEvent::Disconnected { reason } = next_event(&mut events, "dead link", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("silent"), "{reason}");
}

#[tokio::test]
async fn a_burst_stays_within_the_rate_limit() {
    let (env, client, _events) = connected().await;
    let client = Arc::new(client);
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..80)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.open_state().await })
        })
        .collect();
    for task in burst {
        within(LIMIT, "burst request", task).await.unwrap().unwrap();
    }
    // 80 requests at 50 per second cannot all leave within the first second.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );

    // Deal-list requests (historical, 5/s) in a burst: none refused either.
    let now = env.sim.sim_time();
    for _ in 0..8 {
        within(
            LIMIT,
            "deals",
            client.deals(Timestamp(now.0 - 3_600_000), now),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_broker_that_still_says_blocked_is_waited_out() {
    // The server allows fewer requests than the client thinks: its BLOCKED_PAYLOAD_TYPE answers
    // carry retryAfter, which the client honours before trying again.
    let env = start_sim(|c| c.rate_limits.requests_per_second = 20).await;
    let (client, _events) = env.connect().await;
    let client = Arc::new(client);
    let burst: Vec<_> = (0..45)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.open_state().await })
        })
        .collect();
    let mut refused = 0;
    for task in burst {
        match within(LIMIT, "burst request", task).await.unwrap() {
            Ok(_) => {}
            Err(BrokerError::RateLimited { .. }) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        refused, 0,
        "every refused request was waited out and sent again"
    );
}

#[tokio::test]
async fn trendbars_page_across_the_span_limit() {
    let (env, client, _events) = connected().await;
    let now = env.sim.sim_time();
    // Five days of M1 bars need two requests (3.5 days at most each).
    let from = Timestamp(now.0 - 5 * Timestamp::DAY_MS);
    let bars = within(
        LIMIT,
        "trendbars",
        client.trendbars(PALM, Timeframe::M1, from, now),
    )
    .await
    .unwrap();
    assert!(bars.len() > 3 * 1440, "{} bars", bars.len());
    assert!(bars.windows(2).all(|w| w[0].start < w[1].start));
    assert!(bars.iter().all(|b| from <= b.start && b.start < now));
    assert!(
        bars.iter()
            .all(|b| b.low <= b.open && b.low <= b.close && b.open <= b.high && b.close <= b.high)
    );
    let h1 = client
        .trendbars(PALM, Timeframe::H1, from, now)
        .await
        .unwrap();
    assert!((100..=121).contains(&h1.len()), "{} hourly bars", h1.len());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let env = start_sim(|_| {}).await;
    // A CA of our own making, not the simulator's.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&key).unwrap();
    let mut config = env.config();
    config.extra_ca = Some(ExtraCa::Pem(other_ca.pem().into_bytes()));
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("not trusted"), "{err}");

    // The webpki roots alone do not trust it either.
    let mut config = env.config();
    config.extra_ca = None;
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::UntrustedCertificate { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    // Trusted CA, wrong name: the certificate names localhost and 127.0.0.1, not 127.0.0.2.
    let env = start_sim(|c| c.listen = "127.0.0.2:0".parse().unwrap()).await;
    let mut config = env.config();
    config.host = "127.0.0.2".into();
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("NotValidForName"), "{err}");
}

#[tokio::test]
async fn bad_credentials_fail_at_once_and_are_permanent() {
    let env = start_sim(|_| {}).await;
    let started = std::time::Instant::now();
    let mut config = env.config();
    config.credentials.client_secret = Secret::new("wrong-secret");
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::BadCredentials { ref code } if code == "CH_CLIENT_AUTH_FAILURE"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(!format!("{err} {err:?}").contains("wrong-secret"));

    let mut config = env.config();
    config.account_id = 1;
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::AccountNotAuthorised { account_id: 1, .. }),
        "{err:?}"
    );

    let mut config = env.config();
    config.credentials.access_token = Secret::new("revoked-token");
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::TokenRevoked { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retries: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_invalid_access_token_is_refreshed() {
    let env = start_sim(|_| {}).await;
    let mut config = env.config();
    config.credentials.access_token = Secret::new("expired-token");
    config.credentials.refresh_token = Some(SimCredentials::default().refresh_token);
    let (client, mut events) = env.connect_with(config).await;
    let BrokerEvent::TokenRefreshed {
        access_token,
        refresh_token,
        expires_at,
    } = next_event(&mut events, "token refreshed", |e| {
        matches!(e, BrokerEvent::TokenRefreshed { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_ne!(access_token.expose(), "expired-token");
    assert_ne!(refresh_token, SimCredentials::default().refresh_token);
    assert!(expires_at.is_some());
    within(LIMIT, "reconcile with the new token", client.open_state())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_invalidated_elsewhere_without_a_usable_refresh_stops_trading() {
    let (env, client, mut events) = connected().await;
    // Another client refreshes the shared token: ours is invalidated and we hold no refresh token.
    let mut other = env.config();
    other.credentials.access_token = Secret::new("stale");
    other.credentials.refresh_token = Some(SimCredentials::default().refresh_token);
    let (_other, _other_events) = env.connect_with(other).await;
    let BrokerEvent::TokenInvalidated { reason } =
        next_event(&mut events, "token invalidated", |e| {
            matches!(e, BrokerEvent::TokenInvalidated { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert!(reason.contains("refresh token"), "{reason}");
    let stopped = next_event(&mut events, "stopped", |e| {
        matches!(e, BrokerEvent::Stopped(_))
    })
    .await;
    assert!(
        matches!(
            stopped,
            BrokerEvent::Stopped(BrokerError::TokenRevoked { .. })
        ),
        "{stopped:?}"
    );
    let err = client.open_state().await.unwrap_err();
    assert!(matches!(err, BrokerError::Stopped(_)), "{err:?}");
}

#[tokio::test]
async fn reconnection_gives_up_after_the_configured_attempts() {
    let env = start_sim(|_| {}).await;
    let mut config = env.config();
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_attempts: Some(3),
    };
    let (client, mut events) = env.connect_with(config).await;
    let Env { sim, _dir } = env;
    within(LIMIT, "simulator shutdown", sim.shutdown()).await;
    next_event(&mut events, "disconnected", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await;
    let BrokerEvent::Stopped(err) = next_event(&mut events, "stopped", |e| {
        matches!(e, BrokerEvent::Stopped(_))
    })
    .await
    else {
        unreachable!()
    };
    assert!(err.to_string().contains("gave up reconnecting"), "{err}");
    assert!(!err.is_transient());
    assert!(!client.is_connected());
    assert!(matches!(
        client.open_state().await,
        Err(BrokerError::Stopped(_))
    ));
}

#[tokio::test]
async fn a_stop_loss_hit_arrives_unprompted_with_its_reason() {
    let (env, client, mut events) = connected().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();
    let filled = filled(&client, &order("pob-sl", Side::Buy, spec.min_volume)).await;
    let entry = filled.fill.price.raw();
    // A shock 100 MYR down: far through the 40 MYR stop-loss.
    env.sim
        .set_mid_price(PALM_OIL_SYMBOL_ID, entry - 10_000_000)
        .unwrap();
    let BrokerEvent::Execution(report) = next_event(
        &mut events,
        "stop-loss fill",
        |e| matches!(e, BrokerEvent::Execution(r) if r.position_closed && r.fill.is_some()),
    )
    .await
    else {
        unreachable!()
    };
    let fill = report.fill.unwrap();
    assert_eq!(fill.position_id, filled.fill.position_id);
    let close = fill.close.unwrap();
    assert_eq!(close.close_reason, Some(domain::CloseReason::StopLoss));
    assert!(close.gross_profit.is_negative());
    assert!(client.open_state().await.unwrap().positions.is_empty());
}

#[tokio::test]
async fn history_deals_carry_the_client_order_id_of_the_order_that_made_them() {
    let (env, client, mut events) = connected().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();
    let before = env.sim.sim_time();
    let place = |request: OrderRequest| {
        let client = &client;
        async move { filled(client, &request).await }
    };
    // A position opened by our order and closed by another of our orders.
    let first = place(order("pob-hist-1", Side::Buy, spec.min_volume)).await;
    let first_position = first.fill.position_id;
    let closer = place(OrderRequest {
        position_to_close: Some(first_position),
        ..order("pob-hist-2", Side::Sell, spec.min_volume)
    })
    .await;
    assert!(closer.position_closed);
    // A position opened by our order and closed by its stop loss (the broker's order).
    let second = place(order("pob-hist-3", Side::Buy, spec.min_volume)).await;
    env.sim
        .set_mid_price(PALM_OIL_SYMBOL_ID, second.fill.price.raw() - 10_000_000)
        .unwrap();
    let second_position = second.fill.position_id;
    let BrokerEvent::Execution(stopped) = next_event(&mut events, "stop-loss fill", |e| {
        matches!(e, BrokerEvent::Execution(r)
            if r.position_closed
                && r.fill.as_ref().is_some_and(|f| f.position_id == second_position))
    })
    .await
    else {
        unreachable!()
    };
    let stopped = stopped.fill.unwrap();
    drop(client);

    // A restarted client knows nothing but what the broker's history says; the range spans two
    // one-week windows.
    let (client, _events) = env.connect().await;
    let from = Timestamp(before.0 - 8 * Timestamp::DAY_MS);
    let to = stopped.time.max(env.sim.sim_time()).plus_millis(1);
    let deals = within(LIMIT, "deals", client.deals(from, to))
        .await
        .unwrap();
    let seen: Vec<(Option<&str>, bool)> = deals
        .iter()
        .map(|d| {
            (
                d.client_order_id.as_ref().map(ClientOrderId::as_str),
                d.close.is_some(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("pob-hist-1"), false),
            (Some("pob-hist-2"), true),
            (Some("pob-hist-3"), false),
            (None, true),
        ],
        "{deals:?}"
    );
    assert_eq!(deals[0].position_id, first_position);
    assert_eq!(deals[1].position_id, first_position);
    assert_eq!(deals[2].position_id, second.fill.position_id);
    assert_eq!(deals[3].position_id, second.fill.position_id);
    assert_eq!(deals[0].deal_id, first.fill.deal_id);
    assert_eq!(deals[3].deal_id, stopped.deal_id);
}

#[tokio::test]
async fn the_broker_says_live_or_demo_and_a_mismatch_is_refused_naming_both() {
    let env = start_sim(|c| c.live_account = true).await;
    let (client, _events) = env.connect().await;
    assert!(
        client.account_is_live(),
        "the simulator lists the account as live"
    );
    let mut config = env.config();
    config.expect_live = Some(ctrader_client::LiveExpectation {
        live: false,
        said_by: "CTRADER_ENV is demo".into(),
    });
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BrokerError::WrongEnvironment {
                account_is_live: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("live account") && text.contains("CTRADER_ENV is demo"),
        "{text}"
    );

    let demo = start_sim(|_| {}).await;
    let (client, _events) = demo.connect().await;
    assert!(!client.account_is_live());
}

/// Records every pair handed over, or refuses them all; tracks the refreshes in flight.
#[derive(Debug, Default)]
struct Keeper {
    kept: std::sync::Mutex<Vec<ctrader_client::RefreshedTokens>>,
    refuse: bool,
    in_flight: tokio_util::task::TaskTracker,
}

impl ctrader_client::TokenKeeper for Keeper {
    fn keep<'a>(
        &'a self,
        tokens: &'a ctrader_client::RefreshedTokens,
    ) -> ctrader_client::KeepFuture<'a> {
        Box::pin(async move {
            if self.refuse {
                return Err("disk full".to_owned());
            }
            self.kept.lock().unwrap().push(tokens.clone());
            Ok(())
        })
    }

    fn refresh_started(&self) -> Option<tokio_util::task::task_tracker::TaskTrackerToken> {
        Some(self.in_flight.token())
    }
}

#[tokio::test]
async fn a_connection_given_up_during_a_token_refresh_still_keeps_the_pair_the_broker_issued() {
    // The broker rotates the tokens the moment a refresh arrives; its answer is 600 ms late.
    // The caller gives up connecting after 250 ms (a shutdown during a reconnection does).
    let env = start_sim(|c| c.faults.refresh_reply_delay = Some(Duration::from_millis(600))).await;
    let mut config = env.config();
    config.credentials.access_token = Secret::new("expired-token");
    config.credentials.refresh_token = Some(SimCredentials::default().refresh_token);
    let keeper = Arc::new(Keeper::default());
    let connecting = CTraderClient::connect_with(
        config.clone(),
        Arc::new(domain::SystemClock),
        Arc::clone(&keeper) as Arc<dyn ctrader_client::TokenKeeper>,
    );
    let given_up = tokio::time::timeout(Duration::from_millis(250), connecting).await;
    assert!(
        given_up.is_err(),
        "the refresh's answer is held: no client yet"
    );

    // The owner waits for the refresh in flight, as the bot does before it exits.
    keeper.in_flight.close();
    within(LIMIT, "the refresh in flight", keeper.in_flight.wait()).await;
    let kept = keeper.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1, "the pair the broker issued was kept");

    // The original refresh token is spent; the kept pair is the one that works.
    let mut spent = config.clone();
    spent.credentials.access_token = Secret::new("expired-token");
    let err = within(LIMIT, "connect", CTraderClient::connect(spent))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::TokenRefreshFailed { .. }),
        "{err:?}"
    );
    let mut fresh = config;
    fresh.credentials.access_token = kept[0].access_token.clone();
    fresh.credentials.refresh_token = Some(kept[0].refresh_token.clone());
    let (client, _events) = env.connect_with(fresh).await;
    within(LIMIT, "reconcile with the kept pair", client.open_state())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_near_its_expiry_is_refreshed_and_kept_before_it_is_used() {
    use domain::Clock as _;
    // The broker's invalidation of the old token trails its answer by one request, the order a
    // year soak met by chance: authorising the account again on the same connection is answered
    // ALREADY_LOGGED_IN, and the next request ACCOUNT_NOT_AUTHORIZED.
    let env = start_sim(|c| c.faults.late_token_invalidation = true).await;
    let mut config = env.config();
    config.credentials.refresh_token = Some(SimCredentials::default().refresh_token);
    // A 10 s life of which 8.5 s are gone: refreshed 80 % of the way through, in 0.5 s, although
    // the broker still accepts it.
    let now = domain::SystemClock.now();
    config.token_expiry = Some(ctrader_client::TokenExpiry {
        issued_at: Timestamp(now.millis() - 7_500),
        expires_at: now.plus_millis(2_500),
    });
    let keeper = Arc::new(Keeper::default());
    let client = within(
        LIMIT,
        "connect",
        CTraderClient::connect_with(
            config,
            Arc::new(domain::SystemClock),
            Arc::clone(&keeper) as Arc<dyn ctrader_client::TokenKeeper>,
        ),
    )
    .await
    .unwrap();
    let mut events = client.take_events().unwrap();
    // Quotes flow before the refresh, and must again after it.
    within(LIMIT, "subscribe", client.subscribe_quotes(PALM))
        .await
        .unwrap();
    let BrokerEvent::TokenRefreshed { access_token, .. } =
        next_event(&mut events, "token refreshed", |e| {
            matches!(e, BrokerEvent::TokenRefreshed { .. })
        })
        .await
    else {
        unreachable!()
    };
    {
        let kept = keeper.kept.lock().unwrap();
        assert_eq!(kept.len(), 1, "kept once, before the event");
        assert_eq!(kept[0].access_token, access_token);
        assert_ne!(access_token, SimCredentials::default().access_token);
        assert!(kept[0].expires_at.is_some());
    }
    // The account is authorised with the new token on a new connection: on the old one it stays
    // authorised with the old token until the broker's invalidation arrives, and a request in
    // between is refused ACCOUNT_NOT_AUTHORIZED (seen in a year soak, where it stopped the client).
    let BrokerEvent::Disconnected { reason } = next_event(&mut events, "a new connection", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.starts_with("token refreshed"), "{reason}");
    next_event(&mut events, "authorised with the new token", |e| {
        matches!(e, BrokerEvent::Reconnected)
    })
    .await;
    within(LIMIT, "reconcile with the new token", client.open_state())
        .await
        .unwrap();
    next_event(&mut events, "a quote on the new connection", |e| {
        matches!(e, BrokerEvent::Quote(_))
    })
    .await;
    assert!(client.stop_reason().is_none(), "{:?}", client.stop_reason());
}

#[tokio::test]
async fn a_refreshed_pair_that_cannot_be_kept_is_not_used() {
    let env = start_sim(|_| {}).await;
    let mut config = env.config();
    config.credentials.access_token = Secret::new("expired-token");
    config.credentials.refresh_token = Some(SimCredentials::default().refresh_token);
    let keeper = Arc::new(Keeper {
        refuse: true,
        ..Keeper::default()
    });
    let err = within(
        LIMIT,
        "connect",
        CTraderClient::connect_with(config, Arc::new(domain::SystemClock), keeper),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, BrokerError::TokenStore(ref m) if m == "disk full"),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_refresh_token_the_broker_refuses_is_a_clear_permanent_error() {
    let env = start_sim(|_| {}).await;
    let mut config = env.config();
    config.credentials.access_token = Secret::new("expired-token");
    config.credentials.refresh_token = Some(Secret::new("spent-refresh-token"));
    let err = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::TokenRefreshFailed { .. }),
        "{err:?}"
    );
    assert!(err.is_credentials_problem());
    let text = err.to_string();
    assert!(text.contains("palm-oil-bot auth"), "{text}");
    assert!(!text.contains("spent-refresh-token"), "{text}");
}

#[tokio::test]
async fn a_maintenance_window_is_waited_out_before_reconnecting() {
    use domain::Clock as _;
    let env = start_sim(|_| {}).await;
    let mut config = env.config();
    config.maintenance_jitter = Duration::from_millis(100);
    let (client, mut events) = env.connect_with(config.clone()).await;
    let end = env
        .sim
        .faults()
        .announce_maintenance(Duration::from_secs(2))
        .unwrap();
    let BrokerEvent::Disconnected { reason } = next_event(&mut events, "disconnected", |e| {
        matches!(e, BrokerEvent::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("maintenance"), "{reason}");
    next_event(&mut events, "reconnected", |e| {
        matches!(e, BrokerEvent::Reconnected)
    })
    .await;
    // Ordinary backoff (50 to 400 ms here) would have been back long before the window ended.
    assert!(
        domain::SystemClock.now().millis() >= end * 1000,
        "reconnected before the announced end of the maintenance"
    );
    within(LIMIT, "reconcile after maintenance", client.open_state())
        .await
        .unwrap();

    // Connecting during a window waits for its end too.
    let end = env
        .sim
        .faults()
        .announce_maintenance(Duration::from_secs(1))
        .unwrap();
    let late = within(LIMIT, "connect", CTraderClient::connect(config))
        .await
        .unwrap();
    assert!(domain::SystemClock.now().millis() >= end * 1000);
    assert!(late.is_connected());
}

/// A limited-risk account's broker refuses a new order without a guaranteed stop loss: the client
/// learns the account is limited-risk when it connects and guarantees every opening order's stop.
/// Closing orders carry none.
#[tokio::test]
async fn a_limited_risk_account_gets_guaranteed_stops_on_its_opening_orders() {
    let env = start_sim(|c| c.limited_risk_account = true).await;
    let (client, _events) = env.connect().await;
    let spec = client.resolve_symbol(&names(&["PALMOIL"])).await.unwrap();
    let fill = filled(&client, &order("pob-gsl-1", Side::Buy, spec.min_volume)).await;
    let open = env.sim.open_positions();
    let position = open
        .iter()
        .find(|p| p.id == fill.fill.position_id.0)
        .unwrap();
    assert!(position.guaranteed_stop_loss, "{position:?}");
    let close = OrderRequest {
        relative_stop_loss: None,
        relative_take_profit: None,
        position_to_close: Some(fill.fill.position_id),
        ..order("pob-gsl-2", Side::Sell, spec.min_volume)
    };
    let closed = filled(&client, &close).await;
    assert!(closed.fill.close.is_some());
    assert!(env.sim.open_positions().is_empty());
}
