//! The "Second factors" section of the account page: what the user has (from
//! [`crate::store::Store::second_factors`]), with links to the pages that manage each.

use crate::store::factors::SecondFactors;

/// The section's markup.
pub fn section(f: &SecondFactors) -> String {
    let totp = if f.totp { "on" } else { "off" };
    let passkeys = match f.passkeys {
        0 => "none".to_string(),
        1 => "1 passkey".to_string(),
        n => format!("{n} passkeys"),
    };
    let codes = match f.recovery_codes {
        1 => "1 left".to_string(),
        n => format!("{n} left"),
    };
    format!(
        "<ul class=\"rows\">\n\
         <li><span><strong>Authenticator app</strong> <span class=\"muted\">{totp}</span></span> <a href=\"/account/totp\">Manage</a></li>\n\
         <li><span><strong>Passkeys</strong> <span class=\"muted\">{passkeys}</span></span> <a href=\"/account/passkeys\">Manage</a></li>\n\
         <li><span><strong>Recovery codes</strong> <span class=\"muted\">{codes}</span></span> <a href=\"/account/recovery\">Manage</a></li>\n\
         </ul>"
    )
}
