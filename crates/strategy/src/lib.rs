//! Trading decisions.
