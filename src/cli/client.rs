//! `latchkey client`: register and manage OAuth clients. The registration rules are in
//! [`crate::ops::clients`]; this file parses, calls and prints.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::clients::{self, ClientChanges, ClientSpec};
use crate::ops::view;
use crate::store::{Client, Store};
use crate::timefmt::rfc3339;

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; prints its client_id and, for confidential clients, its secret (once)
    Add(AddArgs),
    /// List clients
    List,
    /// Show one client (by client_id or name)
    Show {
        /// The client: its client_id or name
        id: String,
    },
    /// Change a client (by client_id or name); what is not given stays as it is
    Update(UpdateArgs),
    /// Remove a client (by client_id or name)
    Remove {
        /// The client: its client_id or name
        id: String,
    },
    /// Replace a confidential client's secret; prints the new secret (once)
    RotateSecret {
        /// The client: its client_id or name
        id: String,
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
    /// Access-token lifetime with its unit, e.g. 90s, 10m, 1h [default: the token.access_ttl setting]
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds)]
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
    /// Users must sign in with a second factor (TOTP or a passkey) to use the app
    #[arg(long)]
    require_mfa: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The client's client_id or name
    id: String,
    /// A new unique name
    #[arg(long)]
    name: Option<String>,
    /// A grant type (repeatable; given at least once, replaces the client's grants)
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Scopes, space-separated or repeated (given at least once, replaces the client's scopes;
    /// '' for none, which is the OpenID Connect default for authorization_code clients)
    #[arg(long = "scope", value_name = "SCOPES")]
    scopes: Vec<String>,
    /// A redirect URI (repeatable; given at least once, replaces the list; '' for none)
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Add a redirect URI, keeping the others (repeatable)
    #[arg(long = "add-redirect-uri", value_name = "URI")]
    add_redirect_uris: Vec<String>,
    /// Remove a registered redirect URI, keeping the others (repeatable)
    #[arg(long = "remove-redirect-uri", value_name = "URI")]
    remove_redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeatable; given at least once, replaces the list; ''
    /// for none)
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// Add a post-logout redirect URI, keeping the others (repeatable)
    #[arg(long = "add-post-logout-redirect-uri", value_name = "URI")]
    add_post_logout_redirect_uris: Vec<String>,
    /// Remove a registered post-logout redirect URI, keeping the others (repeatable)
    #[arg(long = "remove-post-logout-redirect-uri", value_name = "URI")]
    remove_post_logout_redirect_uris: Vec<String>,
    /// A group whose members may sign in (repeatable; given at least once, replaces the list;
    /// '' lets everyone in)
    #[arg(long = "allow-group", value_name = "GROUP")]
    allowed_groups: Vec<String>,
    /// The `aud` of its access tokens
    #[arg(long, conflicts_with = "no_audience")]
    audience: Option<String>,
    /// Access tokens name the issuer as their audience again
    #[arg(long)]
    no_audience: bool,
    /// Access-token lifetime with its unit, e.g. 90s, 10m, 1h
    #[arg(long, value_name = "DURATION", value_parser = super::parse_seconds,
          conflicts_with = "default_access_token_ttl")]
    access_token_ttl: Option<i64>,
    /// Access tokens live as long as the token.access_ttl setting says again
    #[arg(long)]
    default_access_token_ttl: bool,
    /// A trusted first-party app whose users are never asked to consent
    #[arg(long, value_name = "BOOL")]
    skip_consent: Option<bool>,
    /// Whether the authorization code flow needs PKCE (always true for a public client)
    #[arg(long, value_name = "BOOL")]
    require_pkce: Option<bool>,
    /// ID-token signing algorithm
    #[arg(long, value_name = "ALG", value_parser = ["RS256", "ES256"])]
    id_token_alg: Option<String>,
    /// The client's type, which cannot change: anything but its own type is refused
    #[arg(long, value_name = "BOOL")]
    public: Option<bool>,
    /// Whether users must sign in with a second factor (TOTP or a passkey) to use the app
    #[arg(long, value_name = "BOOL")]
    require_mfa: Option<bool>,
}

impl UpdateArgs {
    fn changes(self) -> ClientChanges {
        // A list flag given at least once replaces the list; '' values are dropped, so a lone
        // '' empties it.
        let list = |v: Vec<String>| {
            (!v.is_empty()).then(|| v.into_iter().filter(|s| !s.is_empty()).collect())
        };
        ClientChanges {
            name: self.name,
            public: self.public,
            grant_types: list(self.grants),
            scopes: list(self.scopes),
            redirect_uris: list(self.redirect_uris),
            add_redirect_uris: self.add_redirect_uris,
            remove_redirect_uris: self.remove_redirect_uris,
            post_logout_redirect_uris: list(self.post_logout_redirect_uris),
            add_post_logout_redirect_uris: self.add_post_logout_redirect_uris,
            remove_post_logout_redirect_uris: self.remove_post_logout_redirect_uris,
            audience: if self.no_audience {
                Some(None)
            } else {
                self.audience.map(Some)
            },
            access_token_ttl: if self.default_access_token_ttl {
                Some(None)
            } else {
                self.access_token_ttl.map(Some)
            },
            require_pkce: self.require_pkce,
            skip_consent: self.skip_consent,
            id_token_alg: self.id_token_alg,
            allowed_groups: list(self.allowed_groups),
            require_mfa: self.require_mfa,
        }
    }
}

pub fn run(store: &mut Store, cmd: ClientCmd, json: bool) -> Result<(), Error> {
    let actor = Actor::cli();
    match cmd {
        ClientCmd::Add(args) => add(store, &actor, args, json),
        ClientCmd::Update(args) => {
            let id = args.id.clone();
            let c = clients::update(store, &actor, &id, args.changes())?;
            print(&c, json);
            Ok(())
        }
        ClientCmd::List => {
            let all = clients::list(store)?;
            if json {
                super::print_json(&Value::Array(all.iter().map(view::client).collect()));
            } else {
                out!("{:<34} {:<24} {:<13} GRANTS", "CLIENT_ID", "NAME", "TYPE");
                for c in all {
                    out!(
                        "{:<34} {:<24} {:<13} {}",
                        c.client_id,
                        c.name,
                        kind(&c),
                        c.grant_types.join(",")
                    );
                }
            }
            Ok(())
        }
        ClientCmd::Show { id } => {
            print(&clients::find(store, &id)?, json);
            Ok(())
        }
        ClientCmd::Remove { id } => {
            let c = clients::remove(store, &actor, &id)?;
            if json {
                super::print_json(&view::client(&c));
            } else {
                out!("removed client {} ({})", c.client_id, c.name);
            }
            Ok(())
        }
        ClientCmd::RotateSecret { id } => {
            let (c, secret) = clients::rotate_secret(store, &actor, &id)?;
            if json {
                super::print_json(&view::with(
                    view::client(&c),
                    "client_secret",
                    secret.into(),
                ));
            } else {
                out!("client_id:     {}", c.client_id);
                out!("client_secret: {secret}");
                out!("The old secret no longer works. The new one is shown only now.");
            }
            Ok(())
        }
    }
}

fn kind(c: &Client) -> &'static str {
    if c.is_public() {
        "public"
    } else {
        "confidential"
    }
}

/// Prints a client as `client show` does: its JSON shape, or text.
fn print(c: &Client, json: bool) {
    if json {
        super::print_json(&view::client(c));
    } else {
        print_human(c);
    }
}

fn print_human(c: &Client) {
    out!("client_id:                 {}", c.client_id);
    out!("name:                      {}", c.name);
    out!("type:                      {}", kind(c));
    out!("grant_types:               {}", c.grant_types.join(" "));
    out!("scopes:                    {}", c.scopes.join(" "));
    out!("redirect_uris:             {}", c.redirect_uris.join(" "));
    out!(
        "audience:                  {}",
        c.audience.as_deref().unwrap_or("(the issuer)")
    );
    out!(
        "access_token_ttl:          {}",
        c.access_token_ttl
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "(server default)".into())
    );
    out!(
        "require_pkce:              {}",
        c.require_pkce || c.is_public()
    );
    out!("skip_consent:              {}", c.skip_consent);
    out!("id_token_alg:              {}", c.id_token_alg);
    out!(
        "post_logout_redirect_uris: {}",
        c.post_logout_redirect_uris.join(" ")
    );
    out!(
        "allowed_groups:            {}",
        if c.allowed_groups.is_empty() {
            "(everyone)".to_string()
        } else {
            c.allowed_groups.join(" ")
        }
    );
    out!("require_mfa:               {}", c.require_mfa);
    out!("created:                   {}", rfc3339(c.created_at));
}

fn add(store: &mut Store, actor: &Actor, a: AddArgs, json: bool) -> Result<(), Error> {
    let spec = ClientSpec {
        public: a.public,
        scopes: a.scopes,
        redirect_uris: a.redirect_uris,
        post_logout_redirect_uris: a.post_logout_redirect_uris,
        audience: a.audience,
        access_token_ttl: a.access_token_ttl,
        require_pkce: !a.no_require_pkce,
        skip_consent: a.skip_consent,
        id_token_alg: a.id_token_alg,
        allowed_groups: a.allowed_groups,
        require_mfa: a.require_mfa,
        ..ClientSpec::new(&a.name, a.grants)
    };
    let added = clients::add(store, actor, spec)?;
    if json {
        // The registered client in its one shape, with the secret shown this once.
        let c = clients::find(store, &added.client_id)?;
        let secret = added.secret.clone().map_or(Value::Null, Value::from);
        super::print_json(&view::with(view::client(&c), "client_secret", secret));
    } else {
        out!("client_id:     {}", added.client_id);
        match &added.secret {
            Some(s) => {
                out!("client_secret: {s}");
                out!("Store the secret now: it is shown only once (latchkey keeps only its hash).");
            }
            None => out!("public client: no secret"),
        }
    }
    Ok(())
}
