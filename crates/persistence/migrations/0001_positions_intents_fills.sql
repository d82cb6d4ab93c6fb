-- Version 1: what the bot trades. Prices are 1/100000 units, volumes 0.01 units, money minor units
-- with their number of decimals beside them, times UTC milliseconds: integers throughout.

CREATE TABLE order_intents (
    client_order_id      TEXT PRIMARY KEY NOT NULL,
    symbol_id            INTEGER NOT NULL,
    side                 TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    volume               INTEGER NOT NULL CHECK (volume > 0),
    relative_stop_loss   INTEGER,
    relative_take_profit INTEGER,
    label                TEXT NOT NULL,
    position_to_close    INTEGER,
    status               TEXT NOT NULL
        CHECK (status IN ('pending', 'sent', 'accepted', 'filled', 'rejected', 'lost')),
    reason               TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    broker_order_id      INTEGER,
    position_id          INTEGER,
    note                 TEXT
) STRICT;

CREATE INDEX order_intents_in_flight ON order_intents (status, created_at);

CREATE TABLE positions (
    position_id     INTEGER PRIMARY KEY NOT NULL,
    symbol_id       INTEGER NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    volume          INTEGER NOT NULL CHECK (volume >= 0),
    entry_price     INTEGER NOT NULL,
    entry_time      INTEGER NOT NULL,
    stop_loss       INTEGER,
    take_profit     INTEGER,
    label           TEXT,
    client_order_id TEXT,
    status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    exit_price      INTEGER,
    exit_time       INTEGER,
    pnl_minor       INTEGER,
    pnl_digits      INTEGER,
    close_reason    TEXT
) STRICT;

CREATE INDEX positions_by_status ON positions (status, entry_time);

CREATE TABLE fills (
    deal_id                  INTEGER PRIMARY KEY NOT NULL,
    order_id                 INTEGER NOT NULL,
    position_id              INTEGER NOT NULL REFERENCES positions (position_id),
    client_order_id          TEXT,
    symbol_id                INTEGER NOT NULL,
    side                     TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    volume                   INTEGER NOT NULL,
    price                    INTEGER NOT NULL,
    time                     INTEGER NOT NULL,
    commission_minor         INTEGER NOT NULL,
    commission_digits        INTEGER NOT NULL,
    close_entry_price        INTEGER,
    close_gross_profit_minor INTEGER,
    close_swap_minor         INTEGER,
    close_commission_minor   INTEGER,
    close_balance_minor      INTEGER,
    close_money_digits       INTEGER,
    close_volume             INTEGER,
    close_reason             TEXT
) STRICT;

CREATE INDEX fills_by_time ON fills (time);
CREATE INDEX fills_by_position ON fills (position_id);
