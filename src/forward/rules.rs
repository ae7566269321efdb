//! Access rules: `host` (exact), `path` (exact, or a prefix ending in `*`), optional `method`,
//! and an action. Evaluated in order; the first match decides; no match is a denial.

use crate::store::rules::RuleRow;
use crate::store::{Store, StoreError, User};

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AllowGroup(String),
    AllowUser(String),
    AllowAnyUser,
    Bypass,
    Deny,
}

/// A loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    pub host: String,
    pub path: String,
    pub method: Option<String>,
    pub action: Action,
    /// Scopes an API key or access token must hold; `None` means people only.
    pub scope: Option<Vec<String>>,
}

impl Rule {
    fn from_row(r: RuleRow) -> Option<Rule> {
        let action = match (r.action.as_str(), r.subject) {
            ("allow_group", Some(g)) => Action::AllowGroup(g),
            ("allow_user", Some(u)) => Action::AllowUser(u),
            ("allow_any_user", _) => Action::AllowAnyUser,
            ("bypass", _) => Action::Bypass,
            ("deny", _) => Action::Deny,
            _ => return None,
        };
        Some(Rule {
            id: r.id,
            host: r.host.to_ascii_lowercase(),
            path: r.path,
            method: r.method.map(|m| m.to_ascii_uppercase()),
            action,
            scope: r.scope.map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            }),
        })
    }

    /// True if the rule applies to this request (path already normalised).
    pub fn matches(&self, host: &str, path: &str, method: &str) -> bool {
        if self.host != host {
            return false;
        }
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        }
    }

    /// Who the rule lets in, in words (for `rule list` and `rule test`).
    pub fn describe(&self) -> String {
        let who = match &self.action {
            Action::AllowGroup(g) => format!("allow group {g}"),
            Action::AllowUser(u) => format!("allow user {u}"),
            Action::AllowAnyUser => "allow any signed-in user".into(),
            Action::Bypass => "bypass (no sign-in)".into(),
            Action::Deny => "deny".into(),
        };
        let scope = self
            .scope
            .as_ref()
            .map(|s| format!("; machines with scope {}", s.join(" ")))
            .unwrap_or_default();
        format!(
            "#{} {} {}{} -> {who}{scope}",
            self.id,
            self.method.as_deref().unwrap_or("*"),
            self.host,
            self.path
        )
    }

    /// Whether a signed-in user passes this rule.
    pub fn admits_user(&self, user: &User) -> bool {
        match &self.action {
            Action::AllowAnyUser => true,
            Action::AllowGroup(g) => user.groups.iter().any(|x| x == g),
            Action::AllowUser(u) => user.username.eq_ignore_ascii_case(u),
            Action::Bypass => true,
            Action::Deny => false,
        }
    }

    /// Whether a machine credential with these scopes passes this rule.
    pub fn admits_machine(&self, scopes: &[String]) -> bool {
        match (&self.action, &self.scope) {
            (Action::Deny, _) => false,
            (Action::Bypass, _) => true,
            (_, Some(needed)) => needed.iter().all(|s| scopes.contains(s)),
            (_, None) => false,
        }
    }
}

/// Every rule in order.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Loads the rules.
    pub fn load(store: &Store) -> Result<RuleSet, StoreError> {
        Ok(RuleSet {
            rules: store
                .rules()?
                .into_iter()
                .filter_map(Rule::from_row)
                .collect(),
        })
    }

    /// The rule deciding a request: the first that matches.
    pub fn find(&self, host: &str, path: &str, method: &str) -> Option<&Rule> {
        let path = normalize_path(path);
        self.rules.iter().find(|r| r.matches(host, &path, method))
    }

    /// True if some rule protects this host (only such hosts are valid return targets).
    pub fn protects(&self, host: &str) -> bool {
        self.rules.iter().any(|r| r.host == host)
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// The path as the app behind the proxy will see it: percent-escapes decoded, repeated slashes
/// collapsed, `.` and `..` segments resolved — so `/%61dmin/`, `//admin` and `/x/../admin` all
/// meet a rule for `/admin/*`.
pub fn normalize_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !out.is_empty();
    let mut p = format!("/{}", out.join("/"));
    if trailing {
        p.push('/');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, method: Option<&str>) -> Rule {
        Rule {
            id: 1,
            host: "app.example".into(),
            path: path.into(),
            method: method.map(String::from),
            action: Action::Deny,
            scope: None,
        }
    }

    #[test]
    fn path_patterns() {
        let r = rule("/admin/*", None);
        assert!(r.matches("app.example", "/admin/", "GET"));
        assert!(r.matches("app.example", "/admin/x", "POST"));
        assert!(!r.matches("app.example", "/admin", "GET"));
        assert!(!r.matches("other.example", "/admin/x", "GET"));
        let exact = rule("/health", Some("GET"));
        assert!(exact.matches("app.example", "/health", "GET"));
        assert!(!exact.matches("app.example", "/health", "POST"));
        assert!(!exact.matches("app.example", "/health/x", "GET"));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize_path("/%61dmin/x"), "/admin/x");
        assert_eq!(normalize_path("//admin//x"), "/admin/x");
        assert_eq!(normalize_path("/x/../admin/"), "/admin/");
        assert_eq!(normalize_path("/../../admin"), "/admin");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
    }
}
