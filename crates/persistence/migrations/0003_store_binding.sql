-- Version 3: whose store this is, which process trades it, and which findings a person has checked.

-- Exactly one row once bound: the broker host, account and environment the store was first used
-- with. A start with another identity is refused (a fresh store is an explicit operator decision).
CREATE TABLE store_identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    broker_host TEXT NOT NULL,
    account_id  INTEGER NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('demo', 'live')),
    bound_at    INTEGER NOT NULL
) STRICT;

-- At most one row: the process that holds the store's lock file (the OS lock is the authority;
-- this row names the holder to a second process and survives a crash as evidence).
CREATE TABLE store_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    command    TEXT NOT NULL
) STRICT;

-- A finding to check by hand (a position gone from the broker with no closing deal: the store
-- cannot account for how it ended) keeps trading off until an operator acknowledges it. Such rows
-- written by version 2 are findings too.
ALTER TABLE reconcile_audit ADD COLUMN check_by_hand INTEGER NOT NULL DEFAULT 0
    CHECK (check_by_hand IN (0, 1));
ALTER TABLE reconcile_audit ADD COLUMN acknowledged_at INTEGER;
UPDATE reconcile_audit SET check_by_hand = 1 WHERE kind = 'close_unexplained';

CREATE INDEX reconcile_audit_open_findings ON reconcile_audit (check_by_hand, acknowledged_at);
