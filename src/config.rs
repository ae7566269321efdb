//! Start-up configuration (flags and `LATCHKEY_*` variables: where to listen, the issuer, the
//! data directory, the worker count) and the runtime settings stored in the database.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::Error;
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
    pub trusted_proxies: Vec<crate::forward::proxy::Cidr>,
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
    let (scheme, rest) = trimmed
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
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("it needs a host and no user information"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
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

/// One runtime setting: stored in the database, changed with `latchkey settings set`, read by
/// the server at start and whenever the `settings` table changes.
pub struct SettingSpec {
    pub key: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub help: &'static str,
}

/// Every setting latchkey knows. All are whole numbers of seconds or counts.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        key: "token.access_ttl",
        default: 600,
        min: 30,
        max: MAX_TOKEN_TTL,
        help: "access-token lifetime in seconds for clients without their own",
    },
    SettingSpec {
        key: "session.ttl",
        default: 43_200,
        min: 300,
        max: 2_592_000,
        help: "seconds a browser session lasts at most after sign-in (absolute timeout)",
    },
    SettingSpec {
        key: "session.idle_ttl",
        default: 7_200,
        min: 60,
        max: 2_592_000,
        help: "seconds a browser session survives without use (idle timeout)",
    },
    SettingSpec {
        key: "refresh.ttl",
        default: 7_776_000,
        min: 300,
        max: 31_536_000,
        help: "seconds a grant's refresh tokens work at most after the first sign-in (absolute)",
    },
    SettingSpec {
        key: "refresh.idle_ttl",
        default: 1_209_600,
        min: 60,
        max: 31_536_000,
        help: "seconds a refresh token works without being used (idle)",
    },
    SettingSpec {
        key: "jwks.max_age",
        default: 300,
        min: 0,
        max: 86_400,
        help: "seconds resource servers may cache /jwks.json; a rotated key signs only after this",
    },
    SettingSpec {
        key: "audit.retention_days",
        default: 90,
        min: 1,
        max: 3_650,
        help: "days the audit log keeps events",
    },
    SettingSpec {
        key: "gc.interval",
        default: 60,
        min: 1,
        max: 86_400,
        help: "seconds between deletions of expired codes, tokens, sessions and revocations",
    },
    SettingSpec {
        key: "http.idle_timeout",
        default: 60,
        min: 1,
        max: 3_600,
        help: "seconds a keep-alive connection may wait for its next request (applies at start)",
    },
    SettingSpec {
        key: "http.header_timeout",
        default: 10,
        min: 1,
        max: 300,
        help: "seconds from accept to a connection's first request head, and from the first byte of a later one (applies at start)",
    },
    SettingSpec {
        key: "http.body_timeout",
        default: 30,
        min: 1,
        max: 300,
        help: "seconds a request body may take (applies at start)",
    },
    SettingSpec {
        key: "http.max_connections",
        default: 1024,
        min: 1,
        max: 65_536,
        help: "open connections beyond this get 503 (applies at start)",
    },
    SettingSpec {
        key: "http.max_connections_per_address",
        default: 256,
        min: 1,
        max: 65_536,
        help: "open connections from one address (IPv6: one /64) beyond this get 503; trusted proxies are exempt (applies at start)",
    },
];

/// The value of every setting, defaults filled in.
#[derive(Clone, Debug)]
pub struct Settings {
    values: Vec<(&'static str, i64)>,
}

impl Settings {
    /// Reads the stored settings. A stored value that no longer validates (edited by hand) is
    /// ignored with a warning, so the server still starts with the default.
    pub fn load(store: &Store) -> Result<Settings, StoreError> {
        let stored = store.settings()?;
        let values = SETTINGS
            .iter()
            .map(|spec| {
                let value = stored
                    .iter()
                    .find(|(k, _)| k == spec.key)
                    .and_then(|(_, v)| match parse_setting(spec, v) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            log::warn!("ignoring stored setting: {e}");
                            None
                        }
                    })
                    .unwrap_or(spec.default);
                (spec.key, value)
            })
            .collect();
        Ok(Settings { values })
    }

    /// The value of a known setting (its default if the key is unknown, which is a bug).
    pub fn get(&self, key: &str) -> i64 {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .or_else(|| SETTINGS.iter().find(|s| s.key == key).map(|s| s.default))
            .unwrap_or(0)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            values: SETTINGS.iter().map(|s| (s.key, s.default)).collect(),
        }
    }
}

/// The spec of a setting key.
pub fn setting_spec(key: &str) -> Result<&'static SettingSpec, Error> {
    SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        Error::Usage(format!(
            "unknown setting {key:?}; known settings: {}",
            known.join(", ")
        ))
    })
}

/// Parses and range-checks a setting value.
pub fn parse_setting(spec: &SettingSpec, raw: &str) -> Result<i64, Error> {
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| Error::Usage(format!("{}: {raw:?} is not a whole number", spec.key)))?;
    if n < spec.min || n > spec.max {
        return Err(Error::Usage(format!(
            "{}: {n} is outside {}..={}",
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
    fn settings_defaults_and_ranges() {
        let s = Settings::default();
        assert_eq!(s.get("token.access_ttl"), 600);
        let spec = setting_spec("token.access_ttl").unwrap();
        assert_eq!(parse_setting(spec, "120").unwrap(), 120);
        assert!(parse_setting(spec, "5").is_err());
        assert!(parse_setting(spec, "ten").is_err());
        assert!(setting_spec("nope").is_err());
    }
}
