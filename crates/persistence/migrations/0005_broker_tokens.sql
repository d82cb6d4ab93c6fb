-- Version 5: the newest cTrader token pair of each account, sealed by the bot (an AEAD ciphertext
-- with its nonce; the key never reaches the database). A refresh token is single-use, so the pair
-- a refresh returns is written here before it is used: the next start finds it. The fingerprint
-- (a keyed hash, not reversible) names the environment's pair this one descends from, so a start
-- can tell a pair the operator put in the environment since from the one already refreshed.

CREATE TABLE broker_tokens (
    account_id          INTEGER PRIMARY KEY,
    sealed              BLOB NOT NULL,
    source_fingerprint  TEXT NOT NULL,
    issued_at           INTEGER NOT NULL,
    expires_at          INTEGER,
    stored_at           INTEGER NOT NULL
) STRICT;
