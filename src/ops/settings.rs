//! Settings operations: read, change and reset the runtime settings stored in the database.
//! The settings, their bounds and their parsing are in [`crate::config`]; most are numbers,
//! a few ([`TextSetting`]) are paths.

use crate::config::{Setting, Settings, TextSetting, parse_setting, parse_text_setting};
use crate::store::Store;

use super::{Actor, OpError, audited};

/// Every setting's current value.
pub fn current(store: &Store) -> Result<Settings, OpError> {
    Ok(Settings::load(store)?)
}

/// One setting, by key: its key and current value as text (empty for a text setting's
/// default).
pub fn get(store: &Store, key: &str) -> Result<(&'static str, String), OpError> {
    let current = Settings::load(store)?;
    if let Some(text) = TextSetting::from_key(key) {
        return Ok((text.key(), current.text(text).to_string()));
    }
    let setting = Setting::from_key(key)?;
    Ok((setting.key(), current.get(setting).to_string()))
}

/// Changes a setting to `value` (checked against the setting's unit and bounds, or, for a
/// text setting, its form); returns the key and the value stored.
pub fn set(
    store: &mut Store,
    actor: &Actor,
    key: &str,
    value: &str,
) -> Result<(&'static str, String), OpError> {
    let target = format!("{key}={value}");
    audited(store, actor, "setting_changed", &target, |s| {
        let (key, stored) = match TextSetting::from_key(key) {
            Some(text) => {
                let v = parse_text_setting(text, value)?;
                if text == TextSetting::MfaRequiredForGroups {
                    // Named groups must exist: a typo would otherwise require nothing.
                    for name in v.split(',').filter(|n| !n.is_empty()) {
                        super::groups::find(s, name)?;
                    }
                }
                (text.key(), v)
            }
            None => {
                let setting = Setting::from_key(key)?;
                let n = parse_setting(setting, value)?;
                agrees(&Settings::load(s)?, setting, n)?;
                (setting.key(), n.to_string())
            }
        };
        s.set_setting(key, &stored)?;
        Ok((key, stored))
    })
}

/// Pairs of settings where the first bounds the second: an idle timeout longer than the
/// absolute lifetime it sits inside would never apply.
const BOUNDS: &[(Setting, Setting)] = &[
    (Setting::SessionTtl, Setting::SessionIdleTtl),
    (Setting::RefreshTtl, Setting::RefreshIdleTtl),
];

/// Refuses a value that contradicts another setting (see [`BOUNDS`]).
fn agrees(current: &Settings, setting: Setting, value: i64) -> Result<(), OpError> {
    let of = |s: Setting| if s == setting { value } else { current.get(s) };
    for &(outer, inner) in BOUNDS {
        if (setting == outer || setting == inner) && of(inner) > of(outer) {
            return Err(OpError::Invalid(format!(
                "{} ({} s) cannot be longer than {} ({} s): change {} first",
                inner.key(),
                of(inner),
                outer.key(),
                of(outer),
                if setting == inner {
                    outer.key()
                } else {
                    inner.key()
                }
            )));
        }
    }
    Ok(())
}

/// Returns a setting to its default; returns its key and the default as text.
pub fn unset(
    store: &mut Store,
    actor: &Actor,
    key: &str,
) -> Result<(&'static str, String), OpError> {
    audited(store, actor, "setting_reset", key, |s| {
        let (key, default) = match TextSetting::from_key(key) {
            Some(text) => (text.key(), text.default_meaning().to_string()),
            None => {
                let setting = Setting::from_key(key)?;
                (setting.key(), setting.default_value().to_string())
            }
        };
        s.unset_setting(key)?;
        Ok((key, default))
    })
}
