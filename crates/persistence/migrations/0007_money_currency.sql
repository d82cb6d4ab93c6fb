-- Version 7: the deposit currency the kill switch's equity marks (and every stored amount) are in.
-- NULL means a store written before money was kept in the account's currency: its equity peak
-- mixed currencies and is not trusted.
ALTER TABLE bot_state ADD COLUMN money_currency TEXT;
