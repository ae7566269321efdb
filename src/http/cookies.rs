//! Cookies (RFC 6265): reading one by name from `Cookie`, and building `Set-Cookie`.

use super::Req;

/// The value of cookie `name`, if the request carries exactly one such cookie. Two cookies of
/// the same name (a sibling subdomain planting one) are treated as none.
pub fn get<'a>(req: &'a Req, name: &str) -> Option<&'a str> {
    let mut found = None;
    for v in req.headers.values("cookie") {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        for pair in v.split(';') {
            let Some((k, val)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return None;
                }
                found = Some(val.trim_matches('"'));
            }
        }
    }
    found
}

/// `Set-Cookie` for a session-type cookie: `Path=/`, `HttpOnly`, `SameSite=Lax`, and `Secure`
/// when `secure`. `max_age` in seconds; 0 deletes the cookie.
pub fn set(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn req(cookies: &[&str]) -> Req {
        let mut r = Req::new(Method::Get, "/", "127.0.0.1:1".parse().unwrap());
        for c in cookies {
            r.headers.push("cookie", c.as_bytes());
        }
        r
    }

    #[test]
    fn reads_one_cookie() {
        assert_eq!(get(&req(&["a=1; b=2"]), "b"), Some("2"));
        assert_eq!(get(&req(&["a=1", "b=2"]), "b"), Some("2"));
        assert_eq!(get(&req(&["a=1"]), "b"), None);
        assert_eq!(get(&req(&["b=1; b=2"]), "b"), None, "ambiguous");
    }

    #[test]
    fn builds_set_cookie() {
        assert_eq!(
            set("s", "v", 60, true),
            "s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!set("s", "v", 60, false).contains("Secure"));
    }
}
