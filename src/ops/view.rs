//! The JSON shape of each object type, written once: `--json` output of every command that
//! shows, lists, creates, changes or removes one (and, later, the admin API) uses these
//! functions, so `client add`, `client show` and `client rotate-secret` cannot drift apart.
//!
//! A command that creates or replaces a secret adds that one field to the object's shape
//! (`client_secret`, `key`), since it is shown only then; a command that removes an object
//! prints it as it was. Field names follow the glossary in [`crate::ops`].

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::config::{Setting, Settings, TextSetting};
use crate::forward::rules::Rule;
use crate::ops::groups::GroupInfo;
use crate::ops::keys::ListedKey;
use crate::ops::sessions::SessionInfo;
use crate::ops::users::Consent;
use crate::store::apikeys::ApiKeyRow;
use crate::store::audit::AuditEvent;
use crate::store::factors::SecondFactors;
use crate::store::{Client, User};

/// Adds one field to an object shape (a secret shown once).
pub fn with(mut object: Value, key: &str, value: Value) -> Value {
    if let Some(o) = object.as_object_mut() {
        o.insert(key.to_string(), value);
    }
    object
}

pub fn client(c: &Client) -> Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "public": c.is_public(),
        "grant_types": c.grant_types,
        "scopes": c.scopes,
        "redirect_uris": c.redirect_uris,
        "audience": c.audience,
        "access_token_ttl": c.access_token_ttl,
        "require_pkce": c.require_pkce || c.is_public(),
        "skip_consent": c.skip_consent,
        "id_token_alg": c.id_token_alg,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "allowed_groups": c.allowed_groups,
        "require_mfa": c.require_mfa,
        "created_at": c.created_at,
    })
}

/// A user with their second factors (`f`, counted): `has_password` is false for an invited
/// user who has not chosen one yet.
pub fn user(u: &User, f: &SecondFactors) -> Value {
    json!({
        "sub": u.id,
        "username": u.username,
        "email": u.email,
        "name": u.name,
        "groups": u.groups,
        "disabled": u.disabled,
        "created_at": u.created_at,
        "has_password": u.password_hash.is_some(),
        "mfa_required": u.mfa_required,
        "second_factors": {
            "totp": f.totp,
            "passkeys": f.passkeys,
            "recovery_codes": f.recovery_codes,
        },
    })
}

pub fn session(s: &SessionInfo) -> Value {
    json!({
        "id": s.id,
        "auth_time": s.auth_time,
        "last_seen_at": s.last_seen_at,
        "expires_at": s.expires_at,
        "forward_auth_sessions": s.forward_sessions,
    })
}

/// A user's consent to an app: which scopes, since when.
pub fn consent(username: &str, c: &Consent) -> Value {
    json!({
        "username": username,
        "client_id": c.client_id,
        "scope": c.scope,
        "created_at": c.created_at,
    })
}

/// An API key (never the key itself). `users` maps a `sub` to its username; a key tied to a
/// user who is gone shows the `sub`.
pub fn apikey(k: &ApiKeyRow, users: &HashMap<String, String>, now: i64) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "owner": k.owner,
        "user": k.user_id.as_ref().map(|id| users.get(id).cloned().unwrap_or_else(|| id.clone())),
        "prefix": k.prefix,
        "scopes": k.scopes,
        "rate_limit": k.rate.map(|(n, w)| json!({"requests": n, "per_seconds": w})),
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "last_used_at": k.last_used_at,
        "replaced_by": k.replaced_by,
        "status": crate::ops::apikeys::status(k, now),
    })
}

/// A forward-auth rule; `position` is its place in the evaluation order (1 = first).
pub fn rule(r: &Rule, position: usize) -> Value {
    let (action, _) = crate::ops::rules::action_parts(&r.action);
    json!({
        "id": r.id,
        "position": position,
        "host": r.host,
        "path": r.path,
        "method": r.method,
        "action": action,
        "subject": r.subject,
        "scope": r.scope.as_ref().map(|s| s.join(" ")),
        "require_mfa": r.require_mfa,
    })
}

pub fn group(i: &GroupInfo) -> Value {
    json!({
        "id": i.group.id,
        "name": i.group.name,
        "description": i.group.description,
        "created_at": i.group.created_at,
        "members": i.members,
        "rules": i.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
        "clients": i.clients.iter().map(|c| &c.client_id).collect::<Vec<_>>(),
    })
}

pub fn signing_key(k: &ListedKey) -> Value {
    let t = &k.times;
    json!({
        "kid": k.kid,
        "alg": k.alg,
        "status": k.status,
        "created_at": k.created_at,
        "retire_after": k.retire_after,
        "signing_from": t.signing_from,
        "signing_until": t.signing_until,
        "published_until": t.published_until,
    })
}

/// A setting, by key: its current value, default, unit, and when a change applies. Numbers
/// are numbers (in the unit); a path setting at its default has the value `""`.
pub fn setting(current: &Settings, key: &str) -> Option<Value> {
    if let Some(t) = TextSetting::from_key(key) {
        return Some(json!({
            "key": t.key(),
            "value": current.text(t),
            "default": "",
            "unit": t.unit(),
            "applies": t.applies().as_str(),
            "help": t.help(),
        }));
    }
    let s = Setting::from_key(key).ok()?;
    let spec = s.spec();
    Some(json!({
        "key": spec.key,
        "value": current.get(s),
        "default": spec.default,
        "unit": spec.unit.as_str(),
        "applies": spec.applies.as_str(),
        "help": spec.help,
    }))
}

/// Every setting, in the order `settings list` shows them.
pub fn settings(current: &Settings) -> Vec<Value> {
    let keys = Setting::ALL
        .into_iter()
        .map(|s| s.key())
        .chain(TextSetting::ALL.into_iter().map(|t| t.key()));
    keys.filter_map(|k| setting(current, k)).collect()
}

pub fn audit_event(e: &AuditEvent) -> Value {
    json!({
        "time": e.time,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "address": e.address,
        "count": e.count,
    })
}
