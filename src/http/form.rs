//! `application/x-www-form-urlencoded` (URL query strings and POST bodies), strictly: a
//! malformed `%` escape or bytes that do not decode to UTF-8 make the whole form invalid, and a
//! parameter sent twice cannot be read (RFC 6749 §3.1, §3.2: "MUST NOT be included more than
//! once"), as in oxide-auth's `insert_or_poison`.

use std::collections::HashMap;

/// Why a form could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// A parsed form. Values of parameters sent more than once are poisoned.
#[derive(Debug, Default)]
pub struct Form {
    params: HashMap<String, Value>,
}

#[derive(Debug)]
enum Value {
    One(String),
    Repeated,
}

/// Why a parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate(pub String);

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    // Most components (ids, tokens, secrets) need no decoding: one copy and a UTF-8 check.
    // (`contains` on bytes is core's word-at-a-time memchr; a ~700-byte JWT is the common case.)
    if !raw.contains(&b'%') && !raw.contains(&b'+') {
        return String::from_utf8(raw.to_vec()).map_err(|_| FormError::NotUtf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |j: usize| raw.get(j).and_then(|c| char::from(*c).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(FormError::BadEscape);
                };
                out.push(u8::try_from(hi * 16 + lo).map_err(|_| FormError::BadEscape)?);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// Encodes one form component (the inverse of [`decode_component`]): unreserved characters
/// stay, space becomes `+`, everything else `%XX`.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Encodes pairs as `a=1&b=2`.
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

impl Form {
    /// Parses `a=1&b=2`. Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` is a name
    /// with an empty value.
    pub fn parse(raw: &[u8]) -> Result<Form, FormError> {
        let mut params = HashMap::new();
        for piece in raw.split(|b| *b == b'&') {
            if piece.is_empty() {
                continue;
            }
            let (name, value) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (
                    piece.get(..i).unwrap_or_default(),
                    piece.get(i + 1..).unwrap_or_default(),
                ),
                None => (piece, &b""[..]),
            };
            let name = decode_component(name)?;
            let value = decode_component(value)?;
            params
                .entry(name)
                .and_modify(|v| *v = Value::Repeated)
                .or_insert(Value::One(value));
        }
        Ok(Form { params })
    }

    /// The value of `name`. Absent and empty are the same (RFC 6749 §3.1: "parameters sent
    /// without a value MUST be treated as if they were omitted"); a repeated name is an error.
    pub fn get(&self, name: &str) -> Result<Option<&str>, Duplicate> {
        match self.params.get(name) {
            None => Ok(None),
            Some(Value::One(v)) if v.is_empty() => Ok(None),
            Some(Value::One(v)) => Ok(Some(v)),
            Some(Value::Repeated) => Err(Duplicate(name.to_string())),
        }
    }

    /// True if `name` was sent at all (even empty or repeated).
    pub fn contains(&self, name: &str) -> bool {
        self.params.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let f = Form::parse(b"a=1&b=x+y%2Bz&c=&d&&e=%C3%A9").unwrap();
        assert_eq!(f.get("a"), Ok(Some("1")));
        assert_eq!(f.get("b"), Ok(Some("x y+z")));
        assert_eq!(f.get("c"), Ok(None));
        assert_eq!(f.get("d"), Ok(None));
        assert_eq!(f.get("e"), Ok(Some("é")));
        assert_eq!(f.get("zz"), Ok(None));
        assert!(f.contains("c"));
    }

    #[test]
    fn repeated_parameter_is_poisoned() {
        let f = Form::parse(b"scope=a&scope=b&x=1").unwrap();
        assert_eq!(f.get("scope"), Err(Duplicate("scope".into())));
        assert_eq!(f.get("x"), Ok(Some("1")));
        let f = Form::parse(b"scope=a&scope=a").unwrap();
        assert!(f.get("scope").is_err(), "even the same value twice");
    }

    #[test]
    fn encode_round_trips() {
        let raw = "a b&c=d/é%+\u{1}";
        let enc = encode_pairs([("k y", raw)]);
        let f = Form::parse(enc.as_bytes()).unwrap();
        assert_eq!(f.get("k y"), Ok(Some(raw)));
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        assert_eq!(Form::parse(b"a=%zz").unwrap_err(), FormError::BadEscape);
        assert_eq!(Form::parse(b"a=%4").unwrap_err(), FormError::BadEscape);
        assert_eq!(Form::parse(b"a=%ff").unwrap_err(), FormError::NotUtf8);
        assert_eq!(Form::parse(b"a=\xff").unwrap_err(), FormError::NotUtf8);
        assert_eq!(Form::parse(b"%ff=1").unwrap_err(), FormError::NotUtf8);
    }
}
