//! Forward-auth rule operations: add, list, remove, move, and decide a URL as forward auth
//! would. Rules are evaluated in order; the first rule matching the request's host (and port),
//! path and method decides — wildcard rules included, in their place; no match is a denial.
//! What a host pattern accepts, and how a rule matches, is in [`crate::forward::rules`].
//!
//! A new rule is stored normalised: the host in its canonical form, the path with `.`/`..` and
//! repeated slashes resolved (a trailing `*` makes it a prefix, and a prefix keeps its trailing
//! `/`), the method upper-case, the scopes space-separated. Changes are audited as
//! `rule_added` (target: host and path as given), `rule_removed` (the id) and `rule_moved`
//! (`ID -> PLACE`).
//!
//! A rule names a user by `sub` and a group by id: it follows them through a rename, and a new
//! user who takes an old name gets nothing the old name had. `--allow-user` needs the user to
//! exist; `--allow-group` creates a group that does not exist yet. Listing shows current names
//! ([`Rule::subject`]).

use super::{Actor, OpError, audited};
use crate::accounts::validate_group;
use crate::forward::proxy::raw_path_of_url;
use crate::forward::rules::{
    Action, HOST_FORMS, HostPattern, Rule, RuleSet, ambiguous_path, normalize_path,
};
use crate::oauth::scope;
use crate::store::{Store, StoreError};

/// A rule to add, as given.
#[derive(Debug, Clone)]
pub struct NewRule {
    /// A host name, `*.suffix`, or an IPv4/IPv6 address, each optionally with `:PORT`.
    pub host: String,
    /// An exact path, or a prefix ending in `*`.
    pub path: String,
    /// Only for this method; `None` for any.
    pub method: Option<String>,
    pub action: Action,
    /// Scopes that let API keys and access tokens in too (space-separated).
    pub scope: Option<String>,
    /// People must have signed in with a second factor.
    pub require_mfa: bool,
}

/// The stored name of an action and what the action holds (a new rule's group or user name,
/// a loaded rule's group name or `sub`: see [`Action`]).
pub fn action_parts(action: &Action) -> (&'static str, Option<&str>) {
    match action {
        Action::AllowGroup(g) => ("allow_group", Some(g)),
        Action::AllowUser(u) => ("allow_user", Some(u)),
        Action::AllowAnyUser => ("allow_any_user", None),
        Action::Bypass => ("bypass", None),
        Action::Deny => ("deny", None),
    }
}

/// Adds a rule at the end of the list; returns its id.
pub fn add(store: &mut Store, actor: &Actor, rule: NewRule) -> Result<i64, OpError> {
    let target = format!("{}{}", rule.host, rule.path);
    audited(store, actor, "rule_added", &target, |store| {
        let host = HostPattern::parse(&rule.host)
            .map_err(|why| {
                OpError::Invalid(format!("--host {:?}: {why}; {HOST_FORMS}", rule.host))
            })?
            .to_string();
        if !rule.path.starts_with('/')
            || rule
                .path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(OpError::Invalid(
                "--path must start with / and have no spaces".into(),
            ));
        }
        let path = match rule.path.strip_suffix('*') {
            Some(prefix) => format!("{}*", normalize_prefix(prefix)),
            None => normalize_path(&rule.path),
        };
        let method = rule.method.map(|m| m.to_ascii_uppercase());
        if method
            .as_ref()
            .is_some_and(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(OpError::Invalid(
                "--method must be a method name like GET".into(),
            ));
        }
        // The rule names the user by `sub` and the group by id, so it follows them through a
        // rename and never admits a newcomer who takes an old name.
        let now = crate::timefmt::now();
        let subject = match &rule.action {
            Action::AllowGroup(g) => {
                validate_group(g).map_err(OpError::Invalid)?;
                super::groups::warn_if_new(store, std::slice::from_ref(g), "the rule")?;
                Some(store.ensure_group(g, now)?.to_string())
            }
            Action::AllowUser(u) => Some(
                store
                    .user_by_name(u)?
                    .ok_or_else(|| {
                        OpError::Invalid(format!(
                            "no user named {u:?}: add the user first (a rule names a person, \
                             not a name)"
                        ))
                    })?
                    .id,
            ),
            _ => None,
        };
        let scope = match rule.scope {
            Some(s) => Some(
                scope::parse(&s)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| OpError::Invalid("--scope needs valid scope names".into()))?
                    .join(" "),
            ),
            None => None,
        };
        let (action, _) = action_parts(&rule.action);
        Ok(store.insert_rule(
            &host,
            &path,
            method.as_deref(),
            action,
            subject.as_deref(),
            scope.as_deref(),
            rule.require_mfa,
            now,
        )?)
    })
}

/// A prefix normalised as a path, keeping the trailing `/` that makes `/app/*` not match
/// `/application`.
fn normalize_prefix(prefix: &str) -> String {
    let n = normalize_path(prefix);
    if prefix.ends_with('/') && !n.ends_with('/') {
        format!("{n}/")
    } else {
        n
    }
}

/// The rules in evaluation order.
pub fn list(store: &Store) -> Result<Vec<Rule>, OpError> {
    Ok(RuleSet::load(store)?.rules().to_vec())
}

fn no_rule(id: i64) -> impl FnOnce(StoreError) -> OpError {
    move |e| match e {
        StoreError::NotFound => OpError::NotFound(format!("no rule {id}")),
        other => OpError::Store(other),
    }
}

/// Removes a rule.
pub fn remove(store: &mut Store, actor: &Actor, id: i64) -> Result<(), OpError> {
    audited(store, actor, "rule_removed", &id.to_string(), |store| {
        store.remove_rule(id).map_err(no_rule(id))
    })
}

/// Moves a rule to 1-based place `to` in the order (clamped to the list); returns the place it
/// ended up in.
pub fn move_rule(store: &mut Store, actor: &Actor, id: i64, to: usize) -> Result<usize, OpError> {
    audited(
        store,
        actor,
        "rule_moved",
        &format!("{id} -> {to}"),
        |store| store.move_rule(id, to).map_err(no_rule(id)),
    )
}

/// A request to decide as forward auth would.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The URL a browser would open.
    pub url: String,
    /// Decide for this user; `None` for someone not signed in.
    pub user: Option<String>,
    /// The request method.
    pub method: String,
}

/// How forward auth decides a [`Probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The raw path is ambiguous: refused before any rule is consulted.
    Ambiguous { path: String, why: &'static str },
    /// No rule matches: denied. `shown` is the host, with the port when the URL names one.
    NoMatch {
        method: String,
        shown: String,
        path: String,
    },
    /// This rule (as [`Rule::describe`] puts it) decided.
    Decided { rule: String, verdict: Verdict },
}

/// What the deciding rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A `--bypass` rule: no sign-in needed.
    Bypass,
    /// A `--deny` rule.
    Deny,
    /// An allow rule, asked for someone not signed in.
    SignInRequired,
    /// The user is disabled.
    Disabled(String),
    /// The user is admitted.
    Allow(String),
    /// The user is not admitted by the rule.
    NotAdmitted(String),
}

/// Decides a URL as forward auth would, and says which rule decided.
pub fn test(store: &Store, probe: &Probe) -> Result<Decision, OpError> {
    let url = &probe.url;
    let parsed =
        url::Url::parse(url).map_err(|_| OpError::Invalid(format!("{url:?} is not a URL")))?;
    let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(0);
    let rules = RuleSet::load(store)?;
    let method = probe.method.to_ascii_uppercase();
    let raw_path = raw_path_of_url(url);
    if let Some(why) = ambiguous_path(raw_path) {
        return Ok(Decision::Ambiguous {
            path: raw_path.to_string(),
            why,
        });
    }
    let Some(rule) = rules.find(&host, port, parsed.path(), &method) else {
        let shown = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        return Ok(Decision::NoMatch {
            method,
            shown,
            path: parsed.path().to_string(),
        });
    };
    let who = match &probe.user {
        Some(name) => Some(
            store
                .user_by_name(name)?
                .ok_or_else(|| OpError::Invalid(format!("no user named {name:?}")))?,
        ),
        None => None,
    };
    let verdict = match (&rule.action, &who) {
        (Action::Bypass, _) => Verdict::Bypass,
        (Action::Deny, _) => Verdict::Deny,
        (_, None) => Verdict::SignInRequired,
        (_, Some(u)) if u.disabled => Verdict::Disabled(u.username.clone()),
        (_, Some(u)) if rule.admits_user(u) => Verdict::Allow(u.username.clone()),
        (_, Some(u)) => Verdict::NotAdmitted(u.username.clone()),
    };
    Ok(Decision::Decided {
        rule: rule.describe(),
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            name: "cli:test".into(),
            address: String::new(),
        }
    }

    fn rule(host: &str, path: &str, action: Action) -> NewRule {
        NewRule {
            host: host.into(),
            path: path.into(),
            method: None,
            action,
            scope: None,
            require_mfa: false,
        }
    }

    /// (action, target, outcome) of every audit event, oldest first.
    fn audit(store: &Store) -> Vec<(String, String, String)> {
        store
            .audit_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.target, e.outcome))
            .collect()
    }

    #[test]
    fn rules_are_stored_normalised_and_every_change_is_audited_refused_ones_too() {
        let mut store = Store::open_in_memory().unwrap();
        let a = actor();
        let mut r = rule(
            "App.Test:8080",
            "/a/./b//c/*",
            Action::AllowGroup("admins".into()),
        );
        r.method = Some("post".into());
        r.scope = Some("app:read  app:write".into());
        let first = add(&mut store, &a, r).unwrap();
        let second = add(
            &mut store,
            &a,
            rule("*.home.test", "/health", Action::Bypass),
        )
        .unwrap();
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[0].host.as_str(), listed[0].path.as_str()),
            ("app.test:8080", "/a/b/c/*")
        );
        assert_eq!(listed[0].method.as_deref(), Some("POST"));
        assert_eq!(
            listed[0].scope,
            Some(vec!["app:read".to_string(), "app:write".to_string()])
        );
        assert_eq!(listed[1].action, Action::Bypass);
        // Refused: nothing is added, and the refusal is recorded.
        for (bad, why) in [
            (rule("-bad-", "/", Action::Deny), "--host"),
            (rule("app.test", "x", Action::Deny), "--path"),
            (
                rule("app.test", "/", Action::AllowGroup("a b".into())),
                "group",
            ),
        ] {
            match add(&mut store, &a, bad) {
                Err(OpError::Invalid(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{why}: {other:?}"),
            }
        }
        assert_eq!(list(&store).unwrap().len(), 2);
        assert_eq!(move_rule(&mut store, &a, second, 1).unwrap(), 1);
        assert_eq!(list(&store).unwrap()[0].id, second);
        assert!(matches!(
            move_rule(&mut store, &a, 99, 1),
            Err(OpError::NotFound(m)) if m == "no rule 99"
        ));
        remove(&mut store, &a, first).unwrap();
        assert!(matches!(
            remove(&mut store, &a, first),
            Err(OpError::NotFound(m)) if m == format!("no rule {first}")
        ));
        let ev = |action: &str, target: String, outcome: &str| {
            (action.to_string(), target, outcome.to_string())
        };
        assert_eq!(
            audit(&store),
            vec![
                ev("rule_added", "App.Test:8080/a/./b//c/*".into(), "ok"),
                ev("rule_added", "*.home.test/health".into(), "ok"),
                ev("rule_added", "-bad-/".into(), "failed"),
                ev("rule_added", "app.testx".into(), "failed"),
                ev("rule_added", "app.test/".into(), "failed"),
                ev("rule_moved", format!("{second} -> 1"), "ok"),
                ev("rule_moved", "99 -> 1".into(), "failed"),
                ev("rule_removed", first.to_string(), "ok"),
                ev("rule_removed", first.to_string(), "failed"),
            ]
        );
    }

    #[test]
    fn a_probe_names_the_deciding_rule_and_the_verdict() {
        let mut store = Store::open_in_memory().unwrap();
        let a = actor();
        add(
            &mut store,
            &a,
            rule("app.test", "/public/*", Action::Bypass),
        )
        .unwrap();
        add(&mut store, &a, rule("app.test", "/*", Action::AllowAnyUser)).unwrap();
        let probe = |url: &str, user: Option<&str>| Probe {
            url: url.into(),
            user: user.map(String::from),
            method: "get".into(),
        };
        let decided = |d: Decision| match d {
            Decision::Decided { verdict, .. } => verdict,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            decided(test(&store, &probe("https://app.test/public/x", None)).unwrap()),
            Verdict::Bypass
        );
        assert_eq!(
            decided(test(&store, &probe("https://app.test/admin", None)).unwrap()),
            Verdict::SignInRequired
        );
        assert_eq!(
            test(&store, &probe("http://other.test:81/x", None)).unwrap(),
            Decision::NoMatch {
                method: "GET".into(),
                shown: "other.test:81".into(),
                path: "/x".into()
            }
        );
        assert!(matches!(
            test(&store, &probe("https://app.test/a;b", None)).unwrap(),
            Decision::Ambiguous { .. }
        ));
        assert!(matches!(
            test(&store, &probe("not a url", None)),
            Err(OpError::Invalid(_))
        ));
        assert!(matches!(
            test(&store, &probe("https://app.test/", Some("nobody"))),
            Err(OpError::Invalid(m)) if m.contains("nobody")
        ));
        // Probes change nothing and are not audited.
        assert_eq!(audit(&store).len(), 2);
    }
}
