//! The account's money in its deposit currency: the live quote→deposit rate of the traded symbol
//! (through the broker's conversion chain), unrealized PnL and equity. Every money figure the
//! engine acts on or shows comes from here, so two views of one moment cannot disagree.

use std::collections::HashMap;

use domain::{
    AccountCurrency, ConversionChain, ConversionRate, Money, Position, Quote, SymbolId,
    unrealized_pnl,
};

/// What the engine knows of the account's money between two events.
#[derive(Debug, Clone)]
pub(super) struct AccountMoney {
    /// The deposit currency and its digits.
    pub(super) currency: AccountCurrency,
    /// How the traded symbol's quote currency becomes the deposit currency.
    pub(super) chain: ConversionChain,
    /// The latest quote of each conversion symbol received since the link last came up.
    rate_quotes: HashMap<SymbolId, Quote>,
    /// The balance (no unrealized PnL).
    pub(super) balance: Money,
    /// Swap and commission the broker has charged on our open position so far.
    pub(super) charges: Money,
}

impl AccountMoney {
    /// The money of an account in `currency` holding `balance`, converting through `chain`.
    pub(super) fn new(currency: AccountCurrency, chain: ConversionChain, balance: Money) -> Self {
        let digits = currency.money_digits;
        AccountMoney {
            currency,
            chain,
            rate_quotes: HashMap::new(),
            balance,
            charges: Money::zero(digits),
        }
    }

    /// Keeps a conversion symbol's quote; false when `quote` is not of one.
    pub(super) fn on_quote(&mut self, quote: Quote) -> bool {
        if self.chain.steps.iter().any(|s| s.symbol == quote.symbol) {
            self.rate_quotes.insert(quote.symbol, quote);
            true
        } else {
            false
        }
    }

    /// The link dropped: rates seen before may be stale until the resubscription's first quotes.
    pub(super) fn link_lost(&mut self) {
        self.rate_quotes.clear();
    }

    /// Takes the swap and commission the broker reports on our open position.
    pub(super) fn set_charges(&mut self, position: &domain::BrokerPosition) {
        let digits = self.currency.money_digits;
        if let Some(c) = position
            .swap
            .checked_add(position.commission)
            .and_then(|c| c.rescale(digits))
        {
            self.charges = c;
        }
    }

    /// No open position: nothing charged.
    pub(super) fn clear_charges(&mut self) {
        self.charges = Money::zero(self.currency.money_digits);
    }

    /// The rate to use now, or why none may be used.
    pub(super) fn rate(&self) -> Result<ConversionRate, String> {
        self.chain
            .rate(|s| self.rate_quotes.get(&s).copied())
            .ok_or_else(|| {
                let missing: Vec<&str> = self
                    .chain
                    .steps
                    .iter()
                    .filter(|s| !self.rate_quotes.contains_key(&s.symbol))
                    .map(|s| s.name.as_str())
                    .collect();
                format!(
                    "no fresh rate from {} to {}: no {} quote since the link came up",
                    self.chain.quote_currency,
                    self.currency.code,
                    missing.join(", ")
                )
            })
    }

    /// The open position's PnL if closed at `quote` (cTrader's convention), with its charges;
    /// `None` without a position, a quote or a rate.
    pub(super) fn unrealized(
        &self,
        position: Option<&Position>,
        quote: Option<Quote>,
    ) -> Option<Money> {
        let (p, q) = (position?, quote?);
        let rate = self.rate().ok()?;
        unrealized_pnl(
            p.side,
            p.entry_price,
            p.volume,
            &q,
            rate,
            self.charges,
            self.currency.money_digits,
        )
    }

    /// Balance plus `unrealized`.
    pub(super) fn equity(&self, unrealized: Option<Money>) -> Money {
        unrealized
            .and_then(|u| self.balance.checked_add(u))
            .and_then(|e| e.rescale(self.currency.money_digits))
            .unwrap_or(self.balance)
    }

    /// A money amount as a person reads it: `12.5 USD`.
    pub(super) fn show(&self, amount: Money) -> String {
        format!("{amount} {}", self.currency.code)
    }

    /// The status view of the conversion.
    pub(super) fn view(&self) -> observability::ConversionView {
        let rate = self.rate();
        observability::ConversionView {
            quote_currency: self.chain.quote_currency.clone(),
            account_currency: self.currency.code.clone(),
            rate: rate
                .as_ref()
                .ok()
                .filter(|_| !self.chain.steps.is_empty())
                .map(|r| r.to_f64()),
            via: self.chain.steps.iter().map(|s| s.name.clone()).collect(),
            unavailable: rate.err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{ConversionStep, PositionId, PositionStatus, Price, Side, Timestamp, Volume};

    fn usd_account() -> AccountMoney {
        AccountMoney::new(
            AccountCurrency {
                asset_id: 15,
                code: "USD".into(),
                money_digits: 2,
            },
            ConversionChain {
                quote_currency: "MYR".into(),
                steps: vec![ConversionStep {
                    symbol: SymbolId(9),
                    name: "USDMYR".into(),
                    multiply: false,
                }],
            },
            Money::new(1_000_000, 2),
        )
    }

    fn long(volume: i64, entry: i64) -> Position {
        Position {
            id: PositionId(1),
            symbol: SymbolId(1),
            side: Side::Buy,
            volume: Volume(volume),
            entry_price: Price(entry),
            entry_time: Timestamp(0),
            stop_loss: None,
            take_profit: None,
            label: None,
            client_order_id: None,
            status: PositionStatus::Open,
            exit_price: None,
            exit_time: None,
            pnl: None,
            close_reason: None,
        }
    }

    fn quote(symbol: i64, bid: i64, ask: i64) -> Quote {
        Quote {
            symbol: SymbolId(symbol),
            bid: Price(bid),
            ask: Price(ask),
            time: Timestamp(0),
        }
    }

    /// The user's report: a MYR move was shown as USD. A 10 t long up 42 MYR at USDMYR 4.2 is
    /// 420 MYR = 100 USD, and equity moves by that, not by 420.
    #[test]
    fn unrealized_pnl_is_converted_with_the_live_rate() {
        let mut money = usd_account();
        let position = long(1_000, 400_000_000);
        let palm = quote(1, 404_200_000, 404_300_000);
        assert_eq!(
            money.unrealized(Some(&position), Some(palm)),
            None,
            "no rate yet"
        );
        assert!(money.rate().unwrap_err().contains("USDMYR"));
        assert!(money.on_quote(quote(9, 420_000, 420_000)));
        assert!(!money.on_quote(palm));
        let pnl = money.unrealized(Some(&position), Some(palm)).unwrap();
        assert_eq!(pnl, Money::new(10_000, 2));
        assert_eq!(money.equity(Some(pnl)), Money::new(1_010_000, 2));
        // Charges on the position count too.
        money.charges = Money::new(-350, 2);
        assert_eq!(
            money.unrealized(Some(&position), Some(palm)),
            Some(Money::new(9_650, 2))
        );
        // A dropped link makes the rate unusable until the next quote.
        money.link_lost();
        assert!(money.rate().is_err());
        assert!(money.view().unavailable.is_some());
    }
}
