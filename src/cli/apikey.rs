//! `latchkey apikey`: keys for apps and scripts. A key is printed once, at creation (or
//! rotation); latchkey keeps only its SHA-256 and a short public prefix.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::apikeys::format;
use crate::crypto::{hex, random_bytes, sha256};
use crate::error::Error;
use crate::oauth::scope;
use crate::store::Store;
use crate::store::apikeys::{ApiKeyRow, NewApiKey};
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
    /// Revoke a key at once (a running server stops accepting it within a second)
    Revoke {
        /// The key: its id, or the name of its newest key
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
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Parses `90d`, `12h`, `30m`, `45s` (a bare number is seconds) into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90d, 12h, 30m"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 && v <= 10 * 365 * 86_400 => Ok(v),
        _ => Err(format!("{s:?} is out of range (1 second to 10 years)")),
    }
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
    if !(1..=1_000_000_000).contains(&n) {
        return Err(format!("{s:?}: the count must be between 1 and 1000000000"));
    }
    Ok((n, window))
}

fn find(store: &Store, key: &str) -> Result<ApiKeyRow, Error> {
    store
        .api_key_by_id_or_name(key)?
        .ok_or_else(|| Error::Msg(format!("no API key with id or name {key:?}")))
}

fn status(k: &ApiKeyRow, now: i64) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

fn describe(k: &ApiKeyRow, now: i64) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "owner": k.owner,
        "prefix": k.prefix,
        "scopes": k.scopes,
        "rate_limit": k.rate.map(|(n, w)| json!({"requests": n, "per_seconds": w})),
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "last_used_at": k.last_used_at,
        "replaced_by": k.replaced_by,
        "status": status(k, now),
    })
}

fn new_id() -> Result<String, Error> {
    Ok(format!("ak_{}", hex(&random_bytes::<8>()?)))
}

pub fn run(store: &mut Store, cmd: ApiKeyCmd) -> Result<(), Error> {
    let now = now();
    match cmd {
        ApiKeyCmd::Create(a) => {
            if a.name.trim().is_empty()
                || a.name.len() > 100
                || a.name.chars().any(char::is_control)
            {
                return Err(Error::Usage(
                    "the name must be 1-100 printable characters".into(),
                ));
            }
            let owner = a.owner.clone().unwrap_or_else(|| a.name.clone());
            if owner.trim().is_empty() || owner.len() > 100 || owner.chars().any(char::is_control) {
                return Err(Error::Usage(
                    "the owner must be 1-100 printable characters".into(),
                ));
            }
            let scopes = scope::parse(&a.scopes.join(" ")).ok_or_else(|| {
                Error::Usage(
                    "a scope may only hold printable ASCII without spaces, quotes or backslashes"
                        .into(),
                )
            })?;
            let user_id = match &a.user {
                Some(u) => Some(
                    store
                        .user_by_name(u)?
                        .ok_or_else(|| Error::Usage(format!("no user named {u:?}")))?
                        .id,
                ),
                None => None,
            };
            let key = format::generate()?;
            let id = new_id()?;
            let prefix = format::display_prefix(&key);
            let expires_at = a.expires_in.map(|d| now + d);
            store.insert_api_key(
                &NewApiKey {
                    id: &id,
                    name: a.name.trim(),
                    owner: owner.trim(),
                    user_id: user_id.as_deref(),
                    prefix: &prefix,
                    hash: &sha256(key.as_bytes()),
                    scopes: &scopes,
                    rate: a.rate,
                    expires_at,
                },
                now,
            )?;
            if a.json {
                super::print_json(&json!({
                    "id": id, "name": a.name.trim(), "owner": owner.trim(), "key": key,
                    "prefix": prefix, "scopes": scopes, "expires_at": expires_at,
                }));
            } else {
                println!("id:   {id}");
                println!("key:  {key}");
                println!(
                    "Store the key now: it is shown only once (latchkey keeps only its hash)."
                );
            }
        }
        ApiKeyCmd::List { json } => {
            let keys = store.api_keys()?;
            if json {
                super::print_json(&Value::Array(
                    keys.iter().map(|k| describe(k, now)).collect(),
                ));
            } else {
                println!(
                    "{:<20} {:<20} {:<16} {:<12} {:<8} LAST USED",
                    "ID", "NAME", "OWNER", "PREFIX", "STATUS"
                );
                for k in keys {
                    println!(
                        "{:<20} {:<20} {:<16} {:<12} {:<8} {}",
                        k.id,
                        k.name,
                        k.owner,
                        k.prefix,
                        status(&k, now),
                        k.last_used_at
                            .map(rfc3339)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        ApiKeyCmd::Show { key, json } => {
            let k = find(store, &key)?;
            if json {
                super::print_json(&describe(&k, now));
            } else {
                println!("id:         {}", k.id);
                println!("name:       {}", k.name);
                println!("owner:      {}", k.owner);
                println!("prefix:     {}…", k.prefix);
                println!("scopes:     {}", k.scopes.join(" "));
                println!(
                    "rate limit: {}",
                    k.rate
                        .map(|(n, w)| format!("{n} per {w} s"))
                        .unwrap_or_else(|| "none".into())
                );
                println!("created:    {}", rfc3339(k.created_at));
                println!(
                    "expires:    {}",
                    k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into())
                );
                println!(
                    "last used:  {}",
                    k.last_used_at
                        .map(rfc3339)
                        .unwrap_or_else(|| "never".into())
                );
                println!("status:     {}", status(&k, now));
            }
        }
        ApiKeyCmd::Revoke { key } => {
            let k = find(store, &key)?;
            store
                .revoke_api_key(&k.id, now)
                .map_err(|_| Error::Msg(format!("API key {} is already revoked", k.id)))?;
            println!("revoked {} ({})", k.id, k.name);
        }
        ApiKeyCmd::Rotate { key, grace, json } => {
            let old = find(store, &key)?;
            if old.revoked_at.is_some() {
                return Err(Error::Usage(format!(
                    "API key {} is revoked; create a new one",
                    old.id
                )));
            }
            let value = format::generate()?;
            let id = new_id()?;
            let prefix = format::display_prefix(&value);
            // The replacement keeps the old key's lifetime length, counted from now.
            let expires_at = old.expires_at.map(|e| now + (e - old.created_at).max(1));
            let user_id = old.user_id.clone();
            store.rotate_api_key(
                &old.id,
                &NewApiKey {
                    id: &id,
                    name: &old.name,
                    owner: &old.owner,
                    user_id: user_id.as_deref(),
                    prefix: &prefix,
                    hash: &sha256(value.as_bytes()),
                    scopes: &old.scopes,
                    rate: old.rate,
                    expires_at,
                },
                now + grace,
                now,
            )?;
            if json {
                super::print_json(&json!({
                    "id": id, "name": old.name, "owner": old.owner, "key": value, "prefix": prefix,
                    "replaces": old.id, "old_key_expires_at": now + grace,
                }));
            } else {
                println!("id:   {id}");
                println!("key:  {value}");
                println!(
                    "The old key {} keeps working until {}.",
                    old.id,
                    rfc3339(now + grace)
                );
            }
        }
        ApiKeyCmd::Usage { key, days, json } => {
            let k = find(store, &key)?;
            let since = now.div_euclid(86_400) - days.clamp(1, 3650) + 1;
            let rows = store.api_key_usage(&k.id, since)?;
            if json {
                let rows: Vec<Value> = rows
                    .iter()
                    .map(|(day, n)| json!({"day": rfc3339(day * 86_400).get(..10).unwrap_or(""), "requests": n}))
                    .collect();
                super::print_json(&json!({"id": k.id, "name": k.name, "days": rows}));
            } else {
                println!(
                    "{} ({}): requests per day (UTC); counts reach the database within a few seconds",
                    k.id, k.name
                );
                for (day, n) in rows {
                    println!("{}  {n}", rfc3339(day * 86_400).get(..10).unwrap_or(""));
                }
            }
        }
        ApiKeyCmd::Owner { cmd } => match cmd {
            OwnerCmd::Disable { owner } => {
                store.set_api_owner_disabled(&owner, true, now)?;
                println!("keys of {owner} are switched off");
            }
            OwnerCmd::Enable { owner } => {
                store.set_api_owner_disabled(&owner, false, now)?;
                println!("keys of {owner} work again");
            }
        },
    }
    Ok(())
}

impl ApiKeyCmd {
    /// The audit action and target of a command that changes something (never the key).
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            ApiKeyCmd::Create(a) => Some(("apikey_created", a.name.clone())),
            ApiKeyCmd::Revoke { key } => Some(("apikey_revoked", key.clone())),
            ApiKeyCmd::Rotate { key, .. } => Some(("apikey_rotated", key.clone())),
            ApiKeyCmd::Owner {
                cmd: OwnerCmd::Disable { owner },
            } => Some(("apikey_owner_disabled", owner.clone())),
            ApiKeyCmd::Owner {
                cmd: OwnerCmd::Enable { owner },
            } => Some(("apikey_owner_enabled", owner.clone())),
            ApiKeyCmd::List { .. } | ApiKeyCmd::Show { .. } | ApiKeyCmd::Usage { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30m"), Ok(1_800));
        assert_eq!(parse_duration("45"), Ok(45));
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
