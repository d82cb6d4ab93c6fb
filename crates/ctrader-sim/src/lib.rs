//! A simulated cTrader broker.
