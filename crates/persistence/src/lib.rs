//! Durable trading records.
