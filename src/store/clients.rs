//! OAuth client rows.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, conflict, exec_tx};

/// A registered OAuth client.
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// Scopes the client may request; also its default when it requests none.
    pub scopes: Vec<String>,
    /// `aud` of its access tokens; `None` means the issuer.
    pub audience: Option<String>,
    /// Access-token lifetime in seconds; `None` means the server default.
    pub access_token_ttl: Option<i64>,
    /// PKCE required at `/authorize` (always true for public clients in effect).
    pub require_pkce: bool,
    /// A trusted first-party client: users are never asked to consent.
    pub skip_consent: bool,
    /// `RS256` (default) or `ES256`.
    pub id_token_alg: String,
    /// Where RP-initiated logout may send the browser.
    pub post_logout_redirect_uris: Vec<String>,
    /// Only members of these groups may sign in to the client (empty: everyone). Stored by
    /// group id, read as the groups' current names (see [`super::groups`]).
    pub allowed_groups: Vec<String>,
    /// Users must sign in with a second factor (or a user-verified passkey) to use it.
    pub require_mfa: bool,
    pub created_at: i64,
}

// The secret digest is not a secret, but nothing about credentials belongs in debug output.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.secret_hash.is_none())
            .field("grant_types", &self.grant_types)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// True for clients without a secret (browser and native apps).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// True if the client was registered for `grant_type`.
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// What `client add` stores, and `client update` writes (all but the secret).
pub struct NewClient<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub secret_hash: Option<[u8; 32]>,
    pub redirect_uris: &'a [String],
    pub grant_types: &'a [String],
    pub scopes: &'a [String],
    pub audience: Option<&'a str>,
    pub access_token_ttl: Option<i64>,
    pub require_pkce: bool,
    pub skip_consent: bool,
    pub id_token_alg: &'a str,
    pub post_logout_redirect_uris: &'a [String],
    pub allowed_groups: &'a [String],
    pub require_mfa: bool,
}

/// Most clients a connection keeps parsed.
const CACHED_CLIENTS: usize = 1024;

/// Parsed clients of one connection, valid for one value of the `clients` revision.
#[derive(Default)]
pub(super) struct ClientCache {
    rev: Option<i64>,
    map: HashMap<String, Arc<Client>>,
}

/// The columns of a client, as a macro so the statements below are literals.
macro_rules! columns {
    () => {
        "client_id, name, secret_hash, redirect_uris, grant_types, scopes, audience, \
         access_token_ttl, created_at, require_pkce, skip_consent, id_token_alg, \
         post_logout_redirect_uris, \
         (SELECT json_group_array(COALESCE(g.name, 'removed group ' || j.value)) \
          FROM json_each(clients.allowed_groups) AS j LEFT JOIN groups AS g ON g.id = j.value), \
         require_mfa"
    };
}
const COLUMNS: &str = columns!();
const SELECT_BY_ID: &str = concat!("SELECT ", columns!(), " FROM clients WHERE client_id = ?1");

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Client, StoreError>> {
    let secret: Option<Vec<u8>> = r.get(2)?;
    let redirect_uris: String = r.get(3)?;
    let grant_types: String = r.get(4)?;
    let scopes: String = r.get(5)?;
    let client_id: String = r.get(0)?;
    let post_logout: String = r.get(12)?;
    let allowed_groups: String = r.get(13)?;
    let decode = || -> Result<Client, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("client {client_id}: {what}"));
        let secret_hash = match secret {
            None => None,
            Some(v) => Some(<[u8; 32]>::try_from(v.as_slice()).map_err(|_| bad("secret_hash"))?),
        };
        Ok(Client {
            client_id: client_id.clone(),
            name: r.get(1)?,
            secret_hash,
            redirect_uris: serde_json::from_str(&redirect_uris)
                .map_err(|_| bad("redirect_uris"))?,
            grant_types: serde_json::from_str(&grant_types).map_err(|_| bad("grant_types"))?,
            scopes: scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            audience: r.get(6)?,
            access_token_ttl: r.get(7)?,
            created_at: r.get(8)?,
            require_pkce: r.get::<_, i64>(9)? != 0,
            skip_consent: r.get::<_, i64>(10)? != 0,
            id_token_alg: r.get(11)?,
            post_logout_redirect_uris: serde_json::from_str(&post_logout)
                .map_err(|_| bad("post_logout_redirect_uris"))?,
            allowed_groups: serde_json::from_str(&allowed_groups)
                .map_err(|_| bad("allowed_groups"))?,
            require_mfa: r.get::<_, i64>(14)? != 0,
        })
    };
    Ok(decode())
}

impl Store {
    /// Registers a client. A taken name or id is `Conflict`.
    pub fn insert_client(&mut self, c: &NewClient<'_>, now: i64) -> Result<(), StoreError> {
        let to_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        self.with_tx(|tx| {
            let groups = super::groups::group_ids_json_tx(tx, c.allowed_groups, now)?;
            exec_tx(
                tx,
                "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, \
                 scopes, audience, access_token_ttl, created_at, updated_at, require_pkce, \
                 skip_consent, id_token_alg, post_logout_redirect_uris, allowed_groups, \
                 require_mfa) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    c.client_id,
                    c.name,
                    c.secret_hash.as_ref().map(|h| h.as_slice()),
                    to_json(c.redirect_uris),
                    to_json(c.grant_types),
                    c.scopes.join(" "),
                    c.audience,
                    c.access_token_ttl,
                    now,
                    i64::from(c.require_pkce),
                    i64::from(c.skip_consent),
                    c.id_token_alg,
                    to_json(c.post_logout_redirect_uris),
                    groups,
                    c.require_mfa
                ],
            )
            .map_err(|e| conflict(e, &format!("a client named {:?}", c.name)))?;
            Ok(())
        })
    }

    /// The client with this `client_id`, from this connection's cache of parsed clients while
    /// the `clients` revision is unchanged (one small read instead of a row and its JSON
    /// columns on every token request). A client added, removed or rotated by the CLI bumps the
    /// revision, so the change counts on the next request.
    pub fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let rev = self.revision(super::Revision::Clients)?;
        {
            let mut cache = self.clients.borrow_mut();
            if cache.rev != Some(rev) {
                cache.map.clear();
                cache.rev = Some(rev);
            }
            if let Some(c) = cache.map.get(client_id) {
                return Ok(Some(Arc::clone(c)));
            }
        }
        // Read after the revision: the row is at least as new as the revision it is filed
        // under, and a later change bumps the revision again.
        let mut stmt = self.conn.prepare_cached(SELECT_BY_ID)?;
        let Some(client) = stmt
            .query_row([client_id], from_row)
            .optional()?
            .transpose()?
        else {
            return Ok(None);
        };
        let client = Arc::new(client);
        let mut cache = self.clients.borrow_mut();
        if cache.map.len() < CACHED_CLIENTS {
            cache.map.insert(client_id.to_string(), Arc::clone(&client));
        }
        Ok(Some(client))
    }

    /// The client with this `client_id`, or else with this name (for the CLI).
    pub fn client_by_id_or_name(&self, key: &str) -> Result<Option<Client>, StoreError> {
        if let Some(c) = self.client(key)? {
            return Ok(Some(Arc::unwrap_or_clone(c)));
        }
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM clients WHERE name = ?1"))?;
        stmt.query_row([key], from_row).optional()?.transpose()
    }

    /// Every client, by name.
    pub fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM clients ORDER BY name"))?;
        let rows = stmt.query_map([], from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Removes a client. `NotFound` if there was none.
    pub fn remove_client(&mut self, client_id: &str) -> Result<(), StoreError> {
        let n = self.exec("DELETE FROM clients WHERE client_id = ?1", [client_id])?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces everything about a client but its id, secret and creation time with `c`'s
    /// values, in one transaction (a taken name is `Conflict`, no such client `NotFound`). The
    /// update trigger bumps the `clients` revision, so a running server picks the change up.
    pub fn update_client(&mut self, c: &NewClient<'_>, now: i64) -> Result<(), StoreError> {
        let to_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let name = format!("a client named {:?}", c.name);
        self.with_tx(|tx| {
            let groups = super::groups::group_ids_json_tx(tx, c.allowed_groups, now)?;
            let n = tx
                .execute(
                    "UPDATE clients SET name = ?2, redirect_uris = ?3, grant_types = ?4, \
                         scopes = ?5, audience = ?6, access_token_ttl = ?7, updated_at = ?8, \
                         require_pkce = ?9, skip_consent = ?10, id_token_alg = ?11, \
                         post_logout_redirect_uris = ?12, allowed_groups = ?13, \
                         require_mfa = ?14 WHERE client_id = ?1",
                    params![
                        c.client_id,
                        c.name,
                        to_json(c.redirect_uris),
                        to_json(c.grant_types),
                        c.scopes.join(" "),
                        c.audience,
                        c.access_token_ttl,
                        now,
                        i64::from(c.require_pkce),
                        i64::from(c.skip_consent),
                        c.id_token_alg,
                        to_json(c.post_logout_redirect_uris),
                        groups,
                        c.require_mfa
                    ],
                )
                .map_err(|e| conflict(e, &name))?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Replaces a confidential client's secret digest. `NotFound` if there is no such client.
    pub fn set_client_secret(
        &mut self,
        client_id: &str,
        secret_hash: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        let n = self.exec(
            "UPDATE clients SET secret_hash = ?2, updated_at = ?3 WHERE client_id = ?1",
            params![client_id, secret_hash.as_slice(), now],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
