//! JWT access tokens (RFC 9068): issued signed ES256 with `typ: at+jwt`, and validated for
//! latchkey's own resource endpoints (introspection, UserInfo).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::{App, Worker};
use std::sync::Arc;

use crate::crypto::{b64url, random_bytes, sha256};
use crate::jwt::{self, Alg};
use crate::oauth::error::OAuthError;
use crate::oauth::verified::Verified;

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const TYP: &str = "at+jwt";
/// `typ` values accepted when validating (RFC 9068 §4: `at+jwt` or `application/at+jwt`).
const TYP_ACCEPTED: &[&str] = &["at+jwt", "application/at+jwt"];

/// RFC 9068 §2.2 claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// A string or an array of strings (RFC 7519 §4.1.3).
    pub aud: Value,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// When the user authenticated (RFC 9068 §2.2.1); absent for client credentials.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
}

impl Claims {
    /// True if `aud` (a string or an array) names `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        match &self.aud {
            Value::String(a) => a == audience,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        }
    }

    /// The granted scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// A fresh 128-bit token identifier.
pub fn new_jti() -> Result<String, crate::error::Error> {
    Ok(b64url(&random_bytes::<16>()?))
}

/// The `aud` of a token for `client`: its configured audience, else the issuer. A user token
/// that carries `openid` must also be usable at UserInfo, so the issuer is added then.
pub fn audience(app: &App, client: &crate::store::Client, scope: &[String]) -> Value {
    let issuer = &app.config.issuer;
    match &client.audience {
        None => Value::String(issuer.clone()),
        Some(a) if a == issuer => Value::String(a.clone()),
        Some(a) if scope.iter().any(|s| s == "openid") => Value::Array(vec![
            Value::String(a.clone()),
            Value::String(issuer.clone()),
        ]),
        Some(a) => Value::String(a.clone()),
    }
}

/// What an access token says.
pub struct Spec<'a> {
    pub client_id: &'a str,
    pub sub: &'a str,
    pub aud: Value,
    pub scope: &'a [String],
    pub ttl: i64,
    pub jti: String,
    pub auth_time: Option<i64>,
}

/// Signs an access token.
pub fn sign(app: &App, spec: &Spec<'_>, now: i64) -> Result<Issued, OAuthError> {
    let keys = app.keys();
    let key = keys
        .active(Alg::Es256, now)
        .ok_or_else(|| OAuthError::server("no active ES256 signing key"))?;
    let claims = Claims {
        iss: app.config.issuer.clone(),
        sub: spec.sub.to_string(),
        aud: spec.aud.clone(),
        client_id: spec.client_id.to_string(),
        scope: (!spec.scope.is_empty()).then(|| spec.scope.join(" ")),
        iat: now,
        exp: now + spec.ttl,
        jti: spec.jti.clone(),
        auth_time: spec.auth_time,
    };
    Ok(Issued {
        token: jwt::encode(key, TYP, &claims)?,
        expires_in: spec.ttl,
    })
}

/// An issued token with its lifetime.
pub struct Issued {
    pub token: String,
    pub expires_in: i64,
}

/// Signs an access token for `sub` on behalf of `client_id`.
pub fn issue(
    app: &App,
    client_id: &str,
    sub: &str,
    aud: &str,
    scope: &[String],
    ttl: i64,
    now: i64,
) -> Result<Issued, OAuthError> {
    sign(
        app,
        &Spec {
            client_id,
            sub,
            aud: Value::String(aud.to_string()),
            scope,
            ttl,
            jti: new_jti()?,
            auth_time: None,
        },
        now,
    )
}

/// Why a presented access token is not valid. All variants look the same to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Signature, algorithm, key or type check failed.
    Jwt(jwt::JwtError),
    /// The claims are not RFC 9068 claims.
    Claims,
    /// Another issuer.
    Issuer,
    /// `exp` has passed.
    Expired,
    /// Revoked by `jti`.
    Revoked,
    /// The client it was issued to has been removed.
    ClientGone,
}

/// Validates an access token presented to latchkey itself: our key and its algorithm, `typ`,
/// `iss`, `exp`, the revocation list and the client's existence. The audience is the caller's
/// to check.
///
/// A token whose signature this process already checked is taken from [`VerifiedTokens`]
/// (keyed by the digest of the exact token) as long as its key is still published. The
/// revocation list and the clients are the server's in-memory copies: revocations made here
/// count at once, changes made by the CLI within a quarter of a second ([`Revocations`],
/// [`Worker::client`]).
///
/// [`VerifiedTokens`]: crate::oauth::verified::VerifiedTokens
/// [`Revocations`]: crate::oauth::revocations::Revocations
pub fn validate(
    w: &Worker,
    token: &str,
    now: i64,
) -> Result<Result<Arc<Verified>, Invalid>, OAuthError> {
    let app = &*w.app;
    let keys = app.keys();
    let digest = sha256(token.as_bytes());
    let cached = app
        .verified_tokens()
        .get(&digest, now)
        .filter(|v| keys.get(&v.kid).is_some());
    let verified = match cached {
        Some(v) => v,
        None => {
            let raw = match jwt::verify(&keys, token, TYP_ACCEPTED) {
                Ok(c) => c,
                Err(e) => return Ok(Err(Invalid::Jwt(e))),
            };
            let Ok(claims) = serde_json::from_value::<Claims>(Value::Object(raw.claims)) else {
                return Ok(Err(Invalid::Claims));
            };
            if claims.iss != app.config.issuer {
                return Ok(Err(Invalid::Issuer));
            }
            if claims.exp <= now {
                return Ok(Err(Invalid::Expired));
            }
            let v = Arc::new(Verified {
                claims,
                kid: raw.kid,
            });
            app.verified_tokens().insert(digest, Arc::clone(&v), now);
            v
        }
    };
    let revoked = match app.revocations().contains(&verified.jti) {
        Some(known) => known,
        // The in-memory list overflowed: the database decides.
        None => w.store.is_jti_revoked(&verified.jti)?,
    };
    if revoked {
        return Ok(Err(Invalid::Revoked));
    }
    // Removing a client withdraws what it was given.
    if w.client(&verified.client_id)?.is_none() {
        return Ok(Err(Invalid::ClientGone));
    }
    Ok(Ok(verified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};
    use crate::ops::keys::{ensure_keys, load_ring};
    use crate::store::Store;

    /// A worker on an in-memory database with signing keys and the client `c`.
    fn worker(now: i64) -> Worker {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, now).unwrap();
        store
            .insert_client(&crate::store::conformance::new_client("c", "c", &[]), now)
            .unwrap();
        let config = Config {
            data_dir: std::path::PathBuf::from("/nonexistent"),
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: "https://auth.test".into(),
            workers: 1,
            cookie_domain: None,
            trusted_proxies: Vec::new(),
        };
        let app = App::new(
            config,
            load_ring(&store).unwrap(),
            Settings::load(&store).unwrap(),
            vec![0; 32],
        );
        Worker {
            app: Arc::new(app),
            store,
        }
    }

    #[test]
    fn after_the_revocation_list_overflows_the_database_decides() {
        let now = 1_000_000;
        let mut w = worker(now);
        let revoked = issue(&w.app, "c", "c", "https://auth.test", &[], 600, now).unwrap();
        let kept = issue(&w.app, "c", "c", "https://auth.test", &[], 600, now).unwrap();
        let jti = |t: &str| validate(&w, t, now).unwrap().unwrap().jti.clone();
        let revoked_jti = jti(&revoked.token);
        assert!(validate(&w, &kept.token, now).unwrap().is_ok());
        // More live revocations than the list holds: it gives up keeping them.
        w.app.revocations().add(
            (0..=crate::oauth::revocations::CAPACITY).map(|i| (format!("other-{i}"), now + 600)),
        );
        assert!(!w.app.revocations().is_complete());
        // A revocation the list does not hold (another process committed it) still counts:
        // validation asks the database.
        w.store.revoke_jti(&revoked_jti, now + 600).unwrap();
        assert_eq!(
            validate(&w, &revoked.token, now).unwrap().err(),
            Some(Invalid::Revoked)
        );
        assert!(validate(&w, &kept.token, now).unwrap().is_ok());
    }
}
