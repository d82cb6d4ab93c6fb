-- Version 8: the broker balance the kill switch's equity marks account for, and the time of the
-- latest closing deal in it, so cash moved while the bot was away is told apart from a loss.
ALTER TABLE bot_state ADD COLUMN marked_balance_minor INTEGER;
ALTER TABLE bot_state ADD COLUMN marked_balance_digits INTEGER;
ALTER TABLE bot_state ADD COLUMN marked_balance_at INTEGER;
