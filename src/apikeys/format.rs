//! The API-key format, in the manner of GitHub's token format: a fixed prefix a secret scanner
//! can search for, a random body, and a checksum of the body, so that a mistyped or invented
//! key is recognised without a database lookup.
//!
//! ```text
//! lk_ BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB CCCCCC
//!     └ 33 base62 characters: 196 random bits
//!                                       └ CRC32 (IEEE) of the body's ASCII, base62, 6 characters, zero-padded
//! ```
//!
//! Keys are 42 characters: `lk_`, then only `[0-9A-Za-z]`, so double-clicking selects one
//! whole. The first 11 characters (`lk_` and 8 of the body) are the key's public prefix,
//! shown in listings. This layout is stable: changing it would invalidate every key issued.

use crate::crypto::random_bytes;
use crate::error::Error;

/// Every latchkey API key starts with this.
pub const PREFIX: &str = "lk_";
/// Base62 characters of random body.
pub const BODY_LEN: usize = 33;
/// Base62 characters of checksum.
pub const CHECK_LEN: usize = 6;
/// Total length.
pub const KEY_LEN: usize = PREFIX.len() + BODY_LEN + CHECK_LEN;
/// Characters of a key shown in listings (prefix plus 8 of the body: 47 bits, not a secret).
pub const DISPLAY_LEN: usize = PREFIX.len() + 8;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn checksum(body: &str) -> String {
    base62_fixed(u64::from(crc32(body.as_bytes())), CHECK_LEN)
}

/// A new random key.
pub fn generate() -> Result<String, Error> {
    let mut body = String::with_capacity(BODY_LEN);
    // Rejection sampling keeps every character uniform: bytes >= 248 (4 * 62) are redrawn.
    while body.len() < BODY_LEN {
        for b in random_bytes::<64>()? {
            if b < 248 && body.len() < BODY_LEN {
                body.push(char::from(
                    ALPHABET.get(usize::from(b % 62)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
    let check = checksum(&body);
    Ok(format!("{PREFIX}{body}{check}"))
}

/// Why a presented string is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not `lk_`.
    Prefix,
    /// Wrong length or characters outside base62.
    Shape,
    /// The checksum does not match the body: a typo or an invented key.
    Checksum,
}

/// Checks a presented key's form and checksum without touching the database.
pub fn check(key: &str) -> Result<(), Malformed> {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return Err(Malformed::Prefix);
    };
    if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Shape);
    }
    let (body, check) = rest.split_at(BODY_LEN);
    if checksum(body) != check {
        return Err(Malformed::Checksum);
    }
    Ok(())
}

/// Replaces anything shaped like a key in `text` with `lk_[redacted]`, for log lines built from
/// request data (a client may put a key where none belongs, such as the URL path).
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(PREFIX) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + PREFIX.len()..).unwrap_or_default();
        let run = after.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if run >= 16 {
            out.push_str("lk_[redacted]");
        } else {
            out.push_str(PREFIX);
            out.push_str(after.get(..run).unwrap_or_default());
        }
        rest = after.get(run..).unwrap_or_default();
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The public prefix of a key, for listings.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn generated_keys_check_and_are_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_LEN);
        assert!(a.starts_with("lk_"));
        assert_eq!(check(&a), Ok(()));
        assert_eq!(display_prefix(&a).len(), 11);
    }

    #[test]
    fn rejects_typos_and_inventions() {
        let k = generate().unwrap();
        // Change one body character: the checksum no longer matches.
        let mut typo: Vec<char> = k.chars().collect();
        typo[10] = if typo[10] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(check(&typo), Err(Malformed::Checksum));
        assert_eq!(check(&k.replacen("lk_", "gh_", 1)), Err(Malformed::Prefix));
        assert_eq!(check(&k[..KEY_LEN - 1]), Err(Malformed::Shape));
        assert_eq!(
            check(&format!("{}-", &k[..KEY_LEN - 1])),
            Err(Malformed::Shape)
        );
        assert_eq!(
            check(&format!("lk_{}", "a".repeat(39))),
            Err(Malformed::Checksum)
        );
    }

    #[test]
    fn redacts_keys_in_text() {
        let k = generate().unwrap();
        assert_eq!(redact(&format!("/v1/{k}/x")), "/v1/lk_[redacted]/x");
        assert_eq!(redact("/bulk_read"), "/bulk_read");
        assert_eq!(redact("/a/lk_short"), "/a/lk_short");
    }

    #[test]
    fn checksum_is_six_base62_chars() {
        assert_eq!(base62_fixed(0, 6), "000000");
        assert_eq!(base62_fixed(61, 6), "00000z");
        assert_eq!(base62_fixed(u64::from(u32::MAX), 6), "4gfFC3");
    }
}
