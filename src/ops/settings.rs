//! Settings operations: read, change and reset the runtime settings stored in the database.
//! The settings, their bounds and their parsing are in [`crate::config`].

use crate::config::{Setting, Settings, parse_setting};
use crate::store::Store;

use super::{Actor, OpError, audited};

/// Every setting's current value.
pub fn current(store: &Store) -> Result<Settings, OpError> {
    Ok(Settings::load(store)?)
}

/// One setting, by key, and its current value.
pub fn get(store: &Store, key: &str) -> Result<(Setting, i64), OpError> {
    let setting = Setting::from_key(key)?;
    Ok((setting, Settings::load(store)?.get(setting)))
}

/// Changes a setting to `value` (checked against the setting's unit and bounds); returns the
/// setting and the value stored.
pub fn set(
    store: &mut Store,
    actor: &Actor,
    key: &str,
    value: &str,
) -> Result<(Setting, i64), OpError> {
    let target = format!("{key}={value}");
    audited(store, actor, "setting_changed", &target, |s| {
        let setting = Setting::from_key(key)?;
        let n = parse_setting(setting, value)?;
        agrees(&Settings::load(s)?, setting, n)?;
        s.set_setting(setting.key(), &n.to_string())?;
        Ok((setting, n))
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

/// Returns a setting to its default; returns the setting.
pub fn unset(store: &mut Store, actor: &Actor, key: &str) -> Result<Setting, OpError> {
    audited(store, actor, "setting_reset", key, |s| {
        let setting = Setting::from_key(key)?;
        s.unset_setting(setting.key())?;
        Ok(setting)
    })
}
