//! The token response of the user grants (authorization_code and refresh_token): an access
//! token, an ID token when `openid` was granted, and a refresh token when the client may use
//! the refresh_token grant. Signing happens after the grant's transaction has committed, so
//! the write lock is never held across an RSA signature.

use serde_json::json;

use crate::app::Worker;
use crate::crypto::{hex, random_bytes, random_token};
use crate::error::Error;
use crate::http::Resp;
use crate::oauth::access_token::{self, Spec};
use crate::oauth::error::OAuthError;
use crate::oidc::id_token::{self, IdTokenSpec};
use crate::store::{Client, User};

/// Identifiers chosen before the transaction that records them.
pub struct Minted {
    pub jti: String,
    /// `<grant_id>.<secret>`, for [`Minted::grant_id`] (see [`Minted::rebind_refresh`]).
    pub refresh: Option<String>,
    pub grant_id: String,
}

impl Minted {
    /// New random identifiers: a new grant id, and a refresh token of that grant only if the
    /// client may refresh.
    ///
    /// A refresh token is `<grant_id>.<256-bit secret>`: the grant in front lets the store find
    /// it by its family's key (schema 9 keeps a family's tokens together, so a rotation writes
    /// one page for them); the secret is what proves possession, and only its digest is stored.
    /// The grant id is not secret from the client, and it is never in an access token.
    pub fn new(client: &Client) -> Result<Minted, Error> {
        let grant_id = new_grant_id(unix_millis())?;
        Ok(Minted {
            jti: access_token::new_jti()?,
            refresh: if client.allows_grant("refresh_token") {
                Some(format!("{grant_id}.{}", random_token()?))
            } else {
                None
            },
            grant_id,
        })
    }

    /// Makes the minted refresh token one of `grant_id` (a rotation stays in its grant).
    pub fn rebind_refresh(&mut self, grant_id: &str) {
        if let Some(token) = &mut self.refresh {
            let secret = token.rsplit('.').next().unwrap_or_default();
            *token = format!("{grant_id}.{secret}");
        }
    }
}

/// A new grant id: the Unix time in milliseconds (48 bits), then 80 random bits, in 32 hex
/// digits. Time first, as in ULIDs and UUIDv7, keeps the grants index and the refresh-token
/// families appending at the right edge of their B-trees, with recent grants on a few hot
/// pages; random ids scattered each new grant over the whole file, so a rotation read pages
/// from disk once the database outgrew the page cache. The random part keeps ids unique. The
/// time is not secret: the grant id is only ever shown to the client, in its refresh token.
fn new_grant_id(millis: u64) -> Result<String, Error> {
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    id[6..].copy_from_slice(&random_bytes::<10>()?);
    Ok(hex(&id))
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The grant a presented refresh token names, or `None` for a token from before schema 9
/// (no `.`; the secret alphabet is base64url).
pub fn refresh_grant(token: &str) -> Option<&str> {
    token.split_once('.').map(|(grant, _)| grant)
}

/// The access-token lifetime for a client.
pub fn access_ttl(w: &Worker, client: &Client) -> i64 {
    client
        .access_token_ttl
        .unwrap_or_else(|| w.app.settings().get(crate::config::Setting::AccessTtl))
}

/// Signs the tokens and builds the JSON response.
#[allow(clippy::too_many_arguments)]
pub fn respond(
    w: &Worker,
    client: &Client,
    user: &User,
    scope: &[String],
    nonce: Option<&str>,
    (auth_time, amr): (i64, &str),
    minted: Minted,
    now: i64,
) -> Result<Resp, OAuthError> {
    let ttl = access_ttl(w, client);
    let access = access_token::sign(
        &w.app,
        &Spec {
            client_id: &client.client_id,
            sub: &user.id,
            aud: access_token::audience(&w.app, client, scope),
            scope,
            ttl,
            jti: minted.jti,
            auth_time: Some(auth_time),
        },
        now,
    )?;
    let mut body = serde_json::Map::new();
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(access.expires_in));
    body.insert("scope".into(), json!(scope.join(" ")));
    if let Some(r) = minted.refresh {
        body.insert("refresh_token".into(), json!(r));
    }
    if scope.iter().any(|s| s == "openid") {
        let id_token = id_token::issue(
            &w.app,
            &IdTokenSpec {
                client,
                user,
                scope,
                nonce,
                auth_time,
                amr: &crate::accounts::mfa::Amr::from_json(amr),
                access_token: &access.token,
                ttl,
            },
            now,
        )?;
        body.insert("id_token".into(), json!(id_token));
    }
    body.insert("access_token".into(), json!(access.token));
    Ok(Resp::json(200, &serde_json::Value::Object(body)).no_store())
}

#[cfg(test)]
mod tests {
    use super::new_grant_id;

    #[test]
    fn grant_ids_sort_by_time_and_stay_unique() {
        let early = new_grant_id(1_764_000_000_000).unwrap();
        let later = new_grant_id(1_764_000_000_001).unwrap();
        let same = new_grant_id(1_764_000_000_001).unwrap();
        assert_eq!(early.len(), 32);
        assert!(early.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(&early[..12], "019ab697e800");
        assert!(early < later && early < same);
        assert_ne!(later, same);
        assert_eq!(later[..12], same[..12]);
    }
}
