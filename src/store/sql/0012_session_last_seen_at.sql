-- One name per concept: an instant is <event>_at, like expires_at beside it.
ALTER TABLE sessions RENAME COLUMN last_seen TO last_seen_at;
