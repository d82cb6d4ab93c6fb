//! The broker state machine: accounts, orders, positions and deals, marked to market on every
//! price. Pure: time and prices come in as arguments; it never awaits and never touches a socket.

mod model;
mod money;

use std::collections::{BTreeMap, HashMap};

use domain::{Side, Timestamp};

pub(crate) use model::{
    Account, CloseDetail, Deal, Execution, ExecutionKind, NewOrder, Order, OrderKind, OrderState,
    Position, PositionState, RejectAs, Rejection,
};

use crate::conversion::{self, ChainError, Rate};
use crate::faults::PartialFills;
use crate::prices::TwoSided;
use crate::rollover;
use crate::symbols::{SimAsset, SimSymbol, assets};

/// First ids handed out, shaped like a real server's.
const FIRST_POSITION_ID: i64 = 900_001;
const FIRST_ORDER_ID: i64 = 800_001;
const FIRST_DEAL_ID: i64 = 700_001;
/// cTrader's limits on the strings attached to an order.
const MAX_LABEL_LEN: usize = 100;
const MAX_CLIENT_ORDER_ID_LEN: usize = 50;
const MAX_COMMENT_LEN: usize = 512;

/// Who closes a position, which decides the order type and whether it is a server event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// The trader asked (ClosePositionReq, or an opposite order naming the position).
    Trader,
    /// The stop loss or take profit was hit.
    Protection,
    /// Someone closed it outside this API (a person in the cTrader app).
    Elsewhere,
    /// The broker closed it because the account's margin level fell below the stop-out level.
    StopOut,
}

/// The margin level (equity / used margin, percent) below which the broker closes positions.
pub(crate) const STOP_OUT_LEVEL_PERCENT: i64 = 50;

/// A position's profit if it closed now, in the account's deposit currency (minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnrealizedPnl {
    /// The position.
    pub(crate) position_id: i64,
    /// Price move only: closing-side price against the entry, × volume × conversion rate.
    pub(crate) gross: i64,
    /// Gross plus the swap and the commission already on the position (not the closing commission).
    pub(crate) net: i64,
}

/// Every account, order, position and deal of the simulated broker.
#[derive(Debug)]
pub(crate) struct Broker {
    symbols: BTreeMap<i64, SimSymbol>,
    assets: Vec<SimAsset>,
    quotes: HashMap<i64, TwoSided>,
    accounts: BTreeMap<i64, Account>,
    orders: BTreeMap<i64, Order>,
    positions: BTreeMap<i64, Position>,
    deals: Vec<Deal>,
    next_order_id: i64,
    next_position_id: i64,
    next_deal_id: i64,
    /// How the trader's market orders fill (whole, or in parts).
    partial_fills: PartialFills,
    /// Symbols whose `tradingMode` is not ENABLED (0), by id: 1 and 2 refuse every order, 3
    /// (CLOSE_ONLY_MODE) refuses all but closes.
    trading_modes: HashMap<i64, i32>,
}

impl Broker {
    /// A broker trading `symbols`, with no accounts yet.
    pub(crate) fn new(symbols: &[SimSymbol]) -> Broker {
        Broker {
            symbols: symbols.iter().map(|s| (s.id, s.clone())).collect(),
            assets: assets(),
            quotes: HashMap::new(),
            accounts: BTreeMap::new(),
            orders: BTreeMap::new(),
            positions: BTreeMap::new(),
            deals: Vec::new(),
            next_order_id: FIRST_ORDER_ID,
            next_position_id: FIRST_POSITION_ID,
            next_deal_id: FIRST_DEAL_ID,
            partial_fills: PartialFills::Off,
            trading_modes: HashMap::new(),
        }
    }

    /// A symbol's `ProtoOATradingMode` (0 ENABLED, 1 and 2 DISABLED, 3 CLOSE_ONLY_MODE).
    pub(crate) fn trading_mode(&self, symbol_id: i64) -> i32 {
        self.trading_modes.get(&symbol_id).copied().unwrap_or(0)
    }

    /// Sets a symbol's trading mode; false when the symbol or the mode is unknown.
    pub(crate) fn set_trading_mode(&mut self, symbol_id: i64, mode: i32) -> bool {
        if !self.symbols.contains_key(&symbol_id) || !(0..=3).contains(&mode) {
            return false;
        }
        if mode == 0 {
            self.trading_modes.remove(&symbol_id);
        } else {
            self.trading_modes.insert(symbol_id, mode);
        }
        true
    }

    /// Changes a symbol's minimum volume (a multiple of its step, at most its maximum); false when
    /// the symbol is unknown or the volume does not fit.
    pub(crate) fn set_min_volume(&mut self, symbol_id: i64, min_volume: i64) -> bool {
        match self.symbols.get_mut(&symbol_id) {
            Some(s)
                if min_volume > 0
                    && min_volume <= s.max_volume
                    && min_volume % s.step_volume.max(1) == 0 =>
            {
                s.min_volume = min_volume;
                true
            }
            _ => false,
        }
    }

    /// Deposits (`delta` > 0) or withdraws (`delta` < 0) money, in the account's minor units: the
    /// balance and its version move; a withdrawal beyond the balance is refused. The account after.
    pub(crate) fn change_balance(
        &mut self,
        account: i64,
        delta: i64,
    ) -> Result<Account, Rejection> {
        let stored = self.accounts.get_mut(&account).ok_or_else(|| {
            Rejection::error_res(
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                "Trading account not found",
            )
        })?;
        let balance = stored
            .balance
            .checked_add(delta)
            .filter(|b| *b >= 0)
            .ok_or_else(|| {
                Rejection::order_error(
                    "NOT_ENOUGH_MONEY",
                    format!(
                        "Cannot withdraw {} from a balance of {}",
                        -delta, stored.balance
                    ),
                )
            })?;
        stored.balance = balance;
        stored.balance_version += 1;
        Ok(stored.clone())
    }

    /// Changes the digits of the account's money (0 to 8): the balance and every open position's
    /// swap, commission and margin are rescaled (rounded toward zero when digits are dropped).
    pub(crate) fn set_money_digits(&mut self, account: i64, digits: u32) -> Option<Account> {
        if digits > 8 {
            return None;
        }
        let stored = self.accounts.get_mut(&account)?;
        let from = stored.money_digits;
        let rescale = |amount: i64| -> i64 {
            if digits >= from {
                amount.saturating_mul(10_i64.pow(digits - from))
            } else {
                amount / 10_i64.pow(from - digits)
            }
        };
        stored.balance = rescale(stored.balance);
        stored.money_digits = digits;
        stored.balance_version += 1;
        let after = stored.clone();
        for p in self.positions.values_mut().filter(|p| p.account == account) {
            p.swap = rescale(p.swap);
            p.commission = rescale(p.commission);
            p.used_margin = rescale(p.used_margin);
            p.money_digits = digits;
        }
        Some(after)
    }

    /// Hands out an order id without placing an order (for an order the server refuses after
    /// accepting it).
    pub(crate) fn reserve_order_id(&mut self) -> i64 {
        self.take_order_id()
    }

    /// Sets how the trader's market orders fill from now on.
    pub(crate) fn set_partial_fills(&mut self, mode: PartialFills) {
        self.partial_fills = mode;
    }

    /// Opens an account holding `balance` minor units of the asset `deposit_asset_id`.
    pub(crate) fn open_account(
        &mut self,
        id: i64,
        balance: i64,
        money_digits: u32,
        deposit_asset_id: i64,
        now: Timestamp,
    ) {
        self.accounts.insert(
            id,
            Account {
                id,
                trader_login: 1_000_000 + id.rem_euclid(9_000_000),
                balance,
                balance_version: 1,
                deposit_asset_id,
                money_digits,
                leverage_in_cents: 10_000,
                registered: now,
                last_closing_deal: None,
                limited_risk: false,
            },
        );
    }

    /// Makes the account limited-risk (`isLimitedRisk`) or not.
    pub(crate) fn set_limited_risk(&mut self, id: i64, limited_risk: bool) {
        if let Some(account) = self.accounts.get_mut(&id) {
            account.limited_risk = limited_risk;
        }
    }

    /// The account, if it exists.
    pub(crate) fn account(&self, id: i64) -> Option<&Account> {
        self.accounts.get(&id)
    }

    /// The symbols, by id.
    pub(crate) fn symbols(&self) -> impl Iterator<Item = &SimSymbol> {
        self.symbols.values()
    }

    /// One symbol.
    pub(crate) fn symbol(&self, id: i64) -> Option<&SimSymbol> {
        self.symbols.get(&id)
    }

    /// The latest quote of a symbol.
    pub(crate) fn quote(&self, symbol_id: i64) -> Option<TwoSided> {
        self.quotes.get(&symbol_id).copied()
    }

    /// Every asset, by id.
    pub(crate) fn assets(&self) -> &[SimAsset] {
        &self.assets
    }

    /// The symbols converting asset `from` into asset `to` (`ProtoOASymbolsForConversionRes`).
    pub(crate) fn conversion_chain(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<&SimSymbol>, ChainError> {
        let known: Vec<i64> = self.assets.iter().map(|a| a.id).collect();
        conversion::chain(&self.symbols, &known, from, to)
    }

    /// The rate turning `symbol`'s quote currency into the deposit currency of `account`, at the
    /// chain symbols' latest quotes; `None` when the account is unknown or a chain symbol has no quote.
    pub(crate) fn quote_to_deposit(&self, symbol: &SimSymbol, account: i64) -> Option<Rate> {
        let deposit = self.accounts.get(&account)?.deposit_asset_id;
        let chain = self.conversion_chain(symbol.quote_asset_id, deposit).ok()?;
        conversion::rate_along(symbol.quote_asset_id, &chain, |id| self.quote(id))
    }

    /// [`Broker::quote_to_deposit`], or the refusal a trade without a rate gets.
    fn rate_or_refuse(&self, symbol: &SimSymbol, account: i64) -> Result<Rate, Rejection> {
        self.quote_to_deposit(symbol, account).ok_or_else(|| {
            Rejection::order_error(
                "NO_QUOTES",
                format!(
                    "No quotes to convert {} profit into the account's currency",
                    symbol.name
                ),
            )
        })
    }

    /// The unrealised profit of each open position of `account` at the latest quotes, oldest first
    /// (`ProtoOAGetPositionUnrealizedPnLRes`); a position without a quote or rate is left out.
    pub(crate) fn unrealized(&self, account: i64) -> Vec<UnrealizedPnl> {
        let Some(money_digits) = self.accounts.get(&account).map(|a| a.money_digits) else {
            return Vec::new();
        };
        self.positions
            .values()
            .filter(|p| p.account == account && p.state == PositionState::Open)
            .filter_map(|p| {
                let symbol = self.symbols.get(&p.symbol_id)?;
                let quote = self.quote(p.symbol_id)?;
                let rate = self.quote_to_deposit(symbol, account)?;
                let gross = money::gross_profit(
                    p.side,
                    p.open_price,
                    exit_price(p.side, quote),
                    p.volume,
                    rate,
                    money_digits,
                );
                Some(UnrealizedPnl {
                    position_id: p.id,
                    gross,
                    net: gross.saturating_add(p.swap).saturating_add(p.commission),
                })
            })
            .collect()
    }

    /// The daily rollover at `at`: every open position is charged (or paid) its swap for the
    /// nights it covers, at the latest quotes; one SWAP execution report per position changed.
    pub(crate) fn roll_over(&mut self, at: Timestamp) -> Vec<Execution> {
        let mut charges = Vec::new();
        for p in self.positions.values() {
            if p.state != PositionState::Open {
                continue;
            }
            let (Some(symbol), Some(quote)) =
                (self.symbols.get(&p.symbol_id), self.quote(p.symbol_id))
            else {
                continue;
            };
            let Some(rate) = self.quote_to_deposit(symbol, p.account) else {
                tracing::warn!(position = p.id, symbol = %symbol.name, "no conversion rate at the rollover: swap skipped");
                continue;
            };
            let mid = (quote.bid + quote.ask) / 2;
            let nights = rollover::nights(at, symbol.swap.triple_day);
            let amount = money::swap(symbol, p.side, p.volume, mid, nights, rate, p.money_digits);
            if amount != 0 {
                charges.push((p.id, amount));
            }
        }
        let mut reports = Vec::with_capacity(charges.len());
        for (id, amount) in charges {
            let Some(position) = self.positions.get_mut(&id) else {
                continue;
            };
            position.swap = position.swap.saturating_add(amount);
            position.updated = at;
            reports.push(Execution {
                account: position.account,
                kind: ExecutionKind::Swap,
                position: Some(position.clone()),
                order: None,
                deal: None,
                server_event: true,
                error_code: None,
            });
        }
        reports
    }

    /// Open positions and working orders of an account (ReconcileRes).
    pub(crate) fn reconcile(&self, account: i64) -> (Vec<Position>, Vec<Order>) {
        let positions = self
            .positions
            .values()
            .filter(|p| p.account == account && p.state == PositionState::Open)
            .cloned()
            .collect();
        let orders = self
            .orders
            .values()
            .filter(|o| o.account == account && o.state == OrderState::Accepted && !o.closing)
            .filter(|o| matches!(o.kind, OrderKind::Limit | OrderKind::Stop))
            .cloned()
            .collect();
        (positions, orders)
    }

    /// Deals of an account executed within `[from, to]`, oldest first; at most `max_rows` (the
    /// latest ones), and whether more matched.
    pub(crate) fn deals(
        &self,
        account: i64,
        from: Timestamp,
        to: Timestamp,
        max_rows: Option<usize>,
    ) -> (Vec<Deal>, bool) {
        let matching: Vec<&Deal> = self
            .deals
            .iter()
            .filter(|d| d.account == account && d.executed >= from && d.executed <= to)
            .collect();
        let limit = max_rows.unwrap_or(usize::MAX);
        let skip = matching.len().saturating_sub(limit);
        (
            matching[skip..].iter().map(|d| (*d).clone()).collect(),
            skip > 0,
        )
    }

    /// Orders of an account created or last changed within `[from, to)` (OrderListRes), oldest
    /// first, whatever their state: unlike deals they carry the client's order id and label.
    pub(crate) fn orders_in(&self, account: i64, from: Timestamp, to: Timestamp) -> Vec<Order> {
        let within = |t: Timestamp| from <= t && t < to;
        let mut orders: Vec<Order> = self
            .orders
            .values()
            .filter(|o| o.account == account && (within(o.created) || within(o.updated)))
            .cloned()
            .collect();
        orders.sort_by_key(|o| (o.created, o.id));
        orders
    }

    /// Every deal of every account, oldest first (for test inspection).
    pub(crate) fn all_deals(&self) -> &[Deal] {
        &self.deals
    }

    /// The order with this id, working or finished.
    pub(crate) fn order(&self, id: i64) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// The open position with this id, if any (for fault injection and tests).
    pub(crate) fn open_position(&self, id: i64) -> Option<&Position> {
        self.positions
            .get(&id)
            .filter(|p| p.state == PositionState::Open)
    }

    /// Ids of all open positions, oldest first.
    pub(crate) fn open_position_ids(&self) -> Vec<i64> {
        self.positions
            .values()
            .filter(|p| p.state == PositionState::Open)
            .map(|p| p.id)
            .collect()
    }

    /// Places an order: rejections come back as `Err`, accepted orders as their execution reports.
    pub(crate) fn place_order(
        &mut self,
        req: NewOrder,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let symbol = self
            .symbols
            .get(&req.symbol_id)
            .ok_or_else(|| Rejection::error_res("SYMBOL_NOT_FOUND", "Symbol not found"))?
            .clone();
        let account = self
            .accounts
            .get(&req.account)
            .ok_or_else(|| {
                Rejection::error_res(
                    "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                    "Trading account not found",
                )
            })?
            .clone();
        check_strings(&req)?;
        match self.trading_mode(symbol.id) {
            0 => {}
            3 if req.position_id.is_some() => {}
            _ => {
                return Err(Rejection::order_error(
                    "TRADING_DISABLED",
                    format!("Trading is disabled for {}", symbol.name),
                ));
            }
        }
        if let Some(position_id) = req.position_id {
            return self.order_against_position(&req, position_id, now);
        }
        check_volume(&symbol, req.volume)?;
        match req.kind {
            OrderKind::Market => {
                if req.stop_loss.is_some() || req.take_profit.is_some() {
                    return Err(Rejection::error_res(
                        "INVALID_REQUEST",
                        "SL/TP in absolute values are allowed only for order types: [LIMIT, STOP, STOP_LIMIT]",
                    ));
                }
            }
            OrderKind::Limit if req.limit_price.is_none() => {
                return Err(Rejection::error_res(
                    "INVALID_REQUEST",
                    "Limit price is required for a LIMIT order",
                ));
            }
            OrderKind::Stop if req.stop_price.is_none() => {
                return Err(Rejection::error_res(
                    "INVALID_REQUEST",
                    "Stop price is required for a STOP order",
                ));
            }
            OrderKind::Limit | OrderKind::Stop => {}
            OrderKind::StopLossTakeProfit => {
                return Err(Rejection::error_res(
                    "INVALID_REQUEST",
                    "Order type is not supported",
                ));
            }
        }
        if req.relative_stop_loss.is_some_and(|d| d <= 0)
            || req.relative_take_profit.is_some_and(|d| d <= 0)
        {
            return Err(Rejection::order_error(
                "TRADING_BAD_STOPS",
                "Relative stop loss and take profit must be positive",
            ));
        }
        check_guaranteed_stop(&account, &symbol, &req)?;
        if !symbol.is_open(now) {
            return Err(Rejection::order_error("MARKET_CLOSED", "Market is closed"));
        }
        let quote = self
            .quotes
            .get(&symbol.id)
            .copied()
            .ok_or_else(|| Rejection::order_error("NO_QUOTES", "No quotes for the symbol"))?;
        let reference = match req.kind {
            OrderKind::Limit => req.limit_price.unwrap_or_default(),
            OrderKind::Stop => req.stop_price.unwrap_or_default(),
            _ => entry_price(req.side, quote),
        };
        if reference <= 0 {
            return Err(Rejection::error_res(
                "TRADING_BAD_PRICES",
                "Price must be positive",
            ));
        }
        let rate = self.rate_or_refuse(&symbol, account.id)?;
        self.check_margin(&account, &symbol, req.volume, reference, rate)?;

        let order_id = self.take_order_id();
        let order = Order {
            id: order_id,
            account: req.account,
            symbol_id: symbol.id,
            side: req.side,
            volume: req.volume,
            kind: req.kind,
            state: OrderState::Accepted,
            label: req.label.clone(),
            comment: req.comment.clone(),
            client_order_id: req.client_order_id.clone(),
            position_id: None,
            limit_price: req.limit_price.map(|p| symbol.to_grid(p)),
            stop_price: req.stop_price.map(|p| symbol.to_grid(p)),
            stop_loss: req.stop_loss.map(|p| symbol.to_grid(p)),
            take_profit: req.take_profit.map(|p| symbol.to_grid(p)),
            relative_stop_loss: req.relative_stop_loss,
            relative_take_profit: req.relative_take_profit,
            execution_price: None,
            executed_volume: 0,
            closing: false,
            stop_out: false,
            guaranteed_stop_loss: req.guaranteed_stop_loss,
            time_in_force: req.time_in_force.unwrap_or(match req.kind {
                OrderKind::Market => 3,
                _ => 2,
            }),
            created: now,
            updated: now,
        };
        self.orders.insert(order_id, order.clone());
        if req.kind != OrderKind::Market {
            return Ok(vec![Execution {
                account: req.account,
                kind: ExecutionKind::Accepted,
                position: None,
                order: Some(order),
                deal: None,
                server_event: false,
                error_code: None,
            }]);
        }
        let price = entry_price(req.side, quote);
        Ok(self.fill_opening_order(order_id, price, rate, now))
    }

    /// Closes `volume` of a position at the market on the trader's request.
    pub(crate) fn close_position(
        &mut self,
        account: i64,
        position_id: i64,
        volume: i64,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let position = self.owned_open_position(account, position_id)?;
        let symbol = self.symbol_of(&position)?;
        if matches!(self.trading_mode(symbol.id), 1 | 2) {
            return Err(Rejection::order_error(
                "TRADING_DISABLED",
                format!("Trading is disabled for {}", symbol.name),
            )
            .for_position(position_id));
        }
        check_close_volume(&symbol, &position, volume)?;
        let quote = self.tradable_quote(&symbol, now)?;
        let price = exit_price(position.side, quote);
        self.close_at(position_id, volume, price, Closer::Trader, None, now)
    }

    /// Closes a whole position at the market as if a person did it in the cTrader app.
    pub(crate) fn close_elsewhere(
        &mut self,
        position_id: i64,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let position = self.open_position(position_id).cloned().ok_or_else(|| {
            Rejection::order_error("POSITION_NOT_FOUND", "Position not found")
                .for_position(position_id)
        })?;
        let symbol = self.symbol_of(&position)?;
        let quote = self.tradable_quote(&symbol, now)?;
        let price = exit_price(position.side, quote);
        self.close_at(
            position_id,
            position.volume,
            price,
            Closer::Elsewhere,
            None,
            now,
        )
    }

    /// Closes a whole position at the market as the broker's stop-out does (`isStopOut`).
    pub(crate) fn stop_out(
        &mut self,
        position_id: i64,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let position = self.open_position(position_id).cloned().ok_or_else(|| {
            Rejection::order_error("POSITION_NOT_FOUND", "Position not found")
                .for_position(position_id)
        })?;
        let symbol = self.symbol_of(&position)?;
        let quote = self
            .quotes
            .get(&symbol.id)
            .copied()
            .ok_or_else(|| Rejection::order_error("NO_QUOTES", "No quotes for the symbol"))?;
        let price = exit_price(position.side, quote);
        self.close_at(
            position_id,
            position.volume,
            price,
            Closer::StopOut,
            None,
            now,
        )
    }

    /// The stop-out: an account whose equity fell below [`STOP_OUT_LEVEL_PERCENT`] of its used
    /// margin loses its worst position (one per call, so the next quote re-checks).
    fn stop_out_check(&mut self, now: Timestamp) -> Vec<Execution> {
        let accounts: Vec<i64> = self.accounts.keys().copied().collect();
        let mut reports = Vec::new();
        for account in accounts {
            let Some(balance) = self.accounts.get(&account).map(|a| a.balance) else {
                continue;
            };
            let used: i64 = self
                .positions
                .values()
                .filter(|p| p.account == account && p.state == PositionState::Open)
                .map(|p| p.used_margin)
                .sum();
            if used <= 0 {
                continue;
            }
            let pnl = self.unrealized(account);
            let equity = pnl.iter().fold(balance, |e, p| e.saturating_add(p.net));
            if i128::from(equity) * 100 >= i128::from(used) * i128::from(STOP_OUT_LEVEL_PERCENT) {
                continue;
            }
            let Some(worst) = pnl.iter().min_by_key(|p| p.net).map(|p| p.position_id) else {
                continue;
            };
            tracing::info!(
                account,
                position = worst,
                equity,
                used,
                "stop-out: margin level below the stop-out level"
            );
            match self.stop_out(worst, now) {
                Ok(closed) => reports.extend(closed),
                Err(refusal) => {
                    tracing::warn!(position = worst, code = %refusal.code, "stop-out not executed");
                }
            }
        }
        reports
    }

    /// Sets (or removes, with `None`) a position's stop loss and take profit.
    pub(crate) fn amend_protection(
        &mut self,
        account: i64,
        position_id: i64,
        stop_loss: Option<i64>,
        take_profit: Option<i64>,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let position = self.owned_open_position(account, position_id)?;
        let symbol = self.symbol_of(&position)?;
        let stop_loss = stop_loss.map(|p| symbol.to_grid(p));
        let take_profit = take_profit.map(|p| symbol.to_grid(p));
        if let Some(quote) = self.quotes.get(&symbol.id) {
            let market = exit_price(position.side, *quote);
            let (sl_ok, tp_ok) = match position.side {
                Side::Buy => (
                    stop_loss.is_none_or(|sl| sl < market),
                    take_profit.is_none_or(|tp| tp > market),
                ),
                Side::Sell => (
                    stop_loss.is_none_or(|sl| sl > market),
                    take_profit.is_none_or(|tp| tp < market),
                ),
            };
            if !sl_ok || !tp_ok {
                return Err(Rejection::order_error(
                    "TRADING_BAD_STOPS",
                    "Stop loss or take profit is on the wrong side of the market",
                )
                .for_position(position_id));
            }
        }
        let Some(stored) = self.positions.get_mut(&position_id) else {
            return Err(
                Rejection::order_error("POSITION_NOT_FOUND", "Position not found")
                    .for_position(position_id),
            );
        };
        stored.stop_loss = stop_loss;
        stored.take_profit = take_profit;
        stored.updated = now;
        Ok(vec![Execution {
            account,
            kind: ExecutionKind::Replaced,
            position: Some(stored.clone()),
            order: None,
            deal: None,
            server_event: false,
            error_code: None,
        }])
    }

    /// Cancels a working limit or stop order.
    pub(crate) fn cancel_order(
        &mut self,
        account: i64,
        order_id: i64,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let order = self
            .orders
            .get_mut(&order_id)
            .filter(|o| o.account == account && o.state == OrderState::Accepted && !o.closing)
            .filter(|o| matches!(o.kind, OrderKind::Limit | OrderKind::Stop))
            .ok_or_else(|| Rejection {
                order_id: Some(order_id),
                ..Rejection::order_error("ORDER_NOT_FOUND", "Order not found")
            })?;
        order.state = OrderState::Cancelled;
        order.updated = now;
        Ok(vec![Execution {
            account,
            kind: ExecutionKind::Cancelled,
            position: None,
            order: Some(order.clone()),
            deal: None,
            server_event: false,
            error_code: None,
        }])
    }

    /// Records a new quote and executes what it triggers: working orders reaching their price,
    /// stop losses and take profits. Returns the unsolicited execution reports.
    pub(crate) fn on_quote(
        &mut self,
        symbol_id: i64,
        quote: TwoSided,
        now: Timestamp,
    ) -> Vec<Execution> {
        self.quotes.insert(symbol_id, quote);
        let mut reports = Vec::new();
        let triggered: Vec<(i64, i64)> = self
            .orders
            .values()
            .filter(|o| o.symbol_id == symbol_id && o.state == OrderState::Accepted && !o.closing)
            .filter_map(|o| pending_fill_price(o, quote).map(|price| (o.id, price)))
            .collect();
        for (order_id, price) in triggered {
            reports.extend(self.execute_pending(order_id, price, now));
        }
        let hits: Vec<(i64, i64)> = self
            .positions
            .values()
            .filter(|p| p.symbol_id == symbol_id && p.state == PositionState::Open)
            .filter_map(|p| protection_hit(p, quote).map(|price| (p.id, price)))
            .collect();
        for (position_id, price) in hits {
            let volume = self.positions.get(&position_id).map_or(0, |p| p.volume);
            match self.close_at(position_id, volume, price, Closer::Protection, None, now) {
                Ok(closed) => reports.extend(closed),
                Err(refusal) => {
                    tracing::warn!(position = position_id, code = %refusal.code, "stop loss or take profit hit but not executed");
                }
            }
        }
        reports.extend(self.stop_out_check(now));
        reports
    }

    /// Fills a triggered pending order, or rejects it when the account can no longer afford it.
    fn execute_pending(&mut self, order_id: i64, price: i64, now: Timestamp) -> Vec<Execution> {
        let Some(order) = self.orders.get(&order_id).cloned() else {
            return Vec::new();
        };
        let affordable = match (
            self.accounts.get(&order.account),
            self.symbols.get(&order.symbol_id),
        ) {
            (Some(account), Some(symbol)) => {
                self.rate_or_refuse(symbol, account.id).and_then(|rate| {
                    self.check_margin(account, symbol, order.volume, price, rate)
                        .map(|()| rate)
                })
            }
            _ => Err(Rejection::order_error(
                "NOT_ENOUGH_MONEY",
                "The account or the symbol is gone",
            )),
        };
        let rate = match affordable {
            Ok(rate) => rate,
            Err(refusal) => {
                let Some(stored) = self.orders.get_mut(&order_id) else {
                    return Vec::new();
                };
                stored.state = OrderState::Rejected;
                stored.updated = now;
                return vec![Execution {
                    account: order.account,
                    kind: ExecutionKind::Rejected,
                    position: None,
                    order: Some(stored.clone()),
                    deal: None,
                    server_event: true,
                    error_code: Some(refusal.code),
                }];
            }
        };
        // The acceptance was reported when the order was placed: only the fill is new.
        self.fill_opening_order(order_id, price, rate, now)
            .into_iter()
            .filter(|e| e.kind == ExecutionKind::Filled)
            .collect()
    }

    /// Opens a position from an accepted order at `price`, its money converted at `rate`: ACCEPTED
    /// (position created) then FILLED, or, when a market order fills in parts, one
    /// PARTIAL_FILL per deal before the last, each deal with its own commission and the position's
    /// volume growing deal by deal; a cancelled remainder ends with CANCELLED instead of FILLED.
    fn fill_opening_order(
        &mut self,
        order_id: i64,
        price: i64,
        rate: Rate,
        now: Timestamp,
    ) -> Vec<Execution> {
        let Some(order) = self.orders.get(&order_id).cloned() else {
            return Vec::new();
        };
        let Some(symbol) = self.symbols.get(&order.symbol_id).cloned() else {
            return Vec::new();
        };
        let money_digits = self
            .accounts
            .get(&order.account)
            .map_or(2, |a| a.money_digits);
        let (parts, cancel_rest) = if order.kind == OrderKind::Market {
            self.partial_fills.parts(order.volume, symbol.step_volume)
        } else {
            (vec![order.volume], false)
        };
        let position_id = self.take_position_id();
        let signed = |distance: i64, towards_profit: bool| match (order.side, towards_profit) {
            (Side::Buy, true) | (Side::Sell, false) => price.saturating_add(distance),
            (Side::Buy, false) | (Side::Sell, true) => price.saturating_sub(distance),
        };
        let stop_loss = order
            .relative_stop_loss
            .map(|d| symbol.to_grid(signed(d, false)).max(symbol.tick()))
            .or(order.stop_loss);
        let take_profit = order
            .relative_take_profit
            .map(|d| symbol.to_grid(signed(d, true)).max(symbol.tick()))
            .or(order.take_profit);
        let mut position = Position {
            id: position_id,
            account: order.account,
            symbol_id: symbol.id,
            side: order.side,
            volume: 0,
            open_price: price,
            opened: now,
            stop_loss,
            take_profit,
            guaranteed_stop_loss: order.guaranteed_stop_loss,
            label: order.label.clone(),
            comment: order.comment.clone(),
            commission: 0,
            swap: 0,
            state: PositionState::Created,
            updated: now,
            closed: None,
            used_margin: 0,
            money_digits,
        };
        let mut working = order.clone();
        working.position_id = Some(position_id);
        let mut reports = vec![Execution {
            account: order.account,
            kind: ExecutionKind::Accepted,
            position: Some(Position {
                volume: order.volume,
                ..position.clone()
            }),
            order: Some(working.clone()),
            deal: None,
            server_event: false,
            error_code: None,
        }];
        position.state = PositionState::Open;
        let last = parts.len() - 1;
        for (i, part) in parts.iter().copied().enumerate() {
            let notional = money::notional(price, part, rate, money_digits);
            let commission = money::commission(notional, symbol.commission_per_million);
            position.volume += part;
            position.commission = position.commission.saturating_add(commission);
            position.used_margin = money::margin(
                money::notional(price, position.volume, rate, money_digits),
                symbol.leverage,
            );
            working.execution_price = Some(price);
            working.executed_volume += part;
            working.updated = now;
            let complete = i == last && !cancel_rest;
            if complete {
                working.state = OrderState::Filled;
            }
            let deal = Deal {
                id: self.take_deal_id(),
                order_id,
                position_id,
                account: order.account,
                symbol_id: symbol.id,
                side: order.side,
                volume: order.volume,
                filled_volume: part,
                execution_price: price,
                created: order.created,
                executed: now,
                commission,
                money_digits,
                close: None,
                partial: part < order.volume,
            };
            self.deals.push(deal.clone());
            reports.push(Execution {
                account: order.account,
                kind: if complete {
                    ExecutionKind::Filled
                } else {
                    ExecutionKind::PartialFill
                },
                position: Some(position.clone()),
                order: Some(working.clone()),
                deal: Some(deal),
                server_event: false,
                error_code: None,
            });
        }
        if cancel_rest {
            working.state = OrderState::Cancelled;
            reports.push(Execution {
                account: order.account,
                kind: ExecutionKind::Cancelled,
                position: Some(position.clone()),
                order: Some(working.clone()),
                deal: None,
                server_event: false,
                error_code: None,
            });
        }
        self.orders.insert(order_id, working);
        self.positions.insert(position_id, position);
        reports
    }

    /// An order naming a position: an opposite-side market order closes that much of it.
    fn order_against_position(
        &mut self,
        req: &NewOrder,
        position_id: i64,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let position = self.owned_open_position(req.account, position_id)?;
        if req.kind != OrderKind::Market
            || req.side == position.side
            || req.symbol_id != position.symbol_id
        {
            return Err(Rejection::error_res(
                "INVALID_REQUEST",
                "The simulator only accepts an opposite-side market order on the position's symbol to close a position by id",
            ));
        }
        let symbol = self.symbol_of(&position)?;
        check_close_volume(&symbol, &position, req.volume)?;
        let quote = self.tradable_quote(&symbol, now)?;
        let price = exit_price(position.side, quote);
        self.close_at(
            position_id,
            req.volume,
            price,
            Closer::Trader,
            Some(req),
            now,
        )
    }

    /// Closes `volume` of a position at `price`: a closing order, ACCEPTED then FILLED with a deal
    /// carrying the realised profit, swap and commission in the deposit currency (converted at the
    /// chain's quotes of this moment), and the balance moved by exactly their sum. A trader's close
    /// may fill in parts (see [`PartialFills`]): one deal per part, each settling its share.
    fn close_at(
        &mut self,
        position_id: i64,
        volume: i64,
        price: i64,
        closer: Closer,
        request: Option<&NewOrder>,
        now: Timestamp,
    ) -> Result<Vec<Execution>, Rejection> {
        let gone = || {
            Rejection::order_error("POSITION_NOT_FOUND", "Position not found")
                .for_position(position_id)
        };
        let position = self.positions.get(&position_id).cloned().ok_or_else(gone)?;
        let symbol = self.symbol_of(&position)?;
        let account_id = self
            .accounts
            .get(&position.account)
            .map(|a| a.id)
            .ok_or_else(gone)?;
        let rate = self.rate_or_refuse(&symbol, account_id)?;
        let volume = volume.clamp(0, position.volume);
        let (parts, cancel_rest) = if closer == Closer::Trader {
            self.partial_fills.parts(volume, symbol.step_volume)
        } else {
            (vec![volume], false)
        };

        let kind = match closer {
            Closer::Protection => OrderKind::StopLossTakeProfit,
            Closer::Trader | Closer::Elsewhere | Closer::StopOut => OrderKind::Market,
        };
        let order_id = self.take_order_id();
        let mut order = Order {
            id: order_id,
            account: position.account,
            symbol_id: symbol.id,
            side: position.side.opposite(),
            volume,
            kind,
            state: OrderState::Accepted,
            label: request
                .and_then(|r| r.label.clone())
                .or_else(|| position.label.clone()),
            comment: request.and_then(|r| r.comment.clone()),
            client_order_id: request.and_then(|r| r.client_order_id.clone()),
            position_id: Some(position_id),
            limit_price: None,
            stop_price: None,
            stop_loss: None,
            take_profit: None,
            relative_stop_loss: None,
            relative_take_profit: None,
            execution_price: None,
            executed_volume: 0,
            closing: true,
            stop_out: closer == Closer::StopOut,
            guaranteed_stop_loss: false,
            time_in_force: 3,
            created: now,
            updated: now,
        };
        if closer == Closer::Protection {
            // The triggered level travels as the order's stop price, as cTrader reports SL/TP orders.
            order.stop_price = Some(price);
        }
        let server_event = matches!(closer, Closer::Protection | Closer::StopOut);
        let mut reports = vec![Execution {
            account: position.account,
            kind: ExecutionKind::Accepted,
            position: Some(position.clone()),
            order: Some(order.clone()),
            deal: None,
            server_event,
            error_code: None,
        }];
        let mut current = position;
        let last = parts.len() - 1;
        for (i, part) in parts.iter().copied().enumerate() {
            let Some(account) = self.accounts.get(&current.account).cloned() else {
                return Err(gone());
            };
            let money_digits = account.money_digits;
            let gross = money::gross_profit(
                current.side,
                current.open_price,
                price,
                part,
                rate,
                money_digits,
            );
            let notional = money::notional(price, part, rate, money_digits);
            let closing_commission = money::commission(notional, symbol.commission_per_million);
            // The shares of the opening commission and of the swap that belong to the closed volume.
            let share = |amount: i64| {
                if current.volume == 0 {
                    0
                } else {
                    i64::try_from(
                        i128::from(amount) * i128::from(part) / i128::from(current.volume),
                    )
                    .unwrap_or(amount)
                }
            };
            let opening_share = share(current.commission);
            let swap_share = share(current.swap);
            let realised = gross
                .saturating_add(swap_share)
                .saturating_add(closing_commission)
                .saturating_add(opening_share);
            let balance = account.balance.saturating_add(realised);
            let balance_version = account.balance_version + 1;
            if let Some(stored) = self.accounts.get_mut(&account.id) {
                stored.balance = balance;
                stored.balance_version = balance_version;
                stored.last_closing_deal = Some(now);
            }
            let mut after = current.clone();
            after.volume = current.volume - part;
            after.commission = current.commission - opening_share;
            after.swap = current.swap - swap_share;
            after.used_margin = if current.volume == 0 {
                0
            } else {
                i64::try_from(
                    i128::from(current.used_margin) * i128::from(after.volume)
                        / i128::from(current.volume),
                )
                .unwrap_or(0)
            };
            after.updated = now;
            if after.volume == 0 {
                after.state = PositionState::Closed;
                after.closed = Some(now);
                after.used_margin = 0;
            }
            let complete = i == last && !cancel_rest;
            if complete {
                order.state = OrderState::Filled;
            }
            order.execution_price = Some(price);
            order.executed_volume += part;
            order.updated = now;
            let deal = Deal {
                id: self.take_deal_id(),
                order_id,
                position_id,
                account: current.account,
                symbol_id: symbol.id,
                side: order.side,
                volume,
                filled_volume: part,
                execution_price: price,
                created: now,
                executed: now,
                commission: closing_commission,
                money_digits,
                close: Some(CloseDetail {
                    entry_price: current.open_price,
                    gross_profit: gross,
                    swap: swap_share,
                    commission: closing_commission.saturating_add(opening_share),
                    balance,
                    balance_version,
                    closed_volume: part,
                    quote_to_deposit: rate.to_f64(),
                    money_digits,
                }),
                partial: part < volume,
            };
            self.deals.push(deal.clone());
            reports.push(Execution {
                account: current.account,
                kind: if complete {
                    ExecutionKind::Filled
                } else {
                    ExecutionKind::PartialFill
                },
                position: Some(after.clone()),
                order: Some(order.clone()),
                deal: Some(deal),
                server_event,
                error_code: None,
            });
            current = after;
        }
        if cancel_rest {
            order.state = OrderState::Cancelled;
            reports.push(Execution {
                account: current.account,
                kind: ExecutionKind::Cancelled,
                position: Some(current.clone()),
                order: Some(order.clone()),
                deal: None,
                server_event,
                error_code: None,
            });
        }
        self.orders.insert(order_id, order);
        self.positions.insert(position_id, current);
        Ok(reports)
    }

    /// Refuses an order whose margin the account's free margin cannot cover; `rate` converts the
    /// order's symbol into the deposit currency.
    fn check_margin(
        &self,
        account: &Account,
        symbol: &SimSymbol,
        volume: i64,
        price: i64,
        rate: Rate,
    ) -> Result<(), Rejection> {
        let digits = account.money_digits;
        let needed = money::margin(
            money::notional(price, volume, rate, digits),
            symbol.leverage,
        );
        let mut equity = account.balance;
        let mut used = 0_i64;
        for p in self
            .positions
            .values()
            .filter(|p| p.account == account.id && p.state == PositionState::Open)
        {
            used = used.saturating_add(p.used_margin);
        }
        for pnl in self.unrealized(account.id) {
            equity = equity.saturating_add(pnl.net);
        }
        let free = equity.saturating_sub(used);
        if needed > free {
            return Err(Rejection::order_error(
                "NOT_ENOUGH_MONEY",
                format!(
                    "Not enough money: the order needs margin {needed}, free margin is {free} (minor units)"
                ),
            ));
        }
        Ok(())
    }

    /// The caller's open position, or the error cTrader gives.
    fn owned_open_position(&self, account: i64, position_id: i64) -> Result<Position, Rejection> {
        let position = self
            .positions
            .get(&position_id)
            .filter(|p| p.account == account)
            .ok_or_else(|| {
                Rejection::order_error("POSITION_NOT_FOUND", "Position not found")
                    .for_position(position_id)
            })?;
        if position.state != PositionState::Open {
            return Err(
                Rejection::order_error("POSITION_NOT_OPEN", "Position is not open")
                    .for_position(position_id),
            );
        }
        Ok(position.clone())
    }

    fn symbol_of(&self, position: &Position) -> Result<SimSymbol, Rejection> {
        self.symbols
            .get(&position.symbol_id)
            .cloned()
            .ok_or_else(|| Rejection::error_res("SYMBOL_NOT_FOUND", "Symbol not found"))
    }

    /// The quote to trade at now, or why there is none.
    fn tradable_quote(&self, symbol: &SimSymbol, now: Timestamp) -> Result<TwoSided, Rejection> {
        if !symbol.is_open(now) {
            return Err(Rejection::order_error("MARKET_CLOSED", "Market is closed"));
        }
        self.quotes
            .get(&symbol.id)
            .copied()
            .ok_or_else(|| Rejection::order_error("NO_QUOTES", "No quotes for the symbol"))
    }

    fn take_order_id(&mut self) -> i64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        id
    }

    fn take_position_id(&mut self) -> i64 {
        let id = self.next_position_id;
        self.next_position_id += 1;
        id
    }

    fn take_deal_id(&mut self) -> i64 {
        let id = self.next_deal_id;
        self.next_deal_id += 1;
        id
    }
}

/// Where a new position of `side` fills: buyers pay the ask, sellers get the bid.
fn entry_price(side: Side, quote: TwoSided) -> i64 {
    match side {
        Side::Buy => quote.ask,
        Side::Sell => quote.bid,
    }
}

/// Where a position of `side` closes: a long sells at the bid, a short buys at the ask.
fn exit_price(side: Side, quote: TwoSided) -> i64 {
    match side {
        Side::Buy => quote.bid,
        Side::Sell => quote.ask,
    }
}

/// The fill price of a working order at this quote, if it triggers.
fn pending_fill_price(order: &Order, quote: TwoSided) -> Option<i64> {
    let market = entry_price(order.side, quote);
    match (order.kind, order.side) {
        (OrderKind::Limit, Side::Buy) => order.limit_price.filter(|&p| market <= p).map(|_| market),
        (OrderKind::Limit, Side::Sell) => {
            order.limit_price.filter(|&p| market >= p).map(|_| market)
        }
        (OrderKind::Stop, Side::Buy) => order.stop_price.filter(|&p| market >= p).map(|_| market),
        (OrderKind::Stop, Side::Sell) => order.stop_price.filter(|&p| market <= p).map(|_| market),
        _ => None,
    }
}

/// The closing price when a stop loss or take profit is hit at this quote: the market's, which
/// a jump can carry far past the stop, except for a guaranteed stop loss, which closes at its own
/// price.
fn protection_hit(position: &Position, quote: TwoSided) -> Option<i64> {
    let market = exit_price(position.side, quote);
    let (stopped, took_profit) = match position.side {
        Side::Buy => (
            position.stop_loss.is_some_and(|sl| market <= sl),
            position.take_profit.is_some_and(|tp| market >= tp),
        ),
        Side::Sell => (
            position.stop_loss.is_some_and(|sl| market >= sl),
            position.take_profit.is_some_and(|tp| market <= tp),
        ),
    };
    match (stopped, took_profit) {
        (true, _) if position.guaranteed_stop_loss => position.stop_loss,
        (true, _) | (_, true) => Some(market),
        _ => None,
    }
}

/// A guaranteed stop loss is for limited-risk accounts only, and there it is required on every
/// opening order; it must be offered on the symbol and lie at least its minimum distance away.
fn check_guaranteed_stop(
    account: &Account,
    symbol: &SimSymbol,
    req: &NewOrder,
) -> Result<(), Rejection> {
    let bad = |message: String| Err(Rejection::order_error("TRADING_BAD_STOPS", message));
    let has_stop = req.stop_loss.is_some() || req.relative_stop_loss.is_some();
    if account.limited_risk && !(req.guaranteed_stop_loss && has_stop) {
        return bad(
            "A limited risk account needs a guaranteed stop loss on every new order".to_owned(),
        );
    }
    if !req.guaranteed_stop_loss {
        return Ok(());
    }
    if !account.limited_risk {
        return bad("A guaranteed stop loss is available to limited risk accounts only".to_owned());
    }
    let Some(least) = symbol.gsl_distance else {
        return bad(format!("{} offers no guaranteed stop loss", symbol.name));
    };
    if req.relative_stop_loss.is_some_and(|d| d < least) {
        return bad(format!(
            "The guaranteed stop loss must be at least {least} (1/100000) from the price"
        ));
    }
    Ok(())
}

/// Refuses labels, client order ids and comments longer than cTrader allows.
fn check_strings(req: &NewOrder) -> Result<(), Rejection> {
    let too_long = |value: &Option<String>, max: usize| {
        value.as_ref().is_some_and(|v| v.chars().count() > max)
    };
    if too_long(&req.label, MAX_LABEL_LEN) {
        return Err(Rejection::error_res(
            "INVALID_REQUEST",
            "Label is longer than 100 characters",
        ));
    }
    if too_long(&req.client_order_id, MAX_CLIENT_ORDER_ID_LEN) {
        return Err(Rejection::error_res(
            "INVALID_REQUEST",
            "clientOrderId is longer than 50 characters",
        ));
    }
    if too_long(&req.comment, MAX_COMMENT_LEN) {
        return Err(Rejection::error_res(
            "INVALID_REQUEST",
            "Comment is longer than 512 characters",
        ));
    }
    Ok(())
}

/// Volume must be within the symbol's limits and a multiple of its step.
fn check_volume(symbol: &SimSymbol, volume: i64) -> Result<(), Rejection> {
    if volume < symbol.min_volume
        || volume > symbol.max_volume
        || volume % symbol.step_volume.max(1) != 0
    {
        return Err(Rejection::order_error(
            "TRADING_BAD_VOLUME",
            format!(
                "Volume {volume} is not allowed: min {}, max {}, step {}",
                symbol.min_volume, symbol.max_volume, symbol.step_volume
            ),
        ));
    }
    Ok(())
}

/// A close must take a positive multiple of the step, at most the open volume, and leave either
/// nothing or at least the minimum volume.
fn check_close_volume(
    symbol: &SimSymbol,
    position: &Position,
    volume: i64,
) -> Result<(), Rejection> {
    let remaining = position.volume - volume;
    if volume <= 0
        || volume > position.volume
        || volume % symbol.step_volume.max(1) != 0
        || (remaining > 0 && remaining < symbol.min_volume)
    {
        return Err(Rejection::order_error(
            "TRADING_BAD_VOLUME",
            format!(
                "Cannot close volume {volume} of a position of volume {}",
                position.volume
            ),
        )
        .for_position(position.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
