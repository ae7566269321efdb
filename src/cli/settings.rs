//! `latchkey settings`: runtime settings that live in the database.

use clap::Subcommand;
use serde_json::json;

use crate::config::{SETTINGS, Settings, parse_setting, setting_spec};
use crate::error::Error;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// List every setting with its value and default
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print one setting's value
    Get { key: String },
    /// Change a setting (a running server picks it up within a second; http.* at next start)
    Set { key: String, value: String },
    /// Return a setting to its default
    Unset { key: String },
}

pub fn run(store: &mut Store, cmd: SettingsCmd) -> Result<(), Error> {
    match cmd {
        SettingsCmd::List { json } => {
            let current = Settings::load(store)?;
            if json {
                let rows: Vec<_> = SETTINGS
                    .iter()
                    .map(|s| json!({"key": s.key, "value": current.get(s.key), "default": s.default, "help": s.help}))
                    .collect();
                super::print_json(&json!(rows));
            } else {
                for s in SETTINGS {
                    println!(
                        "{:<22} {:>8}  (default {}) {}",
                        s.key,
                        current.get(s.key),
                        s.default,
                        s.help
                    );
                }
            }
        }
        SettingsCmd::Get { key } => {
            setting_spec(&key)?;
            println!("{}", Settings::load(store)?.get(&key));
        }
        SettingsCmd::Set { key, value } => {
            let spec = setting_spec(&key)?;
            let n = parse_setting(spec, &value)?;
            store.set_setting(spec.key, &n.to_string())?;
            println!("{} = {n}", spec.key);
        }
        SettingsCmd::Unset { key } => {
            let spec = setting_spec(&key)?;
            store.unset_setting(spec.key)?;
            println!("{} = {} (default)", spec.key, spec.default);
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
