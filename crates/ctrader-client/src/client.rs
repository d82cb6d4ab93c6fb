//! The cTrader client: session set-up (application auth, account auth, token refresh,
//! resubscription), a supervisor that reconnects with backoff when a link dies, and the
//! [`Broker`] operations over the live link.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ctrader_proto::openapi::{
    ProtoOaAccountAuthReq, ProtoOaAccountAuthRes, ProtoOaAmendPositionSltpReq,
    ProtoOaApplicationAuthReq, ProtoOaApplicationAuthRes, ProtoOaAssetListReq, ProtoOaAssetListRes,
    ProtoOaClosePositionReq, ProtoOaDealListReq, ProtoOaDealListRes, ProtoOaExecutionEvent,
    ProtoOaExecutionType, ProtoOaGetAccountListByAccessTokenReq,
    ProtoOaGetAccountListByAccessTokenRes, ProtoOaGetPositionUnrealizedPnLReq,
    ProtoOaGetPositionUnrealizedPnLRes, ProtoOaGetTickDataReq, ProtoOaGetTickDataRes,
    ProtoOaGetTrendbarsReq, ProtoOaGetTrendbarsRes, ProtoOaNewOrderReq, ProtoOaOrderListReq,
    ProtoOaOrderListRes, ProtoOaOrderType, ProtoOaReconcileReq, ProtoOaReconcileRes,
    ProtoOaRefreshTokenReq, ProtoOaRefreshTokenRes, ProtoOaSubscribeSpotsReq,
    ProtoOaSubscribeSpotsRes, ProtoOaSymbolByIdReq, ProtoOaSymbolByIdRes,
    ProtoOaSymbolsForConversionReq, ProtoOaSymbolsForConversionRes, ProtoOaSymbolsListReq,
    ProtoOaSymbolsListRes, ProtoOaTrader, ProtoOaTraderReq, ProtoOaTraderRes,
};
use ctrader_proto::{Envelope, OpenApiMessage, Payload};
use domain::{
    AccountCurrency, Bar, ClientOrderId, Clock, ConversionChain, Fill, Money, OrderRequest,
    PositionId, Secret, SymbolId, SymbolSpec, SystemClock, Timeframe, Timestamp, Volume,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use backon::BackoffBuilder as _;

use crate::backoff::FullJitter;
use crate::broker::{
    Broker, BrokerEvent, BrokerEvents, ExecutionKind, MarginCallKind, OpenState, OrderFill,
    OrderOutcome, OrderRejection, PositionPnl, Protection, SymbolState, TradingMode,
};
use crate::config::{CTraderConfig, DEMO_HOST, LIVE_HOST, TokenExpiry};
use crate::convert;
use crate::history::{self, HistoricalTick, QuoteSide, RawTrendbar};
use crate::limits::{Limits, RequestClass};
use crate::link::{Inbound, Link, LinkTiming, ReplyKind, RequestFailure};
use crate::quotes::QuoteBook;
use crate::tokens::{InMemoryTokens, RefreshedTokens, TokenKeeper};
use crate::{BrokerError, tls};

/// Attempts of a read request refused with `BLOCKED_PAYLOAD_TYPE` before giving up.
const BLOCKED_ATTEMPTS: usize = 3;
/// Attempts of a read request the broker could not route (`CANT_ROUTE_REQUEST`) before giving up.
const ROUTE_ATTEMPTS: u32 = 5;
/// The first wait after `CANT_ROUTE_REQUEST`; each retry doubles it.
const ROUTE_BACKOFF: Duration = Duration::from_millis(200);
/// The broker's error code for a request it could not route to the trading server.
const CANT_ROUTE_CODE: &str = "CANT_ROUTE_REQUEST";
/// Links lost in a row to a frame over the size cap before the client gives up.
const OVERSIZED_LIMIT: u32 = 3;
/// A link that stayed up this long resets the reconnection backoff.
const STABLE_LINK: Duration = Duration::from_secs(60);
/// The longest single wait for a maintenance window to end; after it the broker is asked again
/// (and announces the end again if it moved).
const MAX_MAINTENANCE_WAIT: Duration = Duration::from_secs(3600);
/// The broker's error code for a maintenance window.
const MAINTENANCE_CODE: &str = "SERVER_IS_UNDER_MAINTENANCE";
/// Money digits assumed until the trader's own are known.
const DEFAULT_MONEY_DIGITS: u8 = 2;

/// Error codes that mean the access token is no longer good.
const TOKEN_CODES: &[&str] = &["CH_ACCESS_TOKEN_INVALID", "OA_AUTH_TOKEN_EXPIRED"];
/// Error codes that mean the account session is gone (re-authorise it).
const SESSION_CODES: &[&str] = &["ACCOUNT_NOT_AUTHORIZED", "CH_CLIENT_NOT_AUTHENTICATED"];
/// Error codes of account authorisation that no retry can fix.
const ACCOUNT_CODES: &[&str] = &[
    "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
    "ACCOUNT_NOT_AUTHORIZED",
    "RET_NO_SUCH_LOGIN",
    "RET_ACCOUNT_DISABLED",
];
/// Error codes of application authorisation that mean wrong credentials.
const APP_CODES: &[&str] = &["CH_CLIENT_AUTH_FAILURE", "CH_OA_CLIENT_NOT_FOUND"];

/// A resilient connection to the cTrader Open API for one trading account; implements [`Broker`].
/// Dropping it (or calling [`CTraderClient::shutdown`]) stops its tasks.
#[derive(Debug)]
pub struct CTraderClient {
    inner: Arc<Inner>,
}

struct Tokens {
    access: Secret,
    refresh: Option<Secret>,
    /// When to refresh before the access token expires (wall-clock time), when its life is known.
    refresh_due: Option<Timestamp>,
}

/// What the supervisor is asked to do by the reader or by a failed request.
#[derive(Debug)]
enum Control {
    /// The account session (or its token) is gone: authorise the account again.
    Reauthorise(String),
    /// The server ended the session: drop the link and reconnect.
    Drop(String),
    /// The broker is under maintenance until then: drop the link, reconnect after it.
    Maintenance(Timestamp),
}

struct Inner {
    config: CTraderConfig,
    tls: Arc<rustls::ClientConfig>,
    tokens: Mutex<Tokens>,
    keeper: Arc<dyn TokenKeeper>,
    /// Live or demo, as the broker's account list said at the first connection; every later
    /// connection must say the same.
    account_live: Mutex<Option<bool>>,
    link: Mutex<Option<Arc<Link>>>,
    subscriptions: Mutex<BTreeSet<SymbolId>>,
    events: mpsc::UnboundedSender<BrokerEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<BrokerEvent>>>,
    control: mpsc::UnboundedSender<Control>,
    limits: Limits,
    /// Historical requests sent (trendbars, ticks, deals), refused ones included.
    historical_sent: AtomicU64,
    money_digits: Arc<AtomicU8>,
    /// A limited-risk account (`isLimitedRisk`): every new order must carry a guaranteed stop.
    limited_risk: AtomicBool,
    clock: Arc<dyn Clock>,
    stopped: Mutex<Option<BrokerError>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CTraderClient")
            .field("host", &self.config.host)
            .field("port", &self.config.port)
            .field("account_id", &self.config.account_id)
            .field("connected", &lock(&self.link).is_some())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex that no code panics under; a poisoned one still holds valid data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CTraderClient {
    /// Connects, authorises the application and the account, and starts supervising the link.
    /// Fails with the first error (check [`BrokerError::is_transient`] before retrying).
    pub async fn connect(config: CTraderConfig) -> Result<CTraderClient, BrokerError> {
        CTraderClient::connect_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`CTraderClient::connect`], with the clock that stamps quotes lacking a broker time.
    pub async fn connect_with_clock(
        config: CTraderConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<CTraderClient, BrokerError> {
        CTraderClient::connect_with(config, clock, Arc::new(InMemoryTokens)).await
    }

    /// Like [`CTraderClient::connect_with_clock`], handing every refreshed token pair to `keeper`
    /// before using it. A maintenance window announced by the broker is waited out (drop the
    /// future to give up).
    pub async fn connect_with(
        config: CTraderConfig,
        clock: Arc<dyn Clock>,
        keeper: Arc<dyn TokenKeeper>,
    ) -> Result<CTraderClient, BrokerError> {
        config.validate()?;
        let tls = tls::client_config(config.extra_ca.as_ref())?;
        let (events, receiver) = mpsc::unbounded_channel();
        let (control, mut control_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            tokens: Mutex::new(Tokens {
                access: config.credentials.access_token.clone(),
                refresh: config.credentials.refresh_token.clone(),
                refresh_due: config
                    .token_expiry
                    .filter(|_| config.credentials.refresh_token.is_some())
                    .map(|e| e.refresh_due()),
            }),
            keeper,
            account_live: Mutex::new(None),
            limits: Limits::new(config.rate_limits),
            historical_sent: AtomicU64::new(0),
            config,
            tls,
            link: Mutex::new(None),
            subscriptions: Mutex::new(BTreeSet::new()),
            events,
            receiver: Mutex::new(Some(receiver)),
            control,
            money_digits: Arc::new(AtomicU8::new(DEFAULT_MONEY_DIGITS)),
            limited_risk: AtomicBool::new(false),
            clock,
            stopped: Mutex::new(None),
            shutdown: CancellationToken::new(),
        });
        let link = loop {
            match inner.establish().await {
                Ok(link) => break link,
                Err(BrokerError::Maintenance { until }) => {
                    wait_for_maintenance(&inner, until).await?;
                }
                Err(e) => return Err(e),
            }
        };
        *lock(&inner.link) = Some(Arc::clone(&link));
        // Requests queued while connecting concerned the links that failed (a maintenance
        // already waited out): the new link is authorised.
        while control_rx.try_recv().is_ok() {}
        tokio::spawn(supervise(Arc::clone(&inner), link, control_rx));
        Ok(CTraderClient { inner })
    }

    /// Stops reconnecting and closes the link; later requests fail with `Stopped`.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// True while a live, authorised link is up.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.link)
            .as_ref()
            .is_some_and(|l| !l.is_down())
    }

    /// True when the broker lists the account as live (`isLive`; an account listed without the
    /// flag counts as live, so a guard built on it fails closed).
    pub fn account_is_live(&self) -> bool {
        lock(&self.inner.account_live).unwrap_or(true)
    }

    /// Why the client stopped for good, once it has.
    pub fn stop_reason(&self) -> Option<BrokerError> {
        lock(&self.inner.stopped).clone()
    }

    /// Decimal digits of the account's money (`moneyDigits`), as the broker reported them.
    pub fn money_digits(&self) -> u8 {
        self.inner.money_digits.load(Ordering::Relaxed)
    }

    /// How many historical requests (trendbars, ticks, deals) this client has sent so far.
    pub fn historical_requests(&self) -> u64 {
        self.inner.historical_sent.load(Ordering::Relaxed)
    }

    /// Ticks of one side of `symbol` in `[from, to)`, oldest first (`ProtoOAGetTickDataReq`):
    /// asked a day at a time from the newest, each day paged backwards while the broker says
    /// `hasMore`, within the historical rate limit.
    pub async fn tick_data(
        &self,
        symbol: SymbolId,
        side: QuoteSide,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HistoricalTick>, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let mut newest_first: Vec<HistoricalTick> = Vec::new();
        let mut window_to = to;
        while window_to > from {
            let window_from = Timestamp(
                window_to
                    .0
                    .saturating_sub(history::TICK_WINDOW_MS)
                    .max(from.0),
            );
            // The broker's `toTimestamp` is inclusive; ours is not.
            let mut upper = window_to.0 - 1;
            // Each round either lowers `upper` or keeps more ticks at `upper`: it ends.
            loop {
                let res: ProtoOaGetTickDataRes = inner
                    .call(
                        &link,
                        ProtoOaGetTickDataReq {
                            ctid_trader_account_id: inner.account(),
                            symbol_id: symbol.0,
                            r#type: side.code(),
                            from_timestamp: Some(window_from.0),
                            to_timestamp: Some(upper),
                            ..Default::default()
                        }
                        .into(),
                        "tick data",
                        RequestClass::Historical,
                    )
                    .await?;
                let pairs: Vec<(i64, i64)> = res
                    .tick_data
                    .iter()
                    .map(|t| (t.timestamp, t.tick))
                    .collect();
                let page = history::decode_ticks(&pairs)?;
                if let Some(out) = page.iter().find(|t| t.at.0 > upper || t.at < window_from) {
                    return Err(BrokerError::BadValue(format!(
                        "tick at {} is outside the asked range {window_from} .. {}",
                        out.at,
                        Timestamp(upper)
                    )));
                }
                // Ticks at `upper` kept from the page before come first again: skip them.
                let kept = newest_first
                    .iter()
                    .rev()
                    .take_while(|t| t.at.0 == upper)
                    .count();
                let before = newest_first.len();
                newest_first.extend(page.into_iter().skip(kept));
                let progressed = newest_first.len() > before;
                match newest_first.last() {
                    Some(oldest) if res.has_more && progressed => upper = oldest.at.0,
                    _ if res.has_more && upper > window_from.0 => upper -= 1,
                    _ => break,
                }
            }
            window_to = window_from;
        }
        newest_first.reverse();
        Ok(newest_first)
    }
}

impl Drop for CTraderClient {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}

impl Inner {
    fn account(&self) -> i64 {
        self.config.account_id
    }

    fn emit(&self, event: BrokerEvent) {
        // The owner may not have taken the stream; events then have nowhere to go.
        let _ = self.events.send(event);
    }

    /// The live link, or why there is none.
    fn live_link(&self) -> Result<Arc<Link>, BrokerError> {
        if let Some(err) = lock(&self.stopped).as_ref() {
            return Err(BrokerError::Stopped(err.to_string()));
        }
        if self.shutdown.is_cancelled() {
            return Err(BrokerError::Stopped("shut down".into()));
        }
        match lock(&self.link).as_ref() {
            Some(link) if !link.is_down() => Ok(Arc::clone(link)),
            _ => Err(BrokerError::NotConnected),
        }
    }

    /// Opens a new link and makes it ready: application auth, account auth (refreshing the token if
    /// needed), the account's money digits, and every spot subscription.
    async fn establish(self: &Arc<Self>) -> Result<Arc<Link>, BrokerError> {
        let timing = &self.config.timing;
        let stream = tokio::time::timeout(
            timing.connect_timeout,
            tls::connect(Arc::clone(&self.tls), &self.config.host, self.config.port),
        )
        .await
        .map_err(|_| BrokerError::Timeout {
            request: "connect",
            after: timing.connect_timeout,
        })??;
        let link = Link::start(
            stream,
            LinkTiming {
                heartbeat_interval: timing.heartbeat_interval,
                silence_limit: timing.silence_limit,
            },
            Dispatcher {
                book: QuoteBook::default(),
                events: self.events.clone(),
                control: self.control.clone(),
                clock: Arc::clone(&self.clock),
                money_digits: Arc::clone(&self.money_digits),
                account_id: self.account(),
            },
        );
        let ready = async {
            self.authorise_application(&link).await?;
            self.check_account_environment(&link).await?;
            self.authorise_account(&link).await?;
            self.load_trader(&link).await?;
            self.resubscribe(&link).await
        };
        match ready.await {
            Ok(()) => Ok(link),
            Err(e) => {
                link.close(format!("session set-up failed: {e}"));
                Err(e)
            }
        }
    }

    async fn authorise_application(&self, link: &Link) -> Result<(), BrokerError> {
        let creds = &self.config.credentials;
        let req = ProtoOaApplicationAuthReq {
            client_id: creds.client_id.clone(),
            client_secret: creds.client_secret.expose().to_owned(),
            ..Default::default()
        };
        match self
            .call::<ProtoOaApplicationAuthRes>(
                link,
                req.into(),
                "application auth",
                RequestClass::Ordinary,
            )
            .await
        {
            Err(BrokerError::Refused { code, .. }) if APP_CODES.contains(&code.as_str()) => {
                Err(BrokerError::BadCredentials { code })
            }
            // Already authenticated on this connection is success.
            Err(BrokerError::Refused { code, .. }) if code == "CH_CLIENT_ALREADY_AUTHENTICATED" => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Account auth; on a token error, refreshes once (when a refresh token is configured).
    async fn authorise_account(self: &Arc<Self>, link: &Arc<Link>) -> Result<(), BrokerError> {
        match self.account_auth_once(link).await {
            Err(BrokerError::TokenRevoked { code }) => {
                self.refresh_after_refusal(link, code).await?;
                self.account_auth_once(link).await
            }
            other => other,
        }
    }

    /// Refreshes the tokens after the broker refused the access token with `code`, or says
    /// why that is impossible.
    async fn refresh_after_refusal(
        self: &Arc<Self>,
        link: &Arc<Link>,
        code: String,
    ) -> Result<(), BrokerError> {
        if lock(&self.tokens).refresh.is_none() {
            return Err(BrokerError::TokenRevoked { code });
        }
        self.refresh_tokens(link).await
    }

    /// Asks the broker's account list whether the account is live or demo, and refuses an
    /// account of the other kind than the host, the operator or the first connection expects.
    /// Runs before the account is authorised, so no request ever reaches an account of the
    /// wrong kind.
    async fn check_account_environment(
        self: &Arc<Self>,
        link: &Arc<Link>,
    ) -> Result<(), BrokerError> {
        let listed = match self.account_list_once(link).await {
            Err(BrokerError::TokenRevoked { code }) => {
                self.refresh_after_refusal(link, code).await?;
                self.account_list_once(link).await?
            }
            other => other?,
        };
        let account_id = self.account();
        let Some(account) = listed
            .ctid_trader_account
            .iter()
            .find(|a| i64::try_from(a.ctid_trader_account_id).ok() == Some(account_id))
        else {
            return Err(BrokerError::AccountNotAuthorised {
                account_id,
                code: format!(
                    "not among the {} account(s) of this access token",
                    listed.ctid_trader_account.len()
                ),
            });
        };
        // An account listed without the flag is treated as live: the live guard fails closed.
        let live = account.is_live.unwrap_or(true);
        let host = self
            .config
            .host
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let mut expectations = Vec::new();
        if host == DEMO_HOST {
            expectations.push((false, format!("{DEMO_HOST} serves demo accounts only")));
        } else if host == LIVE_HOST {
            expectations.push((true, format!("{LIVE_HOST} serves live accounts only")));
        }
        if let Some(expect) = &self.config.expect_live {
            expectations.push((expect.live, expect.said_by.clone()));
        }
        if let Some(first) = *lock(&self.account_live) {
            let kind = if first { "live" } else { "demo" };
            expectations.push((
                first,
                format!("it was a {kind} account when the client connected first"),
            ));
        }
        if let Some((_, said_by)) = expectations.into_iter().find(|(want, _)| *want != live) {
            return Err(BrokerError::WrongEnvironment {
                account_id,
                account_is_live: live,
                expected: said_by,
            });
        }
        *lock(&self.account_live) = Some(live);
        Ok(())
    }

    async fn account_list_once(
        &self,
        link: &Link,
    ) -> Result<ProtoOaGetAccountListByAccessTokenRes, BrokerError> {
        let req = ProtoOaGetAccountListByAccessTokenReq {
            access_token: lock(&self.tokens).access.expose().to_owned(),
            ..Default::default()
        };
        match self
            .call::<ProtoOaGetAccountListByAccessTokenRes>(
                link,
                req.into(),
                "account list auth",
                RequestClass::Ordinary,
            )
            .await
        {
            Err(BrokerError::Refused { code, .. }) if TOKEN_CODES.contains(&code.as_str()) => {
                Err(BrokerError::TokenRevoked { code })
            }
            other => other,
        }
    }

    async fn account_auth_once(&self, link: &Link) -> Result<(), BrokerError> {
        let req = ProtoOaAccountAuthReq {
            ctid_trader_account_id: self.account(),
            access_token: lock(&self.tokens).access.expose().to_owned(),
            ..Default::default()
        };
        match self
            .call::<ProtoOaAccountAuthRes>(link, req.into(), "account auth", RequestClass::Ordinary)
            .await
        {
            Ok(_) => Ok(()),
            Err(BrokerError::Refused { code, .. }) if TOKEN_CODES.contains(&code.as_str()) => {
                Err(BrokerError::TokenRevoked { code })
            }
            Err(BrokerError::Refused { code, .. }) if ACCOUNT_CODES.contains(&code.as_str()) => {
                Err(BrokerError::AccountNotAuthorised {
                    account_id: self.account(),
                    code,
                })
            }
            Err(BrokerError::Refused { code, .. }) if code == "ALREADY_LOGGED_IN" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Trades the refresh token for new tokens, keeps them, and hands them to the owner to persist.
    /// The exchange runs as a task of its own that finishes even when the caller gives up (a
    /// shutdown during a reconnection): the broker spends the old refresh token the moment it
    /// answers, so an answer left unread would leave only dead tokens for the next start. The
    /// keeper's guard is held until the answer is kept, so its owner can wait for it at exit.
    async fn refresh_tokens(self: &Arc<Self>, link: &Arc<Link>) -> Result<(), BrokerError> {
        let Some(refresh) = lock(&self.tokens).refresh.clone() else {
            return Err(BrokerError::TokenRevoked {
                code: "no refresh token".into(),
            });
        };
        let in_flight = self.keeper.refresh_started();
        // Checked after the keeper's guard is taken: an owner that shut the client down and then
        // found no refresh in flight can stop at once, for none will start after.
        if self.shutdown.is_cancelled() {
            return Err(BrokerError::Stopped("shut down".into()));
        }
        let inner = Arc::clone(self);
        let link = Arc::clone(link);
        let exchange = tokio::spawn(async move {
            let exchanged = inner.exchange_refresh_token(&link, refresh).await;
            drop(in_flight);
            exchanged
        });
        exchange.await.unwrap_or_else(|e| {
            Err(BrokerError::Stopped(format!(
                "the token refresh ended before its answer was kept: {e}"
            )))
        })
    }

    /// Sends the refresh, keeps the new pair, then uses it.
    async fn exchange_refresh_token(
        &self,
        link: &Link,
        refresh: Secret,
    ) -> Result<(), BrokerError> {
        tracing::info!("asking the broker for a new cTrader token pair");
        let req = ProtoOaRefreshTokenReq {
            refresh_token: refresh.expose().to_owned(),
            ..Default::default()
        };
        let res = match self
            .call::<ProtoOaRefreshTokenRes>(
                link,
                req.into(),
                "token refresh",
                RequestClass::Ordinary,
            )
            .await
        {
            Ok(res) => res,
            Err(BrokerError::Refused { code, .. }) if !crate::error::is_transient_code(&code) => {
                return Err(BrokerError::TokenRefreshFailed { code });
            }
            Err(e) => return Err(e),
        };
        if res.access_token.trim().is_empty() || res.refresh_token.trim().is_empty() {
            return Err(BrokerError::TokenRefreshFailed {
                code: "empty token in the refresh response".into(),
            });
        }
        // Token lives are wall-clock time, whatever clock stamps the quotes.
        let issued_at = SystemClock.now();
        let expires_at = res
            .expires_in
            .checked_mul(1000)
            .filter(|ms| *ms > 0)
            .map(|ms| issued_at.plus_millis(ms));
        let refreshed = RefreshedTokens {
            access_token: Secret::new(res.access_token),
            refresh_token: Secret::new(res.refresh_token),
            issued_at,
            expires_at,
        };
        // Kept before it is used: the old refresh token is spent, so a pair only in memory
        // would be lost with the process.
        self.keeper
            .keep(&refreshed)
            .await
            .map_err(BrokerError::TokenStore)?;
        {
            let mut tokens = lock(&self.tokens);
            tokens.access = refreshed.access_token.clone();
            tokens.refresh = Some(refreshed.refresh_token.clone());
            tokens.refresh_due = expires_at.map(|expires_at| {
                TokenExpiry {
                    issued_at,
                    expires_at,
                }
                .refresh_due()
            });
        }
        tracing::info!(expires_at = ?expires_at.map(|t| t.to_string()), "cTrader access token refreshed");
        self.emit(BrokerEvent::TokenRefreshed {
            access_token: refreshed.access_token,
            refresh_token: refreshed.refresh_token,
            expires_at,
        });
        Ok(())
    }

    /// Reads the account once per connection: its money digits and whether it is limited-risk.
    async fn load_trader(&self, link: &Link) -> Result<(), BrokerError> {
        let req = ProtoOaTraderReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        let res: ProtoOaTraderRes = self
            .call(link, req.into(), "trader", RequestClass::Ordinary)
            .await?;
        if let Some(d) = res.trader.money_digits {
            let digits = u8::try_from(d)
                .ok()
                .filter(|d| *d <= 18)
                .ok_or_else(|| BrokerError::BadValue(format!("account moneyDigits {d}")))?;
            self.money_digits.store(digits, Ordering::Relaxed);
        }
        let limited = res.trader.is_limited_risk.unwrap_or(false);
        let was = self.limited_risk.swap(limited, Ordering::Relaxed);
        if limited && !was {
            tracing::info!(
                "the account is limited-risk: every new order carries a guaranteed stop loss, which the broker closes at its own price"
            );
        }
        Ok(())
    }

    async fn resubscribe(&self, link: &Link) -> Result<(), BrokerError> {
        let symbols: Vec<SymbolId> = lock(&self.subscriptions).iter().copied().collect();
        if symbols.is_empty() {
            return Ok(());
        }
        self.subscribe(link, symbols).await
    }

    async fn subscribe(&self, link: &Link, symbols: Vec<SymbolId>) -> Result<(), BrokerError> {
        let req = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: self.account(),
            symbol_id: symbols.iter().map(|s| s.0).collect(),
            subscribe_to_spot_timestamp: Some(true),
            ..Default::default()
        };
        match self
            .call::<ProtoOaSubscribeSpotsRes>(
                link,
                req.into(),
                "subscribe spots",
                RequestClass::Ordinary,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(BrokerError::Refused { code, .. }) if code == "ALREADY_SUBSCRIBED" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds the client order ids of the account's orders created or changed in `[from, to)` to
    /// `ids` (broker order id -> our id). Orders without one, or with one we would not issue,
    /// are not ours and are skipped.
    async fn order_client_ids(
        &self,
        link: &Link,
        from: Timestamp,
        to: Timestamp,
        ids: &mut HashMap<i64, ClientOrderId>,
    ) -> Result<(), BrokerError> {
        let mut cursor = from;
        // Each round either ends the range or moves the cursor forward.
        while cursor < to {
            let res: ProtoOaOrderListRes = self
                .call(
                    link,
                    ProtoOaOrderListReq {
                        ctid_trader_account_id: self.account(),
                        from_timestamp: Some(cursor.0),
                        to_timestamp: Some(to.0),
                        ..Default::default()
                    }
                    .into(),
                    "order list",
                    RequestClass::Historical,
                )
                .await?;
            for order in &res.order {
                if let Some(id) = convert::order_client_order_id(order) {
                    ids.insert(order.order_id, id);
                }
            }
            if !res.has_more {
                break;
            }
            let newest = res
                .order
                .iter()
                .filter_map(|o| o.utc_last_update_timestamp.or(o.trade_data.open_timestamp))
                .max();
            match newest {
                Some(last) if last > cursor.0 => cursor = Timestamp(last),
                _ => {
                    return Err(BrokerError::Protocol(
                        "order list says it has more but does not advance".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The light list of the account's tradable symbols (names, asset ids).
    async fn symbols_list(&self, link: &Link) -> Result<ProtoOaSymbolsListRes, BrokerError> {
        self.call(
            link,
            ProtoOaSymbolsListReq {
                ctid_trader_account_id: self.account(),
                include_archived_symbols: Some(false),
                ..Default::default()
            }
            .into(),
            "symbols list",
            RequestClass::Ordinary,
        )
        .await
    }

    /// One symbol's full details.
    async fn symbol_by_id(
        &self,
        link: &Link,
        symbol: SymbolId,
        name: &str,
    ) -> Result<ctrader_proto::openapi::ProtoOaSymbol, BrokerError> {
        let full: ProtoOaSymbolByIdRes = self
            .call(
                link,
                ProtoOaSymbolByIdReq {
                    ctid_trader_account_id: self.account(),
                    symbol_id: vec![symbol.0],
                    ..Default::default()
                }
                .into(),
                "symbol by id",
                RequestClass::Ordinary,
            )
            .await?;
        full.symbol
            .into_iter()
            .find(|s| s.symbol_id == symbol.0)
            .ok_or_else(|| {
                BrokerError::BadValue(format!(
                    "symbol {name} ({symbol}) is listed but its details were not returned"
                ))
            })
    }

    /// The account's trader record (balance, deposit asset, money digits).
    async fn trader(&self, link: &Link) -> Result<ProtoOaTrader, BrokerError> {
        let req = ProtoOaTraderReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        let res: ProtoOaTraderRes = self
            .call(link, req.into(), "trader", RequestClass::Ordinary)
            .await?;
        Ok(res.trader)
    }

    /// The money digits a trader record gives (the ones known so far when it gives none).
    fn trader_digits(&self, trader: &ProtoOaTrader) -> Result<u8, BrokerError> {
        match trader.money_digits {
            Some(d) => u8::try_from(d)
                .ok()
                .filter(|d| *d <= 18)
                .ok_or_else(|| BrokerError::BadValue(format!("account moneyDigits {d}"))),
            None => Ok(self.money_digits.load(Ordering::Relaxed)),
        }
    }

    /// The name of a broker asset (e.g. `USD` for the deposit asset's id).
    async fn asset_name(&self, link: &Link, asset_id: i64) -> Result<String, BrokerError> {
        let res: ProtoOaAssetListRes = self
            .call(
                link,
                ProtoOaAssetListReq {
                    ctid_trader_account_id: self.account(),
                    ..Default::default()
                }
                .into(),
                "asset list",
                RequestClass::Ordinary,
            )
            .await?;
        res.asset
            .iter()
            .find(|a| a.asset_id == asset_id)
            .map(|a| a.name.clone())
            .ok_or_else(|| {
                BrokerError::BadValue(format!(
                    "asset {asset_id} is not in the broker's asset list"
                ))
            })
    }

    /// Sends a request that changes nothing at the broker and reads its typed answer. Error frames
    /// become errors; `BLOCKED_PAYLOAD_TYPE` waits out `retryAfter` and tries again (safe: the
    /// broker refused it, so nothing happened).
    async fn call<T: OpenApiMessage>(
        &self,
        link: &Link,
        payload: Payload,
        name: &'static str,
        class: RequestClass,
    ) -> Result<T, BrokerError> {
        let mut attempt = 0;
        let mut unrouted = 0;
        loop {
            attempt += 1;
            self.limits.acquire(class).await;
            if class == RequestClass::Historical {
                self.historical_sent.fetch_add(1, Ordering::Relaxed);
            }
            let envelope = link
                .request(
                    payload.clone(),
                    ReplyKind::Any,
                    name,
                    self.config.timing.request_timeout,
                )
                .await
                .map_err(RequestFailure::into_error)?;
            match self.refusal(name, &envelope) {
                Some(BrokerError::RateLimited { retry_after, .. })
                    if attempt < BLOCKED_ATTEMPTS =>
                {
                    let pause = retry_after.unwrap_or(Duration::from_secs(1));
                    tracing::warn!(
                        request = name,
                        ?pause,
                        "rate limited by the broker; waiting"
                    );
                    self.limits.block_for(pause);
                }
                // Nothing was done and asking changes nothing: try again, waiting longer each time.
                Some(BrokerError::Refused { ref code, .. })
                    if code == CANT_ROUTE_CODE && unrouted + 1 < ROUTE_ATTEMPTS =>
                {
                    let pause = ROUTE_BACKOFF * 2_u32.pow(unrouted);
                    unrouted += 1;
                    attempt -= 1;
                    tracing::warn!(
                        request = name,
                        attempt = unrouted,
                        ?pause,
                        "the broker could not route the request; retrying"
                    );
                    tokio::time::sleep(pause).await;
                }
                Some(err) => return Err(err),
                None => {
                    let got = envelope.payload.name();
                    return T::try_from(envelope.payload).map_err(|_| {
                        BrokerError::Protocol(format!("{name}: expected {}, got {got}", T::NAME))
                    });
                }
            }
        }
    }

    /// The error an error frame carries; `None` for any other frame. Session and token errors also
    /// ask the supervisor to authorise the account again.
    fn refusal(&self, request: &'static str, envelope: &Envelope) -> Option<BrokerError> {
        let (code, description, retry_after) = match &envelope.payload {
            Payload::ErrorRes(e) => (&e.error_code, &e.description, e.retry_after),
            Payload::CommonErrorRes(e) => (&e.error_code, &e.description, None),
            Payload::OrderErrorEvent(e) => (&e.error_code, &e.description, None),
            _ => return None,
        };
        if let Some(until) = maintenance_end(&envelope.payload) {
            let _ = self.control.send(Control::Maintenance(until));
            return Some(BrokerError::Maintenance { until });
        }
        if let Some(seconds) = retry_after {
            self.limits.block_for(Duration::from_secs(seconds));
        }
        let session_lost =
            TOKEN_CODES.contains(&code.as_str()) || SESSION_CODES.contains(&code.as_str());
        if session_lost && !request.ends_with("auth") && request != "token refresh" {
            let _ = self.control.send(Control::Reauthorise(format!(
                "{request} refused with {code}"
            )));
        }
        Some(match code.as_str() {
            "BLOCKED_PAYLOAD_TYPE" | "REQUEST_FREQUENCY_EXCEEDED" => BrokerError::RateLimited {
                request,
                retry_after: retry_after.map(Duration::from_secs),
            },
            _ => BrokerError::Refused {
                request,
                code: code.clone(),
                description: description.clone(),
            },
        })
    }

    /// Sends a trading request ONCE and waits for its execution. Never retried.
    async fn execute(
        &self,
        payload: Payload,
        name: &'static str,
        what: String,
        client_order_id: Option<domain::ClientOrderId>,
    ) -> Result<OrderOutcome, BrokerError> {
        let link = self.live_link()?;
        self.limits.acquire(RequestClass::Ordinary).await;
        let kind = ReplyKind::Execution {
            client_order_id: client_order_id.as_ref().map(|c| c.as_str().to_owned()),
        };
        let envelope = match link
            .request(payload, kind, name, self.config.timing.order_timeout)
            .await
        {
            Ok(envelope) => envelope,
            Err(RequestFailure::NotSent(e)) => return Err(e),
            Err(RequestFailure::Unanswered(e)) => {
                return Err(BrokerError::OrderOutcomeUnknown {
                    what,
                    client_order_id,
                    reason: e.to_string(),
                });
            }
        };
        if let Some(err) = self.refusal(name, &envelope) {
            return match err {
                // Refused before execution: definitely not executed.
                BrokerError::RateLimited { .. } => Err(err),
                // Never retried here: the owner reconciles and decides.
                BrokerError::Refused { code, .. } if code == CANT_ROUTE_CODE => {
                    Err(BrokerError::OrderOutcomeUnknown {
                        what,
                        client_order_id,
                        reason: format!("the broker answered {CANT_ROUTE_CODE}"),
                    })
                }
                BrokerError::Refused {
                    code, description, ..
                } => Ok(OrderOutcome::Rejected(OrderRejection { code, description })),
                other => Err(other),
            };
        }
        let Payload::ExecutionEvent(event) = envelope.payload else {
            return Err(BrokerError::OrderOutcomeUnknown {
                what,
                client_order_id,
                reason: format!("unexpected answer {}", envelope.payload.name()),
            });
        };
        self.outcome(&event, what, client_order_id)
    }

    /// Reads an execution event that answered an order or a close.
    fn outcome(
        &self,
        event: &ProtoOaExecutionEvent,
        what: String,
        client_order_id: Option<domain::ClientOrderId>,
    ) -> Result<OrderOutcome, BrokerError> {
        let report = convert::execution_report(event, self.money_digits.load(Ordering::Relaxed));
        let rejection = |code: &str| {
            Ok(OrderOutcome::Rejected(OrderRejection {
                code: report.error_code.clone().unwrap_or_else(|| code.to_owned()),
                description: None,
            }))
        };
        match report.kind {
            ExecutionKind::Filled | ExecutionKind::PartialFill => match report.fill {
                Some(fill) => Ok(OrderOutcome::Filled(OrderFill {
                    fill,
                    position: report.position,
                    position_closed: report.position_closed,
                    partial: report.kind == ExecutionKind::PartialFill,
                })),
                None => Err(BrokerError::OrderOutcomeUnknown {
                    what,
                    client_order_id,
                    reason: "fill without a usable deal".into(),
                }),
            },
            ExecutionKind::Rejected => rejection("ORDER_REJECTED"),
            ExecutionKind::Cancelled => rejection("ORDER_CANCELLED"),
            ExecutionKind::Expired => rejection("ORDER_EXPIRED"),
            other => Err(BrokerError::OrderOutcomeUnknown {
                what,
                client_order_id,
                reason: format!("unexpected execution {other:?}"),
            }),
        }
    }
}

/// Handles what the reader hands over: quotes, executions, order errors, session events.
struct Dispatcher {
    book: QuoteBook,
    events: mpsc::UnboundedSender<BrokerEvent>,
    control: mpsc::UnboundedSender<Control>,
    clock: Arc<dyn Clock>,
    money_digits: Arc<AtomicU8>,
    account_id: i64,
}

impl Dispatcher {
    fn emit(&self, event: BrokerEvent) {
        let _ = self.events.send(event);
    }

    fn ask(&self, control: Control) {
        let _ = self.control.send(control);
    }
}

impl Inbound for Dispatcher {
    fn on_frame(&mut self, envelope: Envelope, answered: bool) {
        match envelope.payload {
            Payload::SpotEvent(spot) => {
                let side = |raw: Option<u64>| match raw.map(convert::spot_price).transpose() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "spot price dropped");
                        None
                    }
                };
                let (bid, ask) = (side(spot.bid), side(spot.ask));
                let time = spot.timestamp.map_or_else(|| self.clock.now(), Timestamp);
                if let Some(q) = self.book.apply(SymbolId(spot.symbol_id), bid, ask, time) {
                    self.emit(BrokerEvent::Quote(q));
                }
            }
            Payload::ExecutionEvent(event) => {
                let digits = self.money_digits.load(Ordering::Relaxed);
                self.emit(BrokerEvent::Execution(Box::new(convert::execution_report(
                    &event, digits,
                ))));
            }
            Payload::TraderUpdatedEvent(e) if e.ctid_trader_account_id == self.account_id => {
                let digits = match e.trader.money_digits {
                    Some(d) => match u8::try_from(d).ok().filter(|d| *d <= 18) {
                        Some(d) => d,
                        None => {
                            tracing::warn!(
                                money_digits = d,
                                "trader update with impossible moneyDigits ignored"
                            );
                            return;
                        }
                    },
                    None => self.money_digits.load(Ordering::Relaxed),
                };
                // Every later money amount without its own digits is read with the new ones.
                self.money_digits.store(digits, Ordering::Relaxed);
                self.emit(BrokerEvent::AccountChanged {
                    balance: Money::new(e.trader.balance, digits),
                });
            }
            Payload::SymbolChangedEvent(e) if e.ctid_trader_account_id == self.account_id => {
                self.emit(BrokerEvent::SymbolChanged {
                    symbols: e.symbol_id.into_iter().map(SymbolId).collect(),
                });
            }
            Payload::MarginCallTriggerEvent(e) if e.ctid_trader_account_id == self.account_id => {
                self.emit(margin_call(MarginCallKind::Trigger, &e.margin_call));
            }
            Payload::MarginCallUpdateEvent(e) if e.ctid_trader_account_id == self.account_id => {
                self.emit(margin_call(MarginCallKind::Update, &e.margin_call));
            }
            Payload::MarginChangedEvent(e) if e.ctid_trader_account_id == self.account_id => {
                let digits = e
                    .money_digits
                    .and_then(|d| u8::try_from(d).ok())
                    .filter(|d| *d <= 18)
                    .unwrap_or_else(|| self.money_digits.load(Ordering::Relaxed));
                match (i64::try_from(e.position_id), i64::try_from(e.used_margin)) {
                    (Ok(position), Ok(used)) => self.emit(BrokerEvent::MarginChanged {
                        position: PositionId(position),
                        used_margin: Money::new(used, digits),
                    }),
                    _ => tracing::warn!(
                        position_id = e.position_id,
                        "margin change out of range ignored"
                    ),
                }
            }
            Payload::TrailingSlChangedEvent(e) if e.ctid_trader_account_id == self.account_id => {
                // We never set trailing stops; a person may have. The next reconciliation reads
                // the level, and the broker enforces it meanwhile.
                tracing::info!(
                    position_id = e.position_id,
                    stop_price = e.stop_price,
                    "the broker moved a trailing stop-loss"
                );
            }
            Payload::OrderErrorEvent(e) if !answered => self.emit(BrokerEvent::OrderError {
                order_id: e.order_id,
                position_id: e.position_id.map(PositionId),
                code: e.error_code,
                description: e.description,
            }),
            Payload::AccountsTokenInvalidatedEvent(e) => {
                if e.ctid_trader_account_ids.is_empty()
                    || e.ctid_trader_account_ids.contains(&self.account_id)
                {
                    let reason = e.reason.unwrap_or_else(|| "token invalidated".into());
                    self.ask(Control::Reauthorise(format!(
                        "access token invalidated: {reason}"
                    )));
                }
            }
            Payload::AccountDisconnectEvent(e) if e.ctid_trader_account_id == self.account_id => {
                self.ask(Control::Reauthorise(
                    "the server disconnected the account".into(),
                ));
            }
            Payload::ClientDisconnectEvent(e) => {
                let reason = e.reason.unwrap_or_else(|| "no reason given".into());
                self.ask(Control::Drop(format!(
                    "the server ended the session: {reason}"
                )));
            }
            ref payload @ (Payload::ErrorRes(_) | Payload::CommonErrorRes(_))
                if maintenance_end(payload).is_some() =>
            {
                if let Some(until) = maintenance_end(payload) {
                    self.ask(Control::Maintenance(until));
                }
            }
            Payload::ErrorRes(e) => {
                tracing::warn!(code = %e.error_code, "unsolicited error from the broker");
                if TOKEN_CODES.contains(&e.error_code.as_str()) {
                    self.ask(Control::Reauthorise(format!(
                        "broker error {}",
                        e.error_code
                    )));
                }
            }
            other => tracing::debug!(payload = other.name(), "ignored frame from the broker"),
        }
    }
}

/// A margin call event as the owner sees it.
fn margin_call(
    kind: MarginCallKind,
    call: &ctrader_proto::openapi::ProtoOaMarginCall,
) -> BrokerEvent {
    let threshold =
        ctrader_proto::openapi::ProtoOaNotificationType::try_from(call.margin_call_type)
            .map_or_else(
                |_| format!("MARGIN_LEVEL_THRESHOLD({})", call.margin_call_type),
                |t| t.as_str_name().to_owned(),
            );
    BrokerEvent::MarginCall {
        kind,
        threshold,
        level: call.margin_level_threshold,
    }
}

/// Watches the live link; authorises the account again when asked; on a dead link reconnects with
/// backoff, restores the session and says "reconnected: reconcile now"; stops on a permanent error.
async fn supervise(
    inner: Arc<Inner>,
    mut link: Arc<Link>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut delays = FullJitter::new(inner.config.reconnect).build();
    let mut up_since = tokio::time::Instant::now();
    let mut oversized_losses = 0;
    loop {
        let mut maintenance = None;
        let refresh_due = lock(&inner.tokens).refresh_due;
        let reason = tokio::select! {
            () = inner.shutdown.cancelled() => {
                link.close("client shut down");
                *lock(&inner.link) = None;
                return;
            }
            reason = link.closed() => reason,
            () = sleep_until_wall(refresh_due) => {
                tracing::info!("refreshing the cTrader access token before it expires");
                match inner.refresh_tokens(&link).await {
                    // This connection's account stays authorised with the old token until the
                    // broker's invalidation reaches it, and authorising it again meanwhile is
                    // answered "already logged in": a request after that invalidation is refused
                    // ACCOUNT_NOT_AUTHORIZED (the year soak's log showed a subscription refused
                    // so, which stopped the client). A new connection authorises the account with
                    // the new token from its first request.
                    Ok(()) => {
                        let reason =
                            "token refreshed: reconnecting to authorise the account with the new token"
                                .to_owned();
                        link.close(reason.clone());
                        reason
                    }
                    Err(e) if e.is_transient() => {
                        let reason = format!("token refresh failed: {e}");
                        link.close(reason.clone());
                        reason
                    }
                    Err(e) => {
                        link.close(format!("token refresh failed: {e}"));
                        stop(&inner, e);
                        return;
                    }
                }
            }
            Some(request) = control.recv() => match request {
                Control::Drop(reason) => {
                    link.close(reason.clone());
                    reason
                }
                Control::Maintenance(until) if wall_time_until(until).is_zero() => {
                    tracing::debug!(%until, "a maintenance window that has ended; carrying on");
                    continue;
                }
                Control::Maintenance(until) => {
                    maintenance = Some(until);
                    let reason = format!("the broker announced maintenance until {until}");
                    link.close(reason.clone());
                    reason
                }
                Control::Reauthorise(why) => {
                    tracing::warn!(%why, "authorising the cTrader account again");
                    match reauthorise(&inner, &link).await {
                        Ok(()) => {
                            inner.emit(BrokerEvent::Reconnected);
                            continue;
                        }
                        // Authorised, then refused as unauthorised (another invalidation came
                        // between): a new connection starts the account's session afresh.
                        Err(e) if e.is_transient() || session_lost(&e) => {
                            let reason = format!("re-authorisation failed: {e}");
                            link.close(reason.clone());
                            reason
                        }
                        Err(e) => {
                            link.close(format!("re-authorisation failed: {e}"));
                            stop(&inner, e);
                            return;
                        }
                    }
                }
            },
        };
        let mut reason = reason;
        if maintenance.is_none() {
            // A server that announces maintenance closes the link right after: the announcement
            // is already queued when the close is seen, and decides how long to wait.
            while let Ok(request) = control.try_recv() {
                if let Control::Maintenance(until) = request
                    && !wall_time_until(until).is_zero()
                {
                    maintenance = Some(until);
                    reason = format!("{reason}; the broker announced maintenance until {until}");
                }
            }
        }
        if let Some(waiting) = link.lost_to_oversized_frame() {
            // Asking again got the same answer before: a bounded number of tries, then a named stop.
            if up_since.elapsed() >= STABLE_LINK {
                oversized_losses = 0;
            }
            oversized_losses += 1;
            let requests = if waiting.is_empty() {
                "no request".to_owned()
            } else {
                waiting.join(", ")
            };
            tracing::warn!(losses = oversized_losses, %requests, "a frame over the size cap ended the cTrader link");
            if oversized_losses >= OVERSIZED_LIMIT {
                *lock(&inner.link) = None;
                inner.emit(BrokerEvent::Disconnected { reason });
                stop(
                    &inner,
                    BrokerError::OversizedFrames {
                        losses: oversized_losses,
                        requests,
                    },
                );
                return;
            }
        } else {
            oversized_losses = 0;
        }
        *lock(&inner.link) = None;
        tracing::warn!(%reason, "cTrader link lost; reconnecting");
        inner.emit(BrokerEvent::Disconnected { reason });
        if up_since.elapsed() >= STABLE_LINK {
            delays = FullJitter::new(inner.config.reconnect).build();
        }
        match reconnect(&inner, &mut delays, maintenance).await {
            Ok(new) => {
                *lock(&inner.link) = Some(Arc::clone(&new));
                link = new;
                up_since = tokio::time::Instant::now();
                // Drop requests queued for the dead link: the new session is already authorised.
                while control.try_recv().is_ok() {}
                tracing::info!("cTrader link restored");
                inner.emit(BrokerEvent::Reconnected);
            }
            Err(e) => {
                stop(&inner, e);
                return;
            }
        }
    }
}

/// True for a refusal that says the account's session on this connection is gone.
fn session_lost(error: &BrokerError) -> bool {
    matches!(error, BrokerError::Refused { code, .. } if SESSION_CODES.contains(&code.as_str()))
}

async fn reauthorise(inner: &Arc<Inner>, link: &Arc<Link>) -> Result<(), BrokerError> {
    inner.authorise_account(link).await?;
    inner.resubscribe(link).await
}

/// Tries to establish a new link until it works, a permanent error occurs, the attempts run out or
/// the client shuts down. A maintenance window (announced before, or in answer to an attempt) is
/// waited out instead of the next backoff delay.
async fn reconnect(
    inner: &Arc<Inner>,
    delays: &mut crate::backoff::FullJitterDelays,
    mut maintenance: Option<Timestamp>,
) -> Result<Arc<Link>, BrokerError> {
    let mut last = None;
    loop {
        let delay = if let Some(until) = maintenance.take() {
            wait_for_maintenance(inner, until).await?;
            Duration::ZERO
        } else {
            let Some(delay) = delays.next() else {
                let last = last.map_or_else(String::new, |e: BrokerError| format!(": {e}"));
                return Err(BrokerError::Stopped(format!(
                    "gave up reconnecting after the configured attempts{last}"
                )));
            };
            tokio::select! {
                () = inner.shutdown.cancelled() => return Err(BrokerError::Stopped("shut down".into())),
                () = tokio::time::sleep(delay) => {}
            }
            delay
        };
        let attempt = tokio::select! {
            () = inner.shutdown.cancelled() => return Err(BrokerError::Stopped("shut down".into())),
            attempt = inner.establish() => attempt,
        };
        match attempt {
            Ok(link) => return Ok(link),
            Err(BrokerError::Maintenance { until }) => {
                maintenance = Some(until);
                last = Some(BrokerError::Maintenance { until });
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, ?delay, "reconnection attempt failed");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits until the broker's maintenance window ends, plus a random part of the configured jitter
/// (at most [`MAX_MAINTENANCE_WAIT`] at a time), and says so with the time; fails only on shutdown.
async fn wait_for_maintenance(inner: &Inner, until: Timestamp) -> Result<(), BrokerError> {
    let jitter_cap = u64::try_from(inner.config.maintenance_jitter.as_millis()).unwrap_or(u64::MAX);
    let jitter = Duration::from_millis(fastrand::u64(0..=jitter_cap));
    let remaining = wall_time_until(until).min(MAX_MAINTENANCE_WAIT);
    let wait = remaining + jitter;
    let reconnect_at = SystemClock
        .now()
        .plus_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
    tracing::warn!(
        until = %until,
        reconnect_at = %reconnect_at,
        "the broker is under maintenance; reconnecting after it ends"
    );
    tokio::select! {
        () = inner.shutdown.cancelled() => Err(BrokerError::Stopped("shut down".into())),
        () = tokio::time::sleep(wait) => Ok(()),
    }
}

/// How long from now (wall-clock) until `at`; zero when it has passed.
fn wall_time_until(at: Timestamp) -> Duration {
    let ms = at.0.saturating_sub(SystemClock.now().0);
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Sleeps until wall-clock time `at`; forever when there is none.
async fn sleep_until_wall(at: Option<Timestamp>) {
    match at {
        Some(at) => tokio::time::sleep(wall_time_until(at)).await,
        None => std::future::pending().await,
    }
}

/// The end of a maintenance window an error frame announces, if it announces one.
fn maintenance_end(payload: &Payload) -> Option<Timestamp> {
    let (code, seconds) = match payload {
        Payload::ErrorRes(e) => (&e.error_code, e.maintenance_end_timestamp),
        Payload::CommonErrorRes(e) => (
            &e.error_code,
            e.maintenance_end_timestamp
                .and_then(|s| i64::try_from(s).ok()),
        ),
        _ => return None,
    };
    if code != MAINTENANCE_CODE {
        return None;
    }
    seconds
        .filter(|s| *s > 0)
        .and_then(|s| s.checked_mul(1000))
        .map(Timestamp)
}

/// Stops for good: no link, every later request fails, the owner is told why.
fn stop(inner: &Inner, error: BrokerError) {
    // A stop the owner asked for is no error: an operator reading a clean SIGTERM's log must not
    // see one.
    if inner.shutdown.is_cancelled() {
        tracing::info!("cTrader client shut down");
    } else {
        tracing::error!(%error, "cTrader client stopped");
    }
    *lock(&inner.link) = None;
    *lock(&inner.stopped) = Some(error.clone());
    if matches!(
        error,
        BrokerError::TokenRevoked { .. } | BrokerError::TokenRefreshFailed { .. }
    ) {
        inner.emit(BrokerEvent::TokenInvalidated {
            reason: error.to_string(),
        });
    }
    inner.emit(BrokerEvent::Stopped(error));
}

/// The longest time span one deal-list request may cover.
const DEAL_LIST_MAX_SPAN_MS: i64 = 7 * Timestamp::DAY_MS;

impl Broker for CTraderClient {
    async fn resolve_symbol(&self, candidates: &[String]) -> Result<SymbolSpec, BrokerError> {
        let inner = &self.inner;
        if candidates.iter().all(|c| c.trim().is_empty()) {
            return Err(BrokerError::InvalidRequest(
                "no candidate symbol names given".into(),
            ));
        }
        let link = inner.live_link()?;
        let list = inner.symbols_list(&link).await?;
        let found = candidates.iter().find_map(|c| {
            list.symbol.iter().find(|s| {
                s.enabled != Some(false)
                    && s.symbol_name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(c.trim()))
            })
        });
        let Some(light) = found else {
            return Err(BrokerError::SymbolNotFound {
                tried: candidates.to_vec(),
                listed: list.symbol.len(),
            });
        };
        let name = light.symbol_name.clone().unwrap_or_default();
        let symbol = inner
            .symbol_by_id(&link, SymbolId(light.symbol_id), &name)
            .await?;
        convert::symbol_spec(&name, &symbol)
    }

    async fn symbol_state(&self, symbol: SymbolId, name: &str) -> Result<SymbolState, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let full = inner.symbol_by_id(&link, symbol, name).await?;
        let mode = match full.trading_mode {
            None | Some(0) => TradingMode::Enabled,
            Some(3) => TradingMode::CloseOnly,
            Some(_) => TradingMode::Disabled,
        };
        Ok(SymbolState {
            spec: convert::symbol_spec(name, &full)?,
            mode,
        })
    }

    async fn subscribe_quotes(&self, symbol: SymbolId) -> Result<(), BrokerError> {
        let link = self.inner.live_link()?;
        // Remembered first, so a reconnect during the request still resubscribes.
        let added = lock(&self.inner.subscriptions).insert(symbol);
        let result = self.inner.subscribe(&link, vec![symbol]).await;
        if let Err(e) = &result
            && added
            && !e.is_transient()
        {
            lock(&self.inner.subscriptions).remove(&symbol);
        }
        result
    }

    async fn trendbars(
        &self,
        symbol: SymbolId,
        timeframe: Timeframe,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Bar>, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let mut bars = Vec::new();
        for (page_from, page_to) in history::pages(timeframe, from, to) {
            let mut cursor = page_from;
            // Each round either ends the page or moves the cursor forward by at least one bar.
            while cursor < page_to {
                let res: ProtoOaGetTrendbarsRes = inner
                    .call(
                        &link,
                        ProtoOaGetTrendbarsReq {
                            ctid_trader_account_id: inner.account(),
                            from_timestamp: Some(cursor.0),
                            to_timestamp: Some(page_to.0),
                            period: history::period_code(timeframe),
                            symbol_id: symbol.0,
                            ..Default::default()
                        }
                        .into(),
                        "trendbars",
                        RequestClass::Historical,
                    )
                    .await?;
                let mut latest = None;
                for t in &res.trendbar {
                    let bar = history::decode_bar(
                        symbol,
                        timeframe,
                        RawTrendbar {
                            low: t.low.unwrap_or_default(),
                            delta_open: t.delta_open.unwrap_or_default(),
                            delta_high: t.delta_high.unwrap_or_default(),
                            delta_close: t.delta_close.unwrap_or_default(),
                            minutes: t.utc_timestamp_in_minutes.unwrap_or_default(),
                            volume: t.volume,
                        },
                    )?;
                    latest = latest.max(Some(bar.start));
                    bars.push(bar);
                }
                match latest {
                    Some(last) if res.has_more == Some(true) && last >= cursor => {
                        cursor = last.plus_millis(timeframe.millis());
                    }
                    _ => break,
                }
            }
        }
        Ok(history::tidy(bars, from, to))
    }

    async fn place_order(&self, order: &OrderRequest) -> Result<OrderOutcome, BrokerError> {
        crate::broker::check_order(order)?;
        let req = ProtoOaNewOrderReq {
            ctid_trader_account_id: self.inner.account(),
            symbol_id: order.symbol.0,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: convert::trade_side(order.side),
            volume: order.volume.raw(),
            label: Some(order.label.clone()),
            client_order_id: Some(order.client_order_id.as_str().to_owned()),
            relative_stop_loss: order.relative_stop_loss.map(domain::Price::raw),
            relative_take_profit: order.relative_take_profit.map(domain::Price::raw),
            position_id: order.position_to_close.map(|p| p.0),
            // A limited-risk account's broker refuses a new order without it; elsewhere a stop is
            // a market order once touched, and a jump fills it far beyond.
            guaranteed_stop_loss: (self.inner.limited_risk.load(Ordering::Relaxed)
                && order.position_to_close.is_none()
                && order.relative_stop_loss.is_some())
            .then_some(true),
            ..Default::default()
        };
        self.inner
            .execute(
                req.into(),
                "new order",
                format!("order {}", order.client_order_id),
                Some(order.client_order_id.clone()),
            )
            .await
    }

    async fn close_position(
        &self,
        position: PositionId,
        volume: Volume,
    ) -> Result<OrderOutcome, BrokerError> {
        crate::broker::check_close(position, volume)?;
        let req = ProtoOaClosePositionReq {
            ctid_trader_account_id: self.inner.account(),
            position_id: position.0,
            volume: volume.raw(),
            ..Default::default()
        };
        self.inner
            .execute(
                req.into(),
                "close position",
                format!("close of position {position}"),
                None,
            )
            .await
    }

    async fn amend_protection(
        &self,
        position: PositionId,
        protection: Protection,
    ) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        inner.limits.acquire(RequestClass::Ordinary).await;
        let req = ProtoOaAmendPositionSltpReq {
            ctid_trader_account_id: inner.account(),
            position_id: position.0,
            stop_loss: protection.stop_loss.map(domain::Price::to_f64),
            take_profit: protection.take_profit.map(domain::Price::to_f64),
            ..Default::default()
        };
        let envelope = link
            .request(
                req.into(),
                ReplyKind::Execution {
                    client_order_id: None,
                },
                "amend position",
                inner.config.timing.order_timeout,
            )
            .await
            .map_err(RequestFailure::into_error)?;
        if let Some(err) = inner.refusal("amend position", &envelope) {
            return Err(err);
        }
        match &envelope.payload {
            Payload::ExecutionEvent(e)
                if e.execution_type == ProtoOaExecutionType::OrderReplaced as i32 =>
            {
                Ok(())
            }
            Payload::ExecutionEvent(e) => Err(BrokerError::Refused {
                request: "amend position",
                code: e
                    .error_code
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", convert::execution_kind(e.execution_type))),
                description: None,
            }),
            other => Err(BrokerError::Protocol(format!(
                "amend position: unexpected answer {}",
                other.name()
            ))),
        }
    }

    async fn account_currency(&self) -> Result<AccountCurrency, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let trader = inner.trader(&link).await?;
        let money_digits = inner.trader_digits(&trader)?;
        let code = inner.asset_name(&link, trader.deposit_asset_id).await?;
        Ok(AccountCurrency {
            asset_id: trader.deposit_asset_id,
            code,
            money_digits,
        })
    }

    async fn conversion_chain(&self, symbol: SymbolId) -> Result<ConversionChain, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let list = inner.symbols_list(&link).await?;
        let light = list
            .symbol
            .iter()
            .find(|s| s.symbol_id == symbol.0)
            .ok_or_else(|| BrokerError::BadValue(format!("symbol {symbol} is not listed")))?;
        let quote_asset = light.quote_asset_id.ok_or_else(|| {
            BrokerError::BadValue(format!("symbol {symbol} does not name its quote asset"))
        })?;
        let deposit_asset = inner.trader(&link).await?.deposit_asset_id;
        let quote_currency = inner.asset_name(&link, quote_asset).await?;
        if quote_asset == deposit_asset {
            return Ok(ConversionChain::same_currency(quote_currency));
        }
        let res: ProtoOaSymbolsForConversionRes = inner
            .call(
                &link,
                ProtoOaSymbolsForConversionReq {
                    ctid_trader_account_id: inner.account(),
                    first_asset_id: quote_asset,
                    last_asset_id: deposit_asset,
                    ..Default::default()
                }
                .into(),
                "symbols for conversion",
                RequestClass::Ordinary,
            )
            .await?;
        convert::conversion_chain(quote_asset, deposit_asset, quote_currency, &res.symbol)
    }

    async fn unrealized_pnl(&self) -> Result<Vec<PositionPnl>, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let res: ProtoOaGetPositionUnrealizedPnLRes = inner
            .call(
                &link,
                ProtoOaGetPositionUnrealizedPnLReq {
                    ctid_trader_account_id: inner.account(),
                    ..Default::default()
                }
                .into(),
                "position unrealized pnl",
                RequestClass::Ordinary,
            )
            .await?;
        let digits = convert::money(0, Some(res.money_digits), 0)?.digits;
        Ok(res
            .position_unrealized_pn_l
            .iter()
            .map(|p| PositionPnl {
                position: PositionId(p.position_id),
                gross: Money::new(p.gross_unrealized_pn_l, digits),
                net: Money::new(p.net_unrealized_pn_l, digits),
            })
            .collect())
    }

    async fn balance(&self) -> Result<Money, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let trader = inner.trader(&link).await?;
        Ok(Money::new(trader.balance, inner.trader_digits(&trader)?))
    }

    async fn open_state(&self) -> Result<OpenState, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let res: ProtoOaReconcileRes = inner
            .call(
                &link,
                ProtoOaReconcileReq {
                    ctid_trader_account_id: inner.account(),
                    return_protection_orders: Some(false),
                    ..Default::default()
                }
                .into(),
                "reconcile",
                RequestClass::Ordinary,
            )
            .await?;
        let digits = inner.money_digits.load(Ordering::Relaxed);
        // Fail closed: one position we cannot read makes the whole answer unusable.
        Ok(OpenState {
            positions: res
                .position
                .iter()
                .map(|p| convert::position(p, digits))
                .collect::<Result<_, _>>()?,
            orders: res
                .order
                .iter()
                .filter(|o| !convert::is_protection_order(o))
                .map(convert::pending_order)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn deals(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Fill>, BrokerError> {
        let inner = &self.inner;
        let link = inner.live_link()?;
        let digits = inner.money_digits.load(Ordering::Relaxed);
        let mut fills: Vec<Fill> = Vec::new();
        // A deal does not carry the client order id of the order that made it; the order list of
        // the same range does, so it is asked once per window and joined on the order id.
        let mut client_order_ids: HashMap<i64, ClientOrderId> = HashMap::new();
        let mut window_start = from;
        // Asked one week at a time (the most a deal-list request may span); the broker answers each
        // window in chunks (`hasMore`), and every round must move the cursor forward.
        while window_start < to {
            let window_end = to.min(window_start.plus_millis(DEAL_LIST_MAX_SPAN_MS));
            let mut cursor = window_start;
            loop {
                let res: ProtoOaDealListRes = inner
                    .call(
                        &link,
                        ProtoOaDealListReq {
                            ctid_trader_account_id: inner.account(),
                            from_timestamp: Some(cursor.0),
                            to_timestamp: Some(window_end.0),
                            ..Default::default()
                        }
                        .into(),
                        "deal list",
                        RequestClass::Historical,
                    )
                    .await?;
                for deal in &res.deal {
                    if let Some(fill) = convert::fill(deal, None, None, digits)? {
                        fills.push(fill);
                    }
                }
                if !res.has_more {
                    break;
                }
                // Continue from the newest deal seen (inclusive: deal ids dedupe the edge).
                match res.deal.iter().map(|d| d.execution_timestamp).max() {
                    Some(last) if last > cursor.0 => cursor = Timestamp(last),
                    _ => {
                        return Err(BrokerError::Protocol(
                            "deal list says it has more but does not advance".into(),
                        ));
                    }
                }
            }
            inner
                .order_client_ids(&link, window_start, window_end, &mut client_order_ids)
                .await?;
            window_start = window_end;
        }
        fills.retain(|f| from <= f.time && f.time < to);
        fills.sort_by_key(|f| (f.time, f.deal_id));
        fills.dedup_by_key(|f| f.deal_id);
        for fill in &mut fills {
            if fill.client_order_id.is_none() {
                fill.client_order_id = client_order_ids.get(&fill.order_id).cloned();
            }
        }
        Ok(fills)
    }

    fn take_events(&self) -> Option<BrokerEvents> {
        lock(&self.inner.receiver).take().map(BrokerEvents::new)
    }
}
