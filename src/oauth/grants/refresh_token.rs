//! `grant_type=refresh_token` (RFC 6749 §6, RFC 9700 §4.14.2, OAuth 2.1 §4.3).
//!
//! Refresh tokens are opaque, stored as digests, bound to client, user and scope, and rotate on
//! every use. Presenting a token that was already rotated revokes the whole grant — every
//! refresh token of the family and the access tokens issued under it — because either the
//! legitimate client or an attacker holds a stolen copy, and the server cannot tell which.
//! Uses are serialised by `BEGIN IMMEDIATE`, so of two concurrent uses exactly one rotates.
//! The replay, and the revocation it causes, is written to the audit log in the transaction
//! that revokes (`refresh_token_reused`).
//!
//! There is no grace period for a retry. A client whose answer to a rotation was lost (a
//! timeout, a dropped connection) and that presents the same token again is treated as a
//! replay like any other, and must send its user through a new sign-in. RFC 9700 §4.14.2
//! allows answering such a retry within a few seconds with the successor already issued, but
//! the successor is stored only as a digest, so latchkey cannot give it out again. Minting a
//! second successor instead would hand a fresh token to whoever presents the old one within
//! the window, a thief as well as the real client, and give up the one rule replay detection
//! rests on: each refresh token is used once.

use crate::app::Worker;
use crate::crypto::sha256;
use crate::http::Resp;
use crate::http::form::Form;
use crate::oauth::error::OAuthError;
use crate::oauth::grants::authorization_code;
use crate::oauth::grants::tokens::{self, Minted};
use crate::oauth::policy::{self, Refusal};
use crate::oauth::scope;
use crate::store::audit::{AuditEvent, append_audit_tx};
use crate::store::grants::{self as g, GrantRow};
use crate::store::sessions::consent_covers;
use crate::store::users;
use crate::store::{Client, User};

/// The wire value.
pub const GRANT_TYPE: &str = "refresh_token";

/// Rotates a refresh token. The client is authenticated (or identified) and allowed this grant;
/// `address` is its address, for the audit event of a replay.
pub fn exchange(
    w: &mut Worker,
    client: &Client,
    form: &Form,
    address: &str,
    now: i64,
) -> Result<Resp, OAuthError> {
    let presented = form
        .get("refresh_token")?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let requested = match form.get("scope")? {
        None => None,
        Some(raw) => {
            Some(scope::parse(raw).ok_or_else(|| OAuthError::invalid_scope("scope is malformed"))?)
        }
    };
    let hash = sha256(presented.as_bytes());
    let mut minted = Minted::new(client)?;
    let refresh_idle = w.app.settings().get(crate::config::Setting::RefreshIdleTtl);
    let access_exp = now + tokens::access_ttl(w, client);

    // Access tokens a replay revoked, for the in-memory revocation list once committed.
    let mut revoked = Vec::new();
    let named_grant = tokens::refresh_grant(presented);
    let outcome: Result<(GrantRow, Vec<String>, User), OAuthError> = w.store.transaction(|tx| {
        let Some(row) = g::refresh_tx(tx, named_grant, &hash)? else {
            return Ok(Err(OAuthError::invalid_grant("refresh token is invalid")));
        };
        let Some(grant) = g::grant_tx(tx, &row.grant_id)? else {
            return Ok(Err(OAuthError::invalid_grant("refresh token is invalid")));
        };
        if grant.client_id != client.client_id {
            return Ok(Err(OAuthError::invalid_grant("refresh token was issued to another client")));
        }
        if grant.revoked_at.is_some() {
            return Ok(Err(OAuthError::invalid_grant("refresh token was revoked")));
        }
        if row.used_at.is_some() {
            revoked = g::revoke_grant_tx(tx, &grant.id, now)?;
            append_audit_tx(tx, &replay_event(client, "refresh_token_reused", &grant.id, address, now))?;
            log::warn!(target: "latchkey::security", "refresh token reused by client {}; its grant was revoked", client.client_id);
            return Ok(Err(OAuthError::invalid_grant("refresh token was already used")));
        }
        if row.idle_expires_at <= now || grant.expires_at <= now {
            return Ok(Err(OAuthError::invalid_grant("refresh token expired")));
        }
        let family: Vec<String> = row.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
        // Everything the sign-in checked, checked again now.
        let user = users::user_tx(tx, &grant.user_id)?;
        let grants = [authorization_code::GRANT_TYPE, GRANT_TYPE];
        if let Err(refused) = policy::still_allowed(client, user.as_ref(), &grants, &family, |u, c, s| {
            consent_covers(tx, u, c, s)
        })? {
            log::info!(target: "latchkey::security", "refresh refused for client {}: {}", client.client_id, refused.description());
            return Ok(Err(refused.token_error()));
        }
        let Some(user) = user else {
            return Ok(Err(Refusal::UserInactive.token_error()));
        };
        // Never wider than granted, and re-checked against what the client may have today.
        let granted: Vec<String> = match &requested {
            Some(r) if !scope::is_subset(r, &family) => {
                return Ok(Err(OAuthError::invalid_scope("requested scope was not granted")));
            }
            Some(r) => r.clone(),
            None => family.clone(),
        };
        let granted: Vec<String> = granted.into_iter().filter(|s| scope::permits(client, s)).collect();
        if !g::use_refresh_tx(tx, &row.grant_id, &hash, now)? {
            revoked = g::revoke_grant_tx(tx, &grant.id, now)?;
            append_audit_tx(tx, &replay_event(client, "refresh_token_reused", &grant.id, address, now))?;
            return Ok(Err(OAuthError::invalid_grant("refresh token was already used")));
        }
        // The rotated token keeps the family's scope (OAuth 2.1 §4.3.3).
        minted.rebind_refresh(&grant.id);
        let Some(next) = &minted.refresh else {
            return Ok(Err(OAuthError::server("no refresh token minted")));
        };
        let hash = sha256(next.as_bytes());
        g::insert_refresh_tx(
            tx,
            &g::NewRefresh {
                hash: &hash,
                grant_id: &grant.id,
                scope: &row.scope,
                idle_expires_at: now + refresh_idle,
                access: (&minted.jti, access_exp),
            },
            now,
        )?;
        Ok(Ok((grant, granted, user)))
    })?;
    w.app.revocations().add(revoked);
    let (grant, granted, user) = outcome?;
    tokens::respond(
        w,
        client,
        &user,
        &granted,
        None,
        (grant.auth_time, &grant.amr),
        minted,
        now,
    )
}

/// The audit event of a replayed refresh token or code (`action`), written in the transaction
/// that revokes its grant: actor `client:<id>`, target the grant's id, outcome `failed`.
pub(super) fn replay_event(
    client: &Client,
    action: &str,
    grant_id: &str,
    address: &str,
    now: i64,
) -> AuditEvent {
    AuditEvent {
        time: now,
        actor: format!("client:{}", client.client_id),
        action: action.into(),
        target: grant_id.into(),
        outcome: "failed".into(),
        address: address.into(),
        count: 1,
    }
}
