//! `POST /revoke` (RFC 7009). Revoking an access token records its `jti` until the token
//! expires; latchkey's own endpoints then treat it as inactive. Revoking a refresh token
//! revokes its whole grant: every refresh token of the family and the access tokens issued
//! under it (§2.1). An unknown, malformed or expired token is answered 200 (§2.2: the client
//! cannot do anything about it). A token issued to another client is refused (§2.1).

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::access_token;
use crate::oauth::client_auth;
use crate::oauth::error::OAuthError;
use crate::oauth::read_form;

/// Handles a revocation request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Result<Resp, OAuthError> {
    let form = read_form(req)?;
    let (client, _method) = client_auth::authenticate(w, req, &form)?;
    let token = form
        .get("token")?
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // §2.1: the hint may be ignored; latchkey finds the token by its form.
    form.get("token_type_hint")?;
    if let Ok(claims) = access_token::validate(w, token, now)? {
        if claims.client_id != client.client_id {
            return Err(OAuthError::invalid_request(
                "the token was not issued to this client",
            ));
        }
        w.store.revoke_jti(&claims.jti, claims.exp)?;
        w.app.revocations().add([(claims.jti.clone(), claims.exp)]);
        log::info!(target: "latchkey::security", "access token {} revoked by client {}", claims.jti, client.client_id);
    } else if let Some(owner) = w.store.refresh_token_client(
        crate::oauth::grants::tokens::refresh_grant(token),
        &crate::crypto::sha256(token.as_bytes()),
    )? {
        if owner.1 != client.client_id {
            return Err(OAuthError::invalid_request(
                "the token was not issued to this client",
            ));
        }
        let revoked = w.store.revoke_grant(&owner.0, now)?;
        w.app.revocations().add(revoked);
        log::info!(target: "latchkey::security", "refresh token revoked by client {}; its grant was revoked", client.client_id);
    }
    Ok(Resp::empty(200).no_store())
}
