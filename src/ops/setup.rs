//! Invite and reset links, and a user's second-factor requirement: `invite` makes a user
//! without a password and a one-time link where they set a password or register a passkey;
//! `reset` makes the same kind of link for an existing user (removing their second factors
//! only when asked); `mfa` requires, stops requiring or removes a user's second factors.
//!
//! The link's token is returned once, to be shown to the admin; only its SHA-256 is stored,
//! and it never appears in an audit event (the target is the username) or a log line.

use crate::crypto::{hex, random_bytes, random_token, sha256};
use crate::store::factors::SecondFactors;
use crate::store::setup_links::LinkKind;
use crate::store::{Store, User};
use crate::timefmt::now;

use super::{Actor, OpError, audited};

/// How long a link works unless told otherwise: 24 hours.
pub const DEFAULT_TTL: i64 = 86_400;
/// The longest a link may work: 30 days.
pub const MAX_TTL: i64 = 30 * 86_400;

/// The path of the page a link opens; the link is `ISSUER` + this + `?token=TOKEN`.
pub const SETUP_PATH: &str = crate::http::router::ACCOUNT_SETUP;

/// A link just made: the token (shown once), its expiry, and the user as they are now.
pub struct NewLink {
    pub user: User,
    pub token: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for NewLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLink")
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl NewLink {
    /// The link to pass on: `issuer` (no trailing slash needed) + the setup page + the token.
    pub fn url(&self, issuer: &str) -> String {
        format!(
            "{}{SETUP_PATH}?token={}",
            issuer.trim_end_matches('/'),
            self.token
        )
    }
}

/// A user to invite.
#[derive(Debug, Clone, Default)]
pub struct Invite {
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub groups: Vec<String>,
    /// Seconds the link works; `None` for [`DEFAULT_TTL`].
    pub ttl: Option<i64>,
}

fn check_ttl(ttl: Option<i64>) -> Result<i64, OpError> {
    let ttl = ttl.unwrap_or(DEFAULT_TTL);
    if !(1..=MAX_TTL).contains(&ttl) {
        return Err(OpError::Invalid(format!(
            "a link's lifetime (--ttl) must be between 1s and 30d, not {ttl} seconds"
        )));
    }
    Ok(ttl)
}

/// Stores a new link for `user` (killing their older ones) and returns it.
fn make_link(s: &mut Store, user: &User, kind: LinkKind, ttl: i64) -> Result<NewLink, OpError> {
    let token = random_token()?;
    let now = now();
    let expires_at = now + ttl;
    s.create_setup_link(&sha256(token.as_bytes()), &user.id, kind, now, expires_at)?;
    Ok(NewLink {
        user: user.clone(),
        token,
        expires_at,
    })
}

/// Adds a user without a password and makes their invite link. The user cannot sign in with
/// a password until they chose one at the link (the login refuses them like a wrong password).
pub fn invite(store: &mut Store, actor: &Actor, invite: Invite) -> Result<NewLink, OpError> {
    let name = invite.username.clone();
    let user = audited(store, actor, "user_added", &name, |s| {
        let ttl = check_ttl(invite.ttl)?;
        super::users::check_new(s, &invite.username, &invite.groups)?;
        if let Some(e) = &invite.email {
            super::users::validate_email(e)?;
        }
        if let Some(n) = &invite.full_name {
            super::users::validate_field("full name", n)?;
        }
        let id = hex(&random_bytes::<16>()?);
        s.insert_user(
            &id,
            &invite.username,
            None,
            invite.email.as_deref(),
            invite.full_name.as_deref(),
            &invite.groups,
            now(),
        )
        .map_err(OpError::taken)?;
        Ok((super::users::find(s, &invite.username)?, ttl))
    })?;
    let (user, ttl) = user;
    audited(store, actor, "setup_link_created", &name, |s| {
        make_link(s, &user, LinkKind::Invite, ttl)
    })
}

/// Makes a reset link for an existing user (their older links die). With `reset_mfa`, their
/// second factors (TOTP, recovery codes, passkeys) are removed first, as after an identity
/// check out of band. Existing sessions end when the link is used, not now.
pub fn reset(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    ttl: Option<i64>,
    reset_mfa: bool,
) -> Result<NewLink, OpError> {
    let ttl = check_ttl(ttl);
    let user = super::users::find(store, name);
    let user = match (user, ttl) {
        (Ok(u), Ok(ttl)) => (u, ttl),
        (Err(e), _) | (_, Err(e)) => {
            return audited(store, actor, "setup_link_created", name, |_| Err(e));
        }
    };
    let (user, ttl) = user;
    if reset_mfa {
        remove_factors(store, actor, &user)?;
    }
    audited(store, actor, "setup_link_created", &user.username, |s| {
        make_link(s, &user, LinkKind::Reset, ttl)
    })
}

/// Removes a user's second factors, ends their sessions (someone holding one may be who the
/// factors were removed against) and records `user_mfa_changed`.
fn remove_factors(store: &mut Store, actor: &Actor, user: &User) -> Result<SecondFactors, OpError> {
    audited(store, actor, "user_mfa_changed", &user.username, |s| {
        let had = s.remove_second_factors(&user.id)?;
        s.end_sessions_of(&user.id, None)?;
        Ok(had)
    })
}

/// What [`mfa`] changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MfaChange {
    /// Require a second factor (`Some(true)`), stop requiring one (`Some(false)`).
    pub require: Option<bool>,
    /// Remove every second factor the user has.
    pub reset: bool,
}

/// Requires or stops requiring a second factor for a user, and/or removes their second
/// factors (`--reset`). Returns the user as they are now and, after a reset, what they had.
pub fn mfa(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    change: MfaChange,
) -> Result<(User, Option<SecondFactors>), OpError> {
    let found = super::users::find(store, name);
    let user = match (found, change.require.is_some() || change.reset) {
        (Ok(u), true) => u,
        (Ok(_), false) => {
            let e = OpError::Invalid(
                "nothing to change: give --require, --no-require or --reset".into(),
            );
            return audited(store, actor, "user_mfa_changed", name, |_| Err(e));
        }
        (Err(e), _) => return audited(store, actor, "user_mfa_changed", name, |_| Err(e)),
    };
    let had = if change.reset {
        Some(remove_factors(store, actor, &user)?)
    } else {
        None
    };
    if let Some(required) = change.require {
        audited(store, actor, "user_mfa_changed", &user.username, |s| {
            Ok(s.set_user_mfa_required(&user.id, required, now())?)
        })?;
    }
    Ok((super::users::find(store, &user.username)?, had))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(s: &Store) -> Vec<(String, String, String)> {
        s.audit_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.target, e.outcome))
            .collect()
    }

    fn ev(a: &str, t: &str, o: &str) -> (String, String, String) {
        (a.into(), t.into(), o.into())
    }

    #[test]
    fn invite_makes_a_user_without_a_password_and_a_link_only_its_digest_stored() {
        let mut s = Store::open_in_memory().unwrap();
        let actor = Actor::cli();
        let link = invite(
            &mut s,
            &actor,
            Invite {
                username: "carol".into(),
                groups: vec!["family".into()],
                ..Invite::default()
            },
        )
        .unwrap();
        assert_eq!(link.token.len(), 43, "256 bits, base64url");
        assert!(
            link.url("https://id.example/")
                .starts_with("https://id.example/account/setup?token=")
        );
        assert!(!format!("{link:?}").contains(&link.token));
        let u = super::super::users::find(&s, "carol").unwrap();
        assert_eq!(u.password_hash, None);
        assert_eq!(u.groups, ["family"]);
        let stored = s.setup_link(&sha256(link.token.as_bytes()), now()).unwrap();
        assert_eq!(stored.map(|l| l.kind), Some(LinkKind::Invite));
        assert_eq!(
            events(&s),
            [
                ev("user_added", "carol", "ok"),
                ev("setup_link_created", "carol", "ok")
            ]
        );
        let again = invite(
            &mut s,
            &actor,
            Invite {
                username: "Carol".into(),
                ..Invite::default()
            },
        );
        assert!(matches!(again, Err(OpError::Conflict(_))), "{again:?}");
        let long = invite(
            &mut s,
            &actor,
            Invite {
                username: "dave".into(),
                ttl: Some(MAX_TTL + 1),
                ..Invite::default()
            },
        );
        match long {
            Err(OpError::Invalid(m)) => assert!(m.contains("between 1s and 30d"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(s.user_by_name("dave").unwrap().is_none());
        for e in events(&s) {
            assert!(!e.1.contains(&link.token));
        }
    }

    #[test]
    fn reset_keeps_factors_unless_asked_and_kills_the_older_link() {
        let mut s = Store::open_in_memory().unwrap();
        let actor = Actor::cli();
        s.insert_user("u1", "alice", Some("h"), None, None, &[], 1)
            .unwrap();
        s.transaction(|tx| {
            tx.execute(
                "INSERT INTO totp (user_id, secret, created_at) VALUES ('u1', x'00', 1)",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        let first = reset(&mut s, &actor, "alice", None, false).unwrap();
        assert!(s.second_factors("u1").unwrap().totp);
        let second = reset(&mut s, &actor, "ALICE", Some(60), true).unwrap();
        assert!(!s.second_factors("u1").unwrap().totp);
        let t = now();
        assert!(
            s.setup_link(&sha256(first.token.as_bytes()), t)
                .unwrap()
                .is_none()
        );
        assert!(
            s.setup_link(&sha256(second.token.as_bytes()), t)
                .unwrap()
                .is_some()
        );
        assert!((second.expires_at - t - 60).abs() <= 1);
        assert!(matches!(
            reset(&mut s, &actor, "nobody", None, false),
            Err(OpError::NotFound(_))
        ));
        assert_eq!(
            events(&s),
            [
                ev("setup_link_created", "alice", "ok"),
                ev("user_mfa_changed", "alice", "ok"),
                ev("setup_link_created", "alice", "ok"),
                ev("setup_link_created", "nobody", "failed"),
            ]
        );
    }

    #[test]
    fn mfa_requires_and_resets() {
        let mut s = Store::open_in_memory().unwrap();
        let actor = Actor::cli();
        s.insert_user("u1", "alice", Some("h"), None, None, &[], 1)
            .unwrap();
        let change = |require, reset| MfaChange { require, reset };
        let (u, had) = mfa(&mut s, &actor, "alice", change(Some(true), false)).unwrap();
        assert!(u.mfa_required);
        assert_eq!(had, None);
        let (u, had) = mfa(&mut s, &actor, "alice", change(Some(false), true)).unwrap();
        assert!(!u.mfa_required);
        assert_eq!(had, Some(SecondFactors::default()));
        assert!(matches!(
            mfa(&mut s, &actor, "alice", change(None, false)),
            Err(OpError::Invalid(_))
        ));
        assert!(matches!(
            mfa(&mut s, &actor, "bob", change(Some(true), false)),
            Err(OpError::NotFound(_))
        ));
        assert_eq!(
            events(&s).last(),
            Some(&ev("user_mfa_changed", "bob", "failed"))
        );
    }
}
