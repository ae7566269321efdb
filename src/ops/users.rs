//! User operations: add, look up, change a password, disable, enable, remove, rename, update
//! (email, full name, groups), group membership, and the consents a user gave to apps. Rules
//! and API keys name a user by `sub`, so a rename keeps them; removing a user a rule names
//! needs confirmation (the rule then admits nobody). Reading a password from a terminal is the
//! caller's; its rules ([`password::validate_new`]) and its hashing are here.

use crate::accounts::{password, validate_group, validate_username};
use crate::crypto::{hex, random_bytes};
use crate::forward::rules::{Action, RuleSet};
use crate::store::{Client, Store, User};
use crate::timefmt::now;

use super::{Actor, OpError, audited};

/// A user to add. The password is the plain text typed by the admin; only its hash is stored.
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub groups: Vec<String>,
    pub password: String,
}

/// A consent a user gave: the client, the approved scopes (sorted, space-joined), and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
}

/// What [`revoke_consent`] did.
#[derive(Debug)]
pub struct ConsentRevoked {
    pub user: User,
    pub client: Client,
    /// How many consents were forgotten (0 if the user had not approved the app; its grants
    /// are revoked anyway).
    pub forgotten: usize,
}

/// The user with this name (any letter case).
pub fn find(store: &Store, name: &str) -> Result<User, OpError> {
    store
        .user_by_name(name)?
        .ok_or_else(|| OpError::NotFound(format!("no user named {name:?}")))
}

/// Every user, ordered by name.
pub fn list(store: &Store) -> Result<Vec<User>, OpError> {
    Ok(store.users()?)
}

/// The rules a new user's name and groups must meet, and the name must be free.
pub(super) fn check_new(store: &Store, username: &str, groups: &[String]) -> Result<(), OpError> {
    validate_username(username).map_err(OpError::Invalid)?;
    for g in groups {
        validate_group(g).map_err(OpError::Invalid)?;
    }
    if store.user_by_name(username)?.is_some() {
        return Err(OpError::Conflict(format!(
            "a user named {username:?} already exists"
        )));
    }
    Ok(())
}

/// Records a refusal found before the operation proper (so before a password was asked for)
/// under the operation's action, and returns it.
fn refuse<T>(
    store: &mut Store,
    actor: &Actor,
    action: &'static str,
    target: &str,
    check: Result<T, OpError>,
) -> Result<T, OpError> {
    match check {
        Ok(v) => Ok(v),
        Err(e) => audited(store, actor, action, target, |_| Err(e)),
    }
}

/// Checks, before a password is asked for, that [`add`] would accept this name and these
/// groups; a refusal is recorded as a failed `user_added`.
pub fn check_add(
    store: &mut Store,
    actor: &Actor,
    username: &str,
    groups: &[String],
) -> Result<(), OpError> {
    let check = check_new(store, username, groups);
    refuse(store, actor, "user_added", username, check)
}

/// Adds a user; returns their new, random `sub`.
pub fn add(store: &mut Store, actor: &Actor, user: NewUser) -> Result<String, OpError> {
    let target = user.username.clone();
    audited(store, actor, "user_added", &target, |s| {
        check_new(s, &user.username, &user.groups)?;
        if let Some(e) = &user.email {
            validate_email(e)?;
        }
        if let Some(n) = &user.full_name {
            validate_field("full name", n)?;
        }
        password::validate_new(&user.password).map_err(OpError::Invalid)?;
        let hash = password::hash(&user.password)?;
        let id = hex(&random_bytes::<16>()?);
        s.insert_user(
            &id,
            &user.username,
            Some(&hash),
            user.email.as_deref(),
            user.full_name.as_deref(),
            &user.groups,
            now(),
        )
        .map_err(OpError::taken)?;
        Ok(id)
    })
}

/// Checks, before a password is asked for, that the user exists; a refusal is recorded as a
/// failed `user_password_changed`.
pub fn check_set_password(store: &mut Store, actor: &Actor, name: &str) -> Result<(), OpError> {
    let check = find(store, name).map(drop);
    refuse(store, actor, "user_password_changed", name, check)
}

/// Sets a new password and ends the user's sessions (revoking their refresh tokens and the
/// access tokens issued with them). Returns the user.
pub fn set_password(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    new_password: &str,
) -> Result<User, OpError> {
    audited(store, actor, "user_password_changed", name, |s| {
        let u = find(s, name)?;
        password::validate_new(new_password).map_err(OpError::Invalid)?;
        let hash = password::hash(new_password)?;
        let now = now();
        s.set_password_hash(&u.id, &hash, now)?;
        s.end_user_sessions(&u.id, now)?;
        Ok(u)
    })
}

/// Disables a user: sign-in refused, sessions ended, tokens revoked. Returns the user.
pub fn disable(store: &mut Store, actor: &Actor, name: &str) -> Result<User, OpError> {
    audited(store, actor, "user_disabled", name, |s| {
        let u = find(s, name)?;
        s.set_user_disabled(&u.id, true, now())?;
        Ok(u)
    })
}

/// Enables a disabled user. Returns the user.
pub fn enable(store: &mut Store, actor: &Actor, name: &str) -> Result<User, OpError> {
    audited(store, actor, "user_enabled", name, |s| {
        let u = find(s, name)?;
        s.set_user_disabled(&u.id, false, now())?;
        Ok(u)
    })
}

/// The forward-auth rules that admit this user by `sub`, in words (`rule #5 (app.test/*)`).
pub fn rules_naming(store: &Store, user: &User) -> Result<Vec<String>, OpError> {
    Ok(RuleSet::load(store)?
        .rules()
        .iter()
        .filter(|r| matches!(&r.action, Action::AllowUser(sub) if *sub == user.id))
        .map(super::groups::rule_words)
        .collect())
}

/// Removes a user and everything issued to them. If a rule names the user, refuses unless
/// `yes` (the rule stays and admits nobody). Returns the removed user and the rules that
/// named them, in words.
pub fn remove(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    yes: bool,
) -> Result<(User, Vec<String>), OpError> {
    audited(store, actor, "user_removed", name, |s| {
        let u = find(s, name)?;
        let refs = rules_naming(s, &u)?;
        if !refs.is_empty() && !yes {
            return Err(OpError::Conflict(format!(
                "user {} is named by {}: once the user is removed they admit nobody; pass \
                 --yes to remove the user anyway",
                u.username,
                refs.join(", ")
            )));
        }
        s.remove_user(&u.id, now())?;
        Ok((u, refs))
    })
}

/// What [`update`] changes; `None` keeps a field, an empty email or full name clears it, and a
/// list of groups replaces the user's groups (an empty list is not a change: see
/// [`UserUpdate::clear_groups`]).
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub groups: Vec<String>,
    /// Leave the user in no group.
    pub clear_groups: bool,
}

/// Checks an email address (empty clears it): at most 254 printable characters, one `@` with a
/// local part before it and a domain after it, no spaces. Not RFC 5322's whole grammar, but
/// what every mail system here accepts, and it refuses what is plainly not an address
/// (`alice`, `alice@`, `a b@c`). The message quotes the input escaped, never raw.
pub(super) fn validate_email(e: &str) -> Result<(), OpError> {
    validate_field("email", e)?;
    if e.is_empty() {
        return Ok(());
    }
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !ok {
        return Err(OpError::Invalid(format!("{e:?} is not an email address")));
    }
    Ok(())
}

/// Checks an email or full name: at most 254 characters, no control characters.
pub(super) fn validate_field(what: &str, v: &str) -> Result<(), OpError> {
    if v.chars().count() > 254 || v.chars().any(char::is_control) {
        return Err(OpError::Invalid(format!(
            "the {what} must be at most 254 printable characters"
        )));
    }
    Ok(())
}

/// Changes a user's email, full name and groups; the `sub`, username and password stay.
/// Returns the user as they are now.
pub fn update(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    change: UserUpdate,
) -> Result<User, OpError> {
    audited(store, actor, "user_updated", name, |s| {
        if change.email.is_none()
            && change.full_name.is_none()
            && change.groups.is_empty()
            && !change.clear_groups
        {
            return Err(OpError::Invalid(
                "nothing to change: give --email, --name, --group or --no-groups".into(),
            ));
        }
        if change.clear_groups && !change.groups.is_empty() {
            return Err(OpError::Invalid(
                "--no-groups and --group contradict each other".into(),
            ));
        }
        if let Some(e) = &change.email {
            validate_email(e)?;
        }
        if let Some(n) = &change.full_name {
            validate_field("full name", n)?;
        }
        for g in &change.groups {
            validate_group(g).map_err(OpError::Invalid)?;
        }
        let u = find(s, name)?;
        fn clear(v: &Option<String>) -> Option<Option<&str>> {
            v.as_ref()
                .map(|v| Some(v.as_str()).filter(|v| !v.is_empty()))
        }
        let groups =
            (change.clear_groups || !change.groups.is_empty()).then_some(change.groups.as_slice());
        s.update_user(
            &u.id,
            clear(&change.email),
            clear(&change.full_name),
            groups,
            now(),
        )?;
        find(s, &u.username)
    })
}

/// A user's change of their own profile (the account page): the full name and the email,
/// each only when `allowed` (the `account.edit_profile` setting) lets the user change it;
/// `None` keeps a field, an empty value clears it. Checked like [`update`]. Recorded as
/// `profile_changed`. Returns the user as they are now.
pub fn update_profile(
    store: &mut Store,
    actor: &Actor,
    user_id: &str,
    allowed: crate::config::EditProfile,
    full_name: Option<&str>,
    email: Option<&str>,
) -> Result<User, OpError> {
    let target = store
        .user(user_id)?
        .map(|u| u.username)
        .unwrap_or_else(|| user_id.to_string());
    audited(store, actor, "profile_changed", &target, |s| {
        if full_name.is_some() && !allowed.name {
            return Err(OpError::Conflict(
                "your administrator does not let you change your name here".into(),
            ));
        }
        if email.is_some() && !allowed.email {
            return Err(OpError::Conflict(
                "your administrator does not let you change your email here".into(),
            ));
        }
        if full_name.is_none() && email.is_none() {
            return Err(OpError::Invalid("nothing to change".into()));
        }
        if let Some(n) = full_name {
            validate_field("full name", n)?;
        }
        if let Some(e) = email {
            validate_email(e)?;
        }
        fn clear(v: Option<&str>) -> Option<Option<&str>> {
            v.map(|v| Some(v).filter(|v| !v.is_empty()))
        }
        s.update_user(user_id, clear(email), clear(full_name), None, now())?;
        s.user(user_id)?
            .ok_or_else(|| OpError::NotFound("the user no longer exists".into()))
    })
}

/// Changes a username; the `sub` stays. Returns the user as it was before.
pub fn rename(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    new_name: &str,
) -> Result<User, OpError> {
    let target = format!("{name} -> {new_name}");
    audited(store, actor, "user_renamed", &target, |s| {
        validate_username(new_name).map_err(OpError::Invalid)?;
        let u = find(s, name)?;
        s.rename_user(&u.id, new_name, now())
            .map_err(OpError::taken)?;
        Ok(u)
    })
}

/// Adds the user to a group (no error if already a member). Returns the user.
pub fn add_group(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    group: &str,
) -> Result<User, OpError> {
    let target = format!("{name} {group}");
    audited(store, actor, "user_group_added", &target, |s| {
        validate_group(group).map_err(OpError::Invalid)?;
        let u = find(s, name)?;
        s.add_user_group(&u.id, group, now())?;
        Ok(u)
    })
}

/// Removes the user from a group. Returns the user and whether they were in it.
pub fn remove_group(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    group: &str,
) -> Result<(User, bool), OpError> {
    let target = format!("{name} {group}");
    audited(store, actor, "user_group_removed", &target, |s| {
        let u = find(s, name)?;
        let was_member = s.remove_user_group(&u.id, group)?;
        Ok((u, was_member))
    })
}

/// The apps the user approved, and for which scopes.
pub fn consents(store: &Store, name: &str) -> Result<(User, Vec<Consent>), OpError> {
    let u = find(store, name)?;
    let rows = store
        .consents_of(&u.id)?
        .into_iter()
        .map(|(client_id, scope, created_at)| Consent {
            client_id,
            scope,
            created_at,
        })
        .collect();
    Ok((u, rows))
}

/// Forgets the user's consents to a client (by client_id or name) and revokes the grants they
/// led to.
pub fn revoke_consent(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    client: &str,
) -> Result<ConsentRevoked, OpError> {
    let target = format!("{name} {client}");
    audited(store, actor, "user_consent_revoked", &target, |s| {
        let user = find(s, name)?;
        let client = s
            .client_by_id_or_name(client)?
            .ok_or_else(|| OpError::NotFound(format!("no client {client:?}")))?;
        let forgotten = s.revoke_consent(&user.id, &client.client_id, now())?;
        Ok(ConsentRevoked {
            user,
            client,
            forgotten,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(name: &str, password: &str) -> NewUser {
        NewUser {
            username: name.into(),
            email: None,
            full_name: None,
            groups: vec!["family".into()],
            password: password.into(),
        }
    }

    fn last_event(s: &Store) -> (String, String, String) {
        let e = s.audit_since(0, 1).unwrap().pop().unwrap();
        (e.action, e.target, e.outcome)
    }

    #[test]
    fn add_checks_the_rules_hashes_the_password_and_audits_refusals_too() {
        let mut s = Store::open_in_memory().unwrap();
        let actor = Actor::cli();
        let sub = add(&mut s, &actor, new_user("alice", "long enough password")).unwrap();
        let u = find(&s, "ALICE").unwrap();
        assert_eq!(
            (u.id.as_str(), u.groups.as_slice()),
            (sub.as_str(), &["family".to_string()][..])
        );
        let hash = u.password_hash.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("long enough password"));
        assert_eq!(
            last_event(&s),
            ("user_added".into(), "alice".into(), "ok".into())
        );

        assert!(matches!(
            add(&mut s, &actor, new_user("Alice", "long enough password")),
            Err(OpError::Conflict(_))
        ));
        assert!(matches!(
            add(&mut s, &actor, new_user("bob", "short")),
            Err(OpError::Invalid(_))
        ));
        assert_eq!(
            last_event(&s),
            ("user_added".into(), "bob".into(), "failed".into())
        );
        assert!(matches!(
            check_add(&mut s, &actor, "bad name", &[]),
            Err(OpError::Invalid(_))
        ));
        assert_eq!(
            last_event(&s),
            ("user_added".into(), "bad name".into(), "failed".into())
        );
        match disable(&mut s, &actor, "carol") {
            Err(OpError::NotFound(m)) => assert_eq!(m, "no user named \"carol\""),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            last_event(&s),
            ("user_disabled".into(), "carol".into(), "failed".into())
        );
    }
}
