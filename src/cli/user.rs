//! `latchkey user`: people who sign in.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::accounts::{password, validate_group, validate_username};
use crate::crypto::{hex, random_bytes};
use crate::error::Error;
use crate::store::{Store, StoreError, User};
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (asks for the password twice on a terminal, or reads it with --password-stdin)
    Add(AddArgs),
    /// List users
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one user
    Show {
        /// The username
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
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
    /// Remove a user and everything issued to them
    Remove {
        /// The username
        name: String,
    },
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
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// List the apps the user approved, and for which scopes
    List {
        /// The username
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
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
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Reads a new password from stdin (first line) or, on a terminal, twice without echo.
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
    password::validate_new(&pw).map_err(Error::Usage)?;
    Ok(pw)
}

fn find(store: &Store, name: &str) -> Result<User, Error> {
    store
        .user_by_name(name)?
        .ok_or_else(|| Error::Msg(format!("no user named {name:?}")))
}

fn describe(u: &User) -> Value {
    json!({
        "sub": u.id,
        "username": u.username,
        "email": u.email,
        "name": u.name,
        "groups": u.groups,
        "disabled": u.disabled,
        "created_at": u.created_at,
    })
}

fn taken(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(what) => Error::Usage(format!("{what} already exists")),
        other => Error::Store(other),
    }
}

pub fn run(store: &mut Store, cmd: UserCmd) -> Result<(), Error> {
    let now = now();
    match cmd {
        UserCmd::Add(a) => {
            validate_username(&a.name).map_err(Error::Usage)?;
            for g in &a.groups {
                validate_group(g).map_err(Error::Usage)?;
            }
            if store.user_by_name(&a.name)?.is_some() {
                return Err(Error::Usage(format!(
                    "a user named {:?} already exists",
                    a.name
                )));
            }
            let pw = read_new_password(a.password_stdin)?;
            let hash = password::hash(&pw)?;
            let id = hex(&random_bytes::<16>()?);
            store
                .insert_user(
                    &id,
                    &a.name,
                    Some(&hash),
                    a.email.as_deref(),
                    a.full_name.as_deref(),
                    &a.groups,
                    now,
                )
                .map_err(taken)?;
            if a.json {
                super::print_json(&json!({"sub": id, "username": a.name}));
            } else {
                println!("added user {} (sub {id})", a.name);
            }
        }
        UserCmd::List { json } => {
            let users = store.users()?;
            if json {
                super::print_json(&Value::Array(users.iter().map(describe).collect()));
            } else {
                println!("{:<24} {:<34} {:<9} GROUPS", "USERNAME", "SUB", "STATUS");
                for u in users {
                    println!(
                        "{:<24} {:<34} {:<9} {}",
                        u.username,
                        u.id,
                        if u.disabled { "disabled" } else { "active" },
                        u.groups.join(",")
                    );
                }
            }
        }
        UserCmd::Show { name, json } => {
            let u = find(store, &name)?;
            if json {
                super::print_json(&describe(&u));
            } else {
                println!("username: {}", u.username);
                println!("sub:      {}", u.id);
                println!("name:     {}", u.name.as_deref().unwrap_or("-"));
                println!("email:    {}", u.email.as_deref().unwrap_or("-"));
                println!("groups:   {}", u.groups.join(" "));
                println!(
                    "status:   {}",
                    if u.disabled { "disabled" } else { "active" }
                );
                println!("created:  {}", rfc3339(u.created_at));
            }
        }
        UserCmd::Passwd {
            name,
            password_stdin,
        } => {
            let u = find(store, &name)?;
            let pw = read_new_password(password_stdin)?;
            store.set_password_hash(&u.id, &password::hash(&pw)?, now)?;
            store.end_user_sessions(&u.id, now)?;
            println!(
                "password changed for {}; their sessions were ended",
                u.username
            );
        }
        UserCmd::Disable { name } => {
            let u = find(store, &name)?;
            store.set_user_disabled(&u.id, true, now)?;
            println!("disabled {}", u.username);
        }
        UserCmd::Enable { name } => {
            let u = find(store, &name)?;
            store.set_user_disabled(&u.id, false, now)?;
            println!("enabled {}", u.username);
        }
        UserCmd::Remove { name } => {
            let u = find(store, &name)?;
            store.remove_user(&u.id, now)?;
            println!("removed {}", u.username);
        }
        UserCmd::Rename { name, new_name } => {
            validate_username(&new_name).map_err(Error::Usage)?;
            let u = find(store, &name)?;
            store.rename_user(&u.id, &new_name, now).map_err(taken)?;
            println!(
                "renamed {} to {new_name} (sub {} unchanged)",
                u.username, u.id
            );
        }
        UserCmd::Group(GroupCmd::Add { name, group }) => {
            validate_group(&group).map_err(Error::Usage)?;
            let u = find(store, &name)?;
            store.add_user_group(&u.id, &group)?;
            println!("{} is in group {group}", u.username);
        }
        UserCmd::Group(GroupCmd::Remove { name, group }) => {
            let u = find(store, &name)?;
            if store.remove_user_group(&u.id, &group)? {
                println!("{} left group {group}", u.username);
            } else {
                println!("{} was not in group {group}", u.username);
            }
        }
        UserCmd::Consent(ConsentCmd::List { name, json }) => {
            let u = find(store, &name)?;
            let rows = store.consents_of(&u.id)?;
            if json {
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|(client, scope, at)| {
                        json!({"client_id": client, "scope": scope, "created_at": at})
                    })
                    .collect();
                super::print_json(&Value::Array(rows));
            } else if rows.is_empty() {
                println!("{} has not approved any app", u.username);
            } else {
                for (client, scope, at) in rows {
                    println!("{client}  {}  {scope}", crate::timefmt::rfc3339(at));
                }
            }
        }
        UserCmd::Consent(ConsentCmd::Revoke { name, client }) => {
            let u = find(store, &name)?;
            let c = store
                .client_by_id_or_name(&client)?
                .ok_or_else(|| Error::Msg(format!("no client {client:?}")))?;
            let n = store.revoke_consent(&u.id, &c.client_id, now)?;
            if n == 0 {
                println!(
                    "{} had not approved {}; its grants are revoked anyway",
                    u.username, c.name
                );
            } else {
                println!(
                    "{}'s consent to {} is revoked, and so are its grants",
                    u.username, c.name
                );
            }
        }
    }
    Ok(())
}

impl UserCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            UserCmd::Add(a) => Some(("user_added", a.name.clone())),
            UserCmd::Passwd { name, .. } => Some(("user_password_changed", name.clone())),
            UserCmd::Disable { name } => Some(("user_disabled", name.clone())),
            UserCmd::Enable { name } => Some(("user_enabled", name.clone())),
            UserCmd::Remove { name } => Some(("user_removed", name.clone())),
            UserCmd::Rename { name, new_name } => {
                Some(("user_renamed", format!("{name} -> {new_name}")))
            }
            UserCmd::Group(GroupCmd::Add { name, group }) => {
                Some(("user_group_added", format!("{name} {group}")))
            }
            UserCmd::Group(GroupCmd::Remove { name, group }) => {
                Some(("user_group_removed", format!("{name} {group}")))
            }
            UserCmd::Consent(ConsentCmd::Revoke { name, client }) => {
                Some(("user_consent_revoked", format!("{name} {client}")))
            }
            UserCmd::List { .. }
            | UserCmd::Show { .. }
            | UserCmd::Consent(ConsentCmd::List { .. }) => None,
        }
    }
}
