//! Webhook signature schemes and payload parsing for Tandem, free of I/O.
//!
//! Every verifier takes the raw body bytes exactly as received (re-serialised JSON
//! breaks signatures), accepts several active secrets so keys can be rotated, and
//! compares in constant time (`Mac::verify_slice`). Time is a parameter, so tests are
//! deterministic. Parsers turn Xero and HubSpot deliveries into [`WebhookChange`]s:
//! hints that a record may have changed, each with a delivery key unique to it.

pub mod change;
pub mod hubspot;
pub mod standard;
pub mod xero;

mod secret;

pub use change::{ChangeKind, ParseError, WebhookChange};
pub use secret::WebhookSecret;

/// Why a delivery's signature was refused. It never echoes a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `{0}` header is malformed")]
    MalformedHeader(&'static str),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the timestamp is outside the allowed window")]
    StaleTimestamp,
    #[error("no webhook secret is configured")]
    NoSecret,
    #[error("unsupported signature version `{0}`")]
    UnsupportedVersion(String),
}

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Whether any of `secrets` signs `message` with `expected` (raw MAC bytes), each
/// compared in constant time.
fn any_hmac_matches(secrets: &[Vec<u8>], message: &[&[u8]], expected: &[u8]) -> bool {
    secrets.iter().any(|key| {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        for part in message {
            mac.update(part);
        }
        mac.verify_slice(expected).is_ok()
    })
}
