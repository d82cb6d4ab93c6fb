//! The cTrader Open API client.
