//! `latchkey client`: register and manage OAuth clients.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::config::MAX_TOKEN_TTL;
use crate::crypto::{hex, random_bytes, random_token, sha256};
use crate::error::Error;
use crate::oauth::scope;
use crate::oauth::token::GRANT_TYPES;
use crate::store::{Client, NewClient, Store, StoreError};
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; prints its client_id and, for confidential clients, its secret (once)
    Add(AddArgs),
    /// List clients
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one client (by client_id or name)
    Show {
        /// The client: its client_id or name
        id: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Remove a client (by client_id or name)
    Remove {
        /// The client: its client_id or name
        id: String,
    },
    /// Replace a confidential client's secret; prints the new secret (once)
    RotateSecret {
        /// The client: its client_id or name
        id: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// A unique, human-readable name
    name: String,
    /// A grant type the client may use (repeatable): authorization_code, refresh_token,
    /// client_credentials
    #[arg(long = "grant", value_name = "GRANT", required = true)]
    grants: Vec<String>,
    /// Scopes the client may request, space-separated or repeated; also its default
    /// [default for authorization_code clients: openid profile email groups]
    #[arg(long = "scope", value_name = "SCOPES")]
    scopes: Vec<String>,
    /// A redirect URI (repeatable): https, or http on a loopback address
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A public client (no secret), e.g. a single-page or native app
    #[arg(long)]
    public: bool,
    /// The `aud` of its access tokens [default: the issuer]
    #[arg(long)]
    audience: Option<String>,
    /// Access-token lifetime in seconds [default: the token.access_ttl setting]
    #[arg(long, value_name = "SECS")]
    access_token_ttl: Option<i64>,
    /// A trusted first-party app: users are never asked to consent
    #[arg(long)]
    skip_consent: bool,
    /// Let a confidential client use the authorization code flow without PKCE (older apps)
    #[arg(long)]
    no_require_pkce: bool,
    /// ID-token signing algorithm
    #[arg(long, value_name = "ALG", default_value = "RS256", value_parser = ["RS256", "ES256"])]
    id_token_alg: String,
    /// Where RP-initiated logout may send the browser (repeatable)
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// Only members of this group may sign in to the app (repeatable; default: everyone)
    #[arg(long = "allow-group", value_name = "GROUP")]
    allowed_groups: Vec<String>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(store: &mut Store, cmd: ClientCmd) -> Result<(), Error> {
    match cmd {
        ClientCmd::Add(args) => add(store, args),
        ClientCmd::List { json } => {
            let clients = store.clients()?;
            if json {
                super::print_json(&Value::Array(clients.iter().map(describe).collect()));
            } else {
                println!("{:<34} {:<24} {:<13} GRANTS", "CLIENT_ID", "NAME", "TYPE");
                for c in clients {
                    println!(
                        "{:<34} {:<24} {:<13} {}",
                        c.client_id,
                        c.name,
                        if c.is_public() {
                            "public"
                        } else {
                            "confidential"
                        },
                        c.grant_types.join(",")
                    );
                }
            }
            Ok(())
        }
        ClientCmd::Show { id, json } => {
            let c = find(store, &id)?;
            if json {
                super::print_json(&describe(&c));
            } else {
                print_human(&c);
            }
            Ok(())
        }
        ClientCmd::Remove { id } => {
            let c = find(store, &id)?;
            store.remove_client(&c.client_id)?;
            println!("removed client {} ({})", c.client_id, c.name);
            Ok(())
        }
        ClientCmd::RotateSecret { id, json } => {
            let c = find(store, &id)?;
            if c.is_public() {
                return Err(Error::Usage(format!(
                    "client {} is public and has no secret",
                    c.name
                )));
            }
            let secret = random_token()?;
            store.set_client_secret(&c.client_id, &sha256(secret.as_bytes()), now())?;
            if json {
                super::print_json(&json!({"client_id": c.client_id, "client_secret": secret}));
            } else {
                println!("client_id:     {}", c.client_id);
                println!("client_secret: {secret}");
                println!("The old secret no longer works. The new one is shown only now.");
            }
            Ok(())
        }
    }
}

fn find(store: &Store, id: &str) -> Result<Client, Error> {
    store
        .client_by_id_or_name(id)?
        .ok_or_else(|| Error::Msg(format!("no client with id or name {id:?}")))
}

fn describe(c: &Client) -> Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "public": c.is_public(),
        "grant_types": c.grant_types,
        "scopes": c.scopes,
        "redirect_uris": c.redirect_uris,
        "audience": c.audience,
        "access_token_ttl": c.access_token_ttl,
        "require_pkce": c.require_pkce,
        "skip_consent": c.skip_consent,
        "id_token_alg": c.id_token_alg,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "allowed_groups": c.allowed_groups,
        "created_at": c.created_at,
    })
}

fn print_human(c: &Client) {
    println!("client_id:        {}", c.client_id);
    println!("name:             {}", c.name);
    println!(
        "type:             {}",
        if c.is_public() {
            "public"
        } else {
            "confidential"
        }
    );
    println!("grants:           {}", c.grant_types.join(" "));
    println!("scopes:           {}", c.scopes.join(" "));
    println!("redirect_uris:    {}", c.redirect_uris.join(" "));
    println!(
        "audience:         {}",
        c.audience.as_deref().unwrap_or("(the issuer)")
    );
    println!(
        "access_token_ttl: {}",
        c.access_token_ttl
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "(server default)".into())
    );
    println!("require_pkce:     {}", c.require_pkce || c.is_public());
    println!("skip_consent:     {}", c.skip_consent);
    println!("id_token_alg:     {}", c.id_token_alg);
    println!(
        "post_logout_uris: {}",
        c.post_logout_redirect_uris.join(" ")
    );
    println!(
        "allowed_groups:   {}",
        if c.allowed_groups.is_empty() {
            "(everyone)".to_string()
        } else {
            c.allowed_groups.join(" ")
        }
    );
    println!("created:          {}", rfc3339(c.created_at));
}

fn add(store: &mut Store, a: AddArgs) -> Result<(), Error> {
    let usage = |m: String| Err(Error::Usage(m));
    if a.name.trim().is_empty() || a.name.len() > 100 || a.name.chars().any(char::is_control) {
        return usage("the name must be 1-100 printable characters".into());
    }
    let mut grants: Vec<String> = Vec::new();
    for g in &a.grants {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return usage(format!(
                "unknown grant {g:?}; supported: {}",
                GRANT_TYPES.join(", ")
            ));
        }
        if !grants.contains(g) {
            grants.push(g.clone());
        }
    }
    if a.public && grants.iter().any(|g| g == "client_credentials") {
        return usage("a public client cannot use client_credentials (it has no secret)".into());
    }
    let code_flow = grants.iter().any(|g| g == "authorization_code");
    if grants.iter().any(|g| g == "refresh_token") && !code_flow {
        return usage("refresh_token needs the authorization_code grant".into());
    }
    if code_flow && a.redirect_uris.is_empty() {
        return usage("an authorization_code client needs at least one --redirect-uri".into());
    }
    if a.public && a.no_require_pkce {
        return usage("a public client always uses PKCE".into());
    }
    let mut scopes = scope::parse(&a.scopes.join(" ")).ok_or_else(|| {
        Error::Usage(
            "a scope may only hold printable ASCII without spaces, quotes or backslashes".into(),
        )
    })?;
    if scopes.is_empty() && code_flow {
        scopes = ["openid", "profile", "email", "groups"]
            .map(String::from)
            .to_vec();
    }
    for g in &a.allowed_groups {
        crate::accounts::validate_group(g).map_err(Error::Usage)?;
    }
    for uri in a.redirect_uris.iter().chain(&a.post_logout_redirect_uris) {
        validate_redirect_uri(uri).map_err(Error::Usage)?;
    }
    if let Some(aud) = &a.audience
        && (aud.is_empty() || aud.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return usage("the audience must be a non-empty string without spaces".into());
    }
    if let Some(ttl) = a.access_token_ttl
        && !(30..=MAX_TOKEN_TTL).contains(&ttl)
    {
        return usage(format!(
            "--access-token-ttl must be between 30 and {MAX_TOKEN_TTL} seconds"
        ));
    }
    let client_id = hex(&random_bytes::<16>()?);
    let secret = if a.public {
        None
    } else {
        Some(random_token()?)
    };
    store
        .insert_client(
            &NewClient {
                client_id: &client_id,
                name: a.name.trim(),
                secret_hash: secret.as_ref().map(|s| sha256(s.as_bytes())),
                redirect_uris: &a.redirect_uris,
                grant_types: &grants,
                scopes: &scopes,
                audience: a.audience.as_deref(),
                access_token_ttl: a.access_token_ttl,
                require_pkce: !a.no_require_pkce,
                skip_consent: a.skip_consent,
                id_token_alg: &a.id_token_alg,
                post_logout_redirect_uris: &a.post_logout_redirect_uris,
                allowed_groups: &a.allowed_groups,
            },
            now(),
        )
        .map_err(|e| match e {
            StoreError::Conflict(what) => Error::Usage(format!("{what} already exists")),
            other => Error::Store(other),
        })?;
    if a.json {
        let out = match &secret {
            Some(s) => json!({"client_id": client_id, "client_secret": s, "name": a.name.trim()}),
            None => json!({"client_id": client_id, "name": a.name.trim()}),
        };
        super::print_json(&out);
    } else {
        println!("client_id:     {client_id}");
        match &secret {
            Some(s) => {
                println!("client_secret: {s}");
                println!(
                    "Store the secret now: it is shown only once (latchkey keeps only its hash)."
                );
            }
            None => println!("public client: no secret"),
        }
    }
    Ok(())
}

/// Registration-time checks of a redirect URI (RFC 9700 §2.6, OAuth 2.1 §2.3.1): absolute, no
/// fragment, and https — or http only on a loopback IP or `localhost` (RFC 8252 §7.3), or a
/// private-use scheme containing a dot (RFC 8252 §7.1).
pub fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URI {uri:?}: {why}"));
    if uri.contains('#') {
        return bad("must not contain a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace");
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return bad("must be an absolute URI");
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" | "http" => {
            let Some(rest) = rest.strip_prefix("//") else {
                return bad("must be an absolute URI");
            };
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if authority.is_empty() || authority.contains('@') {
                return bad("needs a host and no user information");
            }
            let host = if let Some(v6) = authority.strip_prefix('[') {
                v6.split(']').next().unwrap_or("")
            } else {
                authority
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .unwrap_or(authority)
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if scheme == "http" && !loopback {
                return bad("plain http is only allowed on loopback addresses; use https");
            }
            Ok(())
        }
        s if s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Ok(())
        }
        _ => {
            bad("must be https, loopback http, or a private-use scheme such as com.example.app:/cb")
        }
    }
}

impl ClientCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            ClientCmd::Add(a) => Some(("client_added", a.name.clone())),
            ClientCmd::Remove { id } => Some(("client_removed", id.clone())),
            ClientCmd::RotateSecret { id, .. } => Some(("client_secret_rotated", id.clone())),
            ClientCmd::List { .. } | ClientCmd::Show { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_redirect_uri as v;

    #[test]
    fn redirect_uri_rules() {
        assert!(v("https://app.example.org/cb").is_ok());
        assert!(v("http://127.0.0.1:8000/cb").is_ok());
        assert!(v("http://[::1]/cb").is_ok());
        assert!(v("http://localhost:3000/cb").is_ok());
        assert!(v("com.example.app:/oauth").is_ok());
        assert!(v("http://app.example.org/cb").is_err());
        assert!(v("https://app.example.org/cb#x").is_err());
        assert!(v("/relative").is_err());
        assert!(v("javascript:alert(1)").is_err());
        assert!(v("https://user@host/cb").is_err());
        assert!(v("https:///cb").is_err());
    }
}
