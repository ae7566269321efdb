//! The revisions: one change counter per table (or group of tables) a running server caches.
//! SQL triggers bump a counter on every write to its table (the `revisions` table, see
//! `sql/`), the store reads them, and the server's maintenance thread reloads a cache when its
//! counter moved. [`Revision`] is the one list of their names: adding a cached table is a
//! migration that inserts its row and triggers, and a member here.

/// A change counter in the `revisions` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Revision {
    /// The `clients` table.
    Clients,
    /// The `signing_keys` table.
    Keys,
    /// The `settings` table.
    Settings,
    /// The `users` table.
    Users,
    /// The `api_keys` table and the disabled API-key owners.
    ApiKeys,
    /// The forward-auth `rules` table.
    Rules,
    /// The `revoked_tokens` table (inserts only).
    Revoked,
}

impl Revision {
    /// Every revision, in the order the `revisions` table sorts them by name.
    pub const ALL: &'static [Revision] = &[
        Revision::ApiKeys,
        Revision::Clients,
        Revision::Keys,
        Revision::Revoked,
        Revision::Rules,
        Revision::Settings,
        Revision::Users,
    ];

    /// Its `name` in the `revisions` table.
    pub const fn as_str(self) -> &'static str {
        match self {
            Revision::Clients => "clients",
            Revision::Keys => "keys",
            Revision::Settings => "settings",
            Revision::Users => "users",
            Revision::ApiKeys => "api_keys",
            Revision::Rules => "rules",
            Revision::Revoked => "revoked",
        }
    }

    /// The revision with this name; `None` for a name this latchkey does not know (a newer one
    /// may have added it).
    pub fn parse(name: &str) -> Option<Revision> {
        Revision::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn every_revision_has_a_row_and_every_row_a_revision() {
        let store = Store::open_in_memory().unwrap();
        let mut names: Vec<String> = store
            .conn
            .prepare("SELECT name FROM revisions ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names.sort();
        let mut members: Vec<String> = Revision::ALL
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        members.sort();
        assert_eq!(names, members);
        for name in &names {
            assert_eq!(
                Revision::parse(name).map(Revision::as_str),
                Some(name.as_str())
            );
        }
        // And the store reads every one of them, typed.
        let read: Vec<Revision> = store
            .revisions()
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(read.len(), Revision::ALL.len());
        assert!(Revision::ALL.iter().all(|r| read.contains(r)));
    }
}
