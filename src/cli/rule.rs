//! `latchkey rule`: forward-auth access rules. Evaluated in order; the first rule matching the
//! request's host (and port), path and method decides — wildcard rules included, in their
//! place; no match is a denial. What `--host` accepts: [`crate::forward::rules`].

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};

use crate::accounts::validate_group;
use crate::error::Error;
use crate::forward::proxy::raw_path_of_url;
use crate::forward::rules::{
    Action, HOST_FORMS, HostPattern, RuleSet, ambiguous_path, normalize_path,
};
use crate::oauth::scope;
use crate::store::Store;
use crate::timefmt::now;

#[derive(Subcommand, Debug)]
pub enum RuleCmd {
    /// Add a rule at the end of the list
    Add(AddArgs),
    /// List rules in evaluation order
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule
    Remove { id: i64 },
    /// Move a rule to a place in the order (1 = first)
    Move { id: i64, to: usize },
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
    /// This user gets in
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
    match cmd {
        RuleCmd::Add(a) => {
            let host = HostPattern::parse(&a.host)
                .map_err(|why| Error::Usage(format!("--host {:?}: {why}; {HOST_FORMS}", a.host)))?
                .to_string();
            if !a.path.starts_with('/')
                || a.path.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::Usage(
                    "--path must start with / and have no spaces".into(),
                ));
            }
            let path = match a.path.strip_suffix('*') {
                Some(prefix) => format!("{}*", normalize_prefix(prefix)),
                None => normalize_path(&a.path),
            };
            let method = a.method.map(|m| m.to_ascii_uppercase());
            if method
                .as_ref()
                .is_some_and(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(Error::Usage(
                    "--method must be a method name like GET".into(),
                ));
            }
            let (action, subject) = if let Some(g) = a.allow_group {
                validate_group(&g).map_err(Error::Usage)?;
                ("allow_group", Some(g))
            } else if let Some(u) = a.allow_user {
                ("allow_user", Some(u))
            } else if a.allow_any_user {
                ("allow_any_user", None)
            } else if a.bypass {
                ("bypass", None)
            } else {
                ("deny", None)
            };
            let scope = match a.scope {
                Some(s) => Some(
                    scope::parse(&s)
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| Error::Usage("--scope needs valid scope names".into()))?
                        .join(" "),
                ),
                None => None,
            };
            let id = store.insert_rule(
                &host,
                &path,
                method.as_deref(),
                action,
                subject.as_deref(),
                scope.as_deref(),
                now(),
            )?;
            println!("added rule {id}");
        }
        RuleCmd::List { json } => {
            let rules = RuleSet::load(store)?;
            if json {
                let rows: Vec<Value> = rules
                    .rules()
                    .iter()
                    .map(|r| {
                        let (action, subject) = match &r.action {
                            Action::AllowGroup(g) => ("allow_group", Some(g.clone())),
                            Action::AllowUser(u) => ("allow_user", Some(u.clone())),
                            Action::AllowAnyUser => ("allow_any_user", None),
                            Action::Bypass => ("bypass", None),
                            Action::Deny => ("deny", None),
                        };
                        json!({"id": r.id, "host": r.host, "path": r.path, "method": r.method,
                               "action": action, "subject": subject, "scope": r.scope.as_ref().map(|s| s.join(" "))})
                    })
                    .collect();
                super::print_json(&Value::Array(rows));
            } else if rules.rules().is_empty() {
                println!("no rules: forward auth denies everything");
            } else {
                for (i, r) in rules.rules().iter().enumerate() {
                    println!("{:>3}. {}", i + 1, r.describe());
                }
            }
        }
        RuleCmd::Remove { id } => {
            store
                .remove_rule(id)
                .map_err(|_| Error::Msg(format!("no rule {id}")))?;
            println!("removed rule {id}");
        }
        RuleCmd::Move { id, to } => {
            let place = store
                .move_rule(id, to)
                .map_err(|_| Error::Msg(format!("no rule {id}")))?;
            println!("rule {id} is now number {place}");
        }
        RuleCmd::Test { url, user, method } => {
            let parsed =
                url::Url::parse(&url).map_err(|_| Error::Usage(format!("{url:?} is not a URL")))?;
            let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
            let port = parsed.port_or_known_default().unwrap_or(0);
            let rules = RuleSet::load(store)?;
            let method = method.to_ascii_uppercase();
            let raw_path = raw_path_of_url(&url);
            if let Some(why) = ambiguous_path(raw_path) {
                println!(
                    "DENY: the path {raw_path:?} is ambiguous ({why}); forward auth refuses it \
                     before any rule"
                );
                return Ok(());
            }
            let Some(rule) = rules.find(&host, port, parsed.path(), &method) else {
                let shown = match parsed.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                };
                println!("DENY: no rule matches {method} {shown}{}", parsed.path());
                return Ok(());
            };
            let who = match &user {
                Some(name) => Some(
                    store
                        .user_by_name(name)?
                        .ok_or_else(|| Error::Usage(format!("no user named {name:?}")))?,
                ),
                None => None,
            };
            let verdict = match (&rule.action, &who) {
                (Action::Bypass, _) => "ALLOW (no sign-in needed)".to_string(),
                (Action::Deny, _) => "DENY".to_string(),
                (_, None) => "SIGN-IN REQUIRED".to_string(),
                (_, Some(u)) if u.disabled => format!("DENY ({} is disabled)", u.username),
                (_, Some(u)) if rule.admits_user(u) => format!("ALLOW {}", u.username),
                (_, Some(u)) => format!("DENY ({} is not admitted)", u.username),
            };
            println!("{verdict}: decided by rule {}", rule.describe());
        }
    }
    Ok(())
}

fn normalize_prefix(prefix: &str) -> String {
    let n = normalize_path(prefix);
    if prefix.ends_with('/') && !n.ends_with('/') {
        format!("{n}/")
    } else {
        n
    }
}

impl RuleCmd {
    /// The audit action and target of a command that changes something.
    pub fn audit_label(&self) -> Option<(&'static str, String)> {
        match self {
            RuleCmd::Add(a) => Some(("rule_added", format!("{}{}", a.host, a.path))),
            RuleCmd::Remove { id } => Some(("rule_removed", id.to_string())),
            RuleCmd::Move { id, to } => Some(("rule_moved", format!("{id} -> {to}"))),
            RuleCmd::List { .. } | RuleCmd::Test { .. } => None,
        }
    }
}
