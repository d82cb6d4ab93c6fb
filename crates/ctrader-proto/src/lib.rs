//! The cTrader Open API wire protocol.
