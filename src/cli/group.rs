//! `latchkey group`: groups as objects — their members, a description, and the forward-auth
//! rules and clients that name them. The operations are in [`crate::ops::groups`].

use clap::Subcommand;
use serde_json::{Value, json};

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::groups::{self, GroupInfo};
use crate::store::{Group, Store};
use crate::timefmt::rfc3339;

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List groups with their members and what names them
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one group: description, members, and the rules and clients that name it
    Show {
        /// The group
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Add a group (adding a user to a group, or naming it in a rule or client, also does)
    Add {
        /// The group's name
        name: String,
        /// What the group is for
        #[arg(long, default_value = "")]
        description: String,
        /// Print the group as JSON
        #[arg(long)]
        json: bool,
    },
    /// Rename a group; its members, rules and clients stay with it
    Rename {
        /// The group
        name: String,
        /// Its new name
        new_name: String,
    },
    /// Change a group's description
    Describe {
        /// The group
        name: String,
        /// What the group is for ("" clears it)
        description: String,
    },
    /// Remove a group and its memberships (a rule or client naming it needs --yes)
    Remove {
        /// The group
        name: String,
        /// Remove it even if rules or clients name it (they then admit nobody through it)
        #[arg(long)]
        yes: bool,
    },
}

fn describe_group(g: &Group) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "created_at": g.created_at,
    })
}

fn describe(i: &GroupInfo) -> Value {
    let mut v = describe_group(&i.group);
    if let Some(o) = v.as_object_mut() {
        o.insert("members".into(), json!(i.members));
        o.insert(
            "rules".into(),
            json!(i.rules.iter().map(|r| r.id).collect::<Vec<_>>()),
        );
        o.insert(
            "clients".into(),
            json!(i.clients.iter().map(|c| &c.client_id).collect::<Vec<_>>()),
        );
    }
    v
}

fn or_dash(v: Vec<String>) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

pub fn run(store: &mut Store, cmd: GroupCmd) -> Result<(), Error> {
    let actor = Actor::cli();
    match cmd {
        GroupCmd::List { json } => {
            let all = groups::list(store)?;
            if json {
                super::print_json(&Value::Array(all.iter().map(describe).collect()));
            } else if all.is_empty() {
                out!("no groups");
            } else {
                out!(
                    "{:<24} {:>7}  {:<12} {:<20} MEMBERS",
                    "GROUP",
                    "ID",
                    "RULES",
                    "CLIENTS"
                );
                for i in all {
                    out!(
                        "{:<24} {:>7}  {:<12} {:<20} {}",
                        i.group.name,
                        i.group.id,
                        or_dash(i.rules.iter().map(|r| format!("#{}", r.id)).collect()),
                        or_dash(i.clients.iter().map(|c| c.client_id.clone()).collect()),
                        or_dash(i.members)
                    );
                }
            }
        }
        GroupCmd::Show { name, json } => {
            let i = groups::show(store, &name)?;
            if json {
                super::print_json(&describe(&i));
            } else {
                out!("group:       {}", i.group.name);
                out!("id:          {}", i.group.id);
                out!(
                    "description: {}",
                    if i.group.description.is_empty() {
                        "-"
                    } else {
                        &i.group.description
                    }
                );
                out!("created:     {}", rfc3339(i.group.created_at));
                out!("members:     {}", or_dash(i.members.clone()));
                let refs = i.references();
                out!(
                    "named by:    {}",
                    if refs.is_empty() {
                        "-".to_string()
                    } else {
                        refs.join(", ")
                    }
                );
            }
        }
        GroupCmd::Add {
            name,
            description,
            json,
        } => {
            let g = groups::add(store, &actor, &name, &description)?;
            if json {
                super::print_json(&describe_group(&g));
            } else {
                out!("added group {} (id {})", g.name, g.id);
            }
        }
        GroupCmd::Rename { name, new_name } => {
            let g = groups::update(store, &actor, &name, Some(new_name.as_str()), None)?;
            out!("renamed group {name} to {} (id {} unchanged)", g.name, g.id);
        }
        GroupCmd::Describe { name, description } => {
            let g = groups::update(store, &actor, &name, None, Some(description.as_str()))?;
            out!("described group {}", g.name);
        }
        GroupCmd::Remove { name, yes } => {
            let (g, refs) = groups::remove(store, &actor, &name, yes)?;
            if !refs.is_empty() {
                eprintln!(
                    "warning: {} was named by {}; they now admit nobody through it",
                    g.name,
                    refs.join(", ")
                );
            }
            out!("removed group {}", g.name);
        }
    }
    Ok(())
}
