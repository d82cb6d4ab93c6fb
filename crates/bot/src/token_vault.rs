//! The token vault: a cTrader token pair returned by a refresh is sealed (ChaCha20-Poly1305, with
//! a key derived from CTRADER_CLIENT_SECRET by HKDF-SHA256) and stored in the database before the
//! client uses it, because the refresh token it replaced is already spent. At start the newest
//! pair wins: the stored one while the environment still holds the pair it was refreshed from,
//! the environment's once the operator put another pair there. No token is ever logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ctrader_client::{KeepFuture, RefreshedTokens, Timing, TokenExpiry, TokenKeeper};
use domain::{Clock, Secret, SystemClock};
use persistence::{SealedTokens, TradeStore};
use ring::rand::SecureRandom as _;
use ring::{aead, hkdf, hmac, rand};
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// Domain separation for the derived keys: changing it makes every stored pair unreadable.
const SALT: &[u8] = b"palm-oil-bot token vault v1";
const NONCE_LEN: usize = aead::NONCE_LEN;

/// Where the pair a session starts with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// The environment's pair (nothing stored yet, or nothing readable).
    Environment,
    /// The stored pair, refreshed from the environment's pair, which is therefore spent.
    Stored,
    /// The environment holds a pair other than the one the stored pair came from: the operator
    /// put a new one there, and it wins.
    NewInEnvironment,
}

/// The pair to start with.
#[derive(Debug, Clone)]
pub struct StartTokens {
    /// Access token.
    pub access: Secret,
    /// Refresh token, when there is one.
    pub refresh: Option<Secret>,
    /// The access token's life, when known (a stored pair).
    pub expiry: Option<TokenExpiry>,
    /// Where it came from.
    pub origin: TokenOrigin,
}

/// Seals, stores and chooses the account's tokens; hands every refreshed pair to the store
/// before the client uses it.
pub struct TokenVault {
    store: Arc<dyn TradeStore>,
    account_id: i64,
    seal_key: aead::LessSafeKey,
    fingerprint_key: hmac::Key,
    random: rand::SystemRandom,
    /// The fingerprint of the environment pair the session's tokens descend from.
    source: Mutex<String>,
    /// Refreshes between their request and their answer being kept.
    refreshes: TaskTracker,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVault")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// A 32-byte key for `purpose`, derived from the client secret.
fn derive(secret: &Secret, purpose: &[u8]) -> Result<[u8; 32], String> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.expose().as_bytes());
    let info = [purpose];
    let okm = prk
        .expand(&info, hkdf::HKDF_SHA256)
        .map_err(|_| "token vault: key derivation failed".to_owned())?;
    let mut key = [0_u8; 32];
    okm.fill(&mut key)
        .map_err(|_| "token vault: key derivation failed".to_owned())?;
    Ok(key)
}

/// How long an exit waits for a refresh in flight: the refresh request's own timeout, twice.
pub fn refresh_answer_wait(timing: &Timing) -> Duration {
    timing.request_timeout.saturating_mul(2)
}

impl TokenVault {
    /// A vault for `account_id` whose keys derive from `client_secret`.
    pub fn new(
        store: Arc<dyn TradeStore>,
        account_id: i64,
        client_secret: &Secret,
    ) -> Result<TokenVault, String> {
        let seal = derive(client_secret, b"seal")?;
        let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &seal)
            .map_err(|_| "token vault: cannot build the sealing key".to_owned())?;
        let fingerprint = derive(client_secret, b"fingerprint")?;
        Ok(TokenVault {
            store,
            account_id,
            seal_key: aead::LessSafeKey::new(unbound),
            fingerprint_key: hmac::Key::new(hmac::HMAC_SHA256, &fingerprint),
            random: rand::SystemRandom::new(),
            source: Mutex::new(String::new()),
            refreshes: TaskTracker::new(),
        })
    }

    /// A keyed hash of a pair: equal pairs give equal fingerprints; it reveals nothing of them.
    fn fingerprint(&self, access: &Secret, refresh: Option<&Secret>) -> String {
        let mut context = hmac::Context::with_key(&self.fingerprint_key);
        let access = access.expose().as_bytes();
        context.update(
            &u64::try_from(access.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        context.update(access);
        context.update(refresh.map_or("", |r| r.expose()).as_bytes());
        hex::encode(context.sign().as_ref())
    }

    fn associated_data(&self, source: &str) -> String {
        format!("account {} from {source}", self.account_id)
    }

    /// Chooses the pair to start with (see the module documentation) and remembers which
    /// environment pair the session descends from.
    pub async fn start_tokens(
        &self,
        env_access: &Secret,
        env_refresh: Option<&Secret>,
    ) -> Result<StartTokens, String> {
        let env_fingerprint = self.fingerprint(env_access, env_refresh);
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = env_fingerprint.clone();
        let environment = |origin| StartTokens {
            access: env_access.clone(),
            refresh: env_refresh.cloned(),
            expiry: None,
            origin,
        };
        let stored = self
            .store
            .tokens(self.account_id)
            .await
            .map_err(|e| format!("cannot read the stored broker tokens: {e}"))?;
        let Some(stored) = stored else {
            return Ok(environment(TokenOrigin::Environment));
        };
        if stored.source_fingerprint != env_fingerprint {
            tracing::info!(
                "the environment holds a new cTrader token pair; it replaces the stored one"
            );
            return Ok(environment(TokenOrigin::NewInEnvironment));
        }
        match self.open(&stored) {
            Some((access, refresh)) => {
                tracing::info!(
                    "using the stored cTrader token pair (refreshed from the environment's)"
                );
                Ok(StartTokens {
                    access,
                    refresh: Some(refresh),
                    expiry: stored.expires_at.map(|expires_at| TokenExpiry {
                        issued_at: stored.issued_at,
                        expires_at,
                    }),
                    origin: TokenOrigin::Stored,
                })
            }
            None => {
                tracing::warn!(
                    "the stored cTrader token pair cannot be decrypted (was CTRADER_CLIENT_SECRET \
                     changed?); using the environment's"
                );
                Ok(environment(TokenOrigin::Environment))
            }
        }
    }

    /// Waits, at most `within`, until no refresh is between its request and its answer being
    /// kept; false when one still is. Called before the process stops: the broker spends the
    /// old refresh token the moment it answers, so an answer left unread (a SIGTERM during a
    /// refresh) would leave the next start only dead tokens.
    pub async fn settle(&self, within: Duration) -> bool {
        if self.refreshes.is_empty() {
            return true;
        }
        tracing::info!("waiting for the broker's answer to a token refresh before stopping");
        // Closed for good: `wait` needs it, and a later refresh still takes a guard.
        self.refreshes.close();
        let settled = tokio::time::timeout(within, self.refreshes.wait())
            .await
            .is_ok();
        if settled {
            tracing::info!("the token refresh in flight was answered and its pair stored");
        } else {
            tracing::error!(
                waited_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX),
                "stopping with a token refresh still unanswered: the next start may find the \
                 refresh token spent and need new tokens from `palm-oil-bot auth`"
            );
        }
        settled
    }

    fn seal(&self, tokens: &RefreshedTokens, source: &str) -> Result<Vec<u8>, String> {
        let access = tokens.access_token.expose().as_bytes();
        let refresh = tokens.refresh_token.expose().as_bytes();
        let mut plain = Vec::with_capacity(4 + access.len() + refresh.len() + 16);
        let access_len =
            u32::try_from(access.len()).map_err(|_| "access token too long".to_owned())?;
        plain.extend_from_slice(&access_len.to_be_bytes());
        plain.extend_from_slice(access);
        plain.extend_from_slice(refresh);
        let mut nonce = [0_u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce".to_owned())?;
        self.seal_key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(self.associated_data(source).as_bytes()),
                &mut plain,
            )
            .map_err(|_| "sealing the tokens failed".to_owned())?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&plain);
        Ok(sealed)
    }

    /// The stored pair, or `None` when it does not open with this key (or is malformed).
    fn open(&self, stored: &SealedTokens) -> Option<(Secret, Secret)> {
        let (nonce, sealed) = stored.sealed.split_at_checked(NONCE_LEN)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .seal_key
            .open_in_place(
                nonce,
                aead::Aad::from(self.associated_data(&stored.source_fingerprint).as_bytes()),
                &mut buffer,
            )
            .ok()?;
        let (length, rest) = plain.split_at_checked(4)?;
        let length = usize::try_from(u32::from_be_bytes(length.try_into().ok()?)).ok()?;
        let (access, refresh) = rest.split_at_checked(length)?;
        let access = String::from_utf8(access.to_vec()).ok()?;
        let refresh = String::from_utf8(refresh.to_vec()).ok()?;
        Some((Secret::new(access), Secret::new(refresh)))
    }
}

impl TokenKeeper for TokenVault {
    fn keep<'a>(&'a self, tokens: &'a RefreshedTokens) -> KeepFuture<'a> {
        Box::pin(async move {
            let source = self
                .source
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let sealed = self.seal(tokens, &source)?;
            let row = SealedTokens {
                account_id: self.account_id,
                sealed,
                source_fingerprint: source,
                issued_at: tokens.issued_at,
                expires_at: tokens.expires_at,
                stored_at: SystemClock.now(),
            };
            self.store
                .save_tokens(&row)
                .await
                .map_err(|e| format!("the database refused them: {e}"))?;
            tracing::info!("refreshed cTrader tokens stored (encrypted)");
            Ok(())
        })
    }

    fn refresh_started(&self) -> Option<TaskTrackerToken> {
        Some(self.refreshes.token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;
    use persistence::MemoryTradeStore;

    fn vault(store: &Arc<dyn TradeStore>, secret: &str) -> TokenVault {
        TokenVault::new(Arc::clone(store), 44, &Secret::new(secret)).unwrap()
    }

    fn refreshed(n: u32) -> RefreshedTokens {
        RefreshedTokens {
            access_token: Secret::new(format!("access-{n}")),
            refresh_token: Secret::new(format!("refresh-{n}")),
            issued_at: Timestamp(1_000),
            expires_at: Some(Timestamp(11_000)),
        }
    }

    #[tokio::test]
    async fn the_newest_pair_wins_at_start() {
        let store: Arc<dyn TradeStore> = Arc::new(MemoryTradeStore::new());
        let env = (Secret::new("access-0"), Secret::new("refresh-0"));
        let v = vault(&store, "client-secret");
        let start = v.start_tokens(&env.0, Some(&env.1)).await.unwrap();
        assert_eq!(start.origin, TokenOrigin::Environment);
        v.keep(&refreshed(1)).await.unwrap();
        v.keep(&refreshed(2)).await.unwrap();

        // A restart with the original environment: the stored pair is newer.
        let again = vault(&store, "client-secret");
        let start = again.start_tokens(&env.0, Some(&env.1)).await.unwrap();
        assert_eq!(start.origin, TokenOrigin::Stored);
        assert_eq!(start.access.expose(), "access-2");
        assert_eq!(start.refresh.as_ref().unwrap().expose(), "refresh-2");
        assert_eq!(
            start.expiry.unwrap().refresh_due(),
            Timestamp(9_000),
            "80 % of a 10 s life"
        );

        // The operator put a new pair in the environment: it wins.
        let fresh = (Secret::new("access-new"), Secret::new("refresh-new"));
        let start = again.start_tokens(&fresh.0, Some(&fresh.1)).await.unwrap();
        assert_eq!(start.origin, TokenOrigin::NewInEnvironment);
        assert_eq!(start.access.expose(), "access-new");
    }

    #[tokio::test]
    async fn stopping_waits_for_a_refresh_in_flight_to_be_kept_but_not_forever() {
        let store: Arc<dyn TradeStore> = Arc::new(MemoryTradeStore::new());
        let v = Arc::new(vault(&store, "client-secret"));
        v.start_tokens(&Secret::new("access-0"), None)
            .await
            .unwrap();
        assert!(
            v.settle(Duration::from_millis(1)).await,
            "nothing in flight"
        );

        // An answer that never comes: the wait gives up and says so.
        let stuck = v.refresh_started();
        assert!(!v.settle(Duration::from_millis(50)).await);
        drop(stuck);

        // An answer kept 100 ms later: the wait sees it stored.
        let in_flight = v.refresh_started();
        let keeper = Arc::clone(&v);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            keeper.keep(&refreshed(3)).await.unwrap();
            drop(in_flight);
        });
        assert!(v.settle(Duration::from_secs(10)).await);
        let start = v
            .start_tokens(&Secret::new("access-0"), None)
            .await
            .unwrap();
        assert_eq!(start.access.expose(), "access-3");
        // The vault takes later refreshes as before.
        assert!(v.refresh_started().is_some());
    }

    #[tokio::test]
    async fn tokens_are_sealed_at_rest_and_a_changed_secret_cannot_open_them() {
        let store: Arc<dyn TradeStore> = Arc::new(MemoryTradeStore::new());
        let env = Secret::new("access-0");
        let v = vault(&store, "client-secret");
        v.start_tokens(&env, None).await.unwrap();
        v.keep(&refreshed(7)).await.unwrap();
        let row = store.tokens(44).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&row.sealed);
        assert!(!text.contains("access-7") && !text.contains("refresh-7"));
        assert!(!row.source_fingerprint.contains("access-0"));
        let other = vault(&store, "another-secret");
        let start = other.start_tokens(&env, None).await.unwrap();
        assert_eq!(
            start.origin,
            TokenOrigin::NewInEnvironment,
            "another key gives another fingerprint"
        );
        // Tampering with the ciphertext is detected.
        let mut tampered = row.clone();
        let last = tampered.sealed.len() - 1;
        tampered.sealed[last] ^= 1;
        assert!(v.open(&tampered).is_none());
        assert!(v.open(&row).is_some());
    }
}
