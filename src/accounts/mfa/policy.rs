//! Where a second factor is required, and where a sign-in that lacks one is sent. The protocol
//! layer asks [`required`] whether a session is good enough for a client or a forward-auth rule,
//! and [`step_up`] where to send the browser when it is not.
//!
//! A second factor is required when any of these says so: the user (`latchkey user mfa NAME
//! --require`), one of the user's groups (`settings set mfa.required_for_groups "admins"`), the
//! client (`client add|update --require-mfa`), the forward-auth rule (`rule add --require-mfa`),
//! or the authorization request (`acr_values` naming [`super::ACR_MFA`]). A session meets it
//! when its `amr` is multi-factor: a password with TOTP, a recovery code or a passkey, or a
//! user-verified passkey alone.

use crate::config::Settings;
use crate::store::User;

/// Whether `user` must have signed in with more than one factor, given what the client or rule
/// asks (`asked`).
pub fn required(settings: &Settings, user: &User, asked: bool) -> bool {
    asked || user.mfa_required || {
        let groups = settings.mfa_groups();
        user.groups.iter().any(|g| groups.contains(&g.as_str()))
    }
}

/// Where a signed-in browser that lacks a required second factor goes: the second-factor page
/// when the user has one, else the page that enrols one (TOTP), both carrying where to return.
pub fn step_up(has_factor: bool, return_to: &str, rd: Option<&str>) -> String {
    if has_factor {
        return crate::accounts::login::second_factor_url(return_to, rd);
    }
    let mut pairs = vec![("return_to", return_to)];
    if let Some(rd) = rd {
        pairs.push(("rd", rd));
    }
    format!(
        "{}?{}",
        crate::http::router::ENROL_SECOND_FACTOR,
        crate::http::form::encode_pairs(pairs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[&str], mfa_required: bool) -> User {
        User {
            id: "u".into(),
            username: "alice".into(),
            password_hash: None,
            email: None,
            name: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            disabled: false,
            created_at: 0,
            mfa_required,
        }
    }

    #[test]
    fn a_second_factor_is_required_by_the_user_a_group_or_the_client() {
        let mut store = crate::store::Store::open_in_memory().unwrap();
        store
            .set_setting("mfa.required_for_groups", "admins,ops")
            .unwrap();
        let settings = Settings::load(&store).unwrap();
        assert!(!required(&settings, &user(&["family"], false), false));
        assert!(required(&settings, &user(&["family"], false), true));
        assert!(required(&settings, &user(&["family"], true), false));
        assert!(required(&settings, &user(&["family", "ops"], false), false));
    }
}
