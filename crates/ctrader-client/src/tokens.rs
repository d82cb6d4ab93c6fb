//! Where a refreshed token pair goes before the client uses it. A refresh token is single-use:
//! once the broker has answered a refresh, the old pair is dead, so the new pair must be kept
//! durably before anything relies on it, or a restart would find only dead tokens.

use std::future::Future;
use std::pin::Pin;

use domain::{Secret, Timestamp};
use tokio_util::task::task_tracker::TaskTrackerToken;

/// A pair the broker issued in exchange for a refresh token. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedTokens {
    /// The new access token.
    pub access_token: Secret,
    /// The new refresh token (the previous one no longer works).
    pub refresh_token: Secret,
    /// When the broker issued the pair (wall-clock time).
    pub issued_at: Timestamp,
    /// When the access token expires, when the broker said.
    pub expires_at: Option<Timestamp>,
}

/// What keeping a pair returns: an error is a sentence naming the problem, never a secret.
pub type KeepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Keeps refreshed tokens durably (the bot: encrypted in its database). The client calls it
/// after every refresh and uses the new pair only once it returned `Ok`.
pub trait TokenKeeper: Send + Sync + std::fmt::Debug {
    /// Stores `tokens` so the next start finds them.
    fn keep<'a>(&'a self, tokens: &'a RefreshedTokens) -> KeepFuture<'a>;

    /// Told just before a refresh request leaves. The client holds what this returns until the
    /// answer has been kept or the refresh has failed, so an owner stopping the process can wait
    /// for it: once the broker has answered, the old pair is dead whether or not anyone read
    /// the answer. `None` (the default) when nothing waits.
    fn refresh_started(&self) -> Option<TaskTrackerToken> {
        None
    }
}

/// Keeps refreshed tokens in memory only (tests, the demo): a restart starts from the
/// configured pair again.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryTokens;

impl TokenKeeper for InMemoryTokens {
    fn keep<'a>(&'a self, _tokens: &'a RefreshedTokens) -> KeepFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}
