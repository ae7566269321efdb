-- latchkey schema version 10: the access token issued with a refresh token is recorded in the
-- refresh token's row. Never edit; add 0011.
--
-- A grant revokes its access tokens by jti, so every access token issued under a grant is
-- recorded. Issued together with a refresh token (every rotation, and a code exchange by a
-- client that may refresh), it was a row in grant_tokens: a second B-tree page dirtied per
-- rotation beside the refresh token's own. Now it is two columns of the refresh token row
-- that is written anyway. grant_tokens keeps the access tokens issued without a refresh token,
-- and the rows written before this version. A refresh token row that still names an unexpired
-- access token outlives its own idle expiry until that access token expires.

ALTER TABLE refresh_tokens ADD COLUMN access_jti TEXT;
ALTER TABLE refresh_tokens ADD COLUMN access_expires_at INTEGER;
