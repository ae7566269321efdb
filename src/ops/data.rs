//! Operations on the data itself: a backup of the database while the server runs, and the
//! check of a data directory (permissions, schema version, signing keys, the stored issuer)
//! that `latchkey check` reports.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{Actor, OpError, audited};
use crate::store::{DB_FILE, SCHEMA_VERSION, Store};

/// Writes a consistent snapshot of the whole database to `file` (`VACUUM INTO`), with mode
/// 0600 since it holds the signing keys. `file` must not exist. Audited as `backup_written`.
pub fn backup(store: &mut Store, actor: &Actor, file: &Path) -> Result<(), OpError> {
    let target = file.display().to_string();
    audited(store, actor, "backup_written", &target, |store| {
        if file.exists() {
            return Err(OpError::Invalid(format!(
                "{target} already exists; choose a new file"
            )));
        }
        // Created empty with mode 0600 before SQLite writes the keys into it (VACUUM INTO
        // accepts an empty file), so no other user can open it while it is being written.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| OpError::Failed(format!("cannot create {target}: {e}")))?;
        if let Err(e) = store.backup_to(file) {
            let _ = std::fs::remove_file(file);
            return Err(e.into());
        }
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| OpError::Failed(format!("cannot chmod {target}: {e}")))
    })
}

/// One finding of [`check`]: fine, or a problem to fix, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub message: String,
}

/// Looks at the data directory, the database (read-only: nothing is migrated or created), the
/// signing keys and the issuer the server runs with, and says what it found.
pub fn check(data_dir: &Path, issuer: Option<&str>) -> Vec<Check> {
    let mut lines = Vec::new();
    let mut report = |ok: bool, message: String| lines.push(Check { ok, message });
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);

    match mode(data_dir) {
        Ok(m) if m & 0o077 == 0 => report(
            true,
            format!("data directory {} (mode {m:o})", data_dir.display()),
        ),
        Ok(m) => report(
            false,
            format!(
                "data directory {} is mode {m:o}: others can enter it; chmod 700",
                data_dir.display()
            ),
        ),
        Err(e) => report(false, format!("data directory {}: {e}", data_dir.display())),
    }
    let db = data_dir.join(DB_FILE);
    match mode(&db) {
        Ok(m) if m & 0o077 == 0 => report(true, format!("database {} (mode {m:o})", db.display())),
        Ok(m) => report(
            false,
            format!(
                "database {} is mode {m:o}: it holds private keys; chmod 600",
                db.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report(false, super::installation::missing_database(data_dir))
        }
        Err(e) => report(false, format!("database {}: {e}", db.display())),
    }
    let mut stored_issuer = None;
    if db.exists() {
        match Store::inspect(&db) {
            Ok(info) => {
                stored_issuer = info.issuer.clone();
                match info.schema_version {
                    v if v > SCHEMA_VERSION => report(
                        false,
                        format!(
                            "schema version {v} is newer than this latchkey ({SCHEMA_VERSION}): run the newer binary"
                        ),
                    ),
                    v if v < SCHEMA_VERSION => report(
                        true,
                        format!(
                            "schema version {v}: {} migration(s) will be applied at the next start",
                            SCHEMA_VERSION - v
                        ),
                    ),
                    v => report(true, format!("schema version {v} (current)")),
                }
                let now = crate::timefmt::now();
                for alg in ["ES256", "RS256"] {
                    match info
                        .keys
                        .iter()
                        .find(|k| k.alg == alg && k.status == "active")
                    {
                        Some(k) => report(
                            true,
                            format!(
                                "active {alg} key {} ({} days old)",
                                k.kid,
                                (now - k.created_at) / 86_400
                            ),
                        ),
                        None => report(
                            true,
                            format!("no active {alg} key yet: the next start generates one"),
                        ),
                    }
                }
                let next = info.keys.iter().filter(|k| k.status == "next").count();
                if next > 0 {
                    report(
                        true,
                        format!(
                            "{next} new key(s) published, not yet signing (a rotation is pending)"
                        ),
                    );
                }
                let retiring = info.keys.iter().filter(|k| k.status == "retiring").count();
                if retiring > 0 {
                    report(
                        true,
                        format!("{retiring} previous key(s) still published after a rotation"),
                    );
                }
            }
            Err(e) => report(false, format!("cannot read the database: {e}")),
        }
    }
    // `--issuer` on check is what the server is (or will be) started with: compared against
    // the stored one, which a start with another would refuse.
    if let (Some(given), Some(stored)) = (issuer, stored_issuer.as_deref())
        && let Ok((iss, _)) = crate::config::validate_issuer(given)
        && iss != stored
    {
        report(
            false,
            format!(
                "issuer {iss} (--issuer) differs from the stored issuer {stored}: serve refuses it unless started with --change-issuer, which breaks every app's configuration"
            ),
        );
    }
    let from_store = issuer.is_none() && stored_issuer.is_some();
    let stored = if from_store { "stored " } else { "" };
    match issuer.or(stored_issuer.as_deref()) {
        None => report(
            false,
            "no issuer set (LATCHKEY_ISSUER or --issuer): the default http://<listen> only suits loopback testing".into(),
        ),
        Some(i) => match crate::config::validate_issuer(i) {
            Ok((iss, None)) if iss.starts_with("https://") => {
                report(true, format!("{stored}issuer {iss} (https)"))
            }
            Ok((iss, None)) => report(
                true,
                format!("{stored}issuer {iss} (plain http, loopback only)"),
            ),
            Ok((iss, Some(_))) => report(
                false,
                format!("{stored}issuer {iss} is plain http on a network address: use https"),
            ),
            Err(e) => report(false, e.to_string()),
        },
    }
    lines
}
