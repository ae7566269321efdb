//! The "Apps you allowed" section of the account page and `POST /account/consents/revoke`:
//! the consents the user gave (client name and scopes); revoking one forgets it and revokes
//! the grants it led to ([`crate::store::Store::revoke_consent`]: their refresh tokens stop
//! working, their access tokens are revoked), so the app asks again next time.

use super::profile::{Notice, actor, done, render, signed_in_form, went_wrong};
use crate::accounts::session::Session;
use crate::app::Worker;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::store::StoreError;
use crate::timefmt::rfc3339;
use crate::ui::{self, esc};

/// The section's markup.
pub fn section(w: &Worker, s: &Session, token: &str) -> Result<String, StoreError> {
    let consents = w.store.consents_of(&s.user.id)?;
    if consents.is_empty() {
        return Ok("<p class=\"muted\">You have not allowed any app yet.</p>".into());
    }
    let mut out = String::from("<ul class=\"rows\">\n");
    for (client_id, scope, created_at) in &consents {
        let name = w
            .store
            .client(client_id)?
            .map_or_else(|| client_id.clone(), |c| c.name.clone());
        out.push_str(&format!(
            "<li><span><strong>{}</strong><br><span class=\"muted\">{} · allowed {}</span></span> \
             <form method=\"post\" action=\"{}\">{}{}<button type=\"submit\" class=\"secondary small\">Revoke</button></form></li>\n",
            esc(&name),
            esc(scope),
            esc(&rfc3339(*created_at)),
            router::ACCOUNT_CONSENTS_REVOKE,
            ui::hidden("csrf", token).trim_end(),
            ui::hidden("client_id", client_id).trim_end(),
        ));
    }
    out.push_str("</ul>");
    Ok(out)
}

/// `POST /account/consents/revoke` with `client_id`: 404 when the user gave that client no
/// consent. Audited as `consent_revoked`.
pub fn revoke(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let (s, form) = match signed_in_form(w, req, now) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let client_id = form
        .get("client_id")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let actor = actor(w, req, &s);
    let given = match w.store.consents_of(&s.user.id) {
        Ok(c) => c.iter().any(|(id, _, _)| *id == client_id),
        Err(e) => {
            log::error!("account consents: {e}");
            return went_wrong();
        }
    };
    let outcome = if given {
        match w.store.revoke_consent(&s.user.id, &client_id, now) {
            Ok(_) => "ok",
            Err(e) => {
                log::error!("account consents: {e}");
                return went_wrong();
            }
        }
    } else {
        "failed"
    };
    let target: String = client_id
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    w.app.audit().write(
        &mut w.store,
        now,
        &actor.name,
        "consent_revoked",
        &format!("{} {target}", s.user.username),
        outcome,
        &actor.address,
    );
    if given {
        done("consent")
    } else {
        render(
            w,
            req,
            &s,
            404,
            &Notice::Refused("You have not allowed that app."),
            now,
        )
    }
}
