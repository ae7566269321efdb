//! `latchkey settings`: runtime settings that live in the database.

use clap::Subcommand;
use serde_json::json;

use crate::config::{Setting, Settings, parse_setting};
use crate::error::Error;
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
            let current = Settings::load(store)?;
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
                    .collect();
                super::print_json(&json!(rows));
            } else {
                for s in Setting::ALL {
                    let spec = s.spec();
                    println!(
                        "{:<22} {:>8}  {:<7} {:<5} (default {}) {}",
                        spec.key,
                        current.get(s),
                        spec.unit.as_str(),
                        spec.applies.as_str(),
                        spec.default,
                        spec.help
                    );
                }
            }
        }
        SettingsCmd::Get { key } => {
            let setting = Setting::from_key(&key)?;
            println!("{}", Settings::load(store)?.get(setting));
        }
        SettingsCmd::Set { key, value } => {
            let setting = Setting::from_key(&key)?;
            let n = parse_setting(setting, &value)?;
            store.set_setting(setting.key(), &n.to_string())?;
            println!("{} = {n}", setting.key());
        }
        SettingsCmd::Unset { key } => {
            let setting = Setting::from_key(&key)?;
            store.unset_setting(setting.key())?;
            println!("{} = {} (default)", setting.key(), setting.default_value());
        }
    }
    Ok(())
}

impl SettingsCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            SettingsCmd::Set { key, value } => Some(("setting_changed", format!("{key}={value}"))),
            SettingsCmd::Unset { key } => Some(("setting_reset", key.clone())),
            SettingsCmd::List { .. } | SettingsCmd::Get { .. } => None,
        }
    }
}
