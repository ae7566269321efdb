//! `latchkey apikey`: keys for apps and scripts. A key is printed once, at creation (or
//! rotation); latchkey keeps only its SHA-256 and a short public prefix. The rules are in
//! [`crate::ops::apikeys`]; this file parses, calls and prints.

use clap::{Args, Subcommand};
use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::apikeys::{self, NewKey};
use crate::store::Store;
use crate::store::apikeys::ApiKeyRow;
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create a key; prints it once
    Create(CreateArgs),
    /// List keys (never the keys themselves)
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one key (by id, or the newest key with this name)
    Show {
        /// The key: its id, or the name of its newest key
        key: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
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
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Requests per day (UTC) of a key
    Usage {
        /// The key: its id, or the name of its newest key
        key: String,
        /// How many days back
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
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
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
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

fn describe(k: &ApiKeyRow, users: &HashMap<String, String>, now: i64) -> Value {
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
        "status": apikeys::status(k, now),
    })
}

pub fn run(store: &mut Store, cmd: ApiKeyCmd) -> Result<(), Error> {
    let actor = Actor::cli();
    let now = now();
    match cmd {
        ApiKeyCmd::Create(a) => {
            let json = a.json;
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
            if json {
                super::print_json(&json!({
                    "id": m.id, "name": m.name, "owner": m.owner, "key": m.key,
                    "prefix": m.prefix, "scopes": m.scopes, "expires_at": m.expires_at,
                }));
            } else {
                out!("id:   {}", m.id);
                out!("key:  {}", m.key);
                out!("Store the key now: it is shown only once (latchkey keeps only its hash).");
            }
        }
        ApiKeyCmd::List { json } => {
            let keys = apikeys::list(store)?;
            let users = apikeys::user_names(store)?;
            if json {
                super::print_json(&Value::Array(
                    keys.iter().map(|k| describe(k, &users, now)).collect(),
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
        ApiKeyCmd::Show { key, json } => {
            let k = apikeys::find(store, &key)?;
            if json {
                super::print_json(&describe(&k, &apikeys::user_names(store)?, now));
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
            for id in &ids {
                out!("revoked {id}");
            }
            if ids.len() > 1 || ids.first() != Some(&key) {
                out!("{} key(s) named {key} revoked", ids.len());
            }
        }
        ApiKeyCmd::Rotate { key, grace, json } => {
            let r = apikeys::rotate(store, &actor, &key, grace)?;
            if json {
                super::print_json(&json!({
                    "id": r.new.id, "name": r.new.name, "owner": r.new.owner, "key": r.new.key,
                    "prefix": r.new.prefix, "replaces": r.replaces,
                    "old_key_expires_at": r.old_key_expires_at,
                }));
            } else {
                out!("id:   {}", r.new.id);
                out!("key:  {}", r.new.key);
                out!(
                    "The old key {} keeps working until {}.",
                    r.replaces,
                    rfc3339(r.old_key_expires_at)
                );
            }
        }
        ApiKeyCmd::Usage { key, days, json } => {
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
                out!("keys of {owner} are switched off");
            }
            OwnerCmd::Enable { owner } => {
                apikeys::set_owner_disabled(store, &actor, &owner, false)?;
                out!("keys of {owner} work again");
            }
        },
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
