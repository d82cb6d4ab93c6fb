//! Conversions between the broker's records and the cTrader messages that carry them. Prices
//! travel as 1/100000 integers in spots and trendbars, and as doubles in orders, positions and deals.

use ctrader_proto::openapi::{
    ProtoOaAsset, ProtoOaClosePositionDetail, ProtoOaCtidTraderAccount, ProtoOaDeal,
    ProtoOaExecutionEvent, ProtoOaHoliday, ProtoOaInterval, ProtoOaLightSymbol, ProtoOaNewOrderReq,
    ProtoOaOrder, ProtoOaPosition, ProtoOaSymbol, ProtoOaTradeData, ProtoOaTrader, ProtoOaTrendbar,
};
use std::sync::LazyLock;

use domain::{Price, Side, Timestamp, WeeklySession};
use jiff::tz::TimeZoneDatabase;

use crate::bars::{BarPeriod, Trendbar};
use crate::broker::{Account, Deal, Execution, NewOrder, Order, OrderKind, Position};
use crate::rollover::{ROLLOVER_MINUTE_UTC, ROLLOVER_PERIOD_HOURS};
use crate::symbols::{SimAsset, SimSymbol};

/// The time zone the simulated holidays are expressed in (each holiday carries its own).
const HOLIDAY_TIME_ZONE: &str = "UTC";

/// The IANA time-zone database compiled into the binary.
static ZONES: LazyLock<TimeZoneDatabase> = LazyLock::new(TimeZoneDatabase::bundled);

/// The zone named `zone` from the bundled database (`UTC` included); `None` for an unknown name.
pub(crate) fn time_zone(zone: &str) -> Option<jiff::tz::TimeZone> {
    if zone.eq_ignore_ascii_case("utc") {
        return Some(jiff::tz::TimeZone::UTC);
    }
    ZONES.get(zone).ok()
}

/// Seconds east of UTC in `zone` at `at`: 0 for `UTC`, the database's offset for an IANA name,
/// `None` for a name it does not know.
pub(crate) fn zone_offset(zone: &str, at: Timestamp) -> Option<i64> {
    if zone.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let tz = ZONES.get(zone).ok()?;
    let at = jiff::Timestamp::from_millisecond(at.millis()).ok()?;
    Some(i64::from(tz.to_offset(at).seconds()))
}

/// The zone a symbol's schedule is reported in, with its offset at the moment of the report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportedZone<'a> {
    /// The zone's name, as sent in `scheduleTimeZone`.
    pub(crate) name: &'a str,
    /// Seconds east of UTC now.
    pub(crate) offset_seconds: i64,
}

/// UTC weekly sessions as local intervals at `offset` seconds east, split where they wrap.
fn local_intervals(sessions: &[WeeklySession], offset: i64) -> Vec<ProtoOaInterval> {
    const WEEK: i64 = 7 * 86_400;
    let second = |s: i64| u32::try_from(s).unwrap_or(0);
    let mut out = Vec::with_capacity(sessions.len() + 1);
    for s in sessions {
        let start = (i64::from(s.start_second) + offset).rem_euclid(WEEK);
        let end = start + i64::from(s.end_second) - i64::from(s.start_second);
        let mut push = |a: i64, b: i64| {
            out.push(ProtoOaInterval {
                start_second: second(a),
                end_second: second(b),
            });
        };
        if end > WEEK {
            push(start, WEEK);
            push(0, end - WEEK);
        } else {
            push(start, end);
        }
    }
    out
}

/// A 1/100000 price as the protocol's double.
#[allow(clippy::cast_precision_loss)] // prices are far below 2^53
pub(crate) fn price_to_f64(price: i64) -> f64 {
    price as f64 / 100_000.0
}

/// A protocol double as a 1/100000 price; `None` when it is not a positive finite number.
pub(crate) fn price_from_f64(value: f64) -> Option<i64> {
    Price::from_f64(value).map(|p| p.0).filter(|p| *p > 0)
}

fn side_code(side: Side) -> i32 {
    match side {
        Side::Buy => 1,
        Side::Sell => 2,
    }
}

/// `ProtoOATradeSide` to a side.
pub(crate) fn side_from_code(code: i32) -> Option<Side> {
    match code {
        1 => Some(Side::Buy),
        2 => Some(Side::Sell),
        _ => None,
    }
}

/// An asset for `ProtoOAAssetListRes`.
pub(crate) fn asset(asset: &SimAsset) -> ProtoOaAsset {
    ProtoOaAsset {
        asset_id: asset.id,
        name: asset.name.to_owned(),
        display_name: Some(asset.display_name.to_owned()),
        digits: Some(asset.digits),
    }
}

/// A light symbol for `ProtoOASymbolsListRes` and `ProtoOASymbolsForConversionRes`.
pub(crate) fn light_symbol(symbol: &SimSymbol) -> ProtoOaLightSymbol {
    ProtoOaLightSymbol {
        symbol_id: symbol.id,
        symbol_name: Some(symbol.name.clone()),
        enabled: Some(true),
        base_asset_id: Some(symbol.base_asset_id),
        quote_asset_id: Some(symbol.quote_asset_id),
        symbol_category_id: Some(symbol.category_id),
        description: Some(symbol.description.clone()),
        ..ProtoOaLightSymbol::default()
    }
}

/// A full symbol for `ProtoOASymbolByIdRes`: digits, volumes, weekly schedule (in `zone`) and
/// holidays.
pub(crate) fn full_symbol(symbol: &SimSymbol, zone: ReportedZone<'_>) -> ProtoOaSymbol {
    let digits = i32::try_from(symbol.digits).unwrap_or(5);
    ProtoOaSymbol {
        symbol_id: symbol.id,
        digits,
        pip_position: symbol.pip_position,
        enable_short_selling: Some(true),
        guaranteed_stop_loss: Some(symbol.gsl_distance.is_some()),
        // In points (the default `distanceSetIn`): a point is the price's last digit.
        gsl_distance: symbol
            .gsl_distance
            .and_then(|d| u32::try_from(d / 10_i64.pow(5_u32.saturating_sub(symbol.digits))).ok()),
        max_volume: Some(symbol.max_volume),
        min_volume: Some(symbol.min_volume),
        step_volume: Some(symbol.step_volume),
        // Sessions kept in the zone's local hours go out as they are; UTC ones are translated.
        schedule: local_intervals(
            &symbol.schedule.sessions,
            if symbol.session_zone.is_some() {
                0
            } else {
                zone.offset_seconds
            },
        ),
        // USD_PER_MILLION_USD; the precise rate is the amount × 10^8.
        commission_type: Some(1),
        precise_trading_commission_rate: Some(
            symbol.commission_per_million.saturating_mul(100_000_000),
        ),
        schedule_time_zone: Some(zone.name.to_owned()),
        trading_mode: Some(0),
        lot_size: Some(symbol.lot_size),
        holiday: symbol
            .schedule
            .holidays
            .iter()
            .zip(1_i64..)
            .map(|(h, id)| ProtoOaHoliday {
                holiday_id: id,
                name: h.name.clone(),
                description: None,
                schedule_time_zone: HOLIDAY_TIME_ZONE.to_owned(),
                holiday_date: h.epoch_day,
                is_recurring: h.recurring,
                start_second: h.seconds.and_then(|(s, _)| i32::try_from(s).ok()),
                end_second: h.seconds.and_then(|(_, e)| i32::try_from(e).ok()),
            })
            .collect(),
        swap_long: Some(milli_to_f64(symbol.swap.long_milli)),
        swap_short: Some(milli_to_f64(symbol.swap.short_milli)),
        swap_calculation_type: Some(symbol.swap.calculation.code()),
        swap_rollover3_days: Some(symbol.swap.triple_day),
        swap_time: Some(ROLLOVER_MINUTE_UTC),
        swap_period: Some(ROLLOVER_PERIOD_HOURS),
        skip_swap_periods: Some(0),
        charge_swap_at_weekends: Some(false),
        measurement_units: Some(symbol.measurement_units.clone()),
        ..ProtoOaSymbol::default()
    }
}

/// A rate in thousandths as the protocol's double.
#[allow(clippy::cast_precision_loss)] // swap rates are small
fn milli_to_f64(milli: i64) -> f64 {
    milli as f64 / 1_000.0
}

/// The account as `ProtoOATrader`.
pub(crate) fn trader(account: &Account) -> ProtoOaTrader {
    ProtoOaTrader {
        ctid_trader_account_id: account.id,
        balance: account.balance,
        balance_version: Some(account.balance_version),
        deposit_asset_id: account.deposit_asset_id,
        leverage_in_cents: Some(account.leverage_in_cents),
        trader_login: Some(account.trader_login),
        // HEDGED: several positions per symbol, closed by id.
        account_type: Some(0),
        broker_name: Some("Simulated Broker".to_owned()),
        registration_timestamp: Some(account.registered.0),
        money_digits: Some(account.money_digits),
        access_rights: Some(0),
        is_limited_risk: Some(account.limited_risk),
        ..ProtoOaTrader::default()
    }
}

/// The account as listed by `ProtoOAGetAccountListByAccessTokenRes`.
pub(crate) fn listed_account(account: &Account) -> ProtoOaCtidTraderAccount {
    ProtoOaCtidTraderAccount {
        ctid_trader_account_id: account.id.unsigned_abs(),
        is_live: Some(false),
        trader_login: Some(account.trader_login),
        last_closing_deal_timestamp: account.last_closing_deal.map(|t| t.0),
        last_balance_update_timestamp: account.last_closing_deal.map(|t| t.0),
        broker_title_short: Some("SIM".to_owned()),
    }
}

/// A position record.
pub(crate) fn position(p: &Position) -> ProtoOaPosition {
    ProtoOaPosition {
        position_id: p.id,
        trade_data: ProtoOaTradeData {
            symbol_id: p.symbol_id,
            volume: p.volume,
            trade_side: side_code(p.side),
            open_timestamp: Some(p.opened.0),
            label: p.label.clone(),
            comment: p.comment.clone(),
            close_timestamp: p.closed.and_then(|t| u64::try_from(t.0).ok()),
            guaranteed_stop_loss: Some(p.guaranteed_stop_loss),
            ..ProtoOaTradeData::default()
        },
        guaranteed_stop_loss: Some(p.guaranteed_stop_loss),
        position_status: p.state.code(),
        swap: p.swap,
        price: Some(price_to_f64(p.open_price)),
        stop_loss: p.stop_loss.map(price_to_f64),
        take_profit: p.take_profit.map(price_to_f64),
        utc_last_update_timestamp: Some(p.updated.0),
        commission: Some(p.commission),
        used_margin: u64::try_from(p.used_margin).ok(),
        money_digits: Some(p.money_digits),
        ..ProtoOaPosition::default()
    }
}

/// An order record.
pub(crate) fn order(o: &Order) -> ProtoOaOrder {
    ProtoOaOrder {
        order_id: o.id,
        trade_data: ProtoOaTradeData {
            symbol_id: o.symbol_id,
            volume: o.volume,
            trade_side: side_code(o.side),
            open_timestamp: Some(o.created.0),
            label: o.label.clone(),
            comment: o.comment.clone(),
            ..ProtoOaTradeData::default()
        },
        order_type: o.kind.code(),
        order_status: o.state.code(),
        execution_price: o.execution_price.map(price_to_f64),
        executed_volume: (o.executed_volume > 0).then_some(o.executed_volume),
        utc_last_update_timestamp: Some(o.updated.0),
        closing_order: Some(o.closing),
        is_stop_out: o.stop_out.then_some(true),
        limit_price: o.limit_price.map(price_to_f64),
        stop_price: o.stop_price.map(price_to_f64),
        stop_loss: o.stop_loss.map(price_to_f64),
        take_profit: o.take_profit.map(price_to_f64),
        client_order_id: o.client_order_id.clone(),
        time_in_force: Some(o.time_in_force),
        position_id: o.position_id,
        relative_stop_loss: o.relative_stop_loss,
        relative_take_profit: o.relative_take_profit,
        ..ProtoOaOrder::default()
    }
}

/// A deal record, with its close details when it closed (part of) a position.
pub(crate) fn deal(d: &Deal) -> ProtoOaDeal {
    ProtoOaDeal {
        deal_id: d.id,
        order_id: d.order_id,
        position_id: d.position_id,
        volume: d.volume,
        filled_volume: d.filled_volume,
        symbol_id: d.symbol_id,
        create_timestamp: d.created.0,
        execution_timestamp: d.executed.0,
        utc_last_update_timestamp: Some(d.executed.0),
        execution_price: Some(price_to_f64(d.execution_price)),
        trade_side: side_code(d.side),
        // PARTIALLY_FILLED or FILLED
        deal_status: if d.partial { 3 } else { 2 },
        commission: Some(d.commission),
        money_digits: Some(d.money_digits),
        close_position_detail: d.close.as_ref().map(|c| ProtoOaClosePositionDetail {
            entry_price: price_to_f64(c.entry_price),
            gross_profit: c.gross_profit,
            swap: c.swap,
            commission: c.commission,
            balance: c.balance,
            quote_to_deposit_conversion_rate: Some(c.quote_to_deposit),
            closed_volume: Some(c.closed_volume),
            balance_version: Some(c.balance_version),
            money_digits: Some(c.money_digits),
            pnl_conversion_fee: Some(0),
        }),
        ..ProtoOaDeal::default()
    }
}

/// An execution report as `ProtoOAExecutionEvent`.
pub(crate) fn execution_event(e: &Execution) -> ProtoOaExecutionEvent {
    ProtoOaExecutionEvent {
        ctid_trader_account_id: e.account,
        execution_type: e.kind.code(),
        position: e.position.as_ref().map(position),
        order: e.order.as_ref().map(order),
        deal: e.deal.as_ref().map(deal),
        error_code: e.error_code.clone(),
        is_server_event: e.server_event.then_some(true),
        ..ProtoOaExecutionEvent::default()
    }
}

/// A trendbar as `ProtoOATrendbar`: the low, and the other prices as distances above it.
pub(crate) fn trendbar(bar: &Trendbar, period: BarPeriod) -> ProtoOaTrendbar {
    let above_low = |price: i64| u64::try_from(price.saturating_sub(bar.low)).unwrap_or(0);
    ProtoOaTrendbar {
        volume: bar.ticks,
        period: Some(period.code),
        low: Some(bar.low),
        delta_open: Some(above_low(bar.open)),
        delta_close: Some(above_low(bar.close)),
        delta_high: Some(above_low(bar.high)),
        utc_timestamp_in_minutes: u32::try_from(bar.minute).ok(),
    }
}

/// Why a new order request cannot even be read.
pub(crate) fn new_order(req: &ProtoOaNewOrderReq) -> Result<NewOrder, String> {
    let kind = match req.order_type {
        1 => OrderKind::Market,
        2 => OrderKind::Limit,
        3 => OrderKind::Stop,
        other => {
            return Err(format!(
                "order type {other} is not supported by the simulator (MARKET, LIMIT and STOP are)"
            ));
        }
    };
    let side = side_from_code(req.trade_side)
        .ok_or_else(|| format!("trade side {} is not BUY or SELL", req.trade_side))?;
    let price = |value: Option<f64>, name: &str| -> Result<Option<i64>, String> {
        value
            .map(|v| price_from_f64(v).ok_or_else(|| format!("{name} {v} is not a positive price")))
            .transpose()
    };
    Ok(NewOrder {
        account: req.ctid_trader_account_id,
        symbol_id: req.symbol_id,
        kind,
        side,
        volume: req.volume,
        limit_price: price(req.limit_price, "limitPrice")?,
        stop_price: price(req.stop_price, "stopPrice")?,
        stop_loss: price(req.stop_loss, "stopLoss")?,
        take_profit: price(req.take_profit, "takeProfit")?,
        relative_stop_loss: req.relative_stop_loss,
        relative_take_profit: req.relative_take_profit,
        label: req.label.clone(),
        comment: req.comment.clone(),
        client_order_id: req.client_order_id.clone(),
        position_id: req.position_id,
        time_in_force: req.time_in_force,
        guaranteed_stop_loss: req.guaranteed_stop_loss.unwrap_or(false),
    })
}
