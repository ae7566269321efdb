//! Scopes (RFC 6749 §3.3): space-delimited scope-tokens of
//! `%x21 / %x23-5B / %x5D-7E` (printable ASCII except space, `"` and `\`).

/// True for a valid scope-token.
pub fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Parses a scope parameter into distinct tokens, in order. `None` if any token is invalid.
/// Runs of spaces are tolerated (clients join lists carelessly).
pub fn parse(raw: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in raw.split(' ').filter(|t| !t.is_empty()) {
        if !valid_token(t) {
            return None;
        }
        if !out.iter().any(|s| s == t) {
            out.push(t.to_string());
        }
    }
    Some(out)
}

/// True if every scope in `requested` is in `allowed`.
pub fn is_subset(requested: &[String], allowed: &[String]) -> bool {
    requested.iter().all(|r| allowed.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse("a b  a c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert!(parse("a\"b").is_none());
        assert!(parse("a\\b").is_none());
        assert!(parse("a\tb").is_none());
        assert!(parse("é").is_none());
        assert!(parse("invoices:read api/x!").is_some());
    }

    #[test]
    fn subset() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert!(is_subset(&["a".into()], &allowed));
        assert!(is_subset(&[], &allowed));
        assert!(!is_subset(&["c".into()], &allowed));
    }
}
