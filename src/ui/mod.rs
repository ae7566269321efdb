//! Server-rendered pages: compiled-in templates where every `{{name}}` substitution is
//! HTML-escaped (only `{{{name}}}` takes pre-built, already escaped fragments), and the
//! security headers every page carries. Pages work without JavaScript: the form_post
//! auto-submit is allowed by its hash and has a button as fallback; passkeys need
//! [`SCRIPT`], which is served by us and only enhances pages that work without it.

use base64::Engine as _;

use crate::crypto::sha256;
use crate::http::Resp;

const LAYOUT: &str = include_str!("templates/layout.html");
pub const LOGIN: &str = include_str!("templates/login.html");
pub const CONSENT: &str = include_str!("templates/consent.html");
pub const MESSAGE: &str = include_str!("templates/message.html");
pub const FORM_POST: &str = include_str!("templates/form_post.html");
pub const LOGOUT: &str = include_str!("templates/logout.html");
pub const SECOND_FACTOR: &str = include_str!("templates/second_factor.html");
pub const TOTP_ENROL: &str = include_str!("templates/totp_enrol.html");
pub const TOTP_STATUS: &str = include_str!("templates/totp_status.html");
pub const RECOVERY: &str = include_str!("templates/recovery.html");
pub const SETUP: &str = include_str!("templates/setup.html");
pub const ACCOUNT: &str = include_str!("templates/account.html");
pub const PASSKEYS: &str = include_str!("templates/passkeys.html");
/// latchkey's own script (passkeys), served at `/assets/latchkey.js`.
pub const SCRIPT: &str = include_str!("latchkey.js");
/// The tag that loads [`SCRIPT`]; a page whose body holds it gets `script-src 'self'` and
/// `connect-src 'self'` in its CSP (still no inline script).
pub const SCRIPT_TAG: &str = "<script src=\"/assets/latchkey.js\" defer></script>";
/// The stylesheet, served at `/assets/latchkey.css`.
pub const CSS: &str = include_str!("latchkey.css");

/// A value for a template slot.
pub enum Slot<'a> {
    /// Text: escaped.
    Text(&'a str),
    /// Markup built by [`esc`]-ing every piece of data in it.
    Html(&'a str),
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fills a template. Unknown slots are left empty.
pub fn render(template: &str, slots: &[(&str, Slot<'_>)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start..).unwrap_or_default();
        let (raw, open, close) = if after.starts_with("{{{") {
            (true, 3, "}}}")
        } else {
            (false, 2, "}}")
        };
        let Some(end) = after.get(open..).and_then(|a| a.find(close)) else {
            out.push_str(after);
            return out;
        };
        let name = after.get(open..open + end).unwrap_or_default();
        if let Some((_, slot)) = slots.iter().find(|(n, _)| *n == name) {
            match (slot, raw) {
                (Slot::Html(h), true) => out.push_str(h),
                (Slot::Text(t), _) | (Slot::Html(t), false) => out.push_str(&esc(t)),
            }
        }
        rest = after.get(open + end + close.len()..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// The CSP source for the form_post script.
fn form_post_script_hash() -> String {
    let script = "document.forms[0].submit()";
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(sha256(script.as_bytes()))
    )
}

/// A whole page with the security headers: CSP (no framing, no third-party anything),
/// `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `nosniff`, `no-store`.
pub fn page(status: u16, title: &str, body: &str) -> Resp {
    let html = render(
        LAYOUT,
        &[("title", Slot::Text(title)), ("body", Slot::Html(body))],
    );
    let (script, connect) = if body.contains("<script>") {
        (form_post_script_hash(), "")
    } else if body.contains(SCRIPT_TAG) {
        ("'self'".into(), " connect-src 'self';")
    } else {
        ("'none'".into(), "")
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src {script};{connect} \
         base-uri 'none'; frame-ancestors 'none'"
    );
    Resp {
        status,
        headers: vec![
            ("Content-Type", "text/html; charset=utf-8".into()),
            ("Content-Security-Policy", csp.into()),
            ("X-Frame-Options", "DENY".into()),
            ("Referrer-Policy", "no-referrer".into()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("Cross-Origin-Opener-Policy", "same-origin".into()),
            ("Cache-Control", "no-store".into()),
            ("Pragma", "no-cache".into()),
        ],
        body: html.into_bytes(),
        close: false,
    }
}

/// A page with one message (errors, "signed out").
pub fn message(status: u16, title: &str, message: &str) -> Resp {
    message_with(status, title, message, "")
}

/// A page with one message and `extra` markup below it (built with [`esc`]), e.g. a link.
pub fn message_with(status: u16, title: &str, message: &str, extra: &str) -> Resp {
    page(
        status,
        title,
        &render(
            MESSAGE,
            &[
                ("message", Slot::Text(message)),
                ("extra", Slot::Html(extra)),
            ],
        ),
    )
}

/// A paragraph with one link; `href` and `text` are escaped.
pub fn link(href: &str, text: &str) -> String {
    format!("<p><a href=\"{}\">{}</a></p>", esc(href), esc(text))
}

/// A hidden form field; `name` and `value` are escaped.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
        esc(name),
        esc(value)
    )
}

/// The stylesheet response.
pub fn stylesheet() -> Resp {
    Resp {
        status: 200,
        headers: vec![
            ("Content-Type", "text/css; charset=utf-8".into()),
            ("Cache-Control", "public, max-age=86400".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: CSS.as_bytes().to_vec(),
        close: false,
    }
}

/// The script response. Revalidated on every use (`no-cache`), so an upgrade's script and
/// pages never mismatch.
pub fn script() -> Resp {
    Resp {
        status: 200,
        headers: vec![
            ("Content-Type", "text/javascript; charset=utf-8".into()),
            ("Cache-Control", "no-cache".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: SCRIPT.as_bytes().to_vec(),
        close: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_slots() {
        let out = render(
            "<p>{{a}}</p>{{{b}}}<i>{{b}}</i>",
            &[
                ("a", Slot::Text("<script>&\"'")),
                ("b", Slot::Html("<b>x</b>")),
            ],
        );
        assert_eq!(
            out,
            "<p>&lt;script&gt;&amp;&quot;&#39;</p><b>x</b><i>&lt;b&gt;x&lt;/b&gt;</i>"
        );
    }

    #[test]
    fn raw_slot_refuses_text() {
        assert_eq!(render("{{{a}}}", &[("a", Slot::Text("<x>"))]), "&lt;x&gt;");
    }

    #[test]
    fn pages_carry_security_headers() {
        let r = message(400, "Oops", "bad <thing>");
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("script-src 'none'"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("bad &lt;thing&gt;")
        );
    }
}
