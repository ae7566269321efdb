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
use serde_json::{Value, json};

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::{keys, view};
use crate::store::Store;
use crate::timefmt::{now, rfc3339};

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// List signing keys (next, active, retiring and retired) and when each changes
    List,
    /// Publish a new key now; it signs once cached JWKS have expired (jwks.max_age)
    Rotate {
        /// Sign with the new key at once (an emergency: resource servers that cached the JWKS
        /// refuse its tokens until they fetch it again, for up to jwks.max_age)
        #[arg(long)]
        now: bool,
    },
}

pub fn run(store: &mut Store, cmd: KeysCmd, json: bool) -> Result<(), Error> {
    let now = now();
    let actor = Actor::cli();
    match cmd {
        KeysCmd::List => {
            let keys = keys::list(store, now)?;
            if json {
                super::print_json(&json!(
                    keys.iter().map(view::signing_key).collect::<Vec<_>>()
                ));
            } else {
                let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                out!(
                    "{:<44} {:<6} {:<9} {:<21} {:<21} {:<21} PUBLISHED UNTIL",
                    "KID",
                    "ALG",
                    "STATUS",
                    "CREATED",
                    "SIGNS FROM",
                    "SIGNS UNTIL"
                );
                for k in &keys {
                    let t = &k.times;
                    out!(
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
        KeysCmd::Rotate { now: true } => {
            let done = keys::rotate_now(store, &actor, now)?;
            let cost = format!(
                "the new keys sign now: resource servers that cached the JWKS before the rotation \
                 refuse their tokens until they fetch it again, for up to {} s (jwks.max_age)",
                done.max_age
            );
            if json {
                super::print_json(&json!({
                    "keys": new_keys(store, &done.created, now)?,
                    "active": done.created, "previous_retire_after": done.retire_after,
                    "withdrawn": done.withdrawn, "stale_for": done.max_age,
                }));
                eprintln!("latchkey: {cost}");
            } else {
                for kid in &done.created {
                    out!("new active key: {kid}");
                }
                for kid in &done.withdrawn {
                    out!("withdrawn pending key: {kid} (it never signed)");
                }
                out!("{cost}");
                out!(
                    "previous keys stay published until {} (after every token they signed has expired)",
                    rfc3339(done.retire_after)
                );
            }
        }
        KeysCmd::Rotate { now: false } => {
            let done = keys::rotate(store, &actor, now)?;
            if json {
                super::print_json(&json!({
                    "keys": new_keys(store, &done.kids, now)?,
                    "next": done.kids, "signing_from": done.activate_at,
                    "previous_retire_after": done.retire_after,
                }));
            } else {
                for kid in &done.kids {
                    out!("new key, published now: {kid}");
                }
                out!(
                    "the new keys sign from {} (once JWKS cached before now have expired: jwks.max_age = {} s)",
                    rfc3339(done.activate_at),
                    done.max_age
                );
                out!(
                    "previous keys sign until then and stay published until {} (after every token they signed has expired)",
                    rfc3339(done.retire_after)
                );
            }
        }
    }
    Ok(())
}

/// The keys a rotation created, in the shape `keys list` prints.
fn new_keys(store: &mut Store, kids: &[String], now: i64) -> Result<Vec<Value>, Error> {
    Ok(keys::list(store, now)?
        .iter()
        .filter(|k| kids.contains(&k.kid))
        .map(view::signing_key)
        .collect())
}
