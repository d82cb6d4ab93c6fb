//! A position closed in several deals: what it closed at and what it made, from every closing
//! deal, never from the last one alone.

use domain::{Fill, Money, Price};

/// The volume-weighted exit price and the net result (each closing deal's gross profit + swap +
/// commission, summed) of `deals`' closing deals; `None` when none closed anything or a sum
/// overflows.
pub(crate) fn exit_of<'a>(deals: impl IntoIterator<Item = &'a Fill>) -> Option<(Price, Money)> {
    let mut weighted: i128 = 0;
    let mut volume: i128 = 0;
    let mut net: Option<Money> = None;
    let mut last_price = None;
    for deal in deals {
        let Some(close) = &deal.close else { continue };
        let closed = i128::from(close.closed_volume.raw().max(0));
        weighted = weighted.checked_add(i128::from(deal.price.raw()).checked_mul(closed)?)?;
        volume += closed;
        let this = domain::realized_pnl(close)?;
        net = Some(match net {
            None => this,
            Some(sum) => sum.checked_add(this)?,
        });
        last_price = Some(deal.price);
    }
    let net = net?;
    let price = if volume > 0 {
        Price(i64::try_from(weighted / volume).ok()?)
    } else {
        last_price?
    };
    Some((price, net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{DealCloseDetail, PositionId, Side, SymbolId, Timestamp, Volume};

    fn closing(
        deal_id: i64,
        price: i64,
        volume: i64,
        gross: i64,
        swap: i64,
        commission: i64,
    ) -> Fill {
        Fill {
            deal_id,
            order_id: 1,
            position_id: PositionId(9),
            client_order_id: None,
            symbol: SymbolId(1),
            side: Side::Sell,
            volume: Volume(volume),
            price: Price(price),
            time: Timestamp(deal_id),
            commission: Money::new(commission, 2),
            close: Some(DealCloseDetail {
                entry_price: Price(100),
                gross_profit: Money::new(gross, 2),
                swap: Money::new(swap, 2),
                commission: Money::new(commission, 2),
                balance: Money::new(0, 2),
                closed_volume: Volume(volume),
                close_reason: None,
            }),
        }
    }

    #[test]
    fn a_position_closed_in_two_deals_made_the_sum_of_both() {
        let opening = Fill {
            close: None,
            ..closing(1, 100, 200, 0, 0, 0)
        };
        let first = closing(2, 110, 100, 6_500, -120, -85);
        let second = closing(3, 130, 100, 6_900, -120, -87);
        let (price, net) = exit_of([&opening, &first, &second]).unwrap();
        assert_eq!(price, Price(120));
        assert_eq!(net, Money::new(6_500 - 120 - 85 + 6_900 - 120 - 87, 2));
        assert_eq!(exit_of([&opening]), None);
    }
}
