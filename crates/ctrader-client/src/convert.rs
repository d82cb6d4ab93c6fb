//! The edge where protocol values become domain values: spot integers, `double` prices, money with
//! `moneyDigits`, sides, positions, orders, deals and symbols. Nothing above this module sees a
//! prost type; a value the domain cannot hold is a `BadValue` error, never a silent default.

use ctrader_proto::openapi::{
    ProtoOaDeal, ProtoOaDealStatus, ProtoOaExecutionEvent, ProtoOaExecutionType,
    ProtoOaLightSymbol, ProtoOaOrder, ProtoOaOrderType, ProtoOaPosition, ProtoOaPositionStatus,
    ProtoOaSymbol, ProtoOaTradeSide,
};
use domain::{
    BrokerPosition, ClientOrderId, CloseReason, ConversionChain, ConversionStep, DealCloseDetail,
    Fill, Money, NotionalCommission, PendingOrder, PositionId, Price, Side, SymbolId, SymbolSpec,
    Timestamp, Volume,
};

use crate::BrokerError;
use crate::broker::{ExecutionKind, ExecutionReport};
use crate::schedule::{LocalHoliday, schedule_to_utc};

fn bad(what: impl Into<String>) -> BrokerError {
    BrokerError::BadValue(what.into())
}

/// A spot price (`uint64`, 1/100000) as a domain price.
pub(crate) fn spot_price(raw: u64) -> Result<Price, BrokerError> {
    i64::try_from(raw)
        .map(Price)
        .map_err(|_| bad(format!("spot price {raw} out of range")))
}

/// A `double` price as the nearest 1/100000 price.
pub(crate) fn double_price(what: &str, value: f64) -> Result<Price, BrokerError> {
    Price::from_f64(value).ok_or_else(|| bad(format!("{what} {value} is not a finite price")))
}

fn optional_price(what: &str, value: Option<f64>) -> Result<Option<Price>, BrokerError> {
    value.map(|v| double_price(what, v)).transpose()
}

/// An amount scaled by `10^digits` (the message's `moneyDigits`, else the account's).
pub(crate) fn money(
    minor: i64,
    digits: Option<u32>,
    account_digits: u8,
) -> Result<Money, BrokerError> {
    let digits = match digits {
        Some(d) => u8::try_from(d)
            .ok()
            .filter(|d| *d <= 18)
            .ok_or_else(|| bad(format!("moneyDigits {d} out of range")))?,
        None => account_digits,
    };
    Ok(Money::new(minor, digits))
}

/// cTrader's `ProtoOATradeSide` as a domain side.
pub(crate) fn side(raw: i32) -> Result<Side, BrokerError> {
    match ProtoOaTradeSide::try_from(raw) {
        Ok(ProtoOaTradeSide::Buy) => Ok(Side::Buy),
        Ok(ProtoOaTradeSide::Sell) => Ok(Side::Sell),
        Err(_) => Err(bad(format!("trade side {raw}"))),
    }
}

/// A domain side as cTrader's `ProtoOATradeSide`.
pub(crate) fn trade_side(side: Side) -> i32 {
    match side {
        Side::Buy => ProtoOaTradeSide::Buy as i32,
        Side::Sell => ProtoOaTradeSide::Sell as i32,
    }
}

fn client_order_id(raw: Option<&str>) -> Option<ClientOrderId> {
    // Someone else's order may carry an id we would not issue; it is simply not ours.
    raw.and_then(|s| ClientOrderId::new(s).ok())
}

/// Our client order id on an order the broker reports (e.g. in the order history), if it has one.
pub(crate) fn order_client_order_id(o: &ProtoOaOrder) -> Option<ClientOrderId> {
    client_order_id(o.client_order_id.as_deref())
}

fn label(raw: Option<&String>) -> Option<String> {
    raw.filter(|l| !l.is_empty()).cloned()
}

/// A position as the broker reports it.
pub(crate) fn position(
    p: &ProtoOaPosition,
    account_digits: u8,
) -> Result<BrokerPosition, BrokerError> {
    let trade = &p.trade_data;
    let entry = p
        .price
        .ok_or_else(|| bad(format!("position {} has no price", p.position_id)))?;
    Ok(BrokerPosition {
        id: PositionId(p.position_id),
        symbol: SymbolId(trade.symbol_id),
        side: side(trade.trade_side)?,
        volume: Volume(trade.volume),
        entry_price: double_price("position price", entry)?,
        open_time: Timestamp(trade.open_timestamp.unwrap_or_default()),
        stop_loss: optional_price("stop loss", p.stop_loss)?,
        take_profit: optional_price("take profit", p.take_profit)?,
        label: label(trade.label.as_ref()),
        client_order_id: None,
        swap: money(p.swap, p.money_digits, account_digits)?,
        commission: money(
            p.commission.unwrap_or_default(),
            p.money_digits,
            account_digits,
        )?,
    })
}

/// True when the broker says the position is closed.
fn position_closed(p: &ProtoOaPosition) -> bool {
    p.position_status == ProtoOaPositionStatus::PositionStatusClosed as i32
}

/// A pending order as the broker reports it.
pub(crate) fn pending_order(o: &ProtoOaOrder) -> Result<PendingOrder, BrokerError> {
    Ok(PendingOrder {
        order_id: o.order_id,
        symbol: SymbolId(o.trade_data.symbol_id),
        side: side(o.trade_data.trade_side)?,
        volume: Volume(o.trade_data.volume),
        client_order_id: client_order_id(o.client_order_id.as_deref()),
        label: label(o.trade_data.label.as_ref()),
    })
}

/// True for orders that are a position's own stop-loss/take-profit, not something we placed.
pub(crate) fn is_protection_order(o: &ProtoOaOrder) -> bool {
    o.order_type == ProtoOaOrderType::StopLossTakeProfit as i32
}

/// A deal as a domain fill; `None` for deals that executed nothing (rejected, missed).
/// `order` and `position` (from the same execution event) add the client order id and the reason
/// a position closed.
pub(crate) fn fill(
    d: &ProtoOaDeal,
    order: Option<&ProtoOaOrder>,
    position: Option<&ProtoOaPosition>,
    account_digits: u8,
) -> Result<Option<Fill>, BrokerError> {
    let executed = [
        ProtoOaDealStatus::Filled as i32,
        ProtoOaDealStatus::PartiallyFilled as i32,
    ];
    if !executed.contains(&d.deal_status) || d.filled_volume <= 0 {
        return Ok(None);
    }
    let price = d
        .execution_price
        .ok_or_else(|| bad(format!("deal {} has no execution price", d.deal_id)))?;
    let price = double_price("deal price", price)?;
    let order = order.filter(|o| o.order_id == d.order_id);
    let close = match &d.close_position_detail {
        None => None,
        Some(c) => {
            let digits = c.money_digits.or(d.money_digits);
            Some(DealCloseDetail {
                entry_price: double_price("entry price", c.entry_price)?,
                gross_profit: money(c.gross_profit, digits, account_digits)?,
                swap: money(c.swap, digits, account_digits)?,
                commission: money(c.commission, digits, account_digits)?,
                balance: money(c.balance, digits, account_digits)?,
                closed_volume: Volume(c.closed_volume.unwrap_or(d.filled_volume)),
                close_reason: order.and_then(|o| close_reason(o, position, price)),
            })
        }
    };
    Ok(Some(Fill {
        deal_id: d.deal_id,
        order_id: d.order_id,
        position_id: PositionId(d.position_id),
        client_order_id: order.and_then(|o| client_order_id(o.client_order_id.as_deref())),
        symbol: SymbolId(d.symbol_id),
        side: side(d.trade_side)?,
        volume: Volume(d.filled_volume),
        price,
        time: Timestamp(d.execution_timestamp),
        commission: money(
            d.commission.unwrap_or_default(),
            d.money_digits,
            account_digits,
        )?,
        close,
    }))
}

/// Why a closing order closed the position, when its type tells: a stop-out, or the position's
/// protection order (stop-loss or take-profit: the level nearest the execution price).
fn close_reason(
    o: &ProtoOaOrder,
    position: Option<&ProtoOaPosition>,
    price: Price,
) -> Option<CloseReason> {
    if o.is_stop_out == Some(true) {
        return Some(CloseReason::StopOut);
    }
    if !is_protection_order(o) {
        return None;
    }
    let level = |v: Option<f64>| v.and_then(Price::from_f64);
    let sl = level(position.and_then(|p| p.stop_loss).or(o.stop_loss));
    let tp = level(position.and_then(|p| p.take_profit).or(o.take_profit));
    // cTrader reports the triggered level as the protection order's stop price; the execution
    // price (which may have slipped) stands in when it is absent.
    let trigger = level(o.stop_price).unwrap_or(price);
    let distance = |l: Price| (l.raw() - trigger.raw()).unsigned_abs();
    Some(match (sl, tp) {
        (Some(sl), Some(tp)) if distance(tp) < distance(sl) => CloseReason::TakeProfit,
        (None, Some(_)) => CloseReason::TakeProfit,
        _ => CloseReason::StopLoss,
    })
}

/// cTrader's execution type as our kind.
pub(crate) fn execution_kind(raw: i32) -> ExecutionKind {
    use ProtoOaExecutionType as T;
    match T::try_from(raw) {
        Ok(T::OrderAccepted) => ExecutionKind::Accepted,
        Ok(T::OrderFilled) => ExecutionKind::Filled,
        Ok(T::OrderPartialFill) => ExecutionKind::PartialFill,
        Ok(T::OrderReplaced) => ExecutionKind::Replaced,
        Ok(T::OrderCancelled) => ExecutionKind::Cancelled,
        Ok(T::OrderExpired) => ExecutionKind::Expired,
        Ok(T::OrderRejected) => ExecutionKind::Rejected,
        Ok(T::OrderCancelRejected) => ExecutionKind::CancelRejected,
        Ok(T::Swap) => ExecutionKind::Swap,
        Ok(T::DepositWithdraw | T::BonusDepositWithdraw) => ExecutionKind::DepositWithdraw,
        Err(_) => ExecutionKind::Other(raw),
    }
}

/// An execution event as a report. Parts that do not convert are dropped with a warning rather
/// than losing the whole event (the kind and ids still reach the owner, who reconciles).
pub(crate) fn execution_report(e: &ProtoOaExecutionEvent, account_digits: u8) -> ExecutionReport {
    let order = e.order.as_ref();
    let coid = order.and_then(|o| client_order_id(o.client_order_id.as_deref()));
    let position = e
        .position
        .as_ref()
        .and_then(|p| match position(p, account_digits) {
            Ok(mut bp) => {
                // The order that opened the position carries our id; the position itself does not.
                if order.is_some_and(|o| o.closing_order != Some(true)) {
                    bp.client_order_id.clone_from(&coid);
                }
                Some(bp)
            }
            Err(err) => {
                tracing::warn!(error = %err, "execution event: position not converted");
                None
            }
        });
    let fill = e.deal.as_ref().and_then(|d| {
        fill(d, order, e.position.as_ref(), account_digits).unwrap_or_else(|err| {
            tracing::warn!(error = %err, deal = d.deal_id, "execution event: deal not converted");
            None
        })
    });
    ExecutionReport {
        kind: execution_kind(e.execution_type),
        order_id: order.map(|o| o.order_id),
        client_order_id: coid,
        position,
        position_closed: e.position.as_ref().is_some_and(position_closed),
        fill,
        error_code: e.error_code.clone(),
    }
}

/// A full symbol as the domain's specification, schedule converted to UTC.
pub(crate) fn symbol_spec(name: &str, s: &ProtoOaSymbol) -> Result<SymbolSpec, BrokerError> {
    let volume = |field: &str, v: Option<i64>| {
        v.filter(|v| *v > 0)
            .map(Volume)
            .ok_or_else(|| bad(format!("symbol {name}: {field} missing or not positive")))
    };
    let digits = u32::try_from(s.digits)
        .ok()
        .filter(|d| *d <= 5)
        .ok_or_else(|| bad(format!("symbol {name}: digits {}", s.digits)))?;
    let intervals: Vec<(u32, u32)> = s
        .schedule
        .iter()
        .map(|i| (i.start_second, i.end_second))
        .collect();
    let holidays = s
        .holiday
        .iter()
        .map(|h| {
            let seconds = match (h.start_second, h.end_second) {
                (Some(a), Some(b)) => Some((
                    u32::try_from(a).map_err(|_| bad(format!("holiday {}: start {a}", h.name)))?,
                    u32::try_from(b).map_err(|_| bad(format!("holiday {}: end {b}", h.name)))?,
                )),
                _ => None,
            };
            Ok(LocalHoliday {
                name: h.name.clone(),
                epoch_day: h.holiday_date,
                recurring: h.is_recurring,
                seconds,
                zone: h.schedule_time_zone.clone(),
            })
        })
        .collect::<Result<Vec<_>, BrokerError>>()?;
    // The schema makes the zone optional; cTrader's schedules default to UTC when it is absent.
    let zone = s.schedule_time_zone.as_deref().unwrap_or("UTC");
    Ok(SymbolSpec {
        id: SymbolId(s.symbol_id),
        name: name.to_owned(),
        digits,
        pip_position: s.pip_position,
        lot_size: volume("lotSize", s.lot_size)?,
        min_volume: volume("minVolume", s.min_volume)?,
        max_volume: volume("maxVolume", s.max_volume)?,
        step_volume: volume("stepVolume", s.step_volume)?,
        schedule: schedule_to_utc(name, &intervals, zone, &holidays)?,
        // USD_PER_MILLION_USD (1) is a share of notional the bot can budget for; other kinds are
        // left out of sizing rather than guessed.
        commission: match (s.commission_type, s.precise_trading_commission_rate) {
            (Some(1) | None, Some(rate)) if rate >= 0 => Some(NotionalCommission(rate)),
            _ => None,
        },
    })
}

/// The broker's conversion chain from `quote_asset` to `deposit_asset` with each step's direction,
/// walking the light symbols in order: a step whose base is the asset held multiplies, one whose
/// quote is held divides. A chain that does not connect the two assets is refused.
pub(crate) fn conversion_chain(
    quote_asset: i64,
    deposit_asset: i64,
    quote_currency: String,
    chain: &[ProtoOaLightSymbol],
) -> Result<ConversionChain, BrokerError> {
    let mut held = quote_asset;
    let mut steps = Vec::with_capacity(chain.len());
    for s in chain {
        let name = s
            .symbol_name
            .clone()
            .unwrap_or_else(|| s.symbol_id.to_string());
        let (Some(base), Some(quote)) = (s.base_asset_id, s.quote_asset_id) else {
            return Err(bad(format!("conversion symbol {name} lacks its assets")));
        };
        let multiply = if base == held {
            held = quote;
            true
        } else if quote == held {
            held = base;
            false
        } else {
            return Err(bad(format!(
                "conversion chain broken at {name}: it neither starts nor ends with asset {held}"
            )));
        };
        steps.push(ConversionStep {
            symbol: SymbolId(s.symbol_id),
            name,
            multiply,
        });
    }
    if held != deposit_asset {
        return Err(bad(format!(
            "conversion chain from asset {quote_asset} ends at asset {held}, not the deposit asset {deposit_asset}"
        )));
    }
    Ok(ConversionChain {
        quote_currency,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrader_proto::openapi::{ProtoOaClosePositionDetail, ProtoOaInterval, ProtoOaTradeData};

    fn trade(side: ProtoOaTradeSide) -> ProtoOaTradeData {
        ProtoOaTradeData {
            symbol_id: 310,
            volume: 100,
            trade_side: side as i32,
            open_timestamp: Some(1_763_950_001_000),
            label: Some("pob".into()),
            ..Default::default()
        }
    }

    fn long_position() -> ProtoOaPosition {
        ProtoOaPosition {
            position_id: 900_001,
            trade_data: trade(ProtoOaTradeSide::Buy),
            position_status: ProtoOaPositionStatus::PositionStatusOpen as i32,
            swap: -125,
            price: Some(4125.0),
            stop_loss: Some(4085.0),
            take_profit: Some(4205.0),
            commission: Some(-300),
            money_digits: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn converts_a_position_into_fixed_point() {
        let p = position(&long_position(), 2).unwrap();
        assert_eq!(p.entry_price, Price(412_500_000));
        assert_eq!(p.stop_loss, Some(Price(408_500_000)));
        assert_eq!(p.swap, Money::new(-125, 2));
        assert_eq!(p.commission, Money::new(-300, 2));
        assert_eq!(p.side, Side::Buy);
        assert_eq!(p.label.as_deref(), Some("pob"));
        let mut no_price = long_position();
        no_price.price = None;
        assert!(matches!(
            position(&no_price, 2),
            Err(BrokerError::BadValue(_))
        ));
        let mut nan = long_position();
        nan.stop_loss = Some(f64::NAN);
        assert!(position(&nan, 2).is_err());
    }

    #[test]
    fn a_take_profit_close_is_recognised() {
        let mut closed = long_position();
        closed.position_status = ProtoOaPositionStatus::PositionStatusClosed as i32;
        let order = ProtoOaOrder {
            order_id: 2,
            trade_data: trade(ProtoOaTradeSide::Sell),
            order_type: ProtoOaOrderType::StopLossTakeProfit as i32,
            closing_order: Some(true),
            ..Default::default()
        };
        let deal = ProtoOaDeal {
            deal_id: 3,
            order_id: 2,
            position_id: 900_001,
            volume: 100,
            filled_volume: 100,
            symbol_id: 310,
            execution_timestamp: 1_763_960_000_000,
            execution_price: Some(4205.0),
            trade_side: ProtoOaTradeSide::Sell as i32,
            deal_status: ProtoOaDealStatus::Filled as i32,
            close_position_detail: Some(ProtoOaClosePositionDetail {
                entry_price: 4125.0,
                gross_profit: 8_000,
                balance: 1_008_000,
                money_digits: Some(2),
                ..Default::default()
            }),
            money_digits: Some(2),
            ..Default::default()
        };
        let event = ProtoOaExecutionEvent {
            ctid_trader_account_id: 1,
            execution_type: ProtoOaExecutionType::OrderFilled as i32,
            position: Some(closed),
            order: Some(order),
            deal: Some(deal),
            ..Default::default()
        };
        let report = execution_report(&event, 2);
        assert_eq!(report.kind, ExecutionKind::Filled);
        assert!(report.position_closed);
        assert_eq!(report.position.as_ref().unwrap().client_order_id, None);
        let fill = report.fill.unwrap();
        assert_eq!(fill.side, Side::Sell);
        let close = fill.close.unwrap();
        assert_eq!(close.close_reason, Some(CloseReason::TakeProfit));
        assert_eq!(close.gross_profit, Money::new(8_000, 2));
        assert_eq!(close.closed_volume, Volume(100));
        // A stop-loss trailed up to 4200, next to the take-profit at 4205: it triggers and fills
        // at 4203, nearer the take-profit; the order's stop price tells which level it was.
        let mut at_sl = event.clone();
        if let Some(p) = at_sl.position.as_mut() {
            p.stop_loss = Some(4200.0);
        }
        if let Some(o) = at_sl.order.as_mut() {
            o.stop_price = Some(4200.0);
        }
        if let Some(d) = at_sl.deal.as_mut() {
            d.execution_price = Some(4203.0);
        }
        let reason = execution_report(&at_sl, 2)
            .fill
            .unwrap()
            .close
            .unwrap()
            .close_reason;
        assert_eq!(reason, Some(CloseReason::StopLoss));
        // From the deal list (no order): no reason, reconciliation infers it.
        let from_list = super::fill(&deal, None, None, 2).unwrap().unwrap();
        assert_eq!(from_list.close.unwrap().close_reason, None);
        // A rejected deal executed nothing.
        let rejected = ProtoOaDeal {
            deal_status: ProtoOaDealStatus::Rejected as i32,
            ..deal
        };
        assert_eq!(super::fill(&rejected, None, None, 2).unwrap(), None);
    }

    #[test]
    fn converts_a_symbol_with_its_schedule() {
        let s = ProtoOaSymbol {
            symbol_id: 310,
            digits: 0,
            pip_position: 0,
            lot_size: Some(2_500),
            min_volume: Some(100),
            max_volume: Some(100_000),
            step_volume: Some(100),
            schedule: vec![ProtoOaInterval {
                start_second: 86_400 + 37_800,
                end_second: 86_400 + 45_000,
            }],
            schedule_time_zone: Some("Asia/Kuala_Lumpur".into()),
            ..Default::default()
        };
        let spec = symbol_spec("PALMOIL", &s).unwrap();
        assert_eq!(spec.lot_size, Volume(2_500));
        assert_eq!(spec.schedule.sessions[0].start_second, 86_400 + 9_000);
        let no_step = ProtoOaSymbol {
            step_volume: None,
            ..s.clone()
        };
        let err = symbol_spec("PALMOIL", &no_step).unwrap_err();
        assert!(err.to_string().contains("stepVolume"), "{err}");
        // A zone with daylight saving is converted, not refused: one set of sessions per offset.
        let dst = ProtoOaSymbol {
            schedule_time_zone: Some("Europe/London".into()),
            ..s.clone()
        };
        let london = symbol_spec("PALMOIL", &dst).unwrap();
        assert_eq!(london.schedule.sessions[0].start_second, 86_400 + 37_800);
        assert_eq!(london.schedule.changes.len(), 200);
        let unknown = ProtoOaSymbol {
            schedule_time_zone: Some("Atlantis/Capital".into()),
            ..s
        };
        assert!(matches!(
            symbol_spec("PALMOIL", &unknown),
            Err(BrokerError::UnsupportedTimeZone { .. })
        ));
    }

    fn light(id: i64, name: &str, base: i64, quote: i64) -> ProtoOaLightSymbol {
        ProtoOaLightSymbol {
            symbol_id: id,
            symbol_name: Some(name.into()),
            base_asset_id: Some(base),
            quote_asset_id: Some(quote),
            ..Default::default()
        }
    }

    #[test]
    fn a_conversion_chain_knows_which_way_each_step_goes() {
        // MYR (78) → USD (15) through USDMYR (base USD, quote MYR): divide.
        let chain = conversion_chain(78, 15, "MYR".into(), &[light(9, "USDMYR", 15, 78)]).unwrap();
        assert_eq!(chain.steps.len(), 1);
        assert!(!chain.steps[0].multiply);
        // EUR (1) → USD → MYR: EURUSD multiplies, USDMYR multiplies.
        let chain = conversion_chain(
            1,
            78,
            "EUR".into(),
            &[light(2, "EURUSD", 1, 15), light(9, "USDMYR", 15, 78)],
        )
        .unwrap();
        assert!(chain.steps.iter().all(|s| s.multiply));
        // Same currency: no steps.
        assert!(
            conversion_chain(15, 15, "USD".into(), &[])
                .unwrap()
                .steps
                .is_empty()
        );
        // A chain that does not end at the deposit asset, or does not connect, is refused.
        assert!(conversion_chain(78, 1, "MYR".into(), &[light(9, "USDMYR", 15, 78)]).is_err());
        let err = conversion_chain(78, 15, "MYR".into(), &[light(2, "EURUSD", 1, 15)]).unwrap_err();
        assert!(err.to_string().contains("EURUSD"), "{err}");
    }

    #[test]
    fn spot_prices_and_money_digits_are_range_checked() {
        assert_eq!(spot_price(412_300_000).unwrap(), Price(412_300_000));
        assert!(spot_price(u64::MAX).is_err());
        assert_eq!(money(5, None, 2).unwrap(), Money::new(5, 2));
        assert_eq!(money(5, Some(3), 2).unwrap(), Money::new(5, 3));
        assert!(money(5, Some(300), 2).is_err());
        assert!(side(3).is_err());
    }
}
