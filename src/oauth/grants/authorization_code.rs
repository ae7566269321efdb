//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6, OAuth 2.1 §4.1.3).
//!
//! The code is checked and consumed in one `BEGIN IMMEDIATE` transaction. A code presented a
//! second time fails with `invalid_grant` and revokes everything issued from it — but only
//! when the replay is otherwise valid (right client, redirect URI and verifier), so a stranger
//! holding a stolen code cannot revoke a user's tokens (OAuth 2.1 §7.5.2). Such a replay is
//! written to the audit log in the transaction that revokes (`authorization_code_reused`).

use crate::app::Worker;
use crate::crypto::sha256;
use crate::http::Resp;
use crate::http::form::Form;
use crate::oauth::error::OAuthError;
use crate::oauth::grants::refresh_token::replay_event;
use crate::oauth::grants::tokens::{self, Minted};
use crate::oauth::policy::{self, Refusal};
use crate::oauth::{pkce, redirect_uri};
use crate::store::grants::{self as g, CodeRow};
use crate::store::sessions::consent_covers;
use crate::store::users;
use crate::store::{Client, User};

/// The wire value.
pub const GRANT_TYPE: &str = "authorization_code";

/// Exchanges a code. The client is authenticated (or, if public, identified) and allowed this
/// grant.
pub fn exchange(
    w: &mut Worker,
    client: &Client,
    form: &Form,
    address: &str,
    now: i64,
) -> Result<Resp, OAuthError> {
    let code = form
        .get("code")?
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let redirect = form.get("redirect_uri")?;
    let verifier = form.get("code_verifier")?;
    let hash = sha256(code.as_bytes());
    let minted = Minted::new(client)?;
    let refresh_ttl = w.app.settings().get(crate::config::Setting::RefreshTtl);
    let refresh_idle = w.app.settings().get(crate::config::Setting::RefreshIdleTtl);
    let access_exp = now + tokens::access_ttl(w, client);

    // Access tokens a replay revoked, for the in-memory revocation list once committed.
    let mut revoked = Vec::new();
    let outcome: Result<(CodeRow, User), OAuthError> = w.store.transaction(|tx| {
        let Some(row) = g::code_tx(tx, &hash)? else {
            return Ok(Err(OAuthError::invalid_grant("authorization code is invalid")));
        };
        if row.client_id != client.client_id {
            return Ok(Err(OAuthError::invalid_grant("authorization code was issued to another client")));
        }
        let redirect_ok = match (&row.redirect_uri, redirect) {
            (Some(sent), Some(now_sent)) => sent == now_sent,
            (Some(_), None) => false,
            // Omitted at /authorize (one registered URI): it may be omitted or repeated here.
            (None, None) => true,
            (None, Some(r)) => redirect_uri::matches(&client.redirect_uris, r),
        };
        if !redirect_ok {
            return Ok(Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request")));
        }
        match (&row.code_challenge, verifier) {
            (Some(ch), Some(v)) if pkce::verify(v, ch) => {}
            (Some(_), Some(_)) => return Ok(Err(OAuthError::invalid_grant("code_verifier does not match"))),
            (Some(_), None) => return Ok(Err(OAuthError::invalid_grant("code_verifier is missing"))),
            // RFC 9700 §4.8.2: no verifier for a code issued without a challenge (downgrade).
            (None, Some(_)) => {
                return Ok(Err(OAuthError::invalid_request(
                    "code_verifier sent for a code issued without code_challenge",
                )));
            }
            (None, None) => {}
        }
        if row.used_at.is_some() {
            if let Some(grant) = &row.grant_id {
                revoked = g::revoke_grant_tx(tx, grant, now)?;
            }
            let grant = row.grant_id.as_deref().unwrap_or("");
            let event = replay_event(client, "authorization_code_reused", grant, address, now);
            crate::store::audit::append_audit_tx(tx, &event)?;
            log::warn!(target: "latchkey::security", "authorization code replayed by client {}; its grant was revoked", client.client_id);
            return Ok(Err(OAuthError::invalid_grant("authorization code was already used")));
        }
        if row.expires_at <= now {
            return Ok(Err(OAuthError::invalid_grant("authorization code expired")));
        }
        // The sign-in is checked again: group, consent and user may have changed since the
        // code was issued, and POST /consent is not the only way a code comes to exist.
        let user = users::user_tx(tx, &row.user_id)?;
        let scope: Vec<String> = row.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
        if let Err(refused) = policy::still_allowed(client, user.as_ref(), &[GRANT_TYPE], &scope, |u, c, s| {
            consent_covers(tx, u, c, s)
        })? {
            log::info!(target: "latchkey::security", "code refused for client {}: {}", client.client_id, refused.description());
            return Ok(Err(refused.token_error()));
        }
        let Some(user) = user else {
            return Ok(Err(Refusal::UserInactive.token_error()));
        };
        if !g::use_code_tx(tx, &hash, &minted.grant_id, now)? {
            return Ok(Err(OAuthError::invalid_grant("authorization code was already used")));
        }
        g::insert_grant_tx(
            tx,
            &minted.grant_id,
            &client.client_id,
            &row.user_id,
            &row.scope,
            (row.auth_time, &row.amr),
            now,
            now + refresh_ttl,
        )?;
        // The access token is recorded in its refresh token's row, or on its own without one.
        match &minted.refresh {
            Some(r) => {
                let hash = sha256(r.as_bytes());
                g::insert_refresh_tx(
                    tx,
                    &g::NewRefresh {
                        hash: &hash,
                        grant_id: &minted.grant_id,
                        scope: &row.scope,
                        idle_expires_at: now + refresh_idle,
                        access: (&minted.jti, access_exp),
                    },
                    now,
                )?;
            }
            None => g::insert_grant_token_tx(tx, &minted.jti, &minted.grant_id, access_exp)?,
        }
        Ok(Ok((row, user)))
    })?;
    w.app.revocations().add(revoked);
    let (row, user) = outcome?;
    let scope: Vec<String> = row
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    tokens::respond(
        w,
        client,
        &user,
        &scope,
        row.nonce.as_deref(),
        (row.auth_time, &row.amr),
        minted,
        now,
    )
}
