//! Sentiment sources.
