//! WebAuthn (Level 3) verification: the relying party's steps of §7.1 (registering a new
//! credential) and §7.2 (verifying an authentication assertion), one by one, with ring for
//! the signatures and ciborium for the CBOR. Attestation is `none`: latchkey does not check
//! authenticator makes, so an attestation statement is read past, never trusted.
//!
//! (interface fixed; the verification is being written)

/// Who latchkey is to the authenticator: the RP ID (the issuer's host, or the cookie domain)
/// and the one origin pages are served from (`https://auth.example.com`, no path).
#[derive(Debug, Clone, Copy)]
pub struct RelyingParty<'a> {
    pub id: &'a str,
    pub origin: &'a str,
}

/// COSE algorithms latchkey accepts, in the order of preference sent to browsers:
/// ES256, EdDSA (Ed25519), RS256.
pub const ALGORITHMS: &[i64] = &[-7, -8, -257];

/// A credential that passed §7.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// The credential id (at most 1023 bytes).
    pub id: Vec<u8>,
    /// The credential public key as the authenticator sent it (a COSE_Key, CBOR).
    pub public_key: Vec<u8>,
    /// Its COSE algorithm, one of [`ALGORITHMS`].
    pub alg: i64,
    pub sign_count: u32,
    pub user_verified: bool,
    /// BE: the credential may be synced to other devices.
    pub backup_eligible: bool,
    /// BS: it is backed up now.
    pub backup_state: bool,
}

/// An assertion that passed §7.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub sign_count: u32,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// The signature counter did not grow (§7.2 step 22): a sign the authenticator may have
    /// been cloned. Logged, not refused, as the spec allows.
    pub counter_regressed: bool,
}

/// Why a ceremony was refused. The text names the failed check and never echoes the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// clientDataJSON is not JSON, or lacks a member.
    ClientData(&'static str),
    /// `type` is not `webauthn.create` / `webauthn.get`.
    Type,
    /// `challenge` is not the one latchkey sent.
    Challenge,
    /// `origin` is not latchkey's, or `crossOrigin` is true.
    Origin,
    /// The rpIdHash is not SHA-256 of latchkey's RP ID.
    RpId,
    /// UP is not set.
    UserNotPresent,
    /// UV is not set but was required.
    UserNotVerified,
    /// BS set without BE.
    BackupFlags,
    /// The attestation object or the authenticator data cannot be read.
    Malformed(&'static str),
    /// The credential's algorithm is not one of [`ALGORITHMS`], or the key does not match it.
    Algorithm,
    /// The signature does not verify.
    Signature,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::ClientData(what) => write!(f, "clientDataJSON: {what}"),
            Refused::Type => f.write_str("clientDataJSON: wrong type"),
            Refused::Challenge => f.write_str("clientDataJSON: not the challenge sent"),
            Refused::Origin => f.write_str("clientDataJSON: wrong origin"),
            Refused::RpId => f.write_str("authenticatorData: wrong rpIdHash"),
            Refused::UserNotPresent => f.write_str("authenticatorData: user not present"),
            Refused::UserNotVerified => f.write_str("authenticatorData: user not verified"),
            Refused::BackupFlags => f.write_str("authenticatorData: backed up but not eligible"),
            Refused::Malformed(what) => write!(f, "malformed {what}"),
            Refused::Algorithm => f.write_str("unsupported or mismatched key algorithm"),
            Refused::Signature => f.write_str("signature does not verify"),
        }
    }
}

/// §7.1: verifies a registration response (`clientDataJSON` and `attestationObject`, as
/// decoded from base64url) against the `challenge` latchkey sent.
pub fn verify_registration(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
    require_user_verification: bool,
) -> Result<NewCredential, Refused> {
    let _ = (rp, challenge, client_data_json, attestation_object, require_user_verification);
    Err(Refused::Malformed("attestationObject"))
}

/// §7.2: verifies an authentication assertion (`clientDataJSON`, `authenticatorData`,
/// `signature`) against the `challenge` latchkey sent and the stored credential (`public_key`
/// as a COSE_Key, `alg`, `stored_sign_count`). Checking that the credential belongs to the
/// user (userHandle) is the caller's.
#[allow(clippy::too_many_arguments)]
pub fn verify_assertion(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
    public_key: &[u8],
    alg: i64,
    stored_sign_count: u32,
    require_user_verification: bool,
) -> Result<Assertion, Refused> {
    let _ = (
        rp,
        challenge,
        client_data_json,
        authenticator_data,
        signature,
        public_key,
        alg,
        stored_sign_count,
        require_user_verification,
    );
    Err(Refused::Malformed("authenticatorData"))
}
