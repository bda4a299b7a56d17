//! Credentials sealed at rest. OAuth access and refresh tokens are stored as
//! XChaCha20-Poly1305 envelopes under a key only the engine holds (`secrets_key`), each
//! bound to the row and token it belongs to; older keys stay readable so the key can
//! rotate. See `docs/security.md` for what this protects and how to rotate.

mod envelope;
mod key;

use std::fmt;

pub use envelope::{is_sealed, Kept, Keyring, Opened};
pub use key::{KeyFormatError, KeyId, SecretsKey, KEY_FORMAT};

/// The error when sealed credentials meet a process without a key.
pub const KEY_MISSING: &str =
    "credentials in the store are encrypted; set TANDEM_SECRETS_KEY (or TANDEM_SECRETS_KEY_FILE)";

/// Why a credential could not be sealed or read. Messages name the row, the token and
/// key ids, never a key or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{KEY_MISSING}")]
    KeyMissing,
    #[error(
        "credentials are stored encrypted and no key is set; set TANDEM_SECRETS_KEY (or \
         TANDEM_SECRETS_KEY_FILE) to {KEY_FORMAT}"
    )]
    NoKeyToSeal,
    #[error(
        "the {slot} is encrypted under key id `{key_id}`, which is not among the keys set \
         (ids {}); set that key in TANDEM_SECRETS_KEY or add it to TANDEM_SECRETS_OLD_KEYS",
        ids(known)
    )]
    UnknownKey {
        slot: String,
        key_id: KeyId,
        known: Vec<KeyId>,
    },
    #[error(
        "the {slot} could not be decrypted with key id `{key_id}`: the stored value was \
         altered or copied from another row"
    )]
    Undecryptable { slot: String, key_id: KeyId },
    #[error("the stored {slot} is not a readable envelope")]
    Malformed { slot: String },
    #[error(
        "the {slot} is sealed in envelope version `{version}`, which this version of \
         Tandem does not read; run the version that wrote it"
    )]
    UnknownVersion { slot: String, version: String },
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

fn ids(known: &[KeyId]) -> String {
    known
        .iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which token a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        }
    }
}

/// Where a sealed value belongs: the row (pair and system) and the token. It is the
/// associated data of the envelope, so a value only opens in its own place.
#[derive(Debug, Clone, Copy)]
pub struct CredentialSlot<'a> {
    pub pair: &'a str,
    pub system: &'a str,
    pub token: TokenKind,
}

impl fmt::Display for CredentialSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = match self.token {
            TokenKind::Access => "access token",
            TokenKind::Refresh => "refresh token",
        };
        write!(f, "{token} of pair `{}` {}", self.pair, self.system)
    }
}

#[cfg(test)]
mod tests;
