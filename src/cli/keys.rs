//! `latchkey keys`: list and rotate signing keys.

use clap::Subcommand;
use serde_json::json;

use crate::config::MAX_TOKEN_TTL;
use crate::error::Error;
use crate::jwt::keys;
use crate::store::Store;
use crate::timefmt::{now, rfc3339};

/// How long after the longest possible token lifetime an old key stays published, for clock
/// skew and for resource servers that cached the JWKS.
pub const RETIRE_MARGIN: i64 = 300;

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// List signing keys (active, retiring and retired)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a new key active; the previous one stays in the JWKS until its tokens have expired
    Rotate {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(store: &mut Store, cmd: KeysCmd) -> Result<(), Error> {
    let now = now();
    match cmd {
        KeysCmd::List { json } => {
            keys::ensure_keys(store, now)?;
            let rows = store.all_keys()?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|k| json!({"kid": k.kid, "alg": k.alg, "status": k.status, "created_at": k.created_at, "retire_after": k.retire_after}))
                    .collect();
                super::print_json(&json!(rows));
            } else {
                println!(
                    "{:<44} {:<6} {:<9} {:<21} RETIRES",
                    "KID", "ALG", "STATUS", "CREATED"
                );
                for k in rows {
                    println!(
                        "{:<44} {:<6} {:<9} {:<21} {}",
                        k.kid,
                        k.alg,
                        k.status,
                        rfc3339(k.created_at),
                        k.retire_after.map(rfc3339).unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        KeysCmd::Rotate { json } => {
            // Lifetimes may have been longer while the old key signed than they are now, so the
            // old key stays for the longest lifetime latchkey allows, not the current one.
            let retire_after = now + MAX_TOKEN_TTL + RETIRE_MARGIN;
            let created = keys::rotate(store, now, retire_after)?;
            if json {
                super::print_json(
                    &json!({"active": created, "previous_retire_after": retire_after}),
                );
            } else {
                for kid in &created {
                    println!("new active key: {kid}");
                }
                println!(
                    "previous keys stay published until {} (after every token they signed has expired)",
                    rfc3339(retire_after)
                );
            }
        }
    }
    Ok(())
}

impl KeysCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            KeysCmd::Rotate { .. } => Some(("signing_keys_rotated", String::new())),
            KeysCmd::List { .. } => None,
        }
    }
}
