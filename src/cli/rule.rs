//! `latchkey rule`: forward-auth access rules. Evaluated in order; the first rule matching the
//! request's host (and port), path and method decides — wildcard rules included, in their
//! place; no match is a denial. The rules themselves are in [`crate::ops::rules`]; what
//! `--host` accepts: [`crate::forward::rules`].

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};

use crate::error::Error;
use crate::forward::rules::Action;
use crate::ops::Actor;
use crate::ops::rules::{self, Decision, NewRule, Probe, Verdict};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum RuleCmd {
    /// Add a rule at the end of the list
    Add(AddArgs),
    /// List rules in evaluation order
    List {
        /// Print JSON instead of a list
        #[arg(long)]
        json: bool,
    },
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
}

pub fn run(store: &mut Store, cmd: RuleCmd) -> Result<(), Error> {
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
            };
            let id = rules::add(store, &actor, rule)?;
            out!("added rule {id}");
        }
        RuleCmd::List { json } => {
            let list = rules::list(store)?;
            if json {
                let rows: Vec<Value> = list
                    .iter()
                    .map(|r| {
                        let (action, _) = rules::action_parts(&r.action);
                        json!({"id": r.id, "host": r.host, "path": r.path, "method": r.method,
                               "action": action, "subject": r.subject, "scope": r.scope.as_ref().map(|s| s.join(" "))})
                    })
                    .collect();
                super::print_json(&Value::Array(rows));
            } else if list.is_empty() {
                out!("no rules: forward auth denies everything");
            } else {
                for (i, r) in list.iter().enumerate() {
                    out!("{:>3}. {}", i + 1, r.describe());
                }
            }
        }
        RuleCmd::Remove { id } => {
            rules::remove(store, &actor, id)?;
            out!("removed rule {id}");
        }
        RuleCmd::Move { id, to } => {
            let place = rules::move_rule(store, &actor, id, to)?;
            out!("rule {id} is now number {place}");
        }
        RuleCmd::Test { url, user, method } => {
            match rules::test(store, &Probe { url, user, method })? {
                Decision::Ambiguous { path, why } => out!(
                    "DENY: the path {path:?} is ambiguous ({why}); forward auth refuses it \
                     before any rule"
                ),
                Decision::NoMatch {
                    method,
                    shown,
                    path,
                } => out!("DENY: no rule matches {method} {shown}{path}"),
                Decision::Decided { rule, verdict } => {
                    let verdict = match verdict {
                        Verdict::Bypass => "ALLOW (no sign-in needed)".to_string(),
                        Verdict::Deny => "DENY".to_string(),
                        Verdict::SignInRequired => "SIGN-IN REQUIRED".to_string(),
                        Verdict::Disabled(u) => format!("DENY ({u} is disabled)"),
                        Verdict::Allow(u) => format!("ALLOW {u}"),
                        Verdict::NotAdmitted(u) => format!("DENY ({u} is not admitted)"),
                    };
                    out!("{verdict}: decided by rule {rule}");
                }
            }
        }
    }
    Ok(())
}
