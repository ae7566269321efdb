//! Second factors and how a session was signed in: the [`Amr`] of a session (RFC 8176
//! Authentication Method Reference values), which the ID token carries as `amr` and `acr`, and
//! which forward auth passes on as `Remote-Amr`.
//!
//! The methods latchkey records:
//!
//! | value | meaning |
//! | --- | --- |
//! | `pwd` | the password |
//! | `otp` | a TOTP code or a recovery code |
//! | `hwk` | a passkey bound to its device (not backup-eligible) |
//! | `swk` | a synced passkey (backup-eligible: the key may live in a cloud keychain) |
//! | `user` | the authenticator verified the user (PIN or biometrics) |
//! | `mfa` | more than one factor: a password with a second factor, or a user-verified passkey |

pub mod policy;
pub mod recovery;
pub mod totp;
pub mod webauthn;

/// RFC 8176 values of one sign-in, in the order they were given; `mfa` last when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amr(Vec<String>);

/// The `acr` of a multi-factor sign-in (and the value a client asks for with `acr_values`).
pub const ACR_MFA: &str = "urn:latchkey:acr:mfa";
/// The `acr` of a single-factor sign-in.
pub const ACR_SINGLE: &str = "urn:latchkey:acr:pwd";

impl Amr {
    /// A sign-in with the password alone.
    pub fn password() -> Amr {
        Amr(vec!["pwd".into()])
    }

    /// A sign-in with a passkey alone: `hwk` or `swk` by whether the credential may be synced
    /// (the BE flag), `user` and `mfa` when the authenticator verified the user (UV).
    pub fn passkey(backup_eligible: bool, user_verified: bool) -> Amr {
        let mut v = vec![if backup_eligible { "swk" } else { "hwk" }.to_string()];
        if user_verified {
            v.push("user".into());
            v.push("mfa".into());
        }
        Amr(v)
    }

    /// This sign-in with one more factor (`otp`, `hwk`, `swk`, `user`): adds the method and
    /// `mfa`.
    pub fn with_second_factor(&self, methods: &[&str]) -> Amr {
        let mut v: Vec<String> = self.0.iter().filter(|m| *m != "mfa").cloned().collect();
        for m in methods {
            if !v.iter().any(|x| x == m) {
                v.push((*m).to_string());
            }
        }
        v.push("mfa".into());
        Amr(v)
    }

    /// More than one factor.
    pub fn is_multi_factor(&self) -> bool {
        self.0.iter().any(|m| m == "mfa")
    }

    /// The `acr` value this sign-in meets.
    pub fn acr(&self) -> &'static str {
        if self.is_multi_factor() {
            ACR_MFA
        } else {
            ACR_SINGLE
        }
    }

    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// As stored: a JSON array.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[\"pwd\"]".into())
    }

    /// From the stored JSON array; anything unreadable counts as the password alone (the
    /// weakest claim).
    pub fn from_json(s: &str) -> Amr {
        match serde_json::from_str::<Vec<String>>(s) {
            Ok(v) if !v.is_empty() => Amr(v),
            _ => Amr::password(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_values_follow_the_factors() {
        assert_eq!(Amr::password().values(), ["pwd"]);
        assert!(!Amr::password().is_multi_factor());
        let otp = Amr::password().with_second_factor(&["otp"]);
        assert_eq!(otp.values(), ["pwd", "otp", "mfa"]);
        assert_eq!(otp.acr(), ACR_MFA);
        // A second step-up does not repeat values.
        assert_eq!(
            otp.with_second_factor(&["otp"]).values(),
            ["pwd", "otp", "mfa"]
        );
        assert_eq!(Amr::passkey(false, true).values(), ["hwk", "user", "mfa"]);
        assert_eq!(Amr::passkey(true, false).values(), ["swk"]);
        assert_eq!(Amr::passkey(true, false).acr(), ACR_SINGLE);
        assert_eq!(Amr::from_json(&otp.to_json()), otp);
        assert_eq!(Amr::from_json("garbage"), Amr::password());
        assert_eq!(Amr::from_json("[]"), Amr::password());
    }
}
