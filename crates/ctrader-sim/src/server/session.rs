//! One client connection: authentication, requests and their replies, pushed events for the
//! accounts and symbols it subscribed to, heartbeats, rate limits and per-connection faults.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ctrader_proto::openapi::{
    ProtoHeartbeatEvent, ProtoOaAccountAuthReq, ProtoOaAccountAuthRes, ProtoOaAccountLogoutReq,
    ProtoOaAccountLogoutRes, ProtoOaAccountsTokenInvalidatedEvent, ProtoOaAmendPositionSltpReq,
    ProtoOaApplicationAuthReq, ProtoOaApplicationAuthRes, ProtoOaAssetListReq, ProtoOaAssetListRes,
    ProtoOaCancelOrderReq, ProtoOaClientDisconnectEvent, ProtoOaClosePositionReq,
    ProtoOaDealListReq, ProtoOaDealListRes, ProtoOaErrorRes, ProtoOaGetAccountListByAccessTokenReq,
    ProtoOaGetAccountListByAccessTokenRes, ProtoOaGetPositionUnrealizedPnLReq,
    ProtoOaGetPositionUnrealizedPnLRes, ProtoOaGetTickDataReq, ProtoOaGetTickDataRes,
    ProtoOaGetTrendbarsReq, ProtoOaGetTrendbarsRes, ProtoOaNewOrderReq, ProtoOaOrderErrorEvent,
    ProtoOaOrderListReq, ProtoOaOrderListRes, ProtoOaPositionUnrealizedPnL, ProtoOaReconcileReq,
    ProtoOaReconcileRes, ProtoOaRefreshTokenReq, ProtoOaRefreshTokenRes, ProtoOaSpotEvent,
    ProtoOaSubscribeLiveTrendbarReq, ProtoOaSubscribeLiveTrendbarRes, ProtoOaSubscribeSpotsReq,
    ProtoOaSubscribeSpotsRes, ProtoOaSymbolByIdReq, ProtoOaSymbolByIdRes,
    ProtoOaSymbolsForConversionReq, ProtoOaSymbolsForConversionRes, ProtoOaSymbolsListReq,
    ProtoOaSymbolsListRes, ProtoOaTickData, ProtoOaTraderReq, ProtoOaTraderRes,
    ProtoOaUnsubscribeLiveTrendbarReq, ProtoOaUnsubscribeLiveTrendbarRes,
    ProtoOaUnsubscribeSpotsReq, ProtoOaUnsubscribeSpotsRes, ProtoOaVersionRes,
};
use ctrader_proto::{FrameCodec, LENGTH_PREFIX_LEN, OpenApiMessage, Payload, ProtoMessage};
use domain::{Secret, Timestamp};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_util::codec::Framed;

use super::{ConnectionCommand, Push, Shared, lock};
use crate::bars::BarPeriod;
use crate::broker::{Execution, RejectAs, Rejection};
use crate::conversion::ChainError;
use crate::market::SpotUpdate;
use crate::ratelimit::RequestLimiter;
use crate::wire;

/// A body length no client accepts (16 MiB + 1, above the official SDK's 15,000,000 bytes).
const OVERSIZED_LEN: u32 = 16 * 1024 * 1024 + 1;
/// A frame whose body claims a 5-byte field 1 but holds one byte: never a valid `ProtoMessage`.
const MALFORMED_FRAME: [u8; 7] = [0, 0, 0, 3, 0x0A, 0x05, 0x01];
/// How often the connection checks heartbeats, timers and idle clients.
const HOUSEKEEPING: Duration = Duration::from_millis(50);

/// What to send, and what to do after.
#[derive(Debug, Default)]
struct Outcome {
    /// Frames to send, in order.
    frames: Vec<Outgoing>,
    /// Hold the frames this long first.
    delay: Option<Duration>,
    /// Close the connection after sending.
    close: bool,
}

/// One thing to write on the socket.
#[derive(Debug)]
enum Outgoing {
    /// A well-formed frame.
    Message(ProtoMessage),
    /// Raw bytes (fault injection).
    Raw(Vec<u8>),
}

impl Outcome {
    fn send(frames: Vec<ProtoMessage>) -> Outcome {
        Outcome {
            frames: frames.into_iter().map(Outgoing::Message).collect(),
            ..Outcome::default()
        }
    }

    fn close() -> Outcome {
        Outcome {
            close: true,
            ..Outcome::default()
        }
    }
}

/// Serves one TLS connection until the client leaves, a fault cuts it, or the server stops.
pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TlsStream<TcpStream>,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let codec = FrameCodec::with_max_frame_len(shared.config.max_frame_len);
    let mut framed = Framed::new(stream, codec);
    let mut pushes = shared.pushes.subscribe();
    let mut session = Session::new(Arc::clone(&shared), id);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Replies the reply-delay fault holds, in order with when each is due: the connection keeps
    // streaming spots and events meanwhile, as a real server does while an order is worked.
    let mut held: VecDeque<(tokio::time::Instant, Outcome)> = VecDeque::new();
    // New orders the order-delay fault holds before working them, in arrival order.
    let mut queued: VecDeque<(tokio::time::Instant, ProtoMessage)> = VecDeque::new();
    // A token invalidation the late-invalidation fault holds until the next answer.
    let mut late_invalidation: Option<Arc<Push>> = None;
    loop {
        let next_due = held.front().map(|(due, _)| *due);
        let next_order = queued.front().map(|(due, _)| *due);
        let mut outcome = tokio::select! {
            () = tokio::time::sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)), if next_due.is_some() => {
                held.pop_front().map(|(_, o)| o).unwrap_or_default()
            }
            () = tokio::time::sleep_until(next_order.unwrap_or_else(tokio::time::Instant::now)), if next_order.is_some() => {
                match queued.pop_front() {
                    Some((_, message)) => session.on_frame(message),
                    None => continue,
                }
            }
            frame = framed.next() => match frame {
                Some(Ok(message)) => match session.order_delay(&message) {
                    Some(delay) => {
                        queued.push_back((tokio::time::Instant::now() + delay, message));
                        continue;
                    }
                    None => {
                        let mut outcome = session.on_frame(message);
                        if let Some(push) = late_invalidation.take() {
                            outcome.frames.extend(session.on_push(&push).frames);
                        }
                        outcome
                    }
                },
                Some(Err(error)) => {
                    // Over the size cap, or not a ProtoMessage: the stream cannot be trusted.
                    tracing::debug!(connection = id, %error, "closing on a bad frame");
                    break;
                }
                None => break,
            },
            push = pushes.recv() => match push {
                Ok(push)
                    if matches!(*push, Push::TokenInvalidated { .. })
                        && session.invalidates_late() =>
                {
                    late_invalidation = Some(push);
                    continue;
                }
                Ok(push) => session.on_push(&push),
                Err(RecvError::Lagged(missed)) => {
                    shared.pushes_missed.fetch_add(missed, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(connection = id, missed, "slow client missed pushed events");
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
            _ = housekeeping.tick() => session.housekeeping(),
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    session.goodbye("Server is shutting down")
                } else {
                    continue;
                }
            }
        };
        if let Some(delay) = outcome.delay.take() {
            held.push_back((tokio::time::Instant::now() + delay, outcome));
            continue;
        }
        if !outcome.frames.is_empty() {
            if let Err(error) = write(&mut framed, outcome.frames).await {
                tracing::debug!(connection = id, %error, "write failed");
                break;
            }
            session.last_sent = Instant::now();
        }
        if outcome.close {
            break;
        }
    }
    // Close the TLS session politely where the socket still allows it.
    let _ = framed.get_mut().shutdown().await;
    // Orders that reached the server are worked though their client has gone, as a real server
    // works what it received; nobody is left to answer.
    for (due, message) in queued {
        tokio::time::sleep_until(due).await;
        let _ = session.on_frame(message);
    }
}

/// Writes frames in order, raw ones straight to the stream after flushing what precedes them.
async fn write(
    framed: &mut Framed<TlsStream<TcpStream>, FrameCodec>,
    frames: Vec<Outgoing>,
) -> Result<(), ctrader_proto::ProtoError> {
    for frame in frames {
        match frame {
            Outgoing::Message(message) => framed.feed(message).await?,
            Outgoing::Raw(bytes) => {
                SinkExt::<ProtoMessage>::flush(framed).await?;
                framed.get_mut().write_all(&bytes).await?;
            }
        }
    }
    SinkExt::<ProtoMessage>::flush(framed).await?;
    framed.get_mut().flush().await?;
    Ok(())
}

/// One connection's protocol state.
#[derive(Debug)]
struct Session {
    shared: Arc<Shared>,
    id: u64,
    app_authorised: bool,
    /// Authorised accounts and the access token each was authorised with.
    accounts: HashMap<i64, Secret>,
    /// Spot subscriptions (account, symbol) → whether spots carry a timestamp.
    spots: HashMap<(i64, i64), bool>,
    /// Live trendbar subscriptions (account, symbol, period).
    live_bars: HashSet<(i64, i64, i32)>,
    limiter: RequestLimiter,
    received: u64,
    connected_at: Instant,
    last_received: Instant,
    last_sent: Instant,
}

impl Session {
    fn new(shared: Arc<Shared>, id: u64) -> Session {
        let now = Instant::now();
        Session {
            limiter: RequestLimiter::new(shared.config.rate_limits),
            shared,
            id,
            app_authorised: false,
            accounts: HashMap::new(),
            spots: HashMap::new(),
            live_bars: HashSet::new(),
            received: 0,
            connected_at: now,
            last_received: now,
            last_sent: now,
        }
    }

    /// Whether a token invalidation waits for this connection's next answer (a fault).
    fn invalidates_late(&self) -> bool {
        lock(&self.shared.faults).late_token_invalidation
    }

    /// How long the order-delay fault holds `message` before it is worked: only new orders.
    fn order_delay(&self, message: &ProtoMessage) -> Option<Duration> {
        if message.payload_type != NEW_ORDER_REQ {
            return None;
        }
        lock(&self.shared.faults).order_delay
    }

    /// Handles one frame from the client.
    fn on_frame(&mut self, message: ProtoMessage) -> Outcome {
        self.received += 1;
        self.last_received = Instant::now();
        if let Some(end) = self.shared.maintenance_until() {
            let mut outcome = Outcome::send(vec![wrap(
                &maintenance_error(end),
                message.client_msg_id.as_deref(),
            )]);
            outcome.close = true;
            return outcome;
        }
        let faults = lock(&self.shared.faults).clone();
        let reply_to = message.client_msg_id.clone();
        let payload_type = message.payload_type;
        let replies = match Payload::decode(payload_type, message.payload.unwrap_or_default()) {
            Ok(payload) => self.on_payload(payload, reply_to.as_deref()),
            Err(error) => vec![wrap(
                &error_res(None, "INVALID_REQUEST", format!("{error}"), None),
                reply_to.as_deref(),
            )],
        };
        if faults
            .drop_after_messages
            .is_some_and(|n| self.received >= n)
        {
            tracing::debug!(
                connection = self.id,
                "fault: dropping the connection, replies lost"
            );
            return Outcome::close();
        }
        let duplicate = faults.duplicate_execution_events;
        let mut outcome = Outcome::send(duplicate_executions(replies, duplicate));
        // The held-replies fault never holds a token refresh's answer: the tokens are already
        // rotated and single-use, so a client killed while waiting for it is locked out for good
        // (as with a real server), and that fault is for orders in flight. A late refresh answer
        // is a fault of its own.
        outcome.delay = match payload_type {
            REFRESH_TOKEN_REQ => faults.refresh_reply_delay,
            NEW_ORDER_REQ => faults.order_reply_delay.or(faults.reply_delay),
            _ => faults.reply_delay,
        };
        if faults.malformed_frame_after_messages == Some(self.received) {
            outcome.frames.push(Outgoing::Raw(MALFORMED_FRAME.to_vec()));
        }
        if faults.oversized_frame_after_messages == Some(self.received) {
            outcome.frames.push(Outgoing::Raw(oversized_frame()));
            outcome.close = true;
        }
        outcome
    }

    /// Dispatches a decoded request.
    fn on_payload(&mut self, payload: Payload, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        if matches!(payload, Payload::HeartbeatEvent(_)) {
            return Vec::new();
        }
        let historical = matches!(
            payload,
            Payload::GetTrendbarsReq(_)
                | Payload::GetTickDataReq(_)
                | Payload::DealListReq(_)
                | Payload::OrderListReq(_)
        );
        let now = std::time::Instant::now();
        let admitted = self.limiter.admit(now, historical);
        if historical {
            lock(&self.shared.historical_requests).push(super::HistoricalRequest {
                name: payload.name(),
                received: now,
                connection: self.id,
                refused: admitted.is_err(),
            });
        }
        if let Err(retry) = admitted {
            let message = format!(
                "{} requests per second exceeded for {}",
                if historical { "historical" } else { "all" },
                payload.name()
            );
            return vec![wrap(
                &error_res(None, "BLOCKED_PAYLOAD_TYPE", message, Some(retry.seconds())),
                reply_to,
            )];
        }
        match payload {
            Payload::ApplicationAuthReq(req) => self.application_auth(&req, reply_to),
            _ if !self.app_authorised => vec![wrap(
                &error_res(
                    None,
                    "CH_CLIENT_NOT_AUTHENTICATED",
                    "The application is not authorised: send ProtoOAApplicationAuthReq first",
                    None,
                ),
                reply_to,
            )],
            Payload::VersionReq(_) => vec![wrap(
                &ProtoOaVersionRes {
                    version: format!("ctrader-sim {}", env!("CARGO_PKG_VERSION")),
                    ..ProtoOaVersionRes::default()
                },
                reply_to,
            )],
            Payload::GetAccountListByAccessTokenReq(req) => self.account_list(&req, reply_to),
            Payload::RefreshTokenReq(req) => self.refresh_token(&req, reply_to),
            Payload::AccountAuthReq(req) => self.account_auth(&req, reply_to),
            other => self.account_request(other, reply_to),
        }
    }

    fn application_auth(
        &mut self,
        req: &ProtoOaApplicationAuthReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        if self.app_authorised {
            return vec![wrap(
                &error_res(
                    None,
                    "CH_CLIENT_ALREADY_AUTHENTICATED",
                    "The application is already authorised on this connection",
                    None,
                ),
                reply_to,
            )];
        }
        let credentials = &self.shared.config.credentials;
        if req.client_id != credentials.client_id
            || req.client_secret != credentials.client_secret.expose()
        {
            return vec![wrap(
                &error_res(
                    None,
                    "CH_CLIENT_AUTH_FAILURE",
                    "Open API client is not activated or wrong client credentials",
                    None,
                ),
                reply_to,
            )];
        }
        self.app_authorised = true;
        vec![wrap(&ProtoOaApplicationAuthRes::default(), reply_to)]
    }

    fn account_list(
        &self,
        req: &ProtoOaGetAccountListByAccessTokenReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let exchange = lock(&self.shared.exchange);
        if !exchange.tokens.is_valid(&req.access_token) {
            return vec![wrap(&invalid_token(None), reply_to)];
        }
        let accounts = exchange
            .tokens
            .accounts(&req.access_token)
            .iter()
            .filter_map(|id| exchange.broker.account(*id))
            .map(wire::listed_account)
            .map(|mut listed| {
                listed.is_live = Some(self.shared.config.live_account);
                listed
            })
            .collect();
        vec![wrap(
            &ProtoOaGetAccountListByAccessTokenRes {
                access_token: req.access_token.clone(),
                // SCOPE_TRADE
                permission_scope: Some(1),
                ctid_trader_account: accounts,
                ..ProtoOaGetAccountListByAccessTokenRes::default()
            },
            reply_to,
        )]
    }

    fn refresh_token(
        &self,
        req: &ProtoOaRefreshTokenReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let (refreshed, lifetime) = {
            let mut exchange = lock(&self.shared.exchange);
            let refreshed = exchange.tokens.refresh(&req.refresh_token);
            (refreshed, exchange.tokens.lifetime_seconds())
        };
        let Some(refreshed) = refreshed else {
            return vec![wrap(
                &error_res(
                    None,
                    "CH_ACCESS_TOKEN_INVALID",
                    "Refresh token is invalid",
                    None,
                ),
                reply_to,
            )];
        };
        // Every session authorised with the old token, this one included, hears of it next.
        self.shared.push(Push::TokenInvalidated {
            old_token: refreshed.old_access,
            accounts: refreshed.accounts,
            reason: "Access token was refreshed",
        });
        vec![wrap(
            &ProtoOaRefreshTokenRes {
                access_token: refreshed.access.expose().to_owned(),
                token_type: "bearer".to_owned(),
                expires_in: lifetime,
                refresh_token: refreshed.refresh.expose().to_owned(),
                ..ProtoOaRefreshTokenRes::default()
            },
            reply_to,
        )]
    }

    fn account_auth(
        &mut self,
        req: &ProtoOaAccountAuthReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let exchange = lock(&self.shared.exchange);
        if !exchange.tokens.is_valid(&req.access_token) {
            return vec![wrap(&invalid_token(Some(account)), reply_to)];
        }
        if !exchange
            .tokens
            .accounts(&req.access_token)
            .contains(&account)
            || exchange.broker.account(account).is_none()
        {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                    "Trading account is not found for this access token",
                    None,
                ),
                reply_to,
            )];
        }
        drop(exchange);
        if self.accounts.contains_key(&account) {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "ALREADY_LOGGED_IN",
                    "The account is already authorised on this connection",
                    None,
                ),
                reply_to,
            )];
        }
        self.accounts
            .insert(account, Secret::new(req.access_token.clone()));
        vec![wrap(
            &ProtoOaAccountAuthRes {
                ctid_trader_account_id: account,
                ..ProtoOaAccountAuthRes::default()
            },
            reply_to,
        )]
    }

    /// Requests that name an account, which must be authorised on this connection.
    fn account_request(&mut self, payload: Payload, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let Some(account) = account_of(&payload) else {
            return vec![wrap(
                &error_res(
                    None,
                    "UNSUPPORTED_MESSAGE",
                    format!(
                        "the simulator does not serve {} (payload type {})",
                        payload.name(),
                        payload.payload_type()
                    ),
                    None,
                ),
                reply_to,
            )];
        };
        if !self.accounts.contains_key(&account) {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "ACCOUNT_NOT_AUTHORIZED",
                    "The account is not authorised on this connection",
                    None,
                ),
                reply_to,
            )];
        }
        if let Some(refusal) = self.injected_refusal(account) {
            return vec![wrap(&refusal, reply_to)];
        }
        match payload {
            Payload::AccountLogoutReq(req) => self.logout(&req, reply_to),
            Payload::TraderReq(req) => self.trader(&req, reply_to),
            Payload::SymbolsListReq(req) => self.symbols_list(&req, reply_to),
            Payload::SymbolByIdReq(req) => self.symbol_by_id(&req, reply_to),
            Payload::AssetListReq(req) => self.asset_list(&req, reply_to),
            Payload::SymbolsForConversionReq(req) => self.symbols_for_conversion(&req, reply_to),
            Payload::GetPositionUnrealizedPnlReq(req) => self.unrealized_pnl(&req, reply_to),
            Payload::ReconcileReq(req) => self.reconcile(&req, reply_to),
            Payload::SubscribeSpotsReq(req) => self.subscribe_spots(&req, reply_to),
            Payload::UnsubscribeSpotsReq(req) => self.unsubscribe_spots(&req, reply_to),
            Payload::SubscribeLiveTrendbarReq(req) => self.subscribe_live_bars(&req, reply_to),
            Payload::UnsubscribeLiveTrendbarReq(req) => self.unsubscribe_live_bars(&req, reply_to),
            Payload::GetTrendbarsReq(req) => self.trendbars(&req, reply_to),
            Payload::GetTickDataReq(req) => self.tick_data(&req, reply_to),
            Payload::DealListReq(req) => self.deal_list(&req, reply_to),
            Payload::OrderListReq(req) => self.order_list(&req, reply_to),
            Payload::NewOrderReq(req) => self.new_order(&req, reply_to),
            Payload::ClosePositionReq(req) => self.close_position(&req, reply_to),
            Payload::AmendPositionSltpReq(req) => self.amend_protection(&req, reply_to),
            Payload::CancelOrderReq(req) => self.cancel_order(&req, reply_to),
            other => vec![wrap(
                &error_res(
                    Some(account),
                    "UNSUPPORTED_MESSAGE",
                    format!("the simulator does not serve {}", other.name()),
                    None,
                ),
                reply_to,
            )],
        }
    }

    /// The routing or frequency refusal a fault asks for, counting it down.
    fn injected_refusal(&self, account: i64) -> Option<ProtoOaErrorRes> {
        let mut faults = lock(&self.shared.faults);
        if faults.cant_route_requests > 0 {
            faults.cant_route_requests -= 1;
            return Some(error_res(
                Some(account),
                "CANT_ROUTE_REQUEST",
                "The request could not be routed; nothing was done",
                None,
            ));
        }
        if faults.frequency_exceeded_requests > 0 {
            faults.frequency_exceeded_requests -= 1;
            return Some(error_res(
                Some(account),
                "REQUEST_FREQUENCY_EXCEEDED",
                "Too many requests",
                Some(1),
            ));
        }
        None
    }

    fn logout(
        &mut self,
        req: &ProtoOaAccountLogoutReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        self.forget_account(req.ctid_trader_account_id);
        vec![wrap(
            &ProtoOaAccountLogoutRes {
                ctid_trader_account_id: req.ctid_trader_account_id,
                ..ProtoOaAccountLogoutRes::default()
            },
            reply_to,
        )]
    }

    fn trader(&self, req: &ProtoOaTraderReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let exchange = lock(&self.shared.exchange);
        let Some(account) = exchange.broker.account(req.ctid_trader_account_id) else {
            return vec![wrap(
                &account_not_found(req.ctid_trader_account_id),
                reply_to,
            )];
        };
        vec![wrap(
            &ProtoOaTraderRes {
                ctid_trader_account_id: account.id,
                trader: wire::trader(account),
                ..ProtoOaTraderRes::default()
            },
            reply_to,
        )]
    }

    fn symbols_list(
        &self,
        req: &ProtoOaSymbolsListReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let exchange = lock(&self.shared.exchange);
        vec![wrap(
            &ProtoOaSymbolsListRes {
                ctid_trader_account_id: req.ctid_trader_account_id,
                symbol: exchange.broker.symbols().map(wire::light_symbol).collect(),
                ..ProtoOaSymbolsListRes::default()
            },
            reply_to,
        )]
    }

    fn symbol_by_id(
        &self,
        req: &ProtoOaSymbolByIdReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let exchange = lock(&self.shared.exchange);
        let zone_name = self.shared.config.schedule_time_zone.as_str();
        let zone = wire::ReportedZone {
            name: zone_name,
            // Checked at start (`SimConfig::validate`).
            offset_seconds: wire::zone_offset(zone_name, exchange.now()).unwrap_or(0),
        };
        let mut symbols = Vec::with_capacity(req.symbol_id.len());
        for id in &req.symbol_id {
            match exchange.broker.symbol(*id) {
                Some(symbol) => {
                    let mut full = wire::full_symbol(symbol, zone);
                    full.trading_mode = Some(exchange.broker.trading_mode(*id));
                    symbols.push(full);
                }
                None => {
                    return vec![wrap(
                        &symbol_not_found(req.ctid_trader_account_id, *id),
                        reply_to,
                    )];
                }
            }
        }
        vec![wrap(
            &ProtoOaSymbolByIdRes {
                ctid_trader_account_id: req.ctid_trader_account_id,
                symbol: symbols,
                ..ProtoOaSymbolByIdRes::default()
            },
            reply_to,
        )]
    }

    fn asset_list(&self, req: &ProtoOaAssetListReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let exchange = lock(&self.shared.exchange);
        vec![wrap(
            &ProtoOaAssetListRes {
                ctid_trader_account_id: req.ctid_trader_account_id,
                asset: exchange.broker.assets().iter().map(wire::asset).collect(),
                ..ProtoOaAssetListRes::default()
            },
            reply_to,
        )]
    }

    /// The symbols whose quotes convert the first asset into the last, in order.
    fn symbols_for_conversion(
        &self,
        req: &ProtoOaSymbolsForConversionReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let exchange = lock(&self.shared.exchange);
        match exchange
            .broker
            .conversion_chain(req.first_asset_id, req.last_asset_id)
        {
            Ok(chain) => vec![wrap(
                &ProtoOaSymbolsForConversionRes {
                    ctid_trader_account_id: account,
                    symbol: chain.into_iter().map(wire::light_symbol).collect(),
                    ..ProtoOaSymbolsForConversionRes::default()
                },
                reply_to,
            )],
            // No asset-specific code exists: cTrader's generic "not found by id" answers it.
            Err(ChainError::UnknownAsset(asset)) => vec![wrap(
                &error_res(
                    Some(account),
                    "ENTITY_NOT_FOUND",
                    format!("Asset {asset} not found"),
                    None,
                ),
                reply_to,
            )],
            Err(ChainError::NoPath { from, to }) => vec![wrap(
                &error_res(
                    Some(account),
                    "INVALID_REQUEST",
                    format!("No symbols convert asset {from} into asset {to}"),
                    None,
                ),
                reply_to,
            )],
        }
    }

    /// The broker's own unrealised profit of each open position, in the deposit currency.
    fn unrealized_pnl(
        &self,
        req: &ProtoOaGetPositionUnrealizedPnLReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let exchange = lock(&self.shared.exchange);
        let Some(money_digits) = exchange.broker.account(account).map(|a| a.money_digits) else {
            return vec![wrap(&account_not_found(account), reply_to)];
        };
        vec![wrap(
            &ProtoOaGetPositionUnrealizedPnLRes {
                ctid_trader_account_id: account,
                position_unrealized_pn_l: exchange
                    .broker
                    .unrealized(account)
                    .into_iter()
                    .map(|pnl| ProtoOaPositionUnrealizedPnL {
                        position_id: pnl.position_id,
                        gross_unrealized_pn_l: pnl.gross,
                        net_unrealized_pn_l: pnl.net,
                    })
                    .collect(),
                money_digits,
                ..ProtoOaGetPositionUnrealizedPnLRes::default()
            },
            reply_to,
        )]
    }

    fn reconcile(&self, req: &ProtoOaReconcileReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let (positions, orders) = lock(&self.shared.exchange)
            .broker
            .reconcile(req.ctid_trader_account_id);
        vec![wrap(
            &ProtoOaReconcileRes {
                ctid_trader_account_id: req.ctid_trader_account_id,
                position: positions.iter().map(wire::position).collect(),
                order: orders.iter().map(wire::order).collect(),
                ..ProtoOaReconcileRes::default()
            },
            reply_to,
        )]
    }

    fn subscribe_spots(
        &mut self,
        req: &ProtoOaSubscribeSpotsReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        if req.symbol_id.is_empty() {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INVALID_REQUEST",
                    "No symbol to subscribe to",
                    None,
                ),
                reply_to,
            )];
        }
        let exchange = lock(&self.shared.exchange);
        for id in &req.symbol_id {
            if exchange.broker.symbol(*id).is_none() {
                return vec![wrap(&symbol_not_found(account, *id), reply_to)];
            }
            if self.spots.contains_key(&(account, *id)) {
                return vec![wrap(
                    &error_res(
                        Some(account),
                        "ALREADY_SUBSCRIBED",
                        format!("Already subscribed to spots of symbol {id}"),
                        None,
                    ),
                    reply_to,
                )];
            }
        }
        let with_time = req.subscribe_to_spot_timestamp.unwrap_or(false);
        let mut frames = vec![wrap(
            &ProtoOaSubscribeSpotsRes {
                ctid_trader_account_id: account,
                ..ProtoOaSubscribeSpotsRes::default()
            },
            reply_to,
        )];
        for id in &req.symbol_id {
            self.spots.insert((account, *id), with_time);
            // The latest prices at once, even when the market is closed, as cTrader does.
            if let Some((quote, at)) = exchange.market.last_quote(*id) {
                self.shared
                    .spots_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                frames.push(wrap(
                    &ProtoOaSpotEvent {
                        ctid_trader_account_id: account,
                        symbol_id: *id,
                        bid: u64::try_from(quote.bid).ok(),
                        ask: u64::try_from(quote.ask).ok(),
                        timestamp: with_time.then_some(at.0),
                        ..ProtoOaSpotEvent::default()
                    },
                    None,
                ));
            }
        }
        frames
    }

    fn unsubscribe_spots(
        &mut self,
        req: &ProtoOaUnsubscribeSpotsReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        if let Some(id) = req
            .symbol_id
            .iter()
            .find(|id| !self.spots.contains_key(&(account, **id)))
        {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "NOT_SUBSCRIBED_TO_SPOTS",
                    format!("Not subscribed to spots of symbol {id}"),
                    None,
                ),
                reply_to,
            )];
        }
        for id in &req.symbol_id {
            self.spots.remove(&(account, *id));
            self.live_bars
                .retain(|(a, s, _)| !(*a == account && s == id));
        }
        vec![wrap(
            &ProtoOaUnsubscribeSpotsRes {
                ctid_trader_account_id: account,
                ..ProtoOaUnsubscribeSpotsRes::default()
            },
            reply_to,
        )]
    }

    fn subscribe_live_bars(
        &mut self,
        req: &ProtoOaSubscribeLiveTrendbarReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        if BarPeriod::from_code(req.period).is_none() {
            return vec![wrap(&unsupported_period(account, req.period), reply_to)];
        }
        if !self.spots.contains_key(&(account, req.symbol_id)) {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "NOT_SUBSCRIBED_TO_SPOTS",
                    "Subscribe to the symbol's spots before its live trendbars",
                    None,
                ),
                reply_to,
            )];
        }
        if !self.live_bars.insert((account, req.symbol_id, req.period)) {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "ALREADY_SUBSCRIBED",
                    "Already subscribed to these trendbars",
                    None,
                ),
                reply_to,
            )];
        }
        vec![wrap(
            &ProtoOaSubscribeLiveTrendbarRes {
                ctid_trader_account_id: account,
                ..ProtoOaSubscribeLiveTrendbarRes::default()
            },
            reply_to,
        )]
    }

    fn unsubscribe_live_bars(
        &mut self,
        req: &ProtoOaUnsubscribeLiveTrendbarReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        if !self.live_bars.remove(&(account, req.symbol_id, req.period)) {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "NOT_SUBSCRIBED_TO_SPOTS",
                    "Not subscribed to these live trendbars",
                    None,
                ),
                reply_to,
            )];
        }
        vec![wrap(
            &ProtoOaUnsubscribeLiveTrendbarRes {
                ctid_trader_account_id: account,
                ..ProtoOaUnsubscribeLiveTrendbarRes::default()
            },
            reply_to,
        )]
    }

    fn trendbars(&self, req: &ProtoOaGetTrendbarsReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let Some(period) = BarPeriod::from_code(req.period) else {
            return vec![wrap(&unsupported_period(account, req.period), reply_to)];
        };
        let exchange = lock(&self.shared.exchange);
        let Some(bars) = exchange.market.bars(req.symbol_id) else {
            return vec![wrap(&symbol_not_found(account, req.symbol_id), reply_to)];
        };
        let to = req.to_timestamp.unwrap_or(exchange.now().0);
        let from = req
            .from_timestamp
            .unwrap_or_else(|| to.saturating_sub(period.max_span_ms()));
        if from < 0 || to < from {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INCORRECT_BOUNDARIES",
                    format!("fromTimestamp {from} must be between 0 and toTimestamp {to}"),
                    None,
                ),
                reply_to,
            )];
        }
        if to - from > period.max_span_ms() {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INCORRECT_BOUNDARIES",
                    format!(
                        "the period between fromTimestamp and toTimestamp must not exceed {} ms for this timeframe",
                        period.max_span_ms()
                    ),
                    None,
                ),
                reply_to,
            )];
        }
        let mut history = bars.history(period, Timestamp(from), Timestamp(to));
        let mut has_more = false;
        if let Some(count) = req.count.and_then(|c| usize::try_from(c).ok()) {
            // `count` keeps the bars nearest to toTimestamp.
            let skip = history.len().saturating_sub(count);
            has_more = skip > 0;
            history.drain(..skip);
        }
        vec![wrap(
            &ProtoOaGetTrendbarsRes {
                ctid_trader_account_id: account,
                period: period.code,
                trendbar: history.iter().map(|b| wire::trendbar(b, period)).collect(),
                symbol_id: Some(req.symbol_id),
                has_more: Some(has_more),
                ..ProtoOaGetTrendbarsRes::default()
            },
            reply_to,
        )]
    }

    /// Ticks of one side in `[fromTimestamp, toTimestamp]`, newest first, a chunk at a time.
    fn tick_data(&self, req: &ProtoOaGetTickDataReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let ask = match req.r#type {
            1 => false,
            2 => true,
            other => {
                return vec![wrap(
                    &error_res(
                        Some(account),
                        "INVALID_REQUEST",
                        format!("quote type {other} is neither BID (1) nor ASK (2)"),
                        None,
                    ),
                    reply_to,
                )];
            }
        };
        let exchange = lock(&self.shared.exchange);
        let Some(ticks) = exchange.market.ticks(req.symbol_id) else {
            return vec![wrap(&symbol_not_found(account, req.symbol_id), reply_to)];
        };
        let to = req.to_timestamp.unwrap_or(exchange.now().0);
        let from = req.from_timestamp.unwrap_or(0);
        if from < 0 || to < from || to > MAX_TICK_TIMESTAMP {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INCORRECT_BOUNDARIES",
                    format!(
                        "fromTimestamp {from} must be between 0 and toTimestamp {to}, at most {MAX_TICK_TIMESTAMP}"
                    ),
                    None,
                ),
                reply_to,
            )];
        }
        let (newest_first, has_more) = ticks.history(ask, from, to, crate::ticks::TICK_CHUNK);
        vec![wrap(
            &ProtoOaGetTickDataRes {
                ctid_trader_account_id: account,
                tick_data: crate::ticks::encode(&newest_first)
                    .into_iter()
                    .map(|(timestamp, tick)| ProtoOaTickData { timestamp, tick })
                    .collect(),
                has_more,
                ..ProtoOaGetTickDataRes::default()
            },
            reply_to,
        )]
    }

    fn deal_list(&self, req: &ProtoOaDealListReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let max_rows = match req.max_rows {
            None => None,
            Some(rows) if rows > 0 => usize::try_from(rows).ok(),
            Some(rows) => {
                return vec![wrap(
                    &error_res(
                        Some(account),
                        "INVALID_REQUEST",
                        format!("maxRows {rows} must be positive"),
                        None,
                    ),
                    reply_to,
                )];
            }
        };
        let exchange = lock(&self.shared.exchange);
        let from = Timestamp(req.from_timestamp.unwrap_or(0));
        let to = Timestamp(req.to_timestamp.unwrap_or(exchange.now().0));
        if to < from {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INCORRECT_BOUNDARIES",
                    "toTimestamp is before fromTimestamp",
                    None,
                ),
                reply_to,
            )];
        }
        let (deals, has_more) = exchange.broker.deals(account, from, to, max_rows);
        vec![wrap(
            &ProtoOaDealListRes {
                ctid_trader_account_id: account,
                deal: deals.iter().map(wire::deal).collect(),
                has_more,
                ..ProtoOaDealListRes::default()
            },
            reply_to,
        )]
    }

    fn order_list(&self, req: &ProtoOaOrderListReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let exchange = lock(&self.shared.exchange);
        let from = Timestamp(req.from_timestamp.unwrap_or(0));
        let to = Timestamp(req.to_timestamp.unwrap_or(exchange.now().0));
        if to < from {
            return vec![wrap(
                &error_res(
                    Some(account),
                    "INCORRECT_BOUNDARIES",
                    "toTimestamp is before fromTimestamp",
                    None,
                ),
                reply_to,
            )];
        }
        let orders = exchange.broker.orders_in(account, from, to);
        vec![wrap(
            &ProtoOaOrderListRes {
                ctid_trader_account_id: account,
                order: orders.iter().map(wire::order).collect(),
                // The simulator answers a whole range at once.
                has_more: false,
                ..ProtoOaOrderListRes::default()
            },
            reply_to,
        )]
    }

    fn new_order(&mut self, req: &ProtoOaNewOrderReq, reply_to: Option<&str>) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let received_at = lock(&self.shared.exchange).now();
        lock(&self.shared.received_orders).push(super::ReceivedOrder {
            client_order_id: req.client_order_id.clone(),
            label: req.label.clone(),
            position_id: req.position_id,
            volume: req.volume,
            received_at,
        });
        let forced = lock(&self.shared.faults).reject_next_order.take();
        if let Some(code) = forced {
            return vec![wrap(
                &ProtoOaOrderErrorEvent {
                    ctid_trader_account_id: account,
                    error_code: code,
                    description: Some("Rejected by the simulator's fault injection".to_owned()),
                    ..ProtoOaOrderErrorEvent::default()
                },
                reply_to,
            )];
        }
        let order = match wire::new_order(req) {
            Ok(order) => order,
            Err(reason) => {
                return vec![wrap(
                    &error_res(Some(account), "INVALID_REQUEST", reason, None),
                    reply_to,
                )];
            }
        };
        let late_error = lock(&self.shared.faults).order_error_without_msg_id.take();
        if let Some(code) = late_error {
            return self.accept_then_refuse(req, &code, reply_to);
        }
        let partial_fills = lock(&self.shared.faults).partial_fills;
        let result = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            exchange.broker.set_partial_fills(partial_fills);
            exchange.broker.place_order(order, now)
        };
        self.trading_result(account, result, reply_to)
    }

    /// `ORDER_ACCEPTED` (answering the request, naming the order id), then a
    /// `ProtoOAOrderErrorEvent` with `code` that names the order but carries no `clientMsgId`.
    fn accept_then_refuse(
        &self,
        req: &ProtoOaNewOrderReq,
        code: &str,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let order_id = lock(&self.shared.exchange).broker.reserve_order_id();
        let accepted = ctrader_proto::openapi::ProtoOaExecutionEvent {
            ctid_trader_account_id: account,
            // ORDER_ACCEPTED
            execution_type: 2,
            order: Some(ctrader_proto::openapi::ProtoOaOrder {
                order_id,
                trade_data: ctrader_proto::openapi::ProtoOaTradeData {
                    symbol_id: req.symbol_id,
                    volume: req.volume,
                    trade_side: req.trade_side,
                    label: req.label.clone(),
                    ..Default::default()
                },
                order_type: req.order_type,
                // ACCEPTED
                order_status: 1,
                client_order_id: req.client_order_id.clone(),
                position_id: req.position_id,
                ..Default::default()
            }),
            ..Default::default()
        };
        vec![
            wrap(&accepted, reply_to),
            wrap(
                &ProtoOaOrderErrorEvent {
                    ctid_trader_account_id: account,
                    error_code: code.to_owned(),
                    order_id: Some(order_id),
                    position_id: req.position_id,
                    description: Some(
                        "Refused after acceptance by the simulator's fault injection".to_owned(),
                    ),
                    ..ProtoOaOrderErrorEvent::default()
                },
                None,
            ),
        ]
    }

    fn close_position(
        &mut self,
        req: &ProtoOaClosePositionReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let partial_fills = lock(&self.shared.faults).partial_fills;
        let result = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            exchange.broker.set_partial_fills(partial_fills);
            exchange
                .broker
                .close_position(account, req.position_id, req.volume, now)
        };
        self.trading_result(account, result, reply_to)
    }

    fn amend_protection(
        &mut self,
        req: &ProtoOaAmendPositionSltpReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let price =
            |value: Option<f64>| value.map(|v| wire::price_from_f64(v).ok_or(v)).transpose();
        let (stop_loss, take_profit) = match (price(req.stop_loss), price(req.take_profit)) {
            (Ok(sl), Ok(tp)) => (sl, tp),
            (Err(bad), _) | (_, Err(bad)) => {
                return vec![wrap(
                    &error_res(
                        Some(account),
                        "TRADING_BAD_STOPS",
                        format!("{bad} is not a valid price"),
                        None,
                    ),
                    reply_to,
                )];
            }
        };
        let result = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            exchange
                .broker
                .amend_protection(account, req.position_id, stop_loss, take_profit, now)
        };
        self.trading_result(account, result, reply_to)
    }

    fn cancel_order(
        &mut self,
        req: &ProtoOaCancelOrderReq,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        let account = req.ctid_trader_account_id;
        let result = {
            let mut exchange = lock(&self.shared.exchange);
            let now = exchange.now();
            exchange.broker.cancel_order(account, req.order_id, now)
        };
        self.trading_result(account, result, reply_to)
    }

    /// Replies to a trading request: its execution reports (also pushed to the account's other
    /// connections) or the rejection.
    fn trading_result(
        &self,
        account: i64,
        result: Result<Vec<Execution>, Rejection>,
        reply_to: Option<&str>,
    ) -> Vec<ProtoMessage> {
        match result {
            Ok(reports) => {
                let margin = lock(&self.shared.faults).margin_changed_events;
                let mut frames: Vec<ProtoMessage> = reports
                    .iter()
                    .map(|r| wrap(&wire::execution_event(r), reply_to))
                    .collect();
                if margin {
                    frames.extend(reports.iter().filter_map(margin_changed));
                }
                self.shared.push(Push::Executions {
                    reports,
                    origin: Some(self.id),
                });
                frames
            }
            Err(rejection) => vec![rejection_frame(account, rejection, reply_to)],
        }
    }

    /// Handles something every connection hears.
    fn on_push(&mut self, push: &Push) -> Outcome {
        let duplicate = lock(&self.shared.faults).duplicate_execution_events;
        match push {
            Push::Spots(updates) => Outcome::send(self.spot_events(updates)),
            Push::Executions { reports, origin } => {
                if *origin == Some(self.id) {
                    return Outcome::default();
                }
                let margin = lock(&self.shared.faults).margin_changed_events;
                let mine: Vec<&Execution> = reports
                    .iter()
                    .filter(|r| self.accounts.contains_key(&r.account))
                    .collect();
                let frames = mine
                    .iter()
                    .map(|r| wrap(&wire::execution_event(r), None))
                    .collect();
                let mut frames = duplicate_executions(frames, duplicate);
                if margin {
                    frames.extend(mine.iter().filter_map(|r| margin_changed(r)));
                }
                Outcome::send(frames)
            }
            Push::TokenInvalidated {
                old_token,
                accounts,
                reason,
            } => {
                let lost: Vec<i64> = accounts
                    .iter()
                    .copied()
                    .filter(|a| self.accounts.get(a).is_some_and(|t| t == old_token))
                    .collect();
                if lost.is_empty() {
                    return Outcome::default();
                }
                for account in &lost {
                    self.forget_account(*account);
                }
                Outcome::send(vec![wrap(
                    &ProtoOaAccountsTokenInvalidatedEvent {
                        ctid_trader_account_ids: lost,
                        reason: Some((*reason).to_owned()),
                        ..ProtoOaAccountsTokenInvalidatedEvent::default()
                    },
                    None,
                )])
            }
            Push::AccountMessages { account, messages } => {
                if self.accounts.contains_key(account) {
                    Outcome::send(messages.clone())
                } else {
                    Outcome::default()
                }
            }
            Push::AccountDisconnect(account) => {
                if !self.accounts.contains_key(account) {
                    return Outcome::default();
                }
                self.forget_account(*account);
                Outcome::send(vec![super::account::account_disconnected(*account)])
            }
            Push::Command(ConnectionCommand::Drop) => Outcome::close(),
            Push::Command(ConnectionCommand::Disconnect(reason)) => self.goodbye(reason),
            Push::Command(ConnectionCommand::OversizedFrame) => Outcome {
                frames: vec![Outgoing::Raw(oversized_frame())],
                delay: None,
                close: true,
            },
            Push::Command(ConnectionCommand::Maintenance(end)) => Outcome {
                frames: vec![Outgoing::Message(wrap(&maintenance_error(*end), None))],
                delay: None,
                close: true,
            },
            Push::Command(ConnectionCommand::MalformedFrame) => Outcome {
                frames: vec![Outgoing::Raw(MALFORMED_FRAME.to_vec())],
                ..Outcome::default()
            },
        }
    }

    /// Spot events for the subscribed symbols that moved, with live trendbars where subscribed.
    fn spot_events(&self, updates: &[SpotUpdate]) -> Vec<ProtoMessage> {
        let mut frames = Vec::new();
        for update in updates {
            for (&(account, symbol), &with_time) in &self.spots {
                if symbol != update.symbol_id {
                    continue;
                }
                let trendbar = self.live_trendbars(account, symbol);
                self.shared
                    .spots_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                frames.push(wrap(
                    &ProtoOaSpotEvent {
                        ctid_trader_account_id: account,
                        symbol_id: symbol,
                        bid: update.bid.and_then(|b| u64::try_from(b).ok()),
                        ask: update.ask.and_then(|a| u64::try_from(a).ok()),
                        trendbar,
                        timestamp: with_time.then_some(update.at.0),
                        ..ProtoOaSpotEvent::default()
                    },
                    None,
                ));
            }
        }
        frames
    }

    /// The bars in progress for an account's live trendbar subscriptions on a symbol.
    fn live_trendbars(
        &self,
        account: i64,
        symbol: i64,
    ) -> Vec<ctrader_proto::openapi::ProtoOaTrendbar> {
        let periods: Vec<BarPeriod> = self
            .live_bars
            .iter()
            .filter(|(a, s, _)| *a == account && *s == symbol)
            .filter_map(|(_, _, p)| BarPeriod::from_code(*p))
            .collect();
        if periods.is_empty() {
            return Vec::new();
        }
        let exchange = lock(&self.shared.exchange);
        let Some(bars) = exchange.market.bars(symbol) else {
            return Vec::new();
        };
        periods
            .into_iter()
            .filter_map(|p| bars.current(p).map(|b| wire::trendbar(&b, p)))
            .collect()
    }

    /// Timers: per-connection drop fault, idle clients, heartbeats.
    fn housekeeping(&mut self) -> Outcome {
        let config = &self.shared.config;
        let faults = lock(&self.shared.faults).clone();
        if faults
            .drop_every
            .is_some_and(|every| self.connected_at.elapsed() >= every)
        {
            tracing::debug!(
                connection = self.id,
                "fault: dropping the connection on its timer"
            );
            return Outcome::close();
        }
        if config
            .client_idle_timeout
            .is_some_and(|idle| self.last_received.elapsed() >= idle)
        {
            return self.goodbye("No messages from the client: heartbeat timeout");
        }
        if !faults.silence_heartbeats && self.last_sent.elapsed() >= config.heartbeat_interval {
            return Outcome::send(vec![wrap(&ProtoHeartbeatEvent::default(), None)]);
        }
        Outcome::default()
    }

    /// `ProtoOAClientDisconnectEvent`, then close.
    fn goodbye(&self, reason: &str) -> Outcome {
        Outcome {
            frames: vec![Outgoing::Message(wrap(
                &ProtoOaClientDisconnectEvent {
                    reason: Some(reason.to_owned()),
                    ..ProtoOaClientDisconnectEvent::default()
                },
                None,
            ))],
            delay: None,
            close: true,
        }
    }

    fn forget_account(&mut self, account: i64) {
        self.accounts.remove(&account);
        self.spots.retain(|(a, _), _| *a != account);
        self.live_bars.retain(|(a, _, _)| *a != account);
    }
}

/// `ProtoOAMarginChangedEvent` after a deal that changed a position's used margin.
fn margin_changed(report: &Execution) -> Option<ProtoMessage> {
    let position = report.position.as_ref()?;
    report.deal.as_ref()?;
    Some(wrap(
        &ctrader_proto::openapi::ProtoOaMarginChangedEvent {
            ctid_trader_account_id: report.account,
            position_id: u64::try_from(position.id).ok()?,
            used_margin: u64::try_from(position.used_margin).ok()?,
            money_digits: Some(position.money_digits),
            ..Default::default()
        },
        None,
    ))
}

/// The account a request names, for requests that name one.
fn account_of(payload: &Payload) -> Option<i64> {
    Some(match payload {
        Payload::AccountLogoutReq(r) => r.ctid_trader_account_id,
        Payload::TraderReq(r) => r.ctid_trader_account_id,
        Payload::SymbolsListReq(r) => r.ctid_trader_account_id,
        Payload::SymbolByIdReq(r) => r.ctid_trader_account_id,
        Payload::AssetListReq(r) => r.ctid_trader_account_id,
        Payload::SymbolsForConversionReq(r) => r.ctid_trader_account_id,
        Payload::GetPositionUnrealizedPnlReq(r) => r.ctid_trader_account_id,
        Payload::ReconcileReq(r) => r.ctid_trader_account_id,
        Payload::SubscribeSpotsReq(r) => r.ctid_trader_account_id,
        Payload::UnsubscribeSpotsReq(r) => r.ctid_trader_account_id,
        Payload::SubscribeLiveTrendbarReq(r) => r.ctid_trader_account_id,
        Payload::UnsubscribeLiveTrendbarReq(r) => r.ctid_trader_account_id,
        Payload::GetTrendbarsReq(r) => r.ctid_trader_account_id,
        Payload::GetTickDataReq(r) => r.ctid_trader_account_id,
        Payload::DealListReq(r) => r.ctid_trader_account_id,
        Payload::OrderListReq(r) => r.ctid_trader_account_id,
        Payload::NewOrderReq(r) => r.ctid_trader_account_id,
        Payload::ClosePositionReq(r) => r.ctid_trader_account_id,
        Payload::AmendPositionSltpReq(r) => r.ctid_trader_account_id,
        Payload::AmendOrderReq(r) => r.ctid_trader_account_id,
        Payload::CancelOrderReq(r) => r.ctid_trader_account_id,
        _ => return None,
    })
}

/// Wraps a message in an envelope echoing `reply_to` as `clientMsgId`.
fn wrap<M: OpenApiMessage>(message: &M, reply_to: Option<&str>) -> ProtoMessage {
    ProtoMessage::wrap(message, reply_to.map(str::to_owned))
}

fn error_res(
    account: Option<i64>,
    code: &str,
    description: impl Into<String>,
    retry_after: Option<u64>,
) -> ProtoOaErrorRes {
    ProtoOaErrorRes {
        ctid_trader_account_id: account,
        error_code: code.to_owned(),
        description: Some(description.into()),
        retry_after,
        ..ProtoOaErrorRes::default()
    }
}

/// `ProtoOARefreshTokenReq`'s payload type.
const REFRESH_TOKEN_REQ: u32 = 2173;
/// `ProtoOANewOrderReq`'s payload type.
const NEW_ORDER_REQ: u32 = 2106;

/// The refusal of every request while a maintenance window lasts, with its end in seconds.
fn maintenance_error(end_seconds: i64) -> ProtoOaErrorRes {
    ProtoOaErrorRes {
        maintenance_end_timestamp: Some(end_seconds),
        ..error_res(
            None,
            "SERVER_IS_UNDER_MAINTENANCE",
            "Server is under maintenance",
            None,
        )
    }
}

fn invalid_token(account: Option<i64>) -> ProtoOaErrorRes {
    error_res(
        account,
        "CH_ACCESS_TOKEN_INVALID",
        "Access token is invalid",
        None,
    )
}

fn account_not_found(account: i64) -> ProtoOaErrorRes {
    error_res(
        Some(account),
        "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
        "Trading account is not found",
        None,
    )
}

/// The latest `toTimestamp` a tick request may name (cTrader's: 19 January 2038).
const MAX_TICK_TIMESTAMP: i64 = 2_147_483_646_000;

fn symbol_not_found(account: i64, symbol: i64) -> ProtoOaErrorRes {
    error_res(
        Some(account),
        "SYMBOL_NOT_FOUND",
        format!("Symbol {symbol} not found"),
        None,
    )
}

fn unsupported_period(account: i64, period: i32) -> ProtoOaErrorRes {
    error_res(
        Some(account),
        "INVALID_REQUEST",
        format!("trendbar period {period} is not served by the simulator (M1 to D1 are)"),
        None,
    )
}

/// A refusal in the message cTrader uses for it.
fn rejection_frame(account: i64, rejection: Rejection, reply_to: Option<&str>) -> ProtoMessage {
    match rejection.reply {
        RejectAs::OrderError => wrap(
            &ProtoOaOrderErrorEvent {
                ctid_trader_account_id: account,
                error_code: rejection.code,
                order_id: rejection.order_id,
                position_id: rejection.position_id,
                description: Some(rejection.description),
                ..ProtoOaOrderErrorEvent::default()
            },
            reply_to,
        ),
        RejectAs::ErrorRes => wrap(
            &error_res(Some(account), &rejection.code, rejection.description, None),
            reply_to,
        ),
    }
}

/// Doubles every execution event when the fault is on.
fn duplicate_executions(frames: Vec<ProtoMessage>, duplicate: bool) -> Vec<ProtoMessage> {
    if !duplicate {
        return frames;
    }
    let execution = <ctrader_proto::openapi::ProtoOaExecutionEvent as OpenApiMessage>::PAYLOAD_TYPE;
    frames
        .into_iter()
        .flat_map(|frame| {
            let copies = if frame.payload_type == execution {
                2
            } else {
                1
            };
            std::iter::repeat_n(frame, copies)
        })
        .collect()
}

/// A length prefix no client accepts, followed by a little filler.
fn oversized_frame() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LENGTH_PREFIX_LEN + 1024);
    bytes.extend_from_slice(&OVERSIZED_LEN.to_be_bytes());
    bytes.extend(std::iter::repeat_n(0_u8, 1024));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_frame_is_not_a_proto_message() {
        use bytes::Bytes;
        use prost::Message as _;
        let body = Bytes::copy_from_slice(&MALFORMED_FRAME[LENGTH_PREFIX_LEN..]);
        assert!(ProtoMessage::decode(body).is_err());
        assert_eq!(oversized_frame()[..4], OVERSIZED_LEN.to_be_bytes());
    }
}
