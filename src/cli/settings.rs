//! `latchkey settings`: runtime settings that live in the database.

use clap::Subcommand;
use serde_json::json;

use crate::config::{Setting, TextSetting};
use crate::error::Error;
use crate::ops::{Actor, settings, view};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// List every setting with its value and default
    List,
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

/// Prints one setting as it is now: its JSON shape, or the text line.
fn print_setting(store: &Store, key: &str, json: bool, text: &str) -> Result<(), Error> {
    if json {
        let current = settings::current(store)?;
        let v = view::setting(&current, key).unwrap_or(serde_json::Value::Null);
        super::print_json(&v);
    } else {
        out!("{text}");
    }
    Ok(())
}

pub fn run(store: &mut Store, cmd: SettingsCmd, json: bool) -> Result<(), Error> {
    match cmd {
        SettingsCmd::List => {
            let current = settings::current(store)?;
            if json {
                super::print_json(&json!(view::settings(&current)));
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
                        s.unit(),
                        s.applies().as_str(),
                        s.default_meaning(),
                        s.help()
                    );
                }
            }
        }
        SettingsCmd::Get { key } => {
            let (key, value) = settings::get(store, &key)?;
            print_setting(store, key, json, &value)?;
        }
        SettingsCmd::Set { key, value } => {
            let (key, value) = settings::set(store, &Actor::cli(), &key, &value)?;
            print_setting(store, key, json, &format!("{key} = {value}"))?;
        }
        SettingsCmd::Unset { key } => {
            let (key, default) = settings::unset(store, &Actor::cli(), &key)?;
            print_setting(store, key, json, &format!("{key} = {default} (default)"))?;
        }
    }
    Ok(())
}
