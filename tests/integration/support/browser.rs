//! A minimal browser for the login and consent pages: a cookie jar (`Set-Cookie` name and
//! value, `Max-Age=0` deletes), GET and form POST, and no automatic redirects — every 303 is
//! the test's to assert and follow. Plus HTML and URL helpers: hidden input values, entity
//! unescaping, query-string parsing.

use super::{Response, Server, form_encode};

/// A cookie-keeping HTTP client bound to one server.
pub struct Browser<'a> {
    pub server: &'a Server,
    /// (name, value) in the order first set.
    jar: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    /// A browser with an empty cookie jar.
    pub fn new(server: &'a Server) -> Browser<'a> {
        Browser {
            server,
            jar: Vec::new(),
        }
    }

    /// The request target for a path or an absolute URL on this server.
    fn target(&self, url: &str) -> String {
        let origin = self.server.issuer();
        match url.strip_prefix(&origin) {
            Some("") => "/".to_string(),
            Some(rest) => rest.to_string(),
            None => {
                assert!(
                    url.starts_with('/'),
                    "the browser only visits {origin}, not {url:?}"
                );
                url.to_string()
            }
        }
    }

    /// The `Cookie:` header line (with `\r\n`), or nothing when the jar is empty.
    pub fn cookie_header(&self) -> String {
        if self.jar.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("Cookie: {}\r\n", pairs.join("; "))
    }

    /// The value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) a cookie by hand.
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        match self.jar.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.jar.push((name.to_string(), value.to_string())),
        }
    }

    /// Drops a cookie from the jar.
    pub fn remove_cookie(&mut self, name: &str) {
        self.jar.retain(|(k, _)| k != name);
    }

    /// Applies every `Set-Cookie` of a response to the jar.
    fn absorb(&mut self, r: &Response) {
        for line in r.headers_named("set-cookie") {
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                panic!("malformed Set-Cookie {line:?}");
            };
            let (name, value) = (name.trim(), value.trim());
            let deletes = parts.any(|attr| {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                k.trim().eq_ignore_ascii_case("max-age")
                    && v.trim().parse::<i64>().is_ok_and(|n| n <= 0)
            });
            if deletes {
                self.remove_cookie(name);
            } else {
                self.set_cookie(name, value);
            }
        }
    }

    /// `GET url` with the jar's cookies; the response's cookies go into the jar.
    pub fn get(&mut self, url: &str) -> Response {
        let target = self.target(url);
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\r\n",
            self.server.addr,
            self.cookie_header()
        );
        let r = self.server.raw(req.as_bytes());
        self.absorb(&r);
        r
    }

    /// `POST url` with an already encoded form body.
    pub fn post_form(&mut self, url: &str, body: &str) -> Response {
        let target = self.target(url);
        let req = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.server.addr,
            self.cookie_header(),
            body.len()
        );
        let r = self.server.raw(req.as_bytes());
        self.absorb(&r);
        r
    }

    /// `POST url` with a JSON body and, when given, the `X-CSRF-Token` header (as
    /// `/assets/latchkey.js` sends them).
    pub fn post_json(&mut self, url: &str, csrf: Option<&str>, body: &str) -> Response {
        let target = self.target(url);
        let csrf = csrf
            .map(|t| format!("X-CSRF-Token: {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{}{csrf}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.server.addr,
            self.cookie_header(),
            body.len()
        );
        let r = self.server.raw(req.as_bytes());
        self.absorb(&r);
        r
    }

    /// `POST url` with these form fields (encoded here).
    pub fn post(&mut self, url: &str, fields: &[(&str, &str)]) -> Response {
        self.post_form(url, &encode_form(fields))
    }

    /// From an authorization request that needs a login: follows the 303 to the login page,
    /// signs in, follows the 303 back to `/authorize` and approves the consent page if one is
    /// shown. Returns the `Location` of the final redirect (the client's callback). Asserts
    /// each step's status.
    pub fn login(&mut self, user: &str, password: &str, authorize_url: &str) -> String {
        let r = self.get(authorize_url);
        assert_eq!(r.status, 303, "authorize: {}", r.text());
        let to_login = location(&r);
        assert!(
            to_login.starts_with("/login?return_to="),
            "authorize did not send the browser to the login page: {to_login}"
        );
        let r = self.submit_login(&to_login, user, password);
        assert_eq!(r.status, 303, "login POST: {}", r.text());
        let back = location(&r);
        self.finish_authorize(&back)
    }

    /// GETs a login page and posts the form on it with these credentials.
    pub fn submit_login(&mut self, login_url: &str, user: &str, password: &str) -> Response {
        self.submit_login_page(login_url, user, password).1
    }

    /// The one sign-in step every test uses: GETs a login page (asserting 200) and posts its
    /// form with these credentials and the hidden fields the page carries (`csrf`,
    /// `return_to`, and `rd` when the page has a non-empty one). Returns the page's HTML and the POST's
    /// response.
    pub fn submit_login_page(
        &mut self,
        login_url: &str,
        user: &str,
        password: &str,
    ) -> (String, Response) {
        let page = self.get(login_url);
        assert_eq!(page.status, 200, "login page {login_url}: {}", page.text());
        let html = page.text();
        let csrf = hidden_input(&html, "csrf").expect("login page has a csrf input");
        let return_to = hidden_input(&html, "return_to").expect("login page has return_to");
        // A browser would post an empty `rd` too; leaving it out keeps the OIDC logins free of
        // a refused-return-URL log line.
        let rd = hidden_input(&html, "rd").filter(|rd| !rd.is_empty());
        let mut fields = vec![("csrf", csrf.as_str()), ("return_to", return_to.as_str())];
        if let Some(rd) = &rd {
            fields.push(("rd", rd.as_str()));
        }
        fields.extend([("username", user), ("password", password)]);
        let r = self.post("/login", &fields);
        (html, r)
    }

    /// GETs an `/authorize` URL with a signed-in session: approves consent if asked, and
    /// returns the callback `Location`.
    pub fn finish_authorize(&mut self, authorize_url: &str) -> String {
        let r = self.get(authorize_url);
        match r.status {
            303 => location(&r),
            200 => {
                let r = self.decide(&r, "approve");
                assert_eq!(r.status, 303, "consent POST: {}", r.text());
                location(&r)
            }
            s => panic!("authorize answered {s}: {}", r.text()),
        }
    }

    /// Signs out as a person does: `GET url` (a `/logout` URL) shows the confirmation page
    /// (asserted), and its form, hidden fields and all, is posted back. Returns the POST's
    /// response.
    pub fn sign_out_at(&mut self, url: &str) -> Response {
        let page = self.get(url);
        assert_eq!(page.status, 200, "logout page {url}: {}", page.text());
        let html = page.text();
        assert!(
            html.contains("action=\"/logout\""),
            "not a logout confirmation: {html}"
        );
        let fields: Vec<(String, String)> = inputs(&html)
            .into_iter()
            .filter(|(_, t, _)| t == "hidden")
            .map(|(n, _, v)| (n, v))
            .collect();
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.post("/logout", &fields)
    }

    /// [`Browser::sign_out_at`] `/logout`.
    pub fn sign_out(&mut self) -> Response {
        self.sign_out_at("/logout")
    }

    /// Posts the consent form of a consent page with `decision` (approve or deny).
    pub fn decide(&mut self, consent_page: &Response, decision: &str) -> Response {
        let html = consent_page.text();
        assert!(
            html.contains("action=\"/consent\""),
            "not a consent page: {html}"
        );
        let csrf = hidden_input(&html, "csrf").expect("consent page has a csrf input");
        let request = hidden_input(&html, "request").expect("consent page has request");
        self.post(
            "/consent",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", decision),
            ],
        )
    }
}

/// Signs in with a fresh browser (see [`Browser::login`]); returns the callback URL.
pub fn login(server: &Server, user: &str, password: &str, authorize_url: &str) -> String {
    Browser::new(server).login(user, password, authorize_url)
}

/// The `Location` header of a response (asserting there is one).
pub fn location(r: &Response) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no Location (status {}): {}", r.status, r.text()))
        .to_string()
}

/// Encodes form fields as `a=1&b=2`.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Replaces the HTML character references `&amp;` `&lt;` `&gt;` `&quot;` `&#39;` `&#NN;`
/// `&#xNN;` `&apos;` with their characters.
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let decoded = after.find(';').and_then(|end| {
            let entity = &after[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                    } else if let Some(dec) = entity.strip_prefix('#') {
                        dec.parse::<u32>().ok().and_then(char::from_u32)
                    } else {
                        None
                    }
                }
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of the attribute `attr` in one tag's text (`name="…"`), unescaped.
fn attribute(tag: &str, attr: &str) -> Option<String> {
    let needle = format!(" {attr}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')?;
    Some(html_unescape(&tag[start..start + end]))
}

/// Every `<input …>` tag of a page, as (name, type, value) after unescaping.
pub fn inputs(html: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<input") {
        let after = &rest[i..];
        let end = after.find('>').expect("unterminated <input");
        let tag = &after[..end];
        out.push((
            attribute(tag, "name").unwrap_or_default(),
            attribute(tag, "type").unwrap_or_default(),
            attribute(tag, "value").unwrap_or_default(),
        ));
        rest = &after[end..];
    }
    out
}

/// The value of the hidden input named `name` (`<input type="hidden" name="csrf" value="…">`).
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    inputs(html)
        .into_iter()
        .find(|(n, t, _)| n == name && t == "hidden")
        .map(|(_, _, v)| v)
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space). Panics on a
/// malformed escape or bytes that are not UTF-8.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = s.get(i + 1..i + 3).expect("truncated % escape");
                out.push(u8::from_str_radix(hex, 16).expect("bad % escape"));
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("decoded query is not UTF-8")
}

/// The decoded (name, value) pairs of a URL's query (or of a bare query string).
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = match url.split_once('?') {
        Some((_, q)) => q,
        None if url.contains("://") || url.starts_with('/') => "",
        None => url,
    };
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// The one value of `name` in a URL's query (asserting it is not repeated).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let values: Vec<String> = query_pairs(url)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert!(values.len() <= 1, "{name} is repeated in {url}");
    values.into_iter().next()
}

/// The text of the page's error message (`<p class="error" …>`), if any.
pub fn page_error(html: &str) -> Option<String> {
    let start = html.find("class=\"error\"")?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    let close = rest.find("</p>")?;
    Some(rest[open..close].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_entities() {
        assert_eq!(
            html_unescape("a&amp;b&lt;&gt;&quot;&#39;&#x41;&#66;&unknown;&"),
            "a&b<>\"'AB&unknown;&"
        );
    }

    #[test]
    fn finds_hidden_inputs() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&amp;b">
<input id="u" name="username" type="text" value="x">
<input type="hidden" name="request" value="client_id=1&amp;state=a+b%2F"></form>"#;
        assert_eq!(hidden_input(html, "csrf").as_deref(), Some("a&b"));
        assert_eq!(
            hidden_input(html, "request").as_deref(),
            Some("client_id=1&state=a+b%2F")
        );
        assert_eq!(hidden_input(html, "username"), None, "not hidden");
        assert_eq!(hidden_input(html, "missing"), None);
    }

    #[test]
    fn parses_queries() {
        let url = "https://app.example/cb?code=x&state=a+b%2F%C3%A9%26x&iss=http%3A%2F%2Fh";
        assert_eq!(query_param(url, "state").as_deref(), Some("a b/é&x"));
        assert_eq!(query_param(url, "iss").as_deref(), Some("http://h"));
        assert_eq!(query_param(url, "nope"), None);
        assert_eq!(query_pairs("/login").len(), 0);
    }
}
