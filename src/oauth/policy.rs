//! What a sign-in checked holds later too.
//!
//! A user's sign-in to a client checks that the user exists and is enabled, that the client may
//! use the grants the user's tokens come from, that the user is in one of the client's allowed
//! groups (`client add --allow-group`), and that the user consented (unless the client skips
//! consent). Every later use of that sign-in checks the same things again, at the time of the
//! use, with this one function:
//! - `/authorize` reusing a browser session (no password typed);
//! - redeeming the authorization code;
//! - every refresh-token rotation.
//!
//! So removing a user from a group, disabling them, revoking their consent or taking a grant
//! type away from the client ends what they can get from the client at once, not when their
//! refresh tokens expire. (Advisories for exactly this gap in peer servers: Pocket ID
//! GHSA-w6p7-2fxx-4f44, Authentik CVE-2025-64521, Rauthy 0.32.4.) `client_credentials` has no
//! user: it reads the client afresh on every request (secret, grant, scopes), in
//! `oauth::token` and its grant.

use crate::oauth::error::OAuthError;
use crate::store::{Client, StoreError, User};

/// Why a sign-in no longer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The user was removed or disabled.
    UserInactive,
    /// The client may no longer use this grant type.
    GrantNotAllowed,
    /// The user is not in any of the client's allowed groups.
    NotInAllowedGroup,
    /// The user has not consented to this scope for this client (or the consent was revoked).
    NoConsent,
}

impl Refusal {
    /// The token endpoint's error (RFC 6749 §5.2): `unauthorized_client` for a grant type the
    /// client lost, `invalid_grant` ("revoked") for the rest.
    pub fn token_error(self) -> OAuthError {
        match self {
            Refusal::GrantNotAllowed => OAuthError::unauthorized_client(self.description()),
            _ => OAuthError::invalid_grant(self.description()),
        }
    }

    /// A fixed, safe `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Refusal::UserInactive => "the user is no longer active",
            Refusal::GrantNotAllowed => "the client may no longer use this grant",
            Refusal::NotInAllowedGroup => "the user may no longer use this application",
            Refusal::NoConsent => "the user's consent for this application was revoked",
        }
    }
}

/// Checks that `user` may still get tokens of `scope` from `client` through `grants`. The
/// consent is looked up last (a database read) and only for clients that ask for it.
pub fn still_allowed(
    client: &Client,
    user: Option<&User>,
    grants: &[&str],
    scope: &[String],
    has_consent: impl FnOnce(&str, &str, &[String]) -> Result<bool, StoreError>,
) -> Result<Result<(), Refusal>, StoreError> {
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(Err(Refusal::UserInactive));
    };
    if !grants.iter().all(|g| client.allows_grant(g)) {
        return Ok(Err(Refusal::GrantNotAllowed));
    }
    if !client.allowed_groups.is_empty()
        && !user
            .groups
            .iter()
            .any(|g| client.allowed_groups.contains(g))
    {
        return Ok(Err(Refusal::NotInAllowedGroup));
    }
    if !client.skip_consent && !has_consent(&user.id, &client.client_id, scope)? {
        return Ok(Err(Refusal::NoConsent));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(groups: &[&str], skip_consent: bool) -> Client {
        Client {
            client_id: "app".into(),
            name: "app".into(),
            secret_hash: None,
            redirect_uris: vec![],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into()],
            audience: None,
            access_token_ttl: None,
            require_pkce: true,
            skip_consent,
            id_token_alg: "RS256".into(),
            post_logout_redirect_uris: vec![],
            allowed_groups: groups.iter().map(|g| g.to_string()).collect(),
            require_mfa: false,
            created_at: 0,
        }
    }

    fn user(groups: &[&str], disabled: bool) -> User {
        User {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: None,
            email: None,
            name: None,
            disabled,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            created_at: 0,
            mfa_required: false,
        }
    }

    fn check(
        c: &Client,
        u: Option<&User>,
        grants: &[&str],
        consented: bool,
    ) -> Result<(), Refusal> {
        still_allowed(c, u, grants, &["openid".into()], |uid, cid, scope| {
            assert_eq!(
                (uid, cid, scope),
                ("u1", "app", &["openid".to_string()][..])
            );
            Ok(consented)
        })
        .unwrap()
    }

    #[test]
    fn each_condition_refuses_on_its_own() {
        let c = client(&["family"], false);
        let u = user(&["family"], false);
        assert_eq!(check(&c, Some(&u), &["refresh_token"], true), Ok(()));
        assert_eq!(
            check(&c, None, &["refresh_token"], true),
            Err(Refusal::UserInactive)
        );
        assert_eq!(
            check(&c, Some(&user(&["family"], true)), &["refresh_token"], true),
            Err(Refusal::UserInactive)
        );
        assert_eq!(
            check(&c, Some(&u), &["client_credentials"], true),
            Err(Refusal::GrantNotAllowed)
        );
        assert_eq!(
            check(
                &c,
                Some(&user(&["guests"], false)),
                &["refresh_token"],
                true
            ),
            Err(Refusal::NotInAllowedGroup)
        );
        assert_eq!(
            check(&c, Some(&u), &["refresh_token"], false),
            Err(Refusal::NoConsent)
        );
    }

    #[test]
    fn open_clients_and_skip_consent_clients_ask_less() {
        let open = client(&[], true);
        let nobody_asked = still_allowed(&open, Some(&user(&[], false)), &[], &[], |_, _, _| {
            panic!("a skip-consent client's consent is never read")
        });
        assert_eq!(nobody_asked.unwrap(), Ok(()));
    }
}
