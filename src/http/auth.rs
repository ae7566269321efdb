//! The `Authorization` header: Basic credentials for clients (RFC 7617, with RFC 6749 §2.3.1's
//! form-encoding of the id and secret) and Bearer tokens (RFC 6750 §2.1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::Req;
use super::form::decode_component;

/// What the `Authorization` header holds.
#[derive(PartialEq, Eq)]
pub enum Authorization {
    /// No header.
    None,
    /// `Basic` with a decoded id and secret.
    Basic { id: String, secret: String },
    /// `Bearer` with its token.
    Bearer(String),
    /// Another scheme (e.g. `Digest`).
    Other,
}

// Never print credentials.
impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Authorization::None => "None",
            Authorization::Basic { .. } => "Basic(<redacted>)",
            Authorization::Bearer(_) => "Bearer(<redacted>)",
            Authorization::Other => "Other",
        })
    }
}

/// The header could not be understood (sent twice, not UTF-8, bad base64, no `:`, bad
/// form-encoding): a 400 `invalid_request`.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads the `Authorization` header. Scheme names are case-insensitive (RFC 9110 §11.1).
pub fn authorization(req: &Req) -> Result<Authorization, Malformed> {
    let Some(value) = req.header("authorization").map_err(|()| Malformed)? else {
        return Ok(Authorization::None);
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| Malformed)?;
        let (id, secret) = decoded
            .iter()
            .position(|b| *b == b':')
            .map(|i| decoded.split_at(i))
            .ok_or(Malformed)?;
        let secret = secret.get(1..).unwrap_or_default();
        let id = decode_component(id).map_err(|_| Malformed)?;
        let secret = decode_component(secret).map_err(|_| Malformed)?;
        if id.is_empty() {
            return Err(Malformed);
        }
        Ok(Authorization::Basic { id, secret })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        // RFC 6750 §2.1 b64token.
        let ok = !rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
            });
        if !ok {
            return Err(Malformed);
        }
        Ok(Authorization::Bearer(rest.to_string()))
    } else {
        Ok(Authorization::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(value: &[u8]) -> Req {
        let mut r = Req::new(
            super::super::Method::Post,
            "/token",
            "127.0.0.1:1".parse().unwrap(),
        );
        r.headers.push("authorization", value);
        r
    }

    #[test]
    fn basic_is_form_decoded() {
        // "a%3Ab:s+p%25" -> id "a:b", secret "s p%"
        let v = format!("Basic {}", STANDARD.encode("a%3Ab:s+p%25"));
        assert_eq!(
            authorization(&req(v.as_bytes())).unwrap(),
            Authorization::Basic {
                id: "a:b".into(),
                secret: "s p%".into()
            }
        );
        let v = format!("basic {}", STANDARD.encode("id:"));
        assert_eq!(
            authorization(&req(v.as_bytes())).unwrap(),
            Authorization::Basic {
                id: "id".into(),
                secret: "".into()
            }
        );
    }

    #[test]
    fn malformed_basic() {
        for bad in [
            "Basic !!!".to_string(),
            format!("Basic {}", STANDARD.encode("nocolon")),
            format!("Basic {}", STANDARD.encode(":secret")),
            format!("Basic {}", STANDARD.encode("a:%zz")),
            format!("Basic {}", STANDARD.encode(b"a:\xff")),
        ] {
            assert_eq!(authorization(&req(bad.as_bytes())), Err(Malformed), "{bad}");
        }
        assert_eq!(authorization(&req(b"Basic \xff")), Err(Malformed));
    }

    #[test]
    fn bearer_and_others() {
        assert_eq!(
            authorization(&req(b"Bearer abc.def")).unwrap(),
            Authorization::Bearer("abc.def".into())
        );
        assert_eq!(authorization(&req(b"Bearer a b")), Err(Malformed));
        assert_eq!(authorization(&req(b"Bearer")), Err(Malformed));
        assert_eq!(
            authorization(&req(b"Digest x")).unwrap(),
            Authorization::Other
        );
    }
}
