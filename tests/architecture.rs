//! The architecture's rules (which part may never use which), checked on the source text so a
//! change that breaks one fails CI instead of waiting for a reviewer:
//!
//! - `store/` knows no HTTP, no protocol and no CLI; only `store/` holds SQL;
//! - `jwt/` is pure: no store, no HTTP;
//! - protocol (`oauth/`, `oidc/`, `forward/`, `apikeys/`, `accounts/`) and the operations layer
//!   (`ops/`) know no CLI; `ui/` renders values and fetches nothing;
//! - only `http/` and the server know sockets; only `cli/` prints;
//! - settings are read by enum, never by a string key.
//!
//! Comment lines and `#[cfg(test)]` modules are not checked: tests may print, and docs may name
//! what the code must not do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, as (path relative to `src/`, code lines).
fn sources() -> Vec<(String, Vec<(usize, String)>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap();
            (rel, code_lines(&text))
        })
        .collect()
}

/// The lines of a file that are code: without comment lines, and without everything from a
/// `#[cfg(test)]` attribute on (test modules sit at the end of a file here; a test-only file
/// such as `store/conformance.rs` is declared `#[cfg(test)]` and starts with its attribute in
/// the parent, so it is skipped by name in [`is_test_only`]).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// Files compiled only for tests.
fn is_test_only(rel: &str) -> bool {
    rel == "store/conformance.rs"
}

/// Fails listing every line of a file matching `in_scope` that contains one of `needles`.
fn forbid(rule: &str, in_scope: impl Fn(&str) -> bool, needles: &[&str]) {
    let mut hits = Vec::new();
    for (rel, lines) in sources() {
        if !in_scope(&rel) || is_test_only(&rel) {
            continue;
        }
        for (n, line) in &lines {
            if let Some(needle) = needles.iter().find(|s| line.contains(*s)) {
                hits.push(format!("src/{rel}:{n}: {needle:?} in {}", line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "{rule}:\n{}", hits.join("\n"));
}

fn under(prefixes: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |rel| prefixes.iter().any(|p| rel.starts_with(p))
}

fn outside(prefixes: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |rel| !prefixes.iter().any(|p| rel.starts_with(p))
}

#[test]
fn the_store_knows_no_http_protocol_or_cli() {
    forbid(
        "store/ takes and returns typed rows",
        under(&["store/"]),
        &[
            "crate::http",
            "crate::oauth",
            "crate::oidc",
            "crate::cli",
            "crate::forward",
            "crate::ui",
            "crate::ops",
            "crate::server",
            "crate::app",
        ],
    );
}

#[test]
fn only_the_store_holds_sql() {
    forbid(
        "SQL lives in store/",
        outside(&["store/"]),
        &[
            "rusqlite",
            ".execute(",
            ".execute_batch(",
            ".prepare(",
            ".prepare_cached(",
            ".query_row(",
        ],
    );
}

#[test]
fn signing_is_pure() {
    forbid(
        "jwt/ is handed key material and never touches the store or HTTP",
        under(&["jwt/"]),
        &["crate::store", "crate::http", "crate::app", "crate::ops"],
    );
}

#[test]
fn protocol_and_operations_know_no_cli() {
    forbid(
        "only main and cli/ use the CLI",
        outside(&["cli/", "main.rs"]),
        &["crate::cli", "clap::"],
    );
}

#[test]
fn templates_fetch_nothing() {
    forbid(
        "ui/ renders values it is handed",
        under(&["ui/"]),
        &["crate::store", "crate::app", "crate::ops"],
    );
}

#[test]
fn only_http_and_the_server_know_sockets() {
    forbid(
        "sockets belong to http/ and the server",
        outside(&["http/", "server"]),
        &["TcpStream", "TcpListener", "UdpSocket", "socket2::"],
    );
}

#[test]
fn only_the_cli_prints() {
    forbid(
        "only cli/ prints (the server logs)",
        outside(&["cli/"]),
        &["println!", "print!(", "eprintln!", "eprint!(", "dbg!("],
    );
}

#[test]
fn settings_are_read_by_enum() {
    forbid(
        "a setting is named by config::Setting, never by a string",
        |_| true,
        &[
            "Settings::get(\"",
            ".get(\"http.",
            ".get(\"token.",
            ".get(\"session.",
        ],
    );
}

/// The checker itself: a rule that can never fire would let every break through.
#[test]
fn the_checker_sees_code_and_skips_comments_and_tests() {
    let lines = code_lines("// println!\nlet x = 1;\n#[cfg(test)]\nmod tests { println!(); }\n");
    assert_eq!(lines, vec![(2, "let x = 1;".to_string())]);
    let all = sources();
    let rels: Vec<&str> = all.iter().map(|(r, _)| r.as_str()).collect();
    for expected in [
        "cli/mod.rs",
        "store/mod.rs",
        "jwt/mod.rs",
        "ops/mod.rs",
        "http/probe.rs",
    ] {
        assert!(rels.contains(&expected), "{expected} not found in {rels:?}");
    }
    // The CLI prints: the print rule would fire on it if it were in scope.
    let cli_prints = all
        .iter()
        .filter(|(r, _)| r.starts_with("cli/"))
        .flat_map(|(_, l)| l)
        .any(|(_, l)| l.contains("println!"));
    assert!(cli_prints);
}

#[test]
fn error_codes_are_named_not_spelled() {
    const CODES: &[&str] = &[
        "\"invalid_request\"",
        "\"invalid_client\"",
        "\"invalid_grant\"",
        "\"unauthorized_client\"",
        "\"unsupported_grant_type\"",
        "\"invalid_scope\"",
        "\"access_denied\"",
        "\"unsupported_response_type\"",
        "\"login_required\"",
        "\"consent_required\"",
        "\"interaction_required\"",
        "\"request_not_supported\"",
        "\"request_uri_not_supported\"",
        "\"registration_not_supported\"",
        "\"invalid_token\"",
        "\"insufficient_scope\"",
        "\"server_error\"",
        "\"temporarily_unavailable\"",
        "\"rate_limited\"",
    ];
    forbid(
        "an OAuth error is an oauth::error::ErrorCode, spelled only in its module",
        |rel| rel != "oauth/error.rs",
        CODES,
    );
}

#[test]
fn cli_output_survives_a_closed_pipe() {
    // `eprintln!` (standard error) is fine; `println!`/`print!` panic on a closed pipe.
    let mut hits = Vec::new();
    for (rel, lines) in sources() {
        if !rel.starts_with("cli/") {
            continue;
        }
        for (n, line) in &lines {
            let stdout_only = line.replace("eprintln!(", "").replace("eprint!(", "");
            if stdout_only.contains("println!(") || stdout_only.contains("print!(") {
                hits.push(format!("src/{rel}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "cli/ writes its output with out!, which ends quietly on a closed pipe:\n{}",
        hits.join("\n")
    );
}
