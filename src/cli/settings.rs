//! `latchkey settings`: runtime settings that live in the database.

use clap::Subcommand;
use serde_json::json;

use crate::config::{Setting, TextSetting};
use crate::error::Error;
use crate::ops::{Actor, settings};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// List every setting with its value and default
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print one setting's value
    Get {
        /// The setting, e.g. session.idle_ttl (`settings list` names them all)
        key: String,
    },
    /// Change a setting (a running server picks it up within a second; http.* at next start)
    Set {
        /// The setting, e.g. session.idle_ttl (`settings list` names them all)
        key: String,
        /// The new value, in the setting's unit
        value: String,
    },
    /// Return a setting to its default
    Unset {
        /// The setting, e.g. session.idle_ttl (`settings list` names them all)
        key: String,
    },
}

pub fn run(store: &mut Store, cmd: SettingsCmd) -> Result<(), Error> {
    match cmd {
        SettingsCmd::List { json } => {
            let current = settings::current(store)?;
            if json {
                let rows: Vec<_> = Setting::ALL
                    .into_iter()
                    .map(|s| {
                        let spec = s.spec();
                        json!({
                            "key": spec.key,
                            "value": current.get(s),
                            "default": spec.default,
                            "help": spec.help,
                            "unit": spec.unit.as_str(),
                            "applies": spec.applies.as_str(),
                        })
                    })
                    .chain(TextSetting::ALL.into_iter().map(|s| {
                        json!({
                            "key": s.key(),
                            "value": current.text(s),
                            "default": "",
                            "help": s.help(),
                            "unit": "path",
                            "applies": s.applies().as_str(),
                        })
                    }))
                    .collect();
                super::print_json(&json!(rows));
            } else {
                for s in Setting::ALL {
                    let spec = s.spec();
                    out!(
                        "{:<22} {:>8}  {:<7} {:<5} (default {}) {}",
                        spec.key,
                        current.get(s),
                        spec.unit.as_str(),
                        spec.applies.as_str(),
                        spec.default,
                        spec.help
                    );
                }
                for s in TextSetting::ALL {
                    let value = match current.text(s) {
                        "" => "-",
                        v => v,
                    };
                    out!(
                        "{:<22} {:>8}  {:<7} {:<5} (default {}) {}",
                        s.key(),
                        value,
                        "path",
                        s.applies().as_str(),
                        s.default_meaning(),
                        s.help()
                    );
                }
            }
        }
        SettingsCmd::Get { key } => {
            let (_, value) = settings::get(store, &key)?;
            out!("{value}");
        }
        SettingsCmd::Set { key, value } => {
            let (key, value) = settings::set(store, &Actor::cli(), &key, &value)?;
            out!("{key} = {value}");
        }
        SettingsCmd::Unset { key } => {
            let (key, default) = settings::unset(store, &Actor::cli(), &key)?;
            out!("{key} = {default} (default)");
        }
    }
    Ok(())
}
