-- Version 2: what reconciliation changed and why, the risk state that must survive a restart, and
-- sentiment readings with the instant they became known (so a backtest replays only what was knowable).

CREATE TABLE reconcile_audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    before   TEXT NOT NULL,
    after    TEXT NOT NULL,
    why      TEXT NOT NULL,
    flagged  INTEGER NOT NULL CHECK (flagged IN (0, 1))
) STRICT;

-- Exactly one row: the bot's state.
CREATE TABLE bot_state (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    kill_engaged            INTEGER NOT NULL CHECK (kill_engaged IN (0, 1)),
    kill_reason             TEXT,
    kill_engaged_at         INTEGER,
    equity_peak_minor       INTEGER,
    equity_peak_digits      INTEGER,
    day_start_equity_minor  INTEGER,
    day_start_equity_digits INTEGER,
    day                     INTEGER,
    reconciled_until        INTEGER
) STRICT;

INSERT INTO bot_state (id, kill_engaged) VALUES (1, 0);

CREATE TABLE sentiment_readings (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    known_at   INTEGER NOT NULL,
    source     TEXT NOT NULL,
    score      REAL NOT NULL CHECK (score BETWEEN -1.0 AND 1.0),
    confidence REAL NOT NULL CHECK (confidence BETWEEN 0.0 AND 1.0),
    item_count INTEGER NOT NULL CHECK (item_count >= 0),
    summary    TEXT NOT NULL
) STRICT;

CREATE INDEX sentiment_by_time ON sentiment_readings (known_at);
CREATE INDEX sentiment_by_source_time ON sentiment_readings (source, known_at);

-- Resolving an intent records which position it became; look-ups go both ways.
CREATE INDEX order_intents_by_position ON order_intents (position_id);
