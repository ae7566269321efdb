//! `latchkey rule`: forward-auth access rules. Evaluated in order; the first rule matching the
//! request's host (and port), path and method decides — wildcard rules included, in their
//! place; no match is a denial. The rules themselves are in [`crate::ops::rules`]; what
//! `--host` accepts: [`crate::forward::rules`].

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};

use crate::error::Error;
use crate::forward::rules::Action;
use crate::ops::rules::{self, Decision, NewRule, Probe, Verdict};
use crate::ops::{Actor, OpError, view};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum RuleCmd {
    /// Add a rule at the end of the list
    Add(AddArgs),
    /// List rules in evaluation order
    List,
    /// Remove a rule
    Remove {
        /// The rule's id (as `rule list` shows it)
        id: i64,
    },
    /// Move a rule to a place in the order (1 = first)
    Move {
        /// The rule's id (as `rule list` shows it)
        id: i64,
        /// Its new place in the order (1 = first; beyond the end = last)
        to: usize,
    },
    /// Show which rule decides a URL, and why
    Test {
        /// The URL a browser would open, e.g. https://grafana.home.example.org/admin/
        url: String,
        /// Decide for this user (default: someone not signed in)
        #[arg(long)]
        user: Option<String>,
        /// The request method
        #[arg(long, default_value = "GET")]
        method: String,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["allow_group", "allow_user", "allow_any_user", "bypass", "deny"])))]
pub struct AddArgs {
    /// The host: grafana.home.example.org, *.home.example.org (subdomains only), 192.168.1.5 or
    /// [fd00::5], each optionally with :PORT (then only that port matches)
    #[arg(long)]
    host: String,
    /// An exact path, or a prefix ending in '*' (default: every path)
    #[arg(long, default_value = "/*")]
    path: String,
    /// Only for this method (default: any)
    #[arg(long)]
    method: Option<String>,
    /// Members of this group get in
    #[arg(long)]
    allow_group: Option<String>,
    /// This user gets in (the rule names the person: it follows a rename)
    #[arg(long)]
    allow_user: Option<String>,
    /// Every signed-in user gets in
    #[arg(long)]
    allow_any_user: bool,
    /// No sign-in needed (e.g. a health check path)
    #[arg(long)]
    bypass: bool,
    /// Nobody gets in
    #[arg(long)]
    deny: bool,
    /// Let API keys and access tokens holding these scopes in too (space-separated)
    #[arg(long)]
    scope: Option<String>,
    /// People must have signed in with a second factor (TOTP or a passkey)
    #[arg(long)]
    require_mfa: bool,
}

/// The rule with this id in its one shape, with its place in the order.
fn rule_view(store: &Store, id: i64) -> Result<Value, Error> {
    let list = rules::list(store)?;
    let (i, r) = list
        .iter()
        .enumerate()
        .find(|(_, r)| r.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no rule {id}")))?;
    Ok(view::rule(r, i + 1))
}

pub fn run(store: &mut Store, cmd: RuleCmd, json: bool) -> Result<(), Error> {
    let actor = Actor::cli();
    match cmd {
        RuleCmd::Add(a) => {
            let action = if let Some(g) = a.allow_group {
                Action::AllowGroup(g)
            } else if let Some(u) = a.allow_user {
                Action::AllowUser(u)
            } else if a.allow_any_user {
                Action::AllowAnyUser
            } else if a.bypass {
                Action::Bypass
            } else {
                Action::Deny
            };
            let rule = NewRule {
                host: a.host,
                path: a.path,
                method: a.method,
                action,
                scope: a.scope,
                require_mfa: a.require_mfa,
            };
            let id = rules::add(store, &actor, rule)?;
            if json {
                super::print_json(&rule_view(store, id)?);
            } else {
                out!("added rule {id}");
            }
        }
        RuleCmd::List => {
            let list = rules::list(store)?;
            if json {
                let rows = list.iter().enumerate().map(|(i, r)| view::rule(r, i + 1));
                super::print_json(&Value::Array(rows.collect()));
            } else if list.is_empty() {
                out!("no rules: forward auth denies everything");
            } else {
                for (i, r) in list.iter().enumerate() {
                    out!("{:>3}. {}", i + 1, r.describe());
                }
            }
        }
        RuleCmd::Remove { id } => {
            // Shown as it was, before it goes (a missing rule is the operation's error).
            let before = rule_view(store, id).ok();
            rules::remove(store, &actor, id)?;
            match before {
                Some(v) if json => super::print_json(&v),
                _ => out!("removed rule {id}"),
            }
        }
        RuleCmd::Move { id, to } => {
            let place = rules::move_rule(store, &actor, id, to)?;
            if json {
                super::print_json(&rule_view(store, id)?);
            } else {
                out!("rule {id} is now number {place}");
            }
        }
        RuleCmd::Test { url, user, method } => {
            // (decision, the deciding rule, the line a person reads)
            let (decision, rule, line) = match rules::test(store, &Probe { url, user, method })? {
                Decision::Ambiguous { path, why } => (
                    "deny",
                    None,
                    format!(
                        "DENY: the path {path:?} is ambiguous ({why}); forward auth refuses it \
                         before any rule"
                    ),
                ),
                Decision::NoMatch {
                    method,
                    shown,
                    path,
                } => (
                    "deny",
                    None,
                    format!("DENY: no rule matches {method} {shown}{path}"),
                ),
                Decision::Decided { rule, verdict } => {
                    let (decision, verdict) = match verdict {
                        Verdict::Bypass => ("allow", "ALLOW (no sign-in needed)".to_string()),
                        Verdict::Deny => ("deny", "DENY".to_string()),
                        Verdict::SignInRequired => {
                            ("sign_in_required", "SIGN-IN REQUIRED".to_string())
                        }
                        Verdict::Disabled(u) => ("deny", format!("DENY ({u} is disabled)")),
                        Verdict::Allow(u) => ("allow", format!("ALLOW {u}")),
                        Verdict::NotAdmitted(u) => ("deny", format!("DENY ({u} is not admitted)")),
                    };
                    let line = format!("{verdict}: decided by rule {rule}");
                    (decision, Some(rule), line)
                }
            };
            if json {
                super::print_json(&json!({"decision": decision, "rule": rule, "message": line}));
            } else {
                out!("{line}");
            }
        }
    }
    Ok(())
}
