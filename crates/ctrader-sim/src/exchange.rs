//! The simulated broker's whole state, shared by every connection for the life of the process:
//! the market, the broker's books and the tokens it accepts.

use domain::{Secret, Timestamp};

use crate::broker::{Broker, Execution};
use crate::market::{Market, STEP_MS, SpotUpdate};
use crate::prices::{PriceDriver, PriceSource, ReplayPath, SyntheticPath, TwoSided, load_ohlc_csv};
use crate::rng::SimRng;
use crate::rollover;
use crate::symbols::{PALM_OIL_SYMBOL_ID, catalog};
use crate::{SimConfig, SimError};

/// Stream number of the token generator, apart from the price paths' streams (symbol ids).
const TOKEN_STREAM: u64 = 0x70CE_0000;

/// The tokens the broker currently accepts, and how new ones are made.
#[derive(Debug)]
pub(crate) struct TokenBook {
    access: Secret,
    refresh: Secret,
    accounts: Vec<i64>,
    rng: SimRng,
    /// When the current access token was issued (real time) and how long it works.
    issued: std::time::Instant,
    lifetime: std::time::Duration,
    /// Whether its expiry was already announced to the sessions using it.
    expiry_announced: bool,
}

/// What a successful token refresh changed.
#[derive(Debug, Clone)]
pub(crate) struct Refreshed {
    /// The token that no longer works.
    pub(crate) old_access: Secret,
    /// Its replacement.
    pub(crate) access: Secret,
    /// The next refresh token.
    pub(crate) refresh: Secret,
    /// Accounts the token covers.
    pub(crate) accounts: Vec<i64>,
}

impl TokenBook {
    /// True when `token` is the current access token and has not expired.
    pub(crate) fn is_valid(&self, token: &str) -> bool {
        !token.is_empty() && token == self.access.expose() && !self.is_expired()
    }

    fn is_expired(&self) -> bool {
        self.issued.elapsed() >= self.lifetime
    }

    /// The access token that expired since the last call, with its accounts, once per token.
    pub(crate) fn newly_expired(&mut self) -> Option<(Secret, Vec<i64>)> {
        if self.expiry_announced || !self.is_expired() {
            return None;
        }
        self.expiry_announced = true;
        Some((self.access.clone(), self.accounts.clone()))
    }

    /// Seconds a new access token works (the refresh's `expires_in`).
    pub(crate) fn lifetime_seconds(&self) -> i64 {
        i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX)
    }

    /// Accounts `token` may trade, empty when it is not valid.
    pub(crate) fn accounts(&self, token: &str) -> Vec<i64> {
        if self.is_valid(token) {
            self.accounts.clone()
        } else {
            Vec::new()
        }
    }

    /// Trades the refresh token for new tokens; the old access token stops working.
    pub(crate) fn refresh(&mut self, refresh_token: &str) -> Option<Refreshed> {
        if refresh_token.is_empty() || refresh_token != self.refresh.expose() {
            return None;
        }
        let access = Secret::new(format!(
            "sim-access-{:016x}{:016x}",
            self.rng.next_u64(),
            self.rng.next_u64()
        ));
        let refresh = Secret::new(format!(
            "sim-refresh-{:016x}{:016x}",
            self.rng.next_u64(),
            self.rng.next_u64()
        ));
        let old_access = std::mem::replace(&mut self.access, access.clone());
        self.refresh.clone_from(&refresh);
        self.issued = std::time::Instant::now();
        self.expiry_announced = false;
        Some(Refreshed {
            old_access,
            access,
            refresh,
            accounts: self.accounts.clone(),
        })
    }
}

/// Market, books and tokens.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) market: Market,
    pub(crate) broker: Broker,
    pub(crate) tokens: TokenBook,
    /// When open positions are next charged their swap.
    next_rollover: Timestamp,
}

impl Exchange {
    /// Builds the exchange and runs the price paths through `config.history` so charts have data.
    /// `wall_clock` is "now" for a synthetic start without a configured start time.
    pub(crate) fn new(config: &SimConfig, wall_clock: Timestamp) -> Result<Exchange, SimError> {
        config.validate()?;
        let mut symbols = catalog(&config.palm_oil_symbol, &config.market_hours);
        if config.sessions_follow_zone {
            let zone = crate::wire::time_zone(&config.schedule_time_zone);
            for symbol in &mut symbols {
                symbol.session_zone.clone_from(&zone);
            }
        }
        let history_ms = i64::try_from(config.history.as_millis()).unwrap_or(i64::MAX);
        // Validated: a whole number of milliseconds from 1 ms to a minute.
        let step_ms = i64::try_from(config.quote_step.as_millis()).unwrap_or(STEP_MS);
        let mut replay = None;
        if let PriceSource::Csv(path) = &config.prices {
            replay = Some(ReplayPath::new(&load_ohlc_csv(path)?));
        }
        let start = match (&replay, config.start_time) {
            (_, Some(start)) => start,
            (Some(path), None) => path.first_time().plus_millis(history_ms),
            (None, None) => wall_clock,
        };
        let mut drivers = Vec::with_capacity(symbols.len());
        for symbol in &symbols {
            let stream = symbol.id.unsigned_abs();
            let driver = match (&replay, symbol.id == PALM_OIL_SYMBOL_ID) {
                (Some(path), true) => PriceDriver::Replay {
                    path: path.clone(),
                    tick: symbol.tick(),
                    spread_ticks: symbol.model.spread_quiet_ticks,
                },
                _ => PriceDriver::Synthetic(
                    SyntheticPath::new(symbol.model.clone(), config.seed, stream)
                        .with_step(step_ms as f64 / 1000.0),
                ),
            };
            drivers.push((symbol.clone(), driver));
        }
        let mut market =
            Market::new(drivers, Timestamp(start.0.saturating_sub(history_ms))).with_step(step_ms);
        // Nothing is open during the warm-up, so only the final quotes matter to the broker.
        market.advance(start, |_| {});
        if config.every_quote {
            market.publish_every_quote();
        }
        let mut broker = Broker::new(&symbols);
        for symbol in &symbols {
            if let Some((quote, at)) = market.last_quote(symbol.id) {
                broker.on_quote(symbol.id, quote, at);
            }
        }
        let account_id = config.credentials.account_id;
        broker.open_account(
            account_id,
            config.initial_balance,
            config.money_digits,
            config.account_currency.asset_id(),
            start,
        );
        broker.set_limited_risk(account_id, config.limited_risk_account);
        let tokens = TokenBook {
            access: config.credentials.access_token.clone(),
            refresh: config.credentials.refresh_token.clone(),
            accounts: vec![account_id],
            rng: SimRng::new(config.seed, TOKEN_STREAM),
            issued: std::time::Instant::now(),
            lifetime: config.token_lifetime,
            expiry_announced: false,
        };
        Ok(Exchange {
            market,
            broker,
            tokens,
            next_rollover: rollover::next_rollover(start),
        })
    }

    /// Simulated now.
    pub(crate) fn now(&self) -> Timestamp {
        self.market.now()
    }

    /// Moves the market to `to`, marking every position to market on each price and charging swap
    /// at each daily rollover passed; returns the execution reports the prices and rollovers
    /// triggered and the spot updates to publish.
    pub(crate) fn advance(&mut self, to: Timestamp) -> (Vec<Execution>, Vec<SpotUpdate>) {
        let mut reports = Vec::new();
        loop {
            let rolls = self.next_rollover <= to;
            let until = if rolls { self.next_rollover } else { to };
            let broker = &mut self.broker;
            self.market.advance(until, |tick| {
                reports.extend(broker.on_quote(tick.symbol_id, tick.quote, tick.at));
            });
            if !rolls {
                break;
            }
            reports.extend(self.broker.roll_over(self.next_rollover));
            self.next_rollover = rollover::next_rollover(self.next_rollover);
        }
        (reports, self.market.take_spot_updates())
    }

    /// Sets a symbol's quote now (a test holding prices); returns what it triggered and the spot to
    /// publish, or `None` for an unknown symbol or a bad quote.
    pub(crate) fn set_quote(
        &mut self,
        symbol_id: i64,
        bid: i64,
        ask: i64,
    ) -> Option<(Vec<Execution>, Vec<SpotUpdate>)> {
        let tick = self.market.set_quote(symbol_id, TwoSided { bid, ask })?;
        let reports = self.broker.on_quote(tick.symbol_id, tick.quote, tick.at);
        Some((reports, self.market.take_spot_updates()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MarketHours;
    use crate::broker::{ExecutionKind, NewOrder, OrderKind};
    use domain::Side;
    use std::time::Duration;

    /// Monday 2025-11-24 03:00 UTC, inside the palm oil morning session.
    const MONDAY_0300: Timestamp = Timestamp(1_763_953_200_000);

    fn config() -> SimConfig {
        SimConfig {
            start_time: Some(MONDAY_0300),
            history: Duration::from_secs(86_400),
            market_hours: MarketHours::AlwaysOpen,
            ..SimConfig::default()
        }
    }

    #[test]
    fn warm_up_gives_quotes_and_history() {
        let exchange = Exchange::new(&config(), Timestamp(0)).unwrap();
        assert_eq!(exchange.now(), MONDAY_0300);
        let quote = exchange.broker.quote(PALM_OIL_SYMBOL_ID).unwrap();
        assert!(quote.bid > 300_000_000 && quote.bid < 500_000_000);
        let m1 = crate::bars::BarPeriod::from_code(1).unwrap();
        let bars = exchange.market.bars(PALM_OIL_SYMBOL_ID).unwrap().history(
            m1,
            Timestamp(MONDAY_0300.0 - 86_400_000),
            MONDAY_0300,
        );
        assert!(bars.len() > 1_000, "a day of minute bars, {}", bars.len());
    }

    #[test]
    fn positions_are_marked_to_market_as_time_passes() {
        let mut exchange = Exchange::new(&config(), Timestamp(0)).unwrap();
        let account = SimConfig::default().credentials.account_id;
        let order = NewOrder {
            account,
            symbol_id: PALM_OIL_SYMBOL_ID,
            kind: OrderKind::Market,
            side: Side::Buy,
            volume: 100,
            limit_price: None,
            stop_price: None,
            stop_loss: None,
            take_profit: None,
            relative_stop_loss: Some(100_000),
            relative_take_profit: Some(100_000),
            label: None,
            comment: None,
            client_order_id: None,
            position_id: None,
            time_in_force: None,
            guaranteed_stop_loss: false,
        };
        exchange.broker.place_order(order, exchange.now()).unwrap();
        // A one-tick stop and target: the path hits one of them within minutes.
        let mut closed = false;
        for minute in 1..=120 {
            let (reports, _) = exchange.advance(MONDAY_0300.plus_millis(minute * 60_000));
            if reports
                .iter()
                .any(|r| r.deal.as_ref().is_some_and(|d| d.close.is_some()))
            {
                closed = true;
                break;
            }
        }
        assert!(closed);
        assert!(exchange.broker.reconcile(account).0.is_empty());
    }

    #[test]
    fn a_market_closed_through_the_whole_history_still_has_a_last_price() {
        // Saturday noon with an hour of history: every realistic market was closed all along.
        let saturday_noon = MONDAY_0300.plus_millis(5 * 86_400_000 + 9 * 3_600_000);
        let config = SimConfig {
            start_time: Some(saturday_noon),
            history: Duration::from_secs(3600),
            market_hours: MarketHours::Realistic,
            ..SimConfig::default()
        };
        let exchange = Exchange::new(&config, Timestamp(0)).unwrap();
        let usdmyr = exchange
            .broker
            .quote(crate::symbols::USD_MYR_SYMBOL_ID)
            .unwrap();
        assert!((400_000..500_000).contains(&usdmyr.bid), "{usdmyr:?}");
        let palm = exchange.broker.symbol(PALM_OIL_SYMBOL_ID).unwrap();
        assert!(
            exchange
                .broker
                .quote_to_deposit(palm, config.credentials.account_id)
                .is_some(),
            "palm oil converts at USDMYR's last price"
        );
    }

    #[test]
    fn a_position_held_across_the_rollover_is_charged_swap_once() {
        // Monday 21:59 UTC: the rollover is a minute away.
        let start = MONDAY_0300.plus_millis(18 * 3_600_000 + 59 * 60_000);
        let config = SimConfig {
            start_time: Some(start),
            ..config()
        };
        let mut exchange = Exchange::new(&config, Timestamp(0)).unwrap();
        let account = config.credentials.account_id;
        let order = NewOrder {
            account,
            symbol_id: PALM_OIL_SYMBOL_ID,
            kind: OrderKind::Market,
            side: Side::Buy,
            volume: 1_000,
            limit_price: None,
            stop_price: None,
            stop_loss: None,
            take_profit: None,
            relative_stop_loss: None,
            relative_take_profit: None,
            label: None,
            comment: None,
            client_order_id: None,
            position_id: None,
            time_in_force: None,
            guaranteed_stop_loss: false,
        };
        exchange.broker.place_order(order, exchange.now()).unwrap();
        let (reports, _) = exchange.advance(start.plus_millis(59_000));
        assert!(reports.iter().all(|r| r.kind != ExecutionKind::Swap));
        let (reports, _) = exchange.advance(start.plus_millis(120_000));
        let swaps: Vec<_> = reports
            .iter()
            .filter(|r| r.kind == ExecutionKind::Swap)
            .collect();
        assert_eq!(swaps.len(), 1, "{reports:?}");
        let charged = swaps[0].position.as_ref().unwrap().swap;
        // 10 t × ~4000 MYR × 6 % / 360 ≈ 6.7 MYR ≈ 1.5 USD, paid by the long.
        assert!((-200..=-100).contains(&charged), "{charged}");
        assert!(swaps[0].server_event);
        let (reports, _) = exchange.advance(start.plus_millis(3_600_000));
        assert!(
            reports.iter().all(|r| r.kind != ExecutionKind::Swap),
            "once a day"
        );
    }

    #[test]
    fn tokens_refresh_and_the_old_one_dies() {
        let mut exchange = Exchange::new(&config(), Timestamp(0)).unwrap();
        let credentials = SimConfig::default().credentials;
        let old = credentials.access_token.expose();
        assert!(exchange.tokens.is_valid(old));
        assert!(exchange.tokens.refresh("wrong").is_none());
        let refreshed = exchange
            .tokens
            .refresh(credentials.refresh_token.expose())
            .unwrap();
        assert_eq!(refreshed.old_access.expose(), old);
        assert!(!exchange.tokens.is_valid(old));
        assert!(exchange.tokens.is_valid(refreshed.access.expose()));
        assert_eq!(
            exchange.tokens.accounts(refreshed.access.expose()),
            vec![credentials.account_id]
        );
        assert!(
            exchange
                .tokens
                .refresh(credentials.refresh_token.expose())
                .is_none(),
            "refresh tokens are single-use"
        );
        let debug = format!("{exchange:?}");
        assert!(
            !debug.contains(refreshed.access.expose()),
            "tokens never print"
        );
        assert!(!debug.contains(refreshed.refresh.expose()));
    }

    #[test]
    fn replay_starts_at_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fcpo.csv");
        std::fs::write(
            &path,
            "time,open,high,low,close\n2025-11-24 02:30,4100,4110,4095,4105\n2025-11-24 02:31,4105,4106,4090,4091\n",
        )
        .unwrap();
        let config = SimConfig {
            prices: PriceSource::Csv(path.clone()),
            history: Duration::from_secs(60),
            market_hours: MarketHours::AlwaysOpen,
            ..SimConfig::default()
        };
        let exchange = Exchange::new(&config, Timestamp(0)).unwrap();
        assert_eq!(exchange.now().to_string(), "2025-11-24T02:31:00.000Z");
        let quote = exchange.broker.quote(PALM_OIL_SYMBOL_ID).unwrap();
        assert_eq!(quote.bid, 410_400_000, "4105 mid, 2-tick spread");
        let missing = SimConfig {
            prices: PriceSource::Csv(dir.path().join("missing.csv")),
            ..config
        };
        assert!(matches!(
            Exchange::new(&missing, Timestamp(0)).unwrap_err(),
            SimError::PriceFileIo { .. }
        ));
    }
}
