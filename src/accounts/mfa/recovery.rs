//! Recovery codes: ten single-use codes that stand in for the authenticator when it is lost.
//! Each is 24 characters from an alphabet without look-alikes (no 0/o, 1/l/i), shown as
//! `xxxxxx-xxxxxx-xxxxxx-xxxxxx`: about 118 bits, so that a fast hash may store it (ASVS 5.0
//! 6.5.2 asks a lookup secret below 112 bits for a salted password hash). Only the SHA-256 of
//! its normalised form (lower case, no dash or spaces) is stored. Generating a new set replaces the old one, used codes included.

use crate::crypto::sha256;
use crate::error::Error;
use crate::store::{Store, StoreError};

/// Codes in a set.
pub const COUNT: usize = 10;
/// Characters in a code (without the dashes): 24 × log2(30) ≈ 117.8 bits.
const LEN: usize = 24;
/// Characters between dashes as shown.
const GROUP: usize = 6;
/// 30 letters and digits that cannot be mistaken for one another (no 0, 1, i, l, o, u).
const ALPHABET: &[u8; 30] = b"23456789abcdefghjkmnpqrstvwxyz";

/// The normalised form of a typed code: lower case, dashes and spaces removed. `None` when it
/// cannot be a recovery code.
pub fn normalise(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// The stored digest of a code as typed, if it can be one.
pub fn digest(typed: &str) -> Option<[u8; 32]> {
    normalise(typed).map(|s| sha256(s.as_bytes()))
}

/// A new set of codes, as shown (`xxxxxx-xxxxxx-xxxxxx-xxxxxx`).
pub fn generate() -> Result<Vec<String>, Error> {
    let mut codes = Vec::with_capacity(COUNT);
    while codes.len() < COUNT {
        let bytes = crate::crypto::random_bytes::<40>()?;
        // Rejection sampling: 30 symbols, so only bytes below 240 (8 × 30) are used, unbiased.
        let chars: Vec<u8> = bytes
            .iter()
            .filter(|b| **b < 240)
            .filter_map(|b| ALPHABET.get(usize::from(*b) % 30).copied())
            .take(LEN)
            .collect();
        if chars.len() < LEN {
            continue;
        }
        let code = chars
            .chunks(GROUP)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// Makes a new set for the user, replacing any old one; returns the codes to show once.
pub fn regenerate(store: &mut Store, user_id: &str, now: i64) -> Result<Vec<String>, Error> {
    let codes = generate()?;
    let hashes: Vec<[u8; 32]> = codes.iter().filter_map(|c| digest(c)).collect();
    store.replace_recovery_codes(user_id, &hashes, now)?;
    Ok(codes)
}

/// Uses a recovery code: `Some(left)` (the unused codes that remain) if it was one of the
/// user's unused codes, `None` otherwise.
pub fn redeem(
    store: &mut Store,
    user_id: &str,
    typed: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let Some(hash) = digest(typed) else {
        return Ok(None);
    };
    if !store.use_recovery_code(user_id, &hash, now)? {
        return Ok(None);
    }
    Ok(Some(store.recovery_codes_left(user_id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_unambiguous_groups_of_six() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 27, "{c}");
            assert_eq!(
                c.split('-').map(str::len).collect::<Vec<_>>(),
                [6, 6, 6, 6],
                "{c}"
            );
            assert!(
                c.chars()
                    .all(|ch| ch == '-' || "23456789abcdefghjkmnpqrstvwxyz".contains(ch)),
                "{c}"
            );
            assert!(normalise(c).is_some());
        }
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), COUNT);
    }

    #[test]
    fn typed_codes_are_normalised_before_hashing() {
        let d = digest("abcdef-ghjkmn-pqrstv-wxyz23").unwrap();
        assert_eq!(d, sha256(b"abcdefghjkmnpqrstvwxyz23"));
        assert_eq!(digest("ABCDEF GHJKMN PQRSTV WXYZ23"), Some(d));
        assert_eq!(digest(" abcdefghjkmnpqrstvwxyz23 "), Some(d));
        for bad in [
            "",
            "abcdef-ghjkmn-pqrstv-wxyz2",
            "abcdef-ghjkmn-pqrstv-wxyz234",
            "abcdef-ghjkmn-pqrstv-wxyz21",
            "123456",
            "abcdef_ghjkmn_pqrstv_wxyz23",
        ] {
            assert_eq!(digest(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_code_is_used_once_and_says_how_many_remain() {
        let mut w = crate::app::testing::worker_without_keys();
        w.store
            .insert_user("u1", "alice", None, None, None, &[], 1)
            .unwrap();
        let codes = regenerate(&mut w.store, "u1", 1).unwrap();
        assert_eq!(redeem(&mut w.store, "u1", &codes[0], 2).unwrap(), Some(9));
        assert_eq!(redeem(&mut w.store, "u1", &codes[0], 3).unwrap(), None);
        let upper = codes[1].to_uppercase().replace('-', " ");
        assert_eq!(redeem(&mut w.store, "u1", &upper, 3).unwrap(), Some(8));
        let fresh = regenerate(&mut w.store, "u1", 4).unwrap();
        assert_eq!(redeem(&mut w.store, "u1", &codes[2], 5).unwrap(), None);
        assert_eq!(redeem(&mut w.store, "u1", &fresh[2], 5).unwrap(), Some(9));
    }
}
