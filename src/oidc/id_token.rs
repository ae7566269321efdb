//! ID tokens (OIDC Core §2, §3.1.3.6): signed RS256 by default or ES256 when the client asks,
//! `typ: JWT`, with the claims the granted scopes allow. Also the claims of UserInfo, which are
//! the same.

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::crypto::{b64url, sha256};
use crate::jwt::{self, Alg};
use crate::oauth::error::OAuthError;
use crate::store::{Client, User};

/// The `typ` header of ID tokens: distinct from access tokens' `at+jwt` (RFC 8725 §3.11).
pub const TYP: &str = "JWT";

/// Claims every scope allows about the user (OIDC Core §5.4), `sub` included.
pub fn user_claims(user: &User, scope: &[String]) -> Map<String, Value> {
    let has = |s: &str| scope.iter().any(|x| x == s);
    let mut c = Map::new();
    c.insert("sub".into(), json!(user.id));
    if has("profile") {
        c.insert("preferred_username".into(), json!(user.username));
        if let Some(name) = &user.name {
            c.insert("name".into(), json!(name));
        }
    }
    if has("email")
        && let Some(email) = &user.email
    {
        c.insert("email".into(), json!(email));
        // Addresses are entered by the administrator, not self-asserted.
        c.insert("email_verified".into(), json!(true));
    }
    if has("groups") {
        c.insert("groups".into(), json!(user.groups));
    }
    c
}

/// `at_hash`: the left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6;
/// both RS256 and ES256 use SHA-256).
pub fn at_hash(access_token: &str) -> String {
    let d = sha256(access_token.as_bytes());
    b64url(d.get(..16).unwrap_or(&d))
}

/// What an ID token is about.
pub struct IdTokenSpec<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    /// How the user signed in: the `amr` and `acr` claims (OIDC Core §2, RFC 8176).
    pub amr: &'a crate::accounts::mfa::Amr,
    pub access_token: &'a str,
    pub ttl: i64,
}

/// Signs an ID token with the client's algorithm.
pub fn issue(app: &App, spec: &IdTokenSpec<'_>, now: i64) -> Result<String, OAuthError> {
    let alg = Alg::parse(&spec.client.id_token_alg).unwrap_or(Alg::Rs256);
    let keys = app.keys();
    let key = keys
        .active(alg, now)
        .ok_or_else(|| OAuthError::server(format!("no active {} signing key", alg.as_str())))?;
    let mut claims = user_claims(spec.user, spec.scope);
    claims.insert("iss".into(), json!(app.config.issuer));
    claims.insert("aud".into(), json!(spec.client.client_id));
    claims.insert("azp".into(), json!(spec.client.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + spec.ttl));
    claims.insert("auth_time".into(), json!(spec.auth_time));
    claims.insert("amr".into(), json!(spec.amr.values()));
    claims.insert("acr".into(), json!(spec.amr.acr()));
    claims.insert("at_hash".into(), json!(at_hash(spec.access_token)));
    if let Some(n) = spec.nonce {
        claims.insert("nonce".into(), json!(n));
    }
    Ok(jwt::encode(key, TYP, &Value::Object(claims))?)
}

/// Verifies an ID token latchkey issued (for `id_token_hint`): our key and its algorithm, `typ`
/// and `iss`. Expiry is not checked: a hint may be old (OIDC RP-Initiated Logout §2).
pub fn verify_hint(app: &App, token: &str) -> Option<Map<String, Value>> {
    let claims = jwt::verify(&app.keys(), token, &[TYP]).ok()?.claims;
    (claims.get("iss").and_then(Value::as_str) == Some(app.config.issuer.as_str()))
        .then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_left_half_of_sha256() {
        // OIDC Core A.3 example: access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y",
        // at_hash "77QmUPtjPfzWtF2AnpK9RQ".
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
