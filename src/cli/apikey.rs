//! `latchkey apikey`: keys for apps and scripts. A key is printed once, at creation (or
//! rotation); latchkey keeps only its SHA-256 and a short public prefix. The rules are in
//! [`crate::ops::apikeys`]; this file parses, calls and prints.

use clap::{Args, Subcommand};

use serde_json::{Value, json};

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::apikeys::{self, NewKey};
use crate::ops::view;
use crate::store::Store;
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create a key; prints it once
    Create(CreateArgs),
    /// List keys (never the keys themselves)
    List,
    /// Show one key (by id, or the newest key with this name)
    Show {
        /// The key: its id, or the name of its newest key
        key: String,
    },
    /// Revoke a key at once (a running server stops accepting it within a second); by name,
    /// every key of that name that still works (after rotations there may be several)
    Revoke {
        /// The key's id, or a name: every working key of that name
        key: String,
    },
    /// Issue a replacement; the old key keeps working for a grace period
    Rotate {
        /// The key: its id, or the name of its newest key
        key: String,
        /// How long the old key keeps working, e.g. 24h, 30m, 7d
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: i64,
    },
    /// Requests per day (UTC) of a key
    Usage {
        /// The key: its id, or the name of its newest key
        key: String,
        /// How many days back
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Switch off (or back on) every key of an owning application
    Owner {
        #[command(subcommand)]
        cmd: OwnerCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum OwnerCmd {
    /// Every key of this owner stops working
    Disable {
        /// The owning application, as `--owner` named it
        owner: String,
    },
    /// The owner's keys work again
    Enable {
        /// The owning application, as `--owner` named it
        owner: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A name for the key (what it is for)
    name: String,
    /// The application that owns the key [default: the name]
    #[arg(long)]
    owner: Option<String>,
    /// A user whose account the key depends on: disabling the user disables the key
    #[arg(long)]
    user: Option<String>,
    /// Scopes, space-separated or repeated
    #[arg(long = "scope", value_name = "SCOPES")]
    scopes: Vec<String>,
    /// Expiry, e.g. 90d, 12h, 30m
    #[arg(long, value_parser = parse_duration)]
    expires_in: Option<i64>,
    /// Rate limit, e.g. 600/min, 10/s, 1000/hour, 50000/day
    #[arg(long, value_parser = parse_rate)]
    rate: Option<(i64, i64)>,
    /// Create the key even though a working key of this name exists
    #[arg(long)]
    allow_duplicate: bool,
}

/// Parses `90d`, `12h`, `30m`, `45s` into seconds, within an API key's lifetime range.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let v = super::parse_seconds(s)?;
    apikeys::check_lifetime(v).map_err(|m| format!("{:?} is {m}", s.trim()))?;
    Ok(v)
}

/// Parses `600/min` into (600, 60).
pub fn parse_rate(s: &str) -> Result<(i64, i64), String> {
    let (n, period) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a rate like 600/min"))?;
    let n: i64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a number"))?;
    let window = match period.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        other => {
            return Err(format!(
                "{s:?}: unknown period {other:?} (use s, min, hour or day)"
            ));
        }
    };
    apikeys::check_rate(n, window).map_err(|m| format!("{s:?}: {m}"))?;
    Ok((n, window))
}

/// Prints the key with this id as it is now (its JSON shape, with `extra` fields such as the
/// key shown once), or the text lines.
fn print_key(
    store: &Store,
    id: &str,
    json: bool,
    extra: &[(&str, Value)],
    text: &[String],
) -> Result<(), Error> {
    if json {
        let k = apikeys::find(store, id)?;
        let mut v = view::apikey(&k, &apikeys::user_names(store)?, now());
        for (field, value) in extra {
            v = view::with(v, field, value.clone());
        }
        super::print_json(&v);
    } else {
        for line in text {
            out!("{line}");
        }
    }
    Ok(())
}

pub fn run(store: &mut Store, cmd: ApiKeyCmd, json: bool) -> Result<(), Error> {
    let actor = Actor::cli();
    let now = now();
    match cmd {
        ApiKeyCmd::Create(a) => {
            let m = apikeys::create(
                store,
                &actor,
                NewKey {
                    name: a.name,
                    owner: a.owner,
                    user: a.user,
                    scopes: a.scopes,
                    expires_in: a.expires_in,
                    rate: a.rate,
                    allow_duplicate: a.allow_duplicate,
                },
            )?;
            let text = [
                format!("id:   {}", m.id),
                format!("key:  {}", m.key),
                "Store the key now: it is shown only once (latchkey keeps only its hash).".into(),
            ];
            print_key(store, &m.id, json, &[("key", m.key.clone().into())], &text)?;
        }
        ApiKeyCmd::List => {
            let keys = apikeys::list(store)?;
            let users = apikeys::user_names(store)?;
            if json {
                super::print_json(&Value::Array(
                    keys.iter().map(|k| view::apikey(k, &users, now)).collect(),
                ));
            } else {
                out!(
                    "{:<20} {:<20} {:<16} {:<12} {:<12} {:<20} {:<20} LAST USED",
                    "ID",
                    "NAME",
                    "OWNER",
                    "USER",
                    "STATUS",
                    "EXPIRES",
                    "PREFIX"
                );
                for k in keys {
                    let user = k.user_id.as_ref().map(|id| users.get(id).unwrap_or(id));
                    out!(
                        "{:<20} {:<20} {:<16} {:<12} {:<12} {:<20} {:<20} {}",
                        k.id,
                        k.name,
                        k.owner,
                        user.map_or("-", |u| u.as_str()),
                        apikeys::status(&k, now),
                        k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                        k.prefix,
                        k.last_used_at
                            .map(rfc3339)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        ApiKeyCmd::Show { key } => {
            let k = apikeys::find(store, &key)?;
            if json {
                super::print_json(&view::apikey(&k, &apikeys::user_names(store)?, now));
            } else {
                out!("id:         {}", k.id);
                out!("name:       {}", k.name);
                out!("owner:      {}", k.owner);
                if let Some(id) = &k.user_id {
                    let users = apikeys::user_names(store)?;
                    out!("user:       {}", users.get(id).unwrap_or(id));
                }
                out!("prefix:     {}…", k.prefix);
                out!("scopes:     {}", k.scopes.join(" "));
                out!(
                    "rate limit: {}",
                    k.rate
                        .map(|(n, w)| format!("{n} per {w} s"))
                        .unwrap_or_else(|| "none".into())
                );
                out!("created:    {}", rfc3339(k.created_at));
                out!(
                    "expires:    {}",
                    k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into())
                );
                out!(
                    "last used:  {}",
                    k.last_used_at
                        .map(rfc3339)
                        .unwrap_or_else(|| "never".into())
                );
                out!("status:     {}", apikeys::status(&k, now));
            }
        }
        ApiKeyCmd::Revoke { key } => {
            let ids = apikeys::revoke(store, &actor, &key)?;
            if json {
                // Every key revoked, in its one shape (a name may have had several).
                let users = apikeys::user_names(store)?;
                let mut revoked = Vec::new();
                for id in &ids {
                    revoked.push(view::apikey(&apikeys::find(store, id)?, &users, now));
                }
                super::print_json(&Value::Array(revoked));
                return Ok(());
            }
            for id in &ids {
                out!("revoked {id}");
            }
            if ids.len() > 1 || ids.first() != Some(&key) {
                out!("{} key(s) named {key} revoked", ids.len());
            }
        }
        ApiKeyCmd::Rotate { key, grace } => {
            let r = apikeys::rotate(store, &actor, &key, grace)?;
            let text = [
                format!("id:   {}", r.new.id),
                format!("key:  {}", r.new.key),
                format!(
                    "The old key {} keeps working until {}.",
                    r.replaces,
                    rfc3339(r.old_key_expires_at)
                ),
            ];
            // The new key in its one shape, with the key shown once and what it replaces.
            let extra = [
                ("key", r.new.key.clone().into()),
                ("replaces", r.replaces.clone().into()),
                ("old_key_expires_at", r.old_key_expires_at.into()),
            ];
            print_key(store, &r.new.id, json, &extra, &text)?;
        }
        ApiKeyCmd::Usage { key, days } => {
            let (k, rows) = apikeys::usage(store, &key, days)?;
            if json {
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|(day, n)| json!({"day": rfc3339(day * 86_400).get(..10).unwrap_or(""), "requests": n}))
                    .collect();
                super::print_json(&json!({"id": k.id, "name": k.name, "days": rows}));
            } else {
                out!(
                    "{} ({}): requests per day (UTC); counts reach the database within a few seconds",
                    k.id,
                    k.name
                );
                for (day, n) in rows {
                    out!("{}  {n}", rfc3339(day * 86_400).get(..10).unwrap_or(""));
                }
            }
        }
        ApiKeyCmd::Owner { cmd } => match cmd {
            OwnerCmd::Disable { owner } => {
                apikeys::set_owner_disabled(store, &actor, &owner, true)?;
                print_owner(
                    store,
                    &owner,
                    json,
                    &format!("keys of {owner} are switched off"),
                )?;
            }
            OwnerCmd::Enable { owner } => {
                apikeys::set_owner_disabled(store, &actor, &owner, false)?;
                print_owner(store, &owner, json, &format!("keys of {owner} work again"))?;
            }
        },
    }
    Ok(())
}

/// Prints an owner's keys as they are now (JSON: every key of the owner in its one shape), or
/// the text line.
fn print_owner(store: &Store, owner: &str, json: bool, text: &str) -> Result<(), Error> {
    if json {
        let users = apikeys::user_names(store)?;
        let now = now();
        let keys: Vec<Value> = apikeys::list(store)?
            .iter()
            .filter(|k| k.owner == owner)
            .map(|k| view::apikey(k, &users, now))
            .collect();
        super::print_json(&Value::Array(keys));
    } else {
        out!("{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert!(parse_duration("45").is_err(), "a bare number has no unit");
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(parse_rate("600/min"), Ok((600, 60)));
        assert_eq!(parse_rate("10/s"), Ok((10, 1)));
        assert!(parse_rate("0/min").is_err());
        assert!(parse_rate("10/fortnight").is_err());
        assert!(parse_rate("ten/min").is_err());
    }
}
