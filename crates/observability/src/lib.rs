//! Observability.
