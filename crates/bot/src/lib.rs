//! The palm-oil-bot application.
