//! Browser-session operations: list a user's sessions and end one or all of them. A session
//! is stored by the SHA-256 of its cookie; its public id is the first [`ID_LEN`] hex digits of
//! that digest, which is safe to show (it is neither the cookie nor enough to find it).
//! Ending a session signs that browser out, together with the forward-auth sessions that
//! belong to it; tokens already issued to apps stay valid (`user consent revoke`, `passwd` or
//! `disable` revoke those).

use crate::crypto::hex;
use crate::store::{Store, User, UserSession};

use super::{Actor, OpError, audited, users};

/// How many hex digits of the stored digest make a session's public id.
pub const ID_LEN: usize = 12;

/// A login session as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The public id: a hex prefix of the stored digest.
    pub id: String,
    /// When the user signed in (typed the password).
    pub auth_time: i64,
    pub last_seen_at: i64,
    /// The absolute timeout (the idle timeout, `session.idle_ttl`, may end it sooner).
    pub expires_at: i64,
    /// Forward-auth sessions that belong to it and end with it.
    pub forward_sessions: i64,
}

/// Which sessions [`end`] ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The session with this public id.
    One(String),
    /// Every session of the user.
    All,
}

/// The public id of a stored session digest.
pub fn public_id(hash: &[u8; 32]) -> String {
    let mut id = hex(hash);
    id.truncate(ID_LEN);
    id
}

fn info(s: &UserSession) -> SessionInfo {
    SessionInfo {
        id: public_id(&s.hash),
        auth_time: s.auth_time,
        last_seen_at: s.last_seen_at,
        expires_at: s.expires_at,
        forward_sessions: s.forward_sessions,
    }
}

/// The user's login sessions, oldest sign-in first.
pub fn list(store: &Store, name: &str) -> Result<(User, Vec<SessionInfo>), OpError> {
    let u = users::find(store, name)?;
    let sessions = store.sessions_of(&u.id)?.iter().map(info).collect();
    Ok((u, sessions))
}

/// Ends one session of the user, or all of them. Returns the user and how many sessions
/// ended (for [`Which::One`], always 1).
pub fn end(
    store: &mut Store,
    actor: &Actor,
    name: &str,
    which: &Which,
) -> Result<(User, usize), OpError> {
    let target = match which {
        Which::One(id) => format!("{name} {id}"),
        Which::All => format!("{name} all"),
    };
    audited(store, actor, "user_session_ended", &target, |s| {
        let u = users::find(s, name)?;
        let n = match which {
            Which::All => s.end_sessions_of(&u.id, None)?,
            Which::One(id) => {
                if id.len() != ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(OpError::Invalid(format!(
                        "a session id is the {ID_LEN} hex digits `latchkey user session list` shows, not {id:?}"
                    )));
                }
                let wanted = id.to_ascii_lowercase();
                let hash = s
                    .sessions_of(&u.id)?
                    .into_iter()
                    .map(|row| row.hash)
                    .find(|h| public_id(h) == wanted);
                let ended = match hash {
                    Some(h) => s.end_sessions_of(&u.id, Some(&h))?,
                    None => 0,
                };
                if ended == 0 {
                    return Err(OpError::NotFound(format!(
                        "{} has no session {id:?} (see `latchkey user session list {}`)",
                        u.username, u.username
                    )));
                }
                ended
            }
        };
        Ok((u, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_sessions() -> (Store, String) {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_user("sub-a", "alice", None, None, None, &[], 100)
            .unwrap();
        s.insert_user("sub-b", "bob", None, None, None, &[], 100)
            .unwrap();
        s.insert_session(&[1; 32], "sub-a", 200, 900).unwrap();
        s.insert_session(&[2; 32], "sub-a", 300, 900).unwrap();
        s.insert_child_session(&[3; 32], &[1; 32], "sub-a", 200, 210, 900)
            .unwrap();
        s.insert_session(&[4; 32], "sub-b", 200, 900).unwrap();
        (s, public_id(&[1; 32]))
    }

    #[test]
    fn lists_login_sessions_with_a_short_id_and_their_forward_sessions() {
        let (s, first) = store_with_sessions();
        let (u, list) = list(&s, "Alice").unwrap();
        assert_eq!(u.id, "sub-a");
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].id, first);
        assert_eq!(list[0].id, "010101010101");
        assert_eq!((list[0].auth_time, list[0].forward_sessions), (200, 1));
        assert_eq!((list[1].auth_time, list[1].forward_sessions), (300, 0));
    }

    #[test]
    fn ends_one_session_with_its_forward_sessions_or_all_of_them() {
        let (mut s, first) = store_with_sessions();
        let actor = Actor::cli();
        let (_, n) = end(&mut s, &actor, "alice", &Which::One(first.to_uppercase())).unwrap();
        assert_eq!(n, 1);
        assert!(s.session(&[1; 32]).unwrap().is_none());
        assert!(
            s.session(&[3; 32]).unwrap().is_none(),
            "forward session ended"
        );
        assert!(s.session(&[2; 32]).unwrap().is_some());
        // The same id again, a malformed one, an unknown user.
        assert!(matches!(
            end(&mut s, &actor, "alice", &Which::One(first)),
            Err(OpError::NotFound(_))
        ));
        assert!(matches!(
            end(&mut s, &actor, "alice", &Which::One("xyz".into())),
            Err(OpError::Invalid(_))
        ));
        assert!(matches!(
            end(&mut s, &actor, "carol", &Which::All),
            Err(OpError::NotFound(_))
        ));
        let (_, n) = end(&mut s, &actor, "alice", &Which::All).unwrap();
        assert_eq!(n, 1);
        assert!(s.session(&[2; 32]).unwrap().is_none());
        assert!(
            s.session(&[4; 32]).unwrap().is_some(),
            "bob's session stays"
        );
    }
}
