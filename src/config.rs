//! Start-up configuration (flags and `LATCHKEY_*` variables: where to listen, the issuer, the
//! data directory, the worker count) and the runtime settings stored in the database.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::Error;
use crate::oauth::redirect_uri;
use crate::store::{Store, StoreError};

/// What `latchkey serve` was started with, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The issuer identifier (RFC 8414 §2): scheme, host, optional port and path; no query,
    /// fragment or trailing slash. `iss` of every token, byte for byte.
    pub issuer: String,
    pub workers: usize,
    /// `Domain` of the forward-auth cookie, so it reaches every protected subdomain.
    pub cookie_domain: Option<String>,
    /// Addresses whose `X-Forwarded-*` / `X-Original-*` headers are believed.
    pub trusted_proxies: Vec<crate::http::client_ip::Cidr>,
}

/// The default data directory: the platform's data directory for latchkey
/// (`~/.local/share/latchkey` on Linux).
pub fn default_data_dir() -> Result<PathBuf, Error> {
    directories::ProjectDirs::from("", "", "latchkey")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            Error::Usage(
                "cannot find a home directory; pass --data-dir or set LATCHKEY_DATA_DIR".into(),
            )
        })
}

/// The default worker count: two per available core (a worker waits on SQLite and on the
/// socket of its request as well as computing), at least 2. Measured on 2 cores (wrk -c32,
/// 5 s each, 2026-11-29): with 2 workers client_credentials ran 31k/s, introspection 36k/s,
/// the code flow 995/s and refresh rotation 4.8k/s; with 4 (this default) 39k, 62k, 1730 and
/// 5.9k; with 8 40k, 60k, 1408 and 3.8k (more writers queueing for the one SQLite writer).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(2)
        .max(2)
}

/// Checks an issuer URL and returns it without a trailing slash. Returns a warning to log when
/// it is plain `http` on a non-loopback host.
pub fn validate_issuer(raw: &str) -> Result<(String, Option<String>), Error> {
    let bad = |why: &str| Error::Usage(format!("invalid issuer {raw:?}: {why}"));
    let trimmed = raw.trim_end_matches('/');
    let (scheme, _) = trimmed
        .split_once("://")
        .ok_or_else(|| bad("it must start with https:// or http://"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("the scheme must be https or http"));
    }
    if trimmed.contains(['?', '#']) {
        return Err(bad("an issuer has no query or fragment (RFC 8414 §2)"));
    }
    if trimmed
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad("it contains whitespace"));
    }
    // The one reading of an http(s) authority, shared with the redirect-URI rules.
    let url = redirect_uri::web_url(trimmed).map_err(|why| bad(&format!("it {why}")))?;
    let loopback = redirect_uri::is_loopback(&url, trimmed);
    let warning = (scheme == "http" && !loopback).then(|| {
        format!(
            "the issuer {trimmed} is plain http on a non-loopback host: tokens, secrets and \
             passwords would cross the network unencrypted. Put latchkey behind TLS and set \
             --issuer https://…"
        )
    });
    Ok((trimmed.to_string(), warning))
}

/// The longest lifetime any access or ID token can have (the upper bound of `token.access_ttl`
/// and of a client's `--access-token-ttl`). A rotated-out key stays published at least this
/// long, whatever lifetimes are configured at the moment of rotation.
pub const MAX_TOKEN_TTL: i64 = 86_400;

/// The unit of a setting's whole-number value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Days,
    Count,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Days => "days",
            Unit::Count => "count",
        }
    }
}

/// When a changed setting takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// A running server picks it up within a second.
    Live,
    /// At the next `latchkey serve`.
    AtStart,
}

impl Applies {
    pub const fn as_str(self) -> &'static str {
        match self {
            Applies::Live => "live",
            Applies::AtStart => "start",
        }
    }
}

/// One runtime setting: stored in the database, changed with `latchkey settings set`, read by
/// the server at start and whenever the `settings` table changes.
pub struct SettingSpec {
    pub key: &'static str,
    pub unit: Unit,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub applies: Applies,
    pub help: &'static str,
}

/// Every setting latchkey knows, read with [`Settings::get`]: a mistyped name does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    AccessTtl,
    SessionTtl,
    SessionIdleTtl,
    RefreshTtl,
    RefreshIdleTtl,
    JwksMaxAge,
    AuditRetentionDays,
    GcInterval,
    HttpIdleTimeout,
    HttpHeaderTimeout,
    HttpBodyTimeout,
    HttpMaxConnections,
    HttpMaxConnectionsPerAddress,
    BackupInterval,
    BackupKeep,
}

impl Setting {
    /// Every setting, in the order `settings list` shows them.
    pub const ALL: [Setting; 15] = [
        Setting::AccessTtl,
        Setting::SessionTtl,
        Setting::SessionIdleTtl,
        Setting::RefreshTtl,
        Setting::RefreshIdleTtl,
        Setting::JwksMaxAge,
        Setting::AuditRetentionDays,
        Setting::GcInterval,
        Setting::HttpIdleTimeout,
        Setting::HttpHeaderTimeout,
        Setting::HttpBodyTimeout,
        Setting::HttpMaxConnections,
        Setting::HttpMaxConnectionsPerAddress,
        Setting::BackupInterval,
        Setting::BackupKeep,
    ];

    /// The declaration of this setting: the one place its key, default and range live.
    pub const fn spec(self) -> SettingSpec {
        use Applies::{AtStart, Live};
        use Unit::{Count, Days, Seconds};
        let (key, unit, default, min, max, applies, help) = match self {
            Setting::AccessTtl => (
                "token.access_ttl",
                Seconds,
                600,
                30,
                MAX_TOKEN_TTL,
                Live,
                "access-token lifetime in seconds for clients without their own",
            ),
            Setting::SessionTtl => (
                "session.ttl",
                Seconds,
                43_200,
                300,
                2_592_000,
                Live,
                "seconds a browser session lasts at most after sign-in (absolute timeout)",
            ),
            Setting::SessionIdleTtl => (
                "session.idle_ttl",
                Seconds,
                7_200,
                60,
                2_592_000,
                Live,
                "seconds a browser session survives without use (idle timeout)",
            ),
            Setting::RefreshTtl => (
                "refresh.ttl",
                Seconds,
                7_776_000,
                300,
                31_536_000,
                Live,
                "seconds a grant's refresh tokens work at most after the first sign-in (absolute)",
            ),
            Setting::RefreshIdleTtl => (
                "refresh.idle_ttl",
                Seconds,
                1_209_600,
                60,
                31_536_000,
                Live,
                "seconds a refresh token works without being used (idle)",
            ),
            Setting::JwksMaxAge => (
                "jwks.max_age",
                Seconds,
                300,
                0,
                86_400,
                Live,
                "seconds resource servers may cache /jwks.json; a rotated key signs only after this",
            ),
            Setting::AuditRetentionDays => (
                "audit.retention_days",
                Days,
                90,
                1,
                3_650,
                Live,
                "days the audit log keeps events",
            ),
            Setting::GcInterval => (
                "gc.interval",
                Seconds,
                60,
                1,
                86_400,
                Live,
                "seconds between deletions of expired codes, tokens, sessions and revocations",
            ),
            Setting::HttpIdleTimeout => (
                "http.idle_timeout",
                Seconds,
                60,
                1,
                3_600,
                AtStart,
                "seconds a keep-alive connection may wait for its next request (applies at start)",
            ),
            Setting::HttpHeaderTimeout => (
                "http.header_timeout",
                Seconds,
                10,
                1,
                300,
                AtStart,
                "seconds from accept to a connection's first request head, and from the first byte of a later one (applies at start)",
            ),
            Setting::HttpBodyTimeout => (
                "http.body_timeout",
                Seconds,
                30,
                1,
                300,
                AtStart,
                "seconds a request body may take (applies at start)",
            ),
            Setting::HttpMaxConnections => (
                "http.max_connections",
                Count,
                1024,
                1,
                65_536,
                AtStart,
                "open connections beyond this get 503 (applies at start)",
            ),
            Setting::HttpMaxConnectionsPerAddress => (
                "http.max_connections_per_address",
                Count,
                256,
                1,
                65_536,
                AtStart,
                "open connections from one address (IPv6: one /64) beyond this get 503; trusted proxies are exempt (applies at start)",
            ),
            Setting::BackupInterval => (
                "backup.interval",
                Seconds,
                0,
                0,
                31_536_000,
                Live,
                "seconds between the running server's backups into backup.dir; 0: none",
            ),
            Setting::BackupKeep => (
                "backup.keep",
                Count,
                7,
                1,
                10_000,
                Live,
                "scheduled backups kept in backup.dir; older ones are deleted",
            ),
        };
        SettingSpec {
            key,
            unit,
            default,
            min,
            max,
            applies,
            help,
        }
    }

    pub const fn key(self) -> &'static str {
        self.spec().key
    }

    pub const fn default_value(self) -> i64 {
        self.spec().default
    }

    /// The default as a duration, for settings in seconds.
    pub const fn default_secs(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.spec().default.unsigned_abs())
    }

    /// The default as a count.
    pub fn default_count(self) -> usize {
        usize::try_from(self.default_value()).unwrap_or(1)
    }

    /// The setting a key names, or a usage error listing the known keys.
    pub fn from_key(key: &str) -> Result<Setting, Error> {
        Setting::ALL
            .into_iter()
            .find(|s| s.key() == key)
            .ok_or_else(|| {
                let known: Vec<&str> = Setting::ALL
                    .iter()
                    .map(|s| s.key())
                    .chain(TextSetting::ALL.iter().map(|s| s.key()))
                    .collect();
                Error::Usage(format!(
                    "unknown setting {key:?}; known settings: {}",
                    known.join(", ")
                ))
            })
    }
}

/// A setting whose value is text (a path, a list of groups), not a number: stored in the same
/// table, changed with the same commands; the empty text is its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSetting {
    /// Where the scheduled backups go; empty for `<data dir>/backups`.
    BackupDir,
    /// Groups whose members must sign in with a second factor, comma-separated; empty for
    /// none. Renaming or removing a group updates it (see `ops::groups`).
    MfaRequiredForGroups,
    /// What users may change on their account page: `none`, `name` or `name,email`; empty
    /// for `name` (see [`EditProfile`]).
    AccountEditProfile,
}

/// What a user may change of their own profile on `/account` (`account.edit_profile`).
///
/// The default is the name only: latchkey puts `email` with `email_verified: true` in ID
/// tokens, and an app that links accounts by email would trust an address the user typed and
/// nobody checked. An admin whose apps do not do that may allow `name,email`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EditProfile {
    pub name: bool,
    pub email: bool,
}

impl EditProfile {
    /// Reads the stored (normalized) value; empty is the default, the name only.
    pub fn from_setting(v: &str) -> EditProfile {
        match v {
            "none" => EditProfile {
                name: false,
                email: false,
            },
            "name,email" => EditProfile {
                name: true,
                email: true,
            },
            _ => EditProfile {
                name: true,
                email: false,
            },
        }
    }

    /// Nothing may be changed.
    pub fn nothing(self) -> bool {
        !self.name && !self.email
    }
}

impl TextSetting {
    /// Every text setting, in the order `settings list` shows them (after the numbers).
    pub const ALL: [TextSetting; 3] = [
        TextSetting::BackupDir,
        TextSetting::MfaRequiredForGroups,
        TextSetting::AccountEditProfile,
    ];

    pub const fn key(self) -> &'static str {
        match self {
            TextSetting::BackupDir => "backup.dir",
            TextSetting::MfaRequiredForGroups => "mfa.required_for_groups",
            TextSetting::AccountEditProfile => "account.edit_profile",
        }
    }

    /// What the value is: `path` or `groups`.
    pub const fn unit(self) -> &'static str {
        match self {
            TextSetting::BackupDir => "path",
            TextSetting::MfaRequiredForGroups => "groups",
            TextSetting::AccountEditProfile => "fields",
        }
    }

    /// What the empty value means, for `settings list`.
    pub const fn default_meaning(self) -> &'static str {
        match self {
            TextSetting::BackupDir => "<data dir>/backups",
            TextSetting::MfaRequiredForGroups => "(no group)",
            TextSetting::AccountEditProfile => "name",
        }
    }

    pub const fn applies(self) -> Applies {
        Applies::Live
    }

    pub const fn help(self) -> &'static str {
        match self {
            TextSetting::BackupDir => {
                "absolute path of the directory for scheduled backups (created mode 700 if missing)"
            }
            TextSetting::MfaRequiredForGroups => {
                "groups whose members must sign in with a second factor (comma-separated names)"
            }
            TextSetting::AccountEditProfile => {
                "what users may change on /account: none, name or name,email"
            }
        }
    }

    /// The text setting a key names, if it names one.
    pub fn from_key(key: &str) -> Option<TextSetting> {
        TextSetting::ALL.into_iter().find(|s| s.key() == key)
    }
}

/// Checks a text setting's value: for `backup.dir`, an absolute path of at most 4096 bytes
/// without control characters.
pub fn parse_text_setting(setting: TextSetting, raw: &str) -> Result<String, Error> {
    let key = setting.key();
    match setting {
        TextSetting::BackupDir => {
            if raw.len() > 4096 || raw.chars().any(char::is_control) {
                return Err(Error::Usage(format!(
                    "{key}: the path must be at most 4096 printable characters"
                )));
            }
            if !raw.starts_with('/') {
                return Err(Error::Usage(format!(
                    "{key}: {raw:?} is not an absolute path (it starts with /)"
                )));
            }
            Ok(raw.to_string())
        }
        TextSetting::MfaRequiredForGroups => {
            let mut names: Vec<&str> = raw.split([',', ' ']).filter(|n| !n.is_empty()).collect();
            for n in &names {
                crate::accounts::validate_group(n)
                    .map_err(|e| Error::Usage(format!("{key}: {e}")))?;
            }
            names.sort_unstable();
            names.dedup();
            Ok(names.join(","))
        }
        TextSetting::AccountEditProfile => {
            let mut fields: Vec<&str> = raw.split([',', ' ']).filter(|n| !n.is_empty()).collect();
            fields.sort_unstable();
            fields.dedup();
            match fields.as_slice() {
                [] => Ok(String::new()),
                ["none"] => Ok("none".into()),
                ["name"] => Ok("name".into()),
                ["email", "name"] => Ok("name,email".into()),
                _ => Err(Error::Usage(format!(
                    "{key}: {raw:?} is not one of none, name, name,email"
                ))),
            }
        }
    }
}

/// The value of every setting, defaults filled in.
#[derive(Clone, Debug)]
pub struct Settings {
    values: Vec<(Setting, i64)>,
    texts: Vec<(TextSetting, String)>,
}

impl Settings {
    /// Reads the stored settings. A stored value that no longer validates (edited by hand) is
    /// ignored with a warning, so the server still starts with the default.
    pub fn load(store: &Store) -> Result<Settings, StoreError> {
        let stored = store.settings()?;
        let values = Setting::ALL
            .into_iter()
            .map(|setting| {
                let value = stored
                    .iter()
                    .find(|(k, _)| k == setting.key())
                    .and_then(|(_, v)| match parse_setting(setting, v) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            log::warn!("ignoring stored setting: {e}");
                            None
                        }
                    })
                    .unwrap_or(setting.default_value());
                (setting, value)
            })
            .collect();
        let texts = TextSetting::ALL
            .into_iter()
            .filter_map(|setting| {
                let (_, raw) = stored.iter().find(|(k, _)| k == setting.key())?;
                match parse_text_setting(setting, raw) {
                    Ok(v) => Some((setting, v)),
                    Err(e) => {
                        log::warn!("ignoring stored setting: {e}");
                        None
                    }
                }
            })
            .collect();
        Ok(Settings { values, texts })
    }

    /// The groups of `mfa.required_for_groups`.
    pub fn mfa_groups(&self) -> Vec<&str> {
        self.text(TextSetting::MfaRequiredForGroups)
            .split(',')
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// What users may change of their profile (`account.edit_profile`).
    pub fn edit_profile(&self) -> EditProfile {
        EditProfile::from_setting(self.text(TextSetting::AccountEditProfile))
    }

    /// The value of a text setting; empty for its default.
    pub fn text(&self, setting: TextSetting) -> &str {
        self.texts
            .iter()
            .find(|(s, _)| *s == setting)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of a setting.
    pub fn get(&self, setting: Setting) -> i64 {
        self.values
            .iter()
            .find(|(s, _)| *s == setting)
            .map_or(setting.default_value(), |(_, v)| *v)
    }

    /// The value of a setting in seconds, as a duration.
    pub fn duration(&self, setting: Setting) -> std::time::Duration {
        std::time::Duration::from_secs(self.get(setting).unsigned_abs())
    }

    /// The value of a count setting.
    pub fn count(&self, setting: Setting) -> usize {
        usize::try_from(self.get(setting)).unwrap_or(setting.default_count())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            values: Setting::ALL
                .into_iter()
                .map(|s| (s, s.default_value()))
                .collect(),
            texts: Vec::new(),
        }
    }
}

/// Parses and range-checks a setting value.
pub fn parse_setting(setting: Setting, raw: &str) -> Result<i64, Error> {
    let spec = setting.spec();
    let text = raw.trim();
    // A duration may carry its unit (`12h`, `90d`); a bare number is in the setting's own unit,
    // which `settings list` names.
    let n: i64 = match text.parse() {
        Ok(n) => n,
        Err(_) if spec.unit != Unit::Count && text.starts_with(|c: char| c.is_ascii_digit()) => {
            let secs = crate::timefmt::parse_duration(text)
                .map_err(|m| Error::Usage(format!("{}: {m}", spec.key)))?;
            match spec.unit {
                Unit::Days if secs % 86_400 != 0 => {
                    return Err(Error::Usage(format!(
                        "{}: {text:?} is not a whole number of days",
                        spec.key
                    )));
                }
                Unit::Days => secs / 86_400,
                _ => secs,
            }
        }
        Err(_) => {
            return Err(Error::Usage(format!(
                "{}: {raw:?} is not a whole number",
                spec.key
            )));
        }
    };
    if n < spec.min || n > spec.max {
        let unit = match spec.unit {
            Unit::Seconds => " s",
            Unit::Days => " days",
            Unit::Count => "",
        };
        return Err(Error::Usage(format!(
            "{}: {n} is outside {}–{}{unit}",
            spec.key, spec.min, spec.max
        )));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_validation() {
        assert_eq!(
            validate_issuer("https://id.example.org/").unwrap().0,
            "https://id.example.org"
        );
        assert!(
            validate_issuer("https://id.example.org")
                .unwrap()
                .1
                .is_none()
        );
        assert!(
            validate_issuer("http://127.0.0.1:8080")
                .unwrap()
                .1
                .is_none()
        );
        assert!(
            validate_issuer("http://localhost:8080")
                .unwrap()
                .1
                .is_none()
        );
        assert!(validate_issuer("http://[::1]:8080").unwrap().1.is_none());
        assert!(validate_issuer("http://id.lan").unwrap().1.is_some());
        for bad in [
            "id.example.org",
            "ftp://x",
            "https://x?q",
            "https://x#f",
            "https://",
            "https://u@x",
        ] {
            assert!(validate_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issuer_authorities() {
        let warns = |i: &str| validate_issuer(i).unwrap().1.is_some();
        // IPv6 and ports.
        assert!(!warns("http://[::1]"));
        assert!(warns("http://[2001:db8::1]:8080"));
        assert_eq!(
            validate_issuer("https://[2001:db8::1]:8443/idp/")
                .unwrap()
                .0,
            "https://[2001:db8::1]:8443/idp"
        );
        assert!(!warns("https://id.example.org:8443"));
        assert!(!warns("http://127.0.0.1"));
        assert!(
            warns("http://127.1:8080"),
            "a shorthand is not loopback as written"
        );
        assert!(warns("http://localhost.example.org"));
        for bad in [
            "https://id.example.org:99999",
            "https://id.example.org:x",
            "https://[::1",
            // User information, also empty or behind a backslash.
            "https://u:p@id.example.org",
            "https://@id.example.org",
            "https://evil.example\\@id.example.org",
            "http://127.0.0.1:1@evil.example",
            // Empty hosts.
            "https:///id",
            "https://:443",
            "http://",
        ] {
            assert!(validate_issuer(bad).is_err(), "{bad}");
        }
        let e = validate_issuer("https://u@x").unwrap_err().to_string();
        assert!(e.contains("no user information"), "{e}");
    }

    #[test]
    fn settings_defaults_and_ranges() {
        let s = Settings::default();
        assert_eq!(s.get(Setting::AccessTtl), 600);
        let spec = Setting::from_key("token.access_ttl").unwrap();
        assert_eq!(parse_setting(spec, "120").unwrap(), 120);
        assert!(parse_setting(spec, "5").is_err());
        assert!(parse_setting(spec, "ten").is_err());
        assert!(Setting::from_key("nope").is_err());
    }

    /// The settings reference's table (docs/settings.md: rows "| `key` | default | …" under
    /// the "Settings" heading) names every declared setting with its declared default, and
    /// nothing else.
    #[test]
    fn documented_settings_table_matches_the_declarations() {
        let readme = include_str!("../docs/settings.md");
        let mut rows = Vec::new();
        let mut in_settings = false;
        for line in readme.lines() {
            if line.starts_with('#') {
                in_settings = line.trim_start_matches('#').trim() == "Settings";
                continue;
            }
            if in_settings && line.starts_with("| `") {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let key = cells[1].trim_matches('`').to_string();
                let default: i64 = cells[2].parse().expect(line);
                rows.push((key, default));
            }
        }
        for setting in Setting::ALL {
            let found: Vec<_> = rows.iter().filter(|(k, _)| k == setting.key()).collect();
            assert_eq!(
                found.len(),
                1,
                "docs/settings.md rows for {}",
                setting.key()
            );
            assert_eq!(
                found[0].1,
                setting.default_value(),
                "docs/settings.md default of {}",
                setting.key()
            );
        }
        for (key, _) in &rows {
            assert!(
                Setting::from_key(key).is_ok(),
                "docs/settings.md names unknown setting {key}"
            );
        }
        // The text settings: rows "| `key` | (meaning of empty) | …" under "Path settings".
        let mut in_paths = false;
        let mut paths = Vec::new();
        for line in readme.lines() {
            if line.starts_with('#') {
                in_paths = line.trim_start_matches('#').trim() == "Path settings";
                continue;
            }
            if in_paths && line.starts_with("| `") {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                paths.push(cells[1].trim_matches('`').to_string());
            }
        }
        let keys: Vec<String> = TextSetting::ALL.iter().map(|s| s.key().into()).collect();
        assert_eq!(paths, keys, "docs/settings.md path settings");
    }

    #[test]
    fn text_settings_take_absolute_paths() {
        let s = TextSetting::from_key("backup.dir").unwrap();
        assert_eq!(
            parse_text_setting(s, "/srv/backups").unwrap(),
            "/srv/backups"
        );
        assert!(parse_text_setting(s, "backups").is_err());
        assert!(parse_text_setting(s, "/a\nb").is_err());
        assert!(Setting::from_key("backup.dir").is_err());
    }

    #[test]
    fn account_edit_profile_takes_none_name_or_name_and_email() {
        let s = TextSetting::from_key("account.edit_profile").unwrap();
        for (raw, stored) in [
            ("", ""),
            ("none", "none"),
            ("name", "name"),
            ("name,email", "name,email"),
            ("email, name", "name,email"),
            ("name,name", "name"),
        ] {
            assert_eq!(parse_text_setting(s, raw).unwrap(), stored, "{raw:?}");
        }
        for raw in ["email", "none,name", "all", "name,email,groups"] {
            assert!(parse_text_setting(s, raw).is_err(), "{raw:?}");
        }
        let fields = |v: &str| {
            let e = EditProfile::from_setting(v);
            (e.name, e.email)
        };
        assert_eq!(fields(""), (true, false));
        assert_eq!(fields("name"), (true, false));
        assert_eq!(fields("none"), (false, false));
        assert_eq!(fields("name,email"), (true, true));
        assert_eq!(
            Settings::default().edit_profile(),
            EditProfile::from_setting("")
        );
    }
}
