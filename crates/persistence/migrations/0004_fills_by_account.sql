-- Version 4: fills are keyed by (account, deal id). A deal id is unique only within one broker
-- account; the account is the one the store is bound to (store_identity). Rows written before the
-- store was bound carry account 0 until the binding claims them.

CREATE TABLE fills_by_account (
    account_id               INTEGER NOT NULL,
    deal_id                  INTEGER NOT NULL,
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
    close_reason             TEXT,
    PRIMARY KEY (account_id, deal_id)
) STRICT;

INSERT INTO fills_by_account
SELECT COALESCE((SELECT account_id FROM store_identity WHERE id = 1), 0), deal_id, order_id,
       position_id, client_order_id, symbol_id, side, volume, price, time, commission_minor,
       commission_digits, close_entry_price, close_gross_profit_minor, close_swap_minor,
       close_commission_minor, close_balance_minor, close_money_digits, close_volume, close_reason
FROM fills;

DROP TABLE fills;
ALTER TABLE fills_by_account RENAME TO fills;

CREATE INDEX fills_by_time ON fills (time);
CREATE INDEX fills_by_position ON fills (position_id);
