//! Compact JWS (RFC 7515) signed and verified with ring. Only the algorithms of latchkey's own
//! keys exist here: the algorithm is taken from the key found by `kid` in latchkey's key ring,
//! and the token's `alg` header must name it (RFC 8725 §3.1). `none`, HS256 and every other
//! value are rejected; `jku`, `x5u`, `jwk` and `x5c` are never followed (RFC 8725 §3.10).

pub mod keys;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::crypto::{b64url, b64url_decode};
use crate::error::Error;
pub use keys::{Alg, KeyRing, SigningKey};

/// Tokens longer than this are not ours and are rejected before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was rejected. Callers answer all of them the same way (inactive / invalid);
/// the variant is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON objects, or too long.
    Malformed,
    /// `alg` is absent, `none`, or not the algorithm of the key named by `kid`.
    Algorithm,
    /// `kid` is absent or not one of latchkey's published keys.
    UnknownKey,
    /// `typ` is not the one expected for this kind of token (RFC 8725 §3.11).
    Type,
    /// The header carries `crit` (latchkey understands no extensions).
    Critical,
    /// The signature does not verify.
    Signature,
}

/// Signs `claims` with `key`, with header `{"alg", "typ", "kid"}`.
pub fn encode(key: &SigningKey, typ: &str, claims: &impl Serialize) -> Result<String, Error> {
    /// The JOSE header, serialised straight from borrowed fields.
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'a str,
        typ: &'a str,
        kid: &'a str,
    }
    let header = Header {
        alg: key.alg.as_str(),
        typ,
        kid: &key.kid,
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::Crypto("JWT header"))?;
    let payload = serde_json::to_vec(claims).map_err(|_| Error::Crypto("JWT claims"))?;
    let mut out = String::with_capacity(header.len() * 4 / 3 + payload.len() * 4 / 3 + 100);
    out.push_str(&b64url(&header));
    out.push('.');
    out.push_str(&b64url(&payload));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(&sig));
    Ok(out)
}

fn json_object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = b64url_decode(part).ok_or(JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// A token whose signature verified: its claims and the `kid` of the key that signed it.
#[derive(Debug)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub kid: String,
}

/// Verifies `token` against the key ring and returns its claims. `typ` lists the accepted
/// header `typ` values (compared case-insensitively, RFC 7515 §4.1.9). Claims (`iss`, `exp`,
/// `aud`) are the caller's to check.
pub fn verify(ring: &KeyRing, token: &str, typ: &[&str]) -> Result<Verified, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = json_object(h)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Algorithm)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwtError::UnknownKey)?;
    let key = ring.get(kid).ok_or(JwtError::UnknownKey)?;
    if Alg::parse(alg) != Some(key.alg) {
        return Err(JwtError::Algorithm);
    }
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    let token_typ = header
        .get("typ")
        .and_then(Value::as_str)
        .ok_or(JwtError::Type)?;
    if !typ.iter().any(|t| t.eq_ignore_ascii_case(token_typ)) {
        return Err(JwtError::Type);
    }
    let sig = b64url_decode(s).ok_or(JwtError::Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    let signed = token.get(..signed_len).ok_or(JwtError::Malformed)?;
    if !key.verify(signed.as_bytes(), &sig) {
        return Err(JwtError::Signature);
    }
    Ok(Verified {
        claims: json_object(p)?,
        kid: key.kid.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A ring with one active key per algorithm, built from key material alone.
    fn ring_with_key() -> KeyRing {
        let rows = keys::ALGS
            .iter()
            .map(|&alg| {
                let (pkcs8, key) = SigningKey::generate(alg, 1000).unwrap();
                keys::KeyMaterial {
                    kid: key.kid,
                    alg: alg.as_str().to_string(),
                    pkcs8,
                    status: "active".into(),
                    created_at: 1000,
                    activate_at: 1000,
                }
            })
            .collect();
        KeyRing::from_rows(rows).unwrap()
    }

    fn forge(header: Value, claims: Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap()),
            b64url(&serde_json::to_vec(&claims).unwrap()),
            b64url(sig)
        )
    }

    #[test]
    fn round_trip() {
        let ring = ring_with_key();
        let key = ring.active(Alg::Es256, 1000).unwrap();
        let token = encode(key, "at+jwt", &json!({"sub": "a"})).unwrap();
        let verified = verify(&ring, &token, &["at+jwt"]).unwrap();
        assert_eq!(verified.claims["sub"], "a");
        assert_eq!(verified.kid, key.kid);
        assert_eq!(
            verify(&ring, &token, &["JWT"]).unwrap_err(),
            JwtError::Type,
            "an access token is not an ID token"
        );
    }

    #[test]
    fn rejects_none_hs256_and_foreign_kid() {
        let ring = ring_with_key();
        let kid = ring.active(Alg::Es256, 1000).unwrap().kid.clone();
        let none = forge(
            json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
            json!({}),
            b"",
        );
        assert_eq!(
            verify(&ring, &none, &["at+jwt"]).unwrap_err(),
            JwtError::Algorithm
        );
        let hs = forge(
            json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
            json!({}),
            b"x",
        );
        assert_eq!(
            verify(&ring, &hs, &["at+jwt"]).unwrap_err(),
            JwtError::Algorithm
        );
        let foreign = forge(
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "x"}),
            json!({}),
            b"x",
        );
        assert_eq!(
            verify(&ring, &foreign, &["at+jwt"]).unwrap_err(),
            JwtError::UnknownKey
        );
        let no_kid = forge(json!({"alg": "ES256", "typ": "at+jwt"}), json!({}), b"x");
        assert_eq!(
            verify(&ring, &no_kid, &["at+jwt"]).unwrap_err(),
            JwtError::UnknownKey
        );
    }

    #[test]
    fn rejects_tampering_and_junk() {
        let ring = ring_with_key();
        let key = ring.active(Alg::Es256, 1000).unwrap();
        let token = encode(key, "at+jwt", &json!({"sub": "a"})).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = b64url(br#"{"sub":"b"}"#);
        parts[1] = &other;
        assert_eq!(
            verify(&ring, &parts.join("."), &["at+jwt"]).unwrap_err(),
            JwtError::Signature
        );
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "....",
            "x.y.z",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(verify(&ring, junk, &["at+jwt"]).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn rejects_crit() {
        let ring = ring_with_key();
        let key = ring.active(Alg::Es256, 1000).unwrap();
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": key.kid, "crit": ["exp"]});
        let h = b64url(&serde_json::to_vec(&header).unwrap());
        let p = b64url(b"{}");
        let sig = key.sign(format!("{h}.{p}").as_bytes()).unwrap();
        let token = format!("{h}.{p}.{}", b64url(&sig));
        assert_eq!(
            verify(&ring, &token, &["at+jwt"]).unwrap_err(),
            JwtError::Critical
        );
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        // RFC 7638 §3.1 uses an RSA key; check the EC member order and hashing instead by
        // recomputing it independently from the JWK.
        let ring = ring_with_key();
        let key = ring.active(Alg::Es256, 1000).unwrap();
        let jwk = key.jwk();
        let canon = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["kty"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(key.kid, b64url(&crate::crypto::sha256(canon.as_bytes())));
    }
}
