//! `latchkey user`: people who sign in.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::error::Error;
use crate::ops::sessions::{self, Which};
use crate::ops::users::{self, NewUser, UserUpdate};
use crate::ops::{Actor, OpError, setup, view};
use crate::store::{Store, User};
use crate::timefmt::rfc3339;

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (asks for the password twice on a terminal, or reads it with --password-stdin)
    Add(AddArgs),
    /// List users
    List,
    /// Show one user
    Show {
        /// The username
        name: String,
    },
    /// Set a new password (ends the user's sessions and revokes their refresh tokens)
    Passwd {
        /// The username
        name: String,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: sign-in refused, sessions ended, tokens revoked
    Disable {
        /// The username
        name: String,
    },
    /// Enable a disabled user
    Enable {
        /// The username
        name: String,
    },
    /// Remove a user and everything issued to them (a rule naming the user needs --yes)
    Remove {
        /// The username
        name: String,
        /// Remove the user even if forward-auth rules name them (those rules then admit nobody)
        #[arg(long)]
        yes: bool,
    },
    /// Change a user's email, full name or groups (the username, `sub` and password stay)
    Update(UpdateArgs),
    /// Change a username (the user's `sub` stays the same)
    Rename {
        /// The username
        name: String,
        /// The new username
        new_name: String,
    },
    /// Manage group membership
    #[command(subcommand)]
    Group(GroupCmd),
    /// List or revoke the consents a user gave to apps
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// List or end a user's browser sessions
    #[command(subcommand)]
    Session(SessionCmd),
    /// Add a user without a password and print a one-time link where they choose a password
    /// or register a passkey (24 hours unless --ttl; a newer link kills it)
    Invite(InviteArgs),
    /// Print a one-time link where an existing user sets a new password or registers a passkey
    /// (their sessions end when it is used; second factors stay unless --reset-mfa)
    Reset(ResetArgs),
    /// Require or stop requiring a second factor for a user, or remove their second factors
    Mfa(MfaArgs),
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    /// How long the link works: 1s to 30d
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::parse_seconds)]
    ttl: i64,
    /// The issuer URL the link starts with [default: the issuer stored by serve --issuer]
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
}

#[derive(Args, Debug)]
pub struct InviteArgs {
    /// The username (unique regardless of letter case)
    name: String,
    /// Email address
    #[arg(long)]
    email: Option<String>,
    /// Full name
    #[arg(long = "name", value_name = "FULL NAME")]
    full_name: Option<String>,
    /// A group (repeatable)
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    #[command(flatten)]
    link: LinkArgs,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The username
    name: String,
    /// Also remove the user's second factors (TOTP, recovery codes, passkeys), after checking
    /// who they are out of band
    #[arg(long)]
    reset_mfa: bool,
    #[command(flatten)]
    link: LinkArgs,
}

#[derive(Args, Debug)]
pub struct MfaArgs {
    /// The username
    name: String,
    /// The user must sign in with a second factor (one who has none enrols right after the
    /// password)
    #[arg(long, conflicts_with = "no_require")]
    require: bool,
    /// The user no longer must (groups, clients and rules may still require one)
    #[arg(long)]
    no_require: bool,
    /// Remove every second factor of the user (TOTP, recovery codes, passkeys) and end their
    /// sessions, after checking who they are out of band
    #[arg(long)]
    reset: bool,
}

#[derive(Subcommand, Debug)]
pub enum SessionCmd {
    /// List the user's browser sessions: id, when they signed in, last seen, absolute expiry
    List {
        /// The username
        name: String,
    },
    /// End one session (by the id `session list` shows) or all of them: the browser must sign
    /// in again, and its forward-auth sessions end too; tokens already issued to apps stay
    /// valid
    End {
        /// The username
        name: String,
        /// The session id from `session list`
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// End every session of the user
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// List the apps the user approved, and for which scopes
    List {
        /// The username
        name: String,
    },
    /// Forget the user's consent to an app (by client_id or name) and revoke the grants it led
    /// to: the app's refresh tokens stop working, and the user is asked again at the next
    /// sign-in (unless the app skips consent)
    Revoke {
        /// The username
        name: String,
        /// The app: its client_id or name
        client: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Add the user to a group
    Add {
        /// The username
        name: String,
        /// The group
        group: String,
    },
    /// Remove the user from a group
    Remove {
        /// The username
        name: String,
        /// The group
        group: String,
    },
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// The username
    name: String,
    /// The new email address ("" clears it)
    #[arg(long)]
    email: Option<String>,
    /// The new full name ("" clears it)
    #[arg(long = "name", value_name = "FULL NAME")]
    full_name: Option<String>,
    /// A group (repeatable; given at least once, replaces the user's groups)
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Leave the user in no group
    #[arg(long, conflicts_with = "groups")]
    no_groups: bool,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The username (unique regardless of letter case)
    name: String,
    /// Email address
    #[arg(long)]
    email: Option<String>,
    /// Full name
    #[arg(long = "name", value_name = "FULL NAME")]
    full_name: Option<String>,
    /// A group (repeatable)
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    password_stdin: bool,
}

/// Reads a new password from stdin (first line) or, on a terminal, twice without echo. Its rules
/// are checked by the operation.
fn read_new_password(from_stdin: bool) -> Result<String, Error> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io("cannot read the password from standard input", e))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")
            .map_err(|e| Error::io("cannot read the password", e))?;
        let b = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| Error::io("cannot read the password", e))?;
        if a != b {
            return Err(Error::Usage("the passwords do not match".into()));
        }
        a
    } else {
        return Err(Error::Usage(
            "standard input is not a terminal: pass --password-stdin and pipe the password".into(),
        ));
    };
    Ok(pw)
}

/// A user's JSON shape, with their second factors.
fn user_json(store: &Store, u: &User) -> Result<Value, Error> {
    Ok(view::user(u, &store.second_factors(&u.id)?))
}

/// The issuer a link starts with: `--issuer`, else the stored one; `None` (with a warning)
/// when there is neither, and the link is then the path alone.
fn link_issuer(store: &Store, given: Option<String>) -> Result<Option<String>, Error> {
    if let Some(i) = given {
        return Ok(Some(crate::config::validate_issuer(&i)?.0));
    }
    let stored = crate::ops::installation::stored_issuer(store)?;
    if stored.is_none() {
        log::warn!(
            "no issuer is stored yet (serve --issuer stores it; or pass \
             --issuer): the link below is relative to the server's address"
        );
    }
    Ok(stored)
}

/// Prints a new link: the user's JSON shape with `link` and `expires_at`, or the link on a
/// line of its own.
fn print_link(
    store: &Store,
    link: &setup::NewLink,
    issuer: Option<&str>,
    json: bool,
    text: &str,
) -> Result<(), Error> {
    let url = link.url(issuer.unwrap_or(""));
    if json {
        let v = view::with(user_json(store, &link.user)?, "link", json!(url));
        super::print_json(&view::with(v, "expires_at", json!(link.expires_at)));
    } else {
        out!(
            "{text}; the link works once, until {}:",
            rfc3339(link.expires_at)
        );
        out!("{url}");
    }
    Ok(())
}

/// Prints the user with this `sub` as it is now: its JSON shape, or the text line.
fn print_user(store: &Store, sub: &str, json: bool, text: &str) -> Result<(), Error> {
    if json {
        let u = store
            .user(sub)?
            .ok_or_else(|| OpError::NotFound(format!("no user with sub {sub}")))?;
        super::print_json(&user_json(store, &u)?);
    } else {
        out!("{text}");
    }
    Ok(())
}

pub fn run(store: &mut Store, cmd: UserCmd, json: bool) -> Result<(), Error> {
    let actor = Actor::cli();
    match cmd {
        UserCmd::Add(a) => {
            // The name is checked before the password is asked for.
            users::check_add(store, &actor, &a.name, &a.groups)?;
            let password = read_new_password(a.password_stdin)?;
            let new = NewUser {
                username: a.name,
                email: a.email,
                full_name: a.full_name,
                groups: a.groups,
                password,
            };
            let name = new.username.clone();
            let id = users::add(store, &actor, new)?;
            print_user(store, &id, json, &format!("added user {name} (sub {id})"))?;
        }
        UserCmd::List => {
            let all = users::list(store)?;
            if json {
                let all = all
                    .iter()
                    .map(|u| user_json(store, u))
                    .collect::<Result<Vec<_>, _>>()?;
                super::print_json(&Value::Array(all));
            } else {
                out!("{:<24} {:<34} {:<9} GROUPS", "USERNAME", "SUB", "STATUS");
                for u in all {
                    out!(
                        "{:<24} {:<34} {:<9} {}",
                        u.username,
                        u.id,
                        if u.disabled { "disabled" } else { "active" },
                        u.groups.join(",")
                    );
                }
            }
        }
        UserCmd::Show { name } => {
            let u = users::find(store, &name)?;
            if json {
                super::print_json(&user_json(store, &u)?);
            } else {
                out!("username: {}", u.username);
                out!("sub:      {}", u.id);
                out!("name:     {}", u.name.as_deref().unwrap_or("-"));
                out!("email:    {}", u.email.as_deref().unwrap_or("-"));
                out!("groups:   {}", u.groups.join(" "));
                out!(
                    "status:   {}",
                    if u.disabled { "disabled" } else { "active" }
                );
                out!("created:  {}", rfc3339(u.created_at));
                let f = store.second_factors(&u.id)?;
                out!(
                    "password: {}",
                    if u.password_hash.is_some() {
                        "set"
                    } else {
                        "not set (invited)"
                    }
                );
                out!(
                    "2fa:      {}; totp {}, {} passkey(s), {} recovery code(s) left",
                    if u.mfa_required {
                        "required"
                    } else {
                        "not required"
                    },
                    if f.totp { "yes" } else { "no" },
                    f.passkeys,
                    f.recovery_codes
                );
            }
        }
        UserCmd::Passwd {
            name,
            password_stdin,
        } => {
            users::check_set_password(store, &actor, &name)?;
            let pw = read_new_password(password_stdin)?;
            let u = users::set_password(store, &actor, &name, &pw)?;
            let text = format!(
                "password changed for {}; their sessions were ended",
                u.username
            );
            print_user(store, &u.id, json, &text)?;
        }
        UserCmd::Disable { name } => {
            let u = users::disable(store, &actor, &name)?;
            print_user(store, &u.id, json, &format!("disabled {}", u.username))?;
        }
        UserCmd::Enable { name } => {
            let u = users::enable(store, &actor, &name)?;
            print_user(store, &u.id, json, &format!("enabled {}", u.username))?;
        }
        UserCmd::Remove { name, yes } => {
            // Printed as it was: its factors are counted before they go with it.
            let factors = match store.user_by_name(&name)? {
                Some(u) => store.second_factors(&u.id)?,
                None => Default::default(),
            };
            let (u, refs) = users::remove(store, &actor, &name, yes)?;
            if !refs.is_empty() {
                eprintln!(
                    "warning: {} was named by {}; they now admit nobody",
                    u.username,
                    refs.join(", ")
                );
            }
            if json {
                super::print_json(&view::user(&u, &factors));
            } else {
                out!("removed {}", u.username);
            }
        }
        UserCmd::Update(a) => {
            let change = UserUpdate {
                email: a.email,
                full_name: a.full_name,
                groups: a.groups,
                clear_groups: a.no_groups,
            };
            let u = users::update(store, &actor, &a.name, change)?;
            if json {
                super::print_json(&user_json(store, &u)?);
            } else {
                out!(
                    "updated {}: email {}, name {}, groups {}",
                    u.username,
                    u.email.as_deref().unwrap_or("-"),
                    u.name.as_deref().unwrap_or("-"),
                    if u.groups.is_empty() {
                        "-".to_string()
                    } else {
                        u.groups.join(" ")
                    }
                );
            }
        }
        UserCmd::Rename { name, new_name } => {
            let u = users::rename(store, &actor, &name, &new_name)?;
            let text = format!(
                "renamed {} to {new_name} (sub {} unchanged)",
                u.username, u.id
            );
            print_user(store, &u.id, json, &text)?;
        }
        UserCmd::Group(GroupCmd::Add { name, group }) => {
            let u = users::add_group(store, &actor, &name, &group)?;
            print_user(
                store,
                &u.id,
                json,
                &format!("{} is in group {group}", u.username),
            )?;
        }
        UserCmd::Group(GroupCmd::Remove { name, group }) => {
            let (u, was_member) = users::remove_group(store, &actor, &name, &group)?;
            let text = if was_member {
                format!("{} left group {group}", u.username)
            } else {
                format!("{} was not in group {group}", u.username)
            };
            print_user(store, &u.id, json, &text)?;
        }
        UserCmd::Consent(ConsentCmd::List { name }) => {
            let (u, rows) = users::consents(store, &name)?;
            if json {
                let rows = rows.iter().map(|c| view::consent(&u.username, c)).collect();
                super::print_json(&Value::Array(rows));
            } else if rows.is_empty() {
                out!("{} has not approved any app", u.username);
            } else {
                for c in rows {
                    out!("{}  {}  {}", c.client_id, rfc3339(c.created_at), c.scope);
                }
            }
        }
        UserCmd::Consent(ConsentCmd::Revoke { name, client }) => {
            let r = users::revoke_consent(store, &actor, &name, &client)?;
            if json {
                super::print_json(&json!({
                    "username": r.user.username,
                    "client_id": r.client.client_id,
                    "forgotten": r.forgotten,
                }));
            } else if r.forgotten == 0 {
                out!(
                    "{} had not approved {}; its grants are revoked anyway",
                    r.user.username,
                    r.client.name
                );
            } else {
                out!(
                    "{}'s consent to {} is revoked, and so are its grants",
                    r.user.username,
                    r.client.name
                );
            }
        }
        UserCmd::Session(SessionCmd::List { name }) => {
            let (u, list) = sessions::list(store, &name)?;
            if json {
                super::print_json(&Value::Array(list.iter().map(view::session).collect()));
            } else if list.is_empty() {
                out!("{} has no sessions", u.username);
            } else {
                out!(
                    "{:<12}  {:<20}  {:<20}  {:<20}  FORWARD-AUTH",
                    "ID",
                    "SIGNED IN",
                    "LAST SEEN",
                    "EXPIRES"
                );
                for s in list {
                    out!(
                        "{:<12}  {:<20}  {:<20}  {:<20}  {}",
                        s.id,
                        rfc3339(s.auth_time),
                        rfc3339(s.last_seen_at),
                        rfc3339(s.expires_at),
                        s.forward_sessions
                    );
                }
            }
        }
        UserCmd::Session(SessionCmd::End { name, id, all }) => {
            let which = match (id, all) {
                (Some(id), false) => Which::One(id),
                (None, true) => Which::All,
                _ => {
                    return Err(OpError::Invalid(
                        "name one session id, or --all (not both)".into(),
                    )
                    .into());
                }
            };
            let (u, n) = sessions::end(store, &actor, &name, &which)?;
            if json {
                super::print_json(&json!({"username": u.username, "ended": n}));
                return Ok(());
            }
            match which {
                Which::One(id) => out!("ended session {id} of {}", u.username),
                Which::All => out!("ended {n} session(s) of {}", u.username),
            }
        }
        UserCmd::Invite(a) => {
            let issuer = link_issuer(store, a.link.issuer)?;
            let invite = setup::Invite {
                username: a.name,
                email: a.email,
                full_name: a.full_name,
                groups: a.groups,
                ttl: Some(a.link.ttl),
            };
            let link = setup::invite(store, &actor, invite)?;
            let text = format!(
                "invited {} (sub {}): pass this link on",
                link.user.username, link.user.id
            );
            print_link(store, &link, issuer.as_deref(), json, &text)?;
        }
        UserCmd::Reset(a) => {
            let issuer = link_issuer(store, a.link.issuer)?;
            let link = setup::reset(store, &actor, &a.name, Some(a.link.ttl), a.reset_mfa)?;
            let text = if a.reset_mfa {
                format!(
                    "{}'s second factors are removed and their sessions ended; pass this link on",
                    link.user.username
                )
            } else {
                format!("reset link for {}: pass it on", link.user.username)
            };
            print_link(store, &link, issuer.as_deref(), json, &text)?;
        }
        UserCmd::Mfa(a) => {
            let require = match (a.require, a.no_require) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let change = setup::MfaChange {
                require,
                reset: a.reset,
            };
            let (u, had) = setup::mfa(store, &actor, &a.name, change)?;
            let mut text = format!(
                "{} {} a second factor",
                u.username,
                if u.mfa_required {
                    "must use"
                } else {
                    "need not use"
                }
            );
            if let Some(f) = had {
                text.push_str(&format!(
                    "; removed totp {}, {} passkey(s), {} recovery code(s) and ended their sessions",
                    if f.totp { "yes" } else { "no" },
                    f.passkeys,
                    f.recovery_codes
                ));
            }
            print_user(store, &u.id, json, &text)?;
        }
    }
    Ok(())
}
