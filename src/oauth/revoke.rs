//! `POST /revoke` (RFC 7009). Revoking an access token records its `jti` until the token
//! expires; latchkey's own endpoints then treat it as inactive. Revoking a refresh token
//! revokes its whole grant: every refresh token of the family and the access tokens issued
//! under it (§2.1). An unknown, malformed or expired token is answered 200 (§2.2: the client
//! cannot do anything about it). A token issued to another client is refused (§2.1). Each
//! revocation is written to the audit log before the answer leaves: `access_token_revoked`
//! (target the `jti`) or `grant_revoked` (target the grant's id), actor `client:<id>`.
//!
//! An API key (`token=lk_…`) is revoked by any client that authenticates, whoever the key
//! belongs to: API keys are issued to no client, and whoever holds a leaked key must be able to
//! kill it with one request, as GitHub's credential-revocation API lets anyone who found a token
//! revoke it. Public clients may too (they authenticate by `client_id` alone, as everywhere at
//! this endpoint): presenting the whole key is the proof that matters, and it grants nothing
//! but the key's end. The audit log records `apikey_revoked` with actor `client:<id>` and the
//! key's id as target (for a public client the id is the one it claimed). A key whose checksum
//! does not match is answered 200 without a database lookup; an unknown or already revoked key
//! is answered 200 and changes nothing. The key stops working in this process at once and in
//! every other one within a second (the revision the revocation bumps makes them reload).

use crate::app::Worker;
use crate::crypto::sha256;
use crate::http::{Req, Resp};
use crate::oauth::access_token;
use crate::oauth::client_auth;
use crate::oauth::error::OAuthError;
use crate::oauth::read_form;
use crate::store::{Client, StoreError};

/// Handles a revocation request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Result<Resp, OAuthError> {
    let form = read_form(req)?;
    let (client, _method) = client_auth::authenticate(w, req, &form)?;
    let token = form
        .get("token")?
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // §2.1: the hint may be ignored; latchkey finds the token by its form.
    form.get("token_type_hint")?;
    // Shaped like an API key by prefix and length. No refresh token is: a current one holds a
    // `.`, one from before schema 9 is 43 base64url characters (and may start with `lk_`).
    if token.starts_with(crate::apikeys::format::PREFIX)
        && token.len() == crate::apikeys::format::KEY_LEN
    {
        revoke_api_key(w, req, &client, token, now)?;
    } else if let Ok(claims) = access_token::validate(w, token, now)? {
        if claims.client_id != client.client_id {
            return Err(OAuthError::invalid_request(
                "the token was not issued to this client",
            ));
        }
        w.store.revoke_jti(&claims.jti, claims.exp)?;
        w.app.revocations().add([(claims.jti.clone(), claims.exp)]);
        log::info!(target: "latchkey::security", "access token {} revoked by client {}", claims.jti, client.client_id);
        audit(w, req, &client, "access_token_revoked", &claims.jti, now);
    } else if let Some(owner) = w.store.refresh_token_client(
        crate::oauth::grants::tokens::refresh_grant(token),
        &sha256(token.as_bytes()),
    )? {
        if owner.1 != client.client_id {
            return Err(OAuthError::invalid_request(
                "the token was not issued to this client",
            ));
        }
        let revoked = w.store.revoke_grant(&owner.0, now)?;
        w.app.revocations().add(revoked);
        log::info!(target: "latchkey::security", "refresh token revoked by client {}; its grant was revoked", client.client_id);
        audit(w, req, &client, "grant_revoked", &owner.0, now);
    }
    Ok(Resp::empty(200).no_store())
}

/// Revokes the API key `key` if it is well formed, known and not yet revoked.
fn revoke_api_key(
    w: &mut Worker,
    req: &Req,
    client: &Client,
    key: &str,
    now: i64,
) -> Result<(), OAuthError> {
    // A typo or an invented key: nothing to look up.
    if crate::apikeys::format::check(key).is_err() {
        return Ok(());
    }
    let hash = sha256(key.as_bytes());
    // The database, not the index: a key created a moment ago may not be indexed yet.
    let Some(row) = w.store.api_key_by_hash(&hash)? else {
        return Ok(());
    };
    if row.revoked_at.is_some() {
        return Ok(());
    }
    match w.store.revoke_api_key(&row.id, now) {
        Ok(()) => {}
        // Revoked by someone else between the read and the write.
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    w.app.revoke_indexed_api_key(&hash);
    log::info!(target: "latchkey::security", "API key {} revoked by client {}", row.id, client.client_id);
    audit(w, req, client, "apikey_revoked", &row.id, now);
    Ok(())
}

/// Writes a revocation to the audit log before the answer leaves (actor `client:<id>`).
fn audit(w: &mut Worker, req: &Req, client: &Client, action: &str, target: &str, now: i64) {
    let address = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies);
    w.app.audit().write(
        &mut w.store,
        now,
        &format!("client:{}", client.client_id),
        action,
        target,
        "ok",
        &address.to_string(),
    );
}
