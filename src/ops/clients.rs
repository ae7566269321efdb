//! OAuth client operations: register, change, remove, rotate a secret, find and list.
//!
//! The registration rules are written once, in [`validate`], as a check of the whole client
//! that would result: `add` checks what it was given, `update` loads the client, applies the
//! changes and checks the result, so a change can never produce a client `add` would refuse.

use crate::config::MAX_TOKEN_TTL;
use crate::crypto::{hex, random_bytes, random_token, sha256};
use crate::oauth::token::GRANT_TYPES;
use crate::oauth::{redirect_uri, scope};
use crate::store::{Client, NewClient, Store, StoreError};
use crate::timefmt::now;

use super::{Actor, OpError, audited, validate_name};

/// The scopes of an `authorization_code` client registered without any.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// Everything a client is registered with. `add` takes it as given; `update` builds it from
/// the stored client and the changes. [`validate`] normalises it (trimmed name, grants without
/// repeats, scopes split into tokens with their default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    pub name: String,
    /// No secret: a browser or native app.
    pub public: bool,
    pub grant_types: Vec<String>,
    /// Scopes, each entry a space-separated list.
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// `None`: the issuer.
    pub audience: Option<String>,
    /// `None`: the `token.access_ttl` setting.
    pub access_token_ttl: Option<i64>,
    pub require_pkce: bool,
    pub skip_consent: bool,
    pub id_token_alg: String,
    /// Empty: everyone may sign in.
    pub allowed_groups: Vec<String>,
    /// Users need a second factor (or a user-verified passkey) to sign in to it.
    pub require_mfa: bool,
}

impl ClientSpec {
    /// A spec with the defaults of `client add`: confidential, PKCE required, RS256, no
    /// scopes, URIs or groups.
    pub fn new(name: &str, grant_types: Vec<String>) -> ClientSpec {
        ClientSpec {
            name: name.to_string(),
            public: false,
            grant_types,
            scopes: Vec::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            audience: None,
            access_token_ttl: None,
            require_pkce: true,
            skip_consent: false,
            id_token_alg: "RS256".into(),
            allowed_groups: Vec::new(),
            require_mfa: false,
        }
    }

    fn of(c: &Client) -> ClientSpec {
        ClientSpec {
            name: c.name.clone(),
            public: c.is_public(),
            grant_types: c.grant_types.clone(),
            scopes: c.scopes.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            audience: c.audience.clone(),
            access_token_ttl: c.access_token_ttl,
            require_pkce: c.require_pkce,
            skip_consent: c.skip_consent,
            id_token_alg: c.id_token_alg.clone(),
            allowed_groups: c.allowed_groups.clone(),
            require_mfa: c.require_mfa,
        }
    }

    fn row<'a>(&'a self, client_id: &'a str, secret_hash: Option<[u8; 32]>) -> NewClient<'a> {
        NewClient {
            client_id,
            name: &self.name,
            secret_hash,
            redirect_uris: &self.redirect_uris,
            grant_types: &self.grant_types,
            scopes: &self.scopes,
            audience: self.audience.as_deref(),
            access_token_ttl: self.access_token_ttl,
            require_pkce: self.require_pkce,
            skip_consent: self.skip_consent,
            id_token_alg: &self.id_token_alg,
            post_logout_redirect_uris: &self.post_logout_redirect_uris,
            allowed_groups: &self.allowed_groups,
            require_mfa: self.require_mfa,
        }
    }
}

/// What to change about a client; `None` leaves a field as it is, a list replaces the stored
/// list whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientChanges {
    pub name: Option<String>,
    /// The type cannot change: a value other than the client's own is refused.
    pub public: Option<bool>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    /// Added to the redirect URIs (after a replacement, if any); one already there is kept once.
    pub add_redirect_uris: Vec<String>,
    /// Taken from the redirect URIs; each must be registered.
    pub remove_redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub add_post_logout_redirect_uris: Vec<String>,
    pub remove_post_logout_redirect_uris: Vec<String>,
    /// `Some(None)`: back to the issuer.
    pub audience: Option<Option<String>>,
    /// `Some(None)`: back to the server default.
    pub access_token_ttl: Option<Option<i64>>,
    pub require_pkce: Option<bool>,
    pub skip_consent: Option<bool>,
    pub id_token_alg: Option<String>,
    pub allowed_groups: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
}

/// A registered client: its id and, for a confidential client, its secret — returned only
/// now (latchkey keeps only the hash).
pub struct Added {
    pub client_id: String,
    pub name: String,
    pub secret: Option<String>,
}

// The secret never reaches debug output.
impl std::fmt::Debug for Added {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Added")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.secret.is_none())
            .finish_non_exhaustive()
    }
}

/// The registration rules, checked on the whole client (RFC 6749 §2, RFC 9700 §2.1.1 and §2.6,
/// OAuth 2.1 §2.3): known grants, `refresh_token` only with `authorization_code`, no
/// `client_credentials` and always PKCE for a public client, a redirect URI for the code flow,
/// valid scopes (the OpenID Connect set by default for the code flow), redirect and
/// post-logout URIs, audience, token lifetime, groups and name. Normalises `spec` in place.
pub fn validate(spec: &mut ClientSpec) -> Result<(), OpError> {
    let invalid = |m: String| Err(OpError::Invalid(m));
    validate_name("name", &spec.name)?;
    spec.name = spec.name.trim().to_string();
    let mut grants: Vec<String> = Vec::new();
    for g in &spec.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return invalid(format!(
                "unknown grant {g:?}; supported: {}",
                GRANT_TYPES.join(", ")
            ));
        }
        if !grants.contains(g) {
            grants.push(g.clone());
        }
    }
    if grants.is_empty() {
        return invalid(format!(
            "a client needs at least one grant: {}",
            GRANT_TYPES.join(", ")
        ));
    }
    spec.grant_types = grants;
    let has = |g: &str| spec.grant_types.iter().any(|x| x == g);
    if spec.public && has("client_credentials") {
        return invalid("a public client cannot use client_credentials (it has no secret)".into());
    }
    let code_flow = has("authorization_code");
    if has("refresh_token") && !code_flow {
        return invalid("refresh_token needs the authorization_code grant".into());
    }
    if code_flow && spec.redirect_uris.is_empty() {
        return invalid("an authorization_code client needs at least one redirect URI".into());
    }
    if spec.public && !spec.require_pkce {
        return invalid("a public client always uses PKCE".into());
    }
    let mut scopes = scope::parse(&spec.scopes.join(" ")).ok_or_else(|| {
        OpError::Invalid(
            "a scope may only hold printable ASCII without spaces, quotes or backslashes".into(),
        )
    })?;
    if scopes.is_empty() && code_flow {
        scopes = DEFAULT_SCOPES.map(String::from).to_vec();
    }
    spec.scopes = scopes;
    for g in &spec.allowed_groups {
        // A removed group the client still names reads as words no group name can be; an
        // update keeps it (so the client stays closed to it).
        if crate::store::groups::removed_group_id(g).is_none() {
            crate::accounts::validate_group(g).map_err(OpError::Invalid)?;
        }
    }
    for uri in spec
        .redirect_uris
        .iter()
        .chain(&spec.post_logout_redirect_uris)
    {
        redirect_uri::validate(uri).map_err(OpError::Invalid)?;
    }
    if let Some(aud) = &spec.audience
        && (aud.is_empty() || aud.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return invalid("the audience must be a non-empty string without spaces".into());
    }
    if let Some(ttl) = spec.access_token_ttl
        && !(30..=MAX_TOKEN_TTL).contains(&ttl)
    {
        return invalid(format!(
            "the access-token lifetime must be between 30 and {MAX_TOKEN_TTL} seconds"
        ));
    }
    if !matches!(spec.id_token_alg.as_str(), "RS256" | "ES256") {
        return invalid("the ID-token algorithm must be RS256 or ES256".into());
    }
    Ok(())
}

/// Registers a client (audit `client_added`, target the name as given).
pub fn add(store: &mut Store, actor: &Actor, mut spec: ClientSpec) -> Result<Added, OpError> {
    let target = spec.name.clone();
    audited(store, actor, "client_added", &target, |store| {
        validate(&mut spec)?;
        super::groups::warn_if_new(store, &spec.allowed_groups, "the client")?;
        let client_id = hex(&random_bytes::<16>()?);
        let secret = if spec.public {
            None
        } else {
            Some(random_token()?)
        };
        let hash = secret.as_ref().map(|s| sha256(s.as_bytes()));
        store
            .insert_client(&spec.row(&client_id, hash), now())
            .map_err(OpError::taken)?;
        Ok(Added {
            client_id,
            name: spec.name,
            secret,
        })
    })
}

/// Changes a client (audit `client_updated`, target its client_id, or the key given when
/// there is no such client): load, apply the changes, check the whole result with
/// [`validate`], write. Returns the client as stored now.
pub fn update(
    store: &mut Store,
    actor: &Actor,
    key: &str,
    changes: ClientChanges,
) -> Result<Client, OpError> {
    let found = store.client_by_id_or_name(key)?;
    let target = found
        .as_ref()
        .map_or(key, |c| c.client_id.as_str())
        .to_string();
    audited(store, actor, "client_updated", &target, |store| {
        let client = found.ok_or_else(|| not_found(key))?;
        if changes == ClientChanges::default() {
            return Err(OpError::Invalid(
                "nothing to change: give at least one option".into(),
            ));
        }
        let mut spec = ClientSpec::of(&client);
        if let Some(public) = changes.public
            && public != spec.public
        {
            let (is, other) = if spec.public {
                ("public", "confidential")
            } else {
                ("confidential", "public")
            };
            return Err(OpError::Invalid(format!(
                "client {} is {is}, and a client's type cannot change; register a new \
                 {other} client instead",
                client.name
            )));
        }
        let ClientChanges {
            name,
            public: _,
            grant_types,
            scopes,
            redirect_uris,
            add_redirect_uris,
            remove_redirect_uris,
            post_logout_redirect_uris,
            add_post_logout_redirect_uris,
            remove_post_logout_redirect_uris,
            audience,
            access_token_ttl,
            require_pkce,
            skip_consent,
            id_token_alg,
            allowed_groups,
            require_mfa,
        } = changes;
        let set = |field: &mut Vec<String>, new: Option<Vec<String>>| {
            if let Some(v) = new {
                *field = v;
            }
        };
        spec.name = name.unwrap_or(spec.name);
        set(&mut spec.grant_types, grant_types);
        set(&mut spec.scopes, scopes);
        set(&mut spec.redirect_uris, redirect_uris);
        set(
            &mut spec.post_logout_redirect_uris,
            post_logout_redirect_uris,
        );
        set(&mut spec.allowed_groups, allowed_groups);
        edit_list(
            &mut spec.redirect_uris,
            add_redirect_uris,
            remove_redirect_uris,
            "redirect URI",
        )?;
        edit_list(
            &mut spec.post_logout_redirect_uris,
            add_post_logout_redirect_uris,
            remove_post_logout_redirect_uris,
            "post-logout redirect URI",
        )?;
        spec.audience = audience.unwrap_or(spec.audience);
        spec.access_token_ttl = access_token_ttl.unwrap_or(spec.access_token_ttl);
        spec.require_pkce = require_pkce.unwrap_or(spec.require_pkce);
        spec.skip_consent = skip_consent.unwrap_or(spec.skip_consent);
        spec.id_token_alg = id_token_alg.unwrap_or(spec.id_token_alg);
        spec.require_mfa = require_mfa.unwrap_or(spec.require_mfa);
        validate(&mut spec)?;
        super::groups::warn_if_new(store, &spec.allowed_groups, "the client")?;
        store
            .update_client(&spec.row(&client.client_id, client.secret_hash), now())
            .map_err(|e| match e {
                StoreError::NotFound => not_found(key),
                other => OpError::taken(other),
            })?;
        find(store, &client.client_id)
    })
}

/// Adds and removes entries of a registered list: an added entry already there is kept once;
/// removing one that is not there is refused, naming it (a typo must not pass as done).
fn edit_list(
    list: &mut Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    what: &str,
) -> Result<(), OpError> {
    for entry in add {
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
    for entry in remove {
        let before = list.len();
        list.retain(|e| *e != entry);
        if list.len() == before {
            return Err(OpError::Invalid(format!(
                "{what} {entry:?} is not registered for this client"
            )));
        }
    }
    Ok(())
}

/// Removes a client and, with it, its grants and tokens (audit `client_removed`, target the
/// key given).
pub fn remove(store: &mut Store, actor: &Actor, key: &str) -> Result<Client, OpError> {
    audited(store, actor, "client_removed", key, |store| {
        let c = find(store, key)?;
        store.remove_client(&c.client_id).map_err(|e| match e {
            StoreError::NotFound => not_found(key),
            other => OpError::Store(other),
        })?;
        Ok(c)
    })
}

/// Replaces a confidential client's secret (audit `client_secret_rotated`, target the key
/// given). Returns the client and the new secret, shown only now; the old one stops working.
pub fn rotate_secret(
    store: &mut Store,
    actor: &Actor,
    key: &str,
) -> Result<(Client, String), OpError> {
    audited(store, actor, "client_secret_rotated", key, |store| {
        let c = find(store, key)?;
        if c.is_public() {
            return Err(OpError::Invalid(format!(
                "client {} is public and has no secret",
                c.name
            )));
        }
        let secret = random_token()?;
        store
            .set_client_secret(&c.client_id, &sha256(secret.as_bytes()), now())
            .map_err(|e| match e {
                StoreError::NotFound => not_found(key),
                other => OpError::Store(other),
            })?;
        Ok((c, secret))
    })
}

/// The client with this client_id, or else this name.
pub fn find(store: &Store, key: &str) -> Result<Client, OpError> {
    store
        .client_by_id_or_name(key)?
        .ok_or_else(|| not_found(key))
}

/// Every client, by name.
pub fn list(store: &Store) -> Result<Vec<Client>, OpError> {
    Ok(store.clients()?)
}

fn not_found(key: &str) -> OpError {
    OpError::NotFound(format!("no client with id or name {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grants: &[&str]) -> ClientSpec {
        ClientSpec::new("app", grants.iter().map(|g| g.to_string()).collect())
    }

    #[test]
    fn the_whole_client_is_checked_and_normalised() {
        let mut s = spec(&["authorization_code", "refresh_token", "authorization_code"]);
        s.name = "  app ".into();
        s.redirect_uris = vec!["https://app.example/cb".into()];
        validate(&mut s).unwrap();
        assert_eq!(s.name, "app");
        assert_eq!(s.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(s.scopes, DEFAULT_SCOPES);

        let refused = |s: &mut ClientSpec, msg: &str| match validate(s) {
            Err(OpError::Invalid(m)) => assert!(m.contains(msg), "{m}"),
            other => panic!("{other:?}"),
        };
        refused(&mut spec(&["password"]), "unknown grant");
        refused(&mut spec(&[]), "at least one grant");
        refused(
            &mut spec(&["refresh_token"]),
            "needs the authorization_code",
        );
        refused(&mut spec(&["authorization_code"]), "redirect URI");
        let mut s = spec(&["client_credentials"]);
        s.public = true;
        refused(&mut s, "public client cannot");
        let mut s = spec(&["client_credentials"]);
        s.access_token_ttl = Some(29);
        refused(&mut s, "between 30 and");
        let mut s = spec(&["client_credentials"]);
        s.id_token_alg = "HS256".into();
        refused(&mut s, "RS256 or ES256");
        let mut s = spec(&["client_credentials"]);
        s.name = "\u{7}".into();
        refused(&mut s, "the name must be 1-100 printable characters");
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let a = Added {
            client_id: "id1".into(),
            name: "app".into(),
            secret: Some("s3cr3t-value".into()),
        };
        let shown = format!("{a:?}");
        assert!(
            shown.contains("id1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
