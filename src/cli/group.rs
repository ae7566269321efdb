//! `latchkey group`: groups as objects — their members, a description, and the forward-auth
//! rules and clients that name them. The operations are in [`crate::ops::groups`].

use clap::Subcommand;
use serde_json::Value;

use crate::error::Error;
use crate::ops::Actor;
use crate::ops::groups;
use crate::ops::view;
use crate::store::Store;
use crate::timefmt::rfc3339;

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// List groups with their members and what names them
    List,
    /// Show one group: description, members, and the rules and clients that name it
    Show {
        /// The group
        name: String,
    },
    /// Add a group (adding a user to a group, or naming it in a rule or client, also does)
    Add {
        /// The group's name
        name: String,
        /// What the group is for
        #[arg(long, default_value = "")]
        description: String,
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

/// Prints the group as it is now: its JSON shape, or the text line.
fn print_group(store: &Store, name: &str, json: bool, text: &str) -> Result<(), Error> {
    if json {
        super::print_json(&view::group(&groups::show(store, name)?));
    } else {
        out!("{text}");
    }
    Ok(())
}

fn or_dash(v: Vec<String>) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

pub fn run(store: &mut Store, cmd: GroupCmd, json: bool) -> Result<(), Error> {
    let actor = Actor::cli();
    match cmd {
        GroupCmd::List => {
            let all = groups::list(store)?;
            if json {
                super::print_json(&Value::Array(all.iter().map(view::group).collect()));
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
        GroupCmd::Show { name } => {
            let i = groups::show(store, &name)?;
            if json {
                super::print_json(&view::group(&i));
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
        GroupCmd::Add { name, description } => {
            let g = groups::add(store, &actor, &name, &description)?;
            let text = format!("added group {} (id {})", g.name, g.id);
            print_group(store, &g.name, json, &text)?;
        }
        GroupCmd::Rename { name, new_name } => {
            let g = groups::update(store, &actor, &name, Some(new_name.as_str()), None)?;
            let text = format!("renamed group {name} to {} (id {} unchanged)", g.name, g.id);
            print_group(store, &g.name, json, &text)?;
        }
        GroupCmd::Describe { name, description } => {
            let g = groups::update(store, &actor, &name, None, Some(description.as_str()))?;
            print_group(store, &g.name, json, &format!("described group {}", g.name))?;
        }
        GroupCmd::Remove { name, yes } => {
            // Shown as it was, before it goes.
            let before = groups::show(store, &name)?;
            let (g, refs) = groups::remove(store, &actor, &name, yes)?;
            if !refs.is_empty() {
                eprintln!(
                    "warning: {} was named by {}; they now admit nobody through it",
                    g.name,
                    refs.join(", ")
                );
            }
            if json {
                super::print_json(&view::group(&before));
            } else {
                out!("removed group {}", g.name);
            }
        }
    }
    Ok(())
}
