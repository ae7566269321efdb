//! `latchkey keys`: list and rotate signing keys.
//!
//! `keys rotate` publishes a new key of each algorithm at once and lets it sign only once every
//! JWKS a resource server cached before it appeared has expired (`jwks.max_age`, see
//! `jwt::keys`); `--now` signs with it at once, for an emergency. `keys list` shows each key's
//! state and the times of its changes: created, starts or started signing (`signing_from`),
//! stops or stopped signing (`signing_until`), leaves or left the JWKS (`published_until`).
//! Times ahead are what will happen if nothing else changes: an active key with a `next` key
//! waiting stops signing when that one starts, and is published `KEEP_AFTER_SIGNING` longer.

use clap::Subcommand;
use serde_json::json;

use crate::config::Settings;
use crate::error::Error;
use crate::jwt::keys::KEEP_AFTER_SIGNING;
use crate::ops::keys::{self, Rotation};
use crate::store::{KeyRow, Store};
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// List signing keys (next, active, retiring and retired) and when each changes
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish a new key now; it signs once cached JWKS have expired (jwks.max_age)
    Rotate {
        /// Sign with the new key at once (an emergency: resource servers that cached the JWKS
        /// refuse its tokens until they fetch it again, for up to jwks.max_age)
        #[arg(long)]
        now: bool,
        #[arg(long)]
        json: bool,
    },
}

/// The times of a key's changes, as `keys list` shows them.
struct Times {
    signing_from: i64,
    signing_until: Option<i64>,
    published_until: Option<i64>,
}

fn times(k: &KeyRow, rows: &[KeyRow]) -> Times {
    let successor = rows
        .iter()
        .find(|n| n.alg == k.alg && n.status == "next")
        .map(|n| n.activate_at);
    let signing_until = match k.status.as_str() {
        "active" => successor,
        _ => k.deactivated_at,
    };
    let published_until = k
        .retire_after
        .or_else(|| signing_until.map(|t| t + KEEP_AFTER_SIGNING));
    Times {
        signing_from: k.activate_at,
        signing_until,
        published_until,
    }
}

pub fn run(store: &mut Store, cmd: KeysCmd) -> Result<(), Error> {
    let now = now();
    match cmd {
        KeysCmd::List { json } => {
            keys::ensure_keys(store, now)?;
            keys::promote_due(store, now)?;
            let rows = store.all_keys()?;
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|k| {
                        let t = times(k, &rows);
                        json!({
                            "kid": k.kid, "alg": k.alg, "status": k.status,
                            "created_at": k.created_at, "retire_after": k.retire_after,
                            "signing_from": t.signing_from, "signing_until": t.signing_until,
                            "published_until": t.published_until,
                        })
                    })
                    .collect();
                super::print_json(&json!(out));
            } else {
                let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                println!(
                    "{:<44} {:<6} {:<9} {:<21} {:<21} {:<21} PUBLISHED UNTIL",
                    "KID", "ALG", "STATUS", "CREATED", "SIGNS FROM", "SIGNS UNTIL"
                );
                for k in &rows {
                    let t = times(k, &rows);
                    println!(
                        "{:<44} {:<6} {:<9} {:<21} {:<21} {:<21} {}",
                        k.kid,
                        k.alg,
                        k.status,
                        rfc3339(k.created_at),
                        rfc3339(t.signing_from),
                        time(t.signing_until),
                        time(t.published_until)
                    );
                }
            }
        }
        KeysCmd::Rotate { now: true, json } => {
            // Lifetimes may have been longer while the old key signed than they are now, so the
            // old key stays for the longest lifetime latchkey allows, not the current one.
            let retire_after = now + KEEP_AFTER_SIGNING;
            let max_age = Settings::load(store)?.get(crate::config::Setting::JwksMaxAge);
            let (created, withdrawn) = keys::rotate_now(store, now)?;
            let cost = format!(
                "the new keys sign now: resource servers that cached the JWKS before the rotation \
                 refuse their tokens until they fetch it again, for up to {max_age} s (jwks.max_age)"
            );
            if json {
                super::print_json(&json!({
                    "active": created, "previous_retire_after": retire_after,
                    "withdrawn": withdrawn, "stale_for": max_age,
                }));
                eprintln!("latchkey: {cost}");
            } else {
                for kid in &created {
                    println!("new active key: {kid}");
                }
                for kid in &withdrawn {
                    println!("withdrawn pending key: {kid} (it never signed)");
                }
                println!("{cost}");
                println!(
                    "previous keys stay published until {} (after every token they signed has expired)",
                    rfc3339(retire_after)
                );
            }
        }
        KeysCmd::Rotate { now: false, json } => {
            let max_age = Settings::load(store)?.get(crate::config::Setting::JwksMaxAge);
            match keys::rotate(store, now, max_age)? {
                Rotation::Scheduled { kids, activate_at } => {
                    let retire_after = activate_at + KEEP_AFTER_SIGNING;
                    if json {
                        super::print_json(&json!({
                            "next": kids, "signing_from": activate_at,
                            "previous_retire_after": retire_after,
                        }));
                    } else {
                        for kid in &kids {
                            println!("new key, published now: {kid}");
                        }
                        println!(
                            "the new keys sign from {} (once JWKS cached before now have expired: jwks.max_age = {max_age} s)",
                            rfc3339(activate_at)
                        );
                        println!(
                            "previous keys sign until then and stay published until {} (after every token they signed has expired)",
                            rfc3339(retire_after)
                        );
                    }
                }
                Rotation::Pending { kid, activate_at } => {
                    return Err(Error::Msg(format!(
                        "a rotation is already pending: key {kid} signs from {}. Wait until then, \
                         or rotate with --now to sign with a new key at once",
                        rfc3339(activate_at)
                    )));
                }
            }
        }
    }
    Ok(())
}

impl KeysCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            KeysCmd::Rotate { now: false, .. } => Some(("signing_keys_rotated", String::new())),
            KeysCmd::Rotate { now: true, .. } => Some(("signing_keys_rotated", "now".into())),
            KeysCmd::List { .. } => None,
        }
    }
}
