//! Group operations: list, show, add, rename, remove. A group is an object with a stable id
//! (see [`crate::store::groups`]): memberships, forward-auth rules (`rule add --allow-group`)
//! and clients (`client add --allow-group`) name it by id, so a rename changes nothing they
//! mean. Adding a user to a group, or naming one in a rule or client, creates it if it does
//! not exist.
//!
//! Removing a group that a rule or client names is refused unless the caller confirms
//! (`--yes`): those rules and clients keep naming the removed id, which admits nobody, so a
//! rule or client that named only this group lets nobody in through it. Changes are audited
//! as `group_added`, `group_renamed` (`OLD -> NEW`) and `group_removed` (the name).

use super::{Actor, OpError, audited};
use crate::accounts::validate_group;
use crate::forward::rules::{Action, Rule, RuleSet};
use crate::store::{Client, Group, Store, StoreError};
use crate::timefmt::now;

/// A group with its members and what names it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub group: Group,
    /// The members' usernames, sorted.
    pub members: Vec<String>,
    /// The forward-auth rules that admit this group.
    pub rules: Vec<Rule>,
    /// The clients only this group (among others) may sign in to.
    pub clients: Vec<Client>,
}

impl GroupInfo {
    /// What names the group, in words (`rule #3 (app.test/*)`, `client Grafana (grafana)`).
    pub fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = self.rules.iter().map(rule_words).collect();
        out.extend(
            self.clients
                .iter()
                .map(|c| format!("client {} ({})", c.name, c.client_id)),
        );
        out
    }
}

/// A rule, briefly, for the warnings about what a removal affects.
pub(super) fn rule_words(r: &Rule) -> String {
    format!("rule #{} ({}{})", r.id, r.host, r.path)
}

/// The group with this name.
pub fn find(store: &Store, name: &str) -> Result<Group, OpError> {
    store
        .group_by_name(name)?
        .ok_or_else(|| OpError::NotFound(format!("no group named {name:?}")))
}

fn info(
    store: &Store,
    rules: &RuleSet,
    clients: &[Client],
    group: Group,
) -> Result<GroupInfo, StoreError> {
    let members = store.group_members(group.id)?;
    let rules = rules
        .rules()
        .iter()
        .filter(|r| matches!(&r.action, Action::AllowGroup(g) if *g == group.name))
        .cloned()
        .collect();
    let clients = clients
        .iter()
        .filter(|c| c.allowed_groups.contains(&group.name))
        .cloned()
        .collect();
    Ok(GroupInfo {
        group,
        members,
        rules,
        clients,
    })
}

/// Every group, by name, with members and what names it.
pub fn list(store: &Store) -> Result<Vec<GroupInfo>, OpError> {
    let rules = RuleSet::load(store)?;
    let clients = store.clients()?;
    let mut out = Vec::new();
    for g in store.groups()? {
        out.push(info(store, &rules, &clients, g)?);
    }
    Ok(out)
}

/// One group, with members and what names it.
pub fn show(store: &Store, name: &str) -> Result<GroupInfo, OpError> {
    let g = find(store, name)?;
    let rules = RuleSet::load(store)?;
    let clients = store.clients()?;
    Ok(info(store, &rules, &clients, g)?)
}

/// Checks a description: at most 200 characters, no control characters.
fn validate_description(d: &str) -> Result<(), OpError> {
    if d.chars().count() > 200 || d.chars().any(char::is_control) {
        return Err(OpError::Invalid(
            "the description must be at most 200 printable characters".into(),
        ));
    }
    Ok(())
}

/// Adds a group; a taken name is a conflict. Returns the new group.
pub fn add(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    description: &str,
) -> Result<Group, OpError> {
    audited(store, actor, "group_added", name, |s| {
        validate_group(name).map_err(OpError::Invalid)?;
        validate_description(description)?;
        s.insert_group(name, description, now())
            .map_err(OpError::taken)?;
        find(s, name)
    })
}

/// Renames a group, and optionally changes its description; members, rules and clients stay
/// with it. Returns the group as it is now.
pub fn update(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    new_name: Option<&str>,
    description: Option<&str>,
) -> Result<Group, OpError> {
    let target = match new_name {
        Some(n) => format!("{name} -> {n}"),
        None => name.to_string(),
    };
    audited(store, actor, "group_updated", &target, |s| {
        if new_name.is_none() && description.is_none() {
            return Err(OpError::Invalid(
                "nothing to change: give a new name or a description".into(),
            ));
        }
        let g = find(s, name)?;
        let new_name = new_name.unwrap_or(g.name.as_str());
        validate_group(new_name).map_err(OpError::Invalid)?;
        let description = description.unwrap_or(g.description.as_str());
        validate_description(description)?;
        s.update_group(g.id, new_name, description)
            .map_err(OpError::taken)?;
        if new_name != g.name {
            rename_in_mfa_setting(s, &g.name, Some(new_name))?;
        }
        find(s, new_name)
    })
}

/// Removes a group and its memberships. If rules or clients name it, refuses unless `yes`;
/// returns the group and what named it (in words, for a warning).
pub fn remove(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    yes: bool,
) -> Result<(Group, Vec<String>), OpError> {
    audited(store, actor, "group_removed", name, |s| {
        let info = show(s, name)?;
        let mut refs = info.references();
        if crate::config::Settings::load(s)?
            .mfa_groups()
            .contains(&info.group.name.as_str())
        {
            refs.push("the setting mfa.required_for_groups".into());
        }
        if !refs.is_empty() && !yes {
            return Err(OpError::Conflict(format!(
                "group {name} is named by {}: once it is removed they admit nobody through it; \
                 pass --yes to remove it anyway",
                refs.join(", ")
            )));
        }
        s.remove_group(info.group.id)?;
        rename_in_mfa_setting(s, &info.group.name, None)?;
        Ok((info.group, refs))
    })
}

/// Keeps `mfa.required_for_groups` following a group: a rename renames it there, a removal
/// (`to` = `None`) drops it.
fn rename_in_mfa_setting(s: &mut Store, from: &str, to: Option<&str>) -> Result<(), OpError> {
    let current = crate::config::Settings::load(s)?;
    let names = current.mfa_groups();
    if !names.contains(&from) {
        return Ok(());
    }
    let mut kept: Vec<&str> = names.into_iter().filter(|n| *n != from).collect();
    kept.extend(to);
    kept.sort_unstable();
    let key = crate::config::TextSetting::MfaRequiredForGroups.key();
    if kept.is_empty() {
        s.unset_setting(key)?;
    } else {
        s.set_setting(key, &kept.join(","))?;
    }
    Ok(())
}

/// Warns (on the log; the CLI shows warnings on standard error) about each group in `names`
/// that does not exist yet: naming it creates it, empty, which is right for a group whose
/// members come later but is also what a typo does.
pub fn warn_if_new(store: &Store, names: &[String], what: &str) -> Result<(), OpError> {
    for g in names {
        if crate::store::groups::removed_group_id(g).is_none() && store.group_by_name(g)?.is_none()
        {
            log::warn!(
                "group {g:?} does not exist yet: {what} creates it with no members \
                 (latchkey group list shows the groups there are)"
            );
        }
    }
    Ok(())
}
