//! TOTP (RFC 6238): HMAC-SHA1 over the 30-second time step, 6 digits, a 160-bit secret, one
//! step of drift either way, and each step accepted once only (the store's
//! [`crate::store::Store::advance_totp_step`] decides that in one conditional UPDATE). Also the
//! RFC 4648 base32 that authenticator apps read and the `otpauth://` URI their QR codes hold.

use ring::hmac;

use crate::app::Worker;
use crate::error::Error;
use crate::store::StoreError;

/// Seconds per time step.
pub const PERIOD: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes in a secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_LEN: usize = 20;
/// Steps of clock drift accepted either side of now.
const DRIFT: i64 = 1;

/// A fresh random secret.
pub fn new_secret() -> Result<[u8; SECRET_LEN], Error> {
    crate::crypto::random_bytes::<SECRET_LEN>()
}

/// The time step of a Unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(PERIOD)
}

/// The HOTP value (RFC 4226 §5.3) of `secret` at counter `step`, as `digits` decimal digits.
pub fn code_at(secret: &[u8], step: i64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &(step as u64).to_be_bytes());
    let h = mac.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks four bytes (an HMAC-SHA1 is
    // 20 bytes, so offset + 4 <= 19 always holds).
    let offset = usize::from(h.last().copied().unwrap_or(0) & 0x0f);
    let four: [u8; 4] = h
        .get(offset..offset + 4)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    let bin = u32::from_be_bytes(four) & 0x7fff_ffff;
    let value = u64::from(bin) % 10u64.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The 6-digit code of `secret` at time step `step`.
pub fn code(secret: &[u8], step: i64) -> String {
    code_at(secret, step, DIGITS)
}

/// A code as typed, reduced to its digits if it looks like a TOTP code: six digits, allowing
/// spaces (apps show `123 456`).
pub fn normalise(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// The step within the drift window whose code is `typed`, if any (compared in constant time).
pub fn matching_step(secret: &[u8], typed: &str, now: i64) -> Option<i64> {
    let typed = normalise(typed)?;
    let now_step = step_of(now);
    let mut found = None;
    for step in now_step - DRIFT..=now_step + DRIFT {
        if crate::crypto::ct_eq(code(secret, step).as_bytes(), typed.as_bytes()) {
            // The latest matching step: a later step moves `last_step` further.
            found = Some(step);
        }
    }
    found
}

/// Checks a code against the user's authenticator and uses its step: true only for a right
/// code of a step later than any accepted before (a replayed code is refused like a wrong
/// one). False when the user has no authenticator.
pub fn verify(w: &mut Worker, user_id: &str, typed: &str, now: i64) -> Result<bool, StoreError> {
    let Some(t) = w.store.totp(user_id)? else {
        return Ok(false);
    };
    match matching_step(&t.secret, typed, now) {
        Some(step) if step > t.last_step => w.store.advance_totp_step(user_id, step),
        _ => Ok(false),
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The base32 symbol of the low five bits of `v`.
fn symbol(v: u32) -> char {
    char::from(BASE32.get((v & 31) as usize).copied().unwrap_or(b'A'))
}

/// RFC 4648 §6 base32, without padding (as authenticator apps expect).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buf >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(buf << (5 - bits)));
    }
    out
}

/// Decodes RFC 4648 base32, case-insensitive, ignoring spaces and `=` padding at the end.
/// `None` for any other character, an impossible length, or non-zero trailing bits.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buf, mut bits, mut n) = (0u32, 0u32, 0usize);
    for c in text.chars().filter(|c| *c != ' ') {
        let c = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&x| char::from(x) == c)? as u32;
        buf = ((buf << 5) | v) & 0xffff;
        bits += 5;
        n += 1;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    // Valid unpadded lengths leave 0, 2, 4, 5 or 7 characters in the last group.
    if matches!(n % 8, 1 | 3 | 6) || buf & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// The `otpauth://totp/…` URI (Google Authenticator's key URI format) for an account at an
/// issuer: the label `ISSUER:ACCOUNT` percent-encoded, and the parameters spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    // Everything but RFC 3986's unreserved characters (so `:` and `/` in a name are escaped).
    const LABEL: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |s: &str| utf8_percent_encode(s, LABEL).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        // The SHA-1 seed of Appendix B: the ASCII "12345678901234567890"; 8-digit codes.
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(secret, step_of(time), 8), expected, "T = {time}");
        }
        // The six-digit code is the same value's last six digits.
        assert_eq!(code(secret, step_of(59)), "287082");
    }

    #[test]
    fn rfc4648_base32_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
        }
        // Padded, lower case and spaced forms decode too.
        assert_eq!(base32_decode("mzxw6yq=").unwrap(), b"foob");
        assert_eq!(base32_decode("MZXW 6YTB").unwrap(), b"fooba");
        // Characters outside the alphabet, impossible lengths, stray bits.
        for bad in ["MZXW1", "M", "MZX", "MZXW6Y", "MZ", "M8"] {
            assert_eq!(base32_decode(bad), None, "{bad}");
        }
        let secret: Vec<u8> = (0..20).collect();
        let text = base32_encode(&secret);
        assert_eq!(text.len(), 32);
        assert_eq!(base32_decode(&text).unwrap(), secret);
    }

    #[test]
    fn codes_match_within_one_step_of_drift() {
        let secret = [42u8; 20];
        let now = 1_700_000_015;
        let s = step_of(now);
        for d in -1..=1 {
            assert_eq!(
                matching_step(&secret, &code(&secret, s + d), now),
                Some(s + d)
            );
        }
        for d in [-2, 2] {
            assert_eq!(matching_step(&secret, &code(&secret, s + d), now), None);
        }
        let spaced = code(&secret, s);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(matching_step(&secret, &spaced, now), Some(s));
        for bad in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"] {
            assert_eq!(matching_step(&secret, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn the_otpauth_uri_spells_out_the_parameters() {
        assert_eq!(
            otpauth_uri("auth.example", "ann smith:x/y", b"foobar"),
            "otpauth://totp/auth.example:ann%20smith%3Ax%2Fy?secret=MZXW6YTBOI\
             &issuer=auth.example&algorithm=SHA1&digits=6&period=30"
        );
    }
}
