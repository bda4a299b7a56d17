//! Webhook signature schemes and payload parsing for Tandem, free of I/O.
//!
//! Every verifier takes the raw body bytes exactly as received (re-serialised JSON
//! breaks signatures), accepts several active secrets so keys can be rotated, and
//! compares in constant time. Time is a parameter, so tests are deterministic.
//! Parsers turn Xero and HubSpot deliveries into [`WebhookChange`]s: hints that a
//! record may have changed, each with a delivery key unique to it, naming the account
//! it belongs to so that [`tenant`] can hold a delivery to its pair's account.

pub mod change;
pub mod endpoint;
pub mod freshness;
pub mod headers;
pub mod hubspot;
pub mod standard;
pub mod tenant;
pub mod xero;

mod secret;

pub use change::{ChangeKind, ParseError, WebhookChange};
pub use secret::WebhookSecret;
pub use tenant::Tenant;

/// Why a delivery's signature was refused. It never echoes a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `{0}` header is malformed")]
    MalformedHeader(&'static str),
    /// Two values for one header: which one the sender meant cannot be told, and a
    /// proxy and Tandem could each read a different one.
    #[error("the `{0}` header appears more than once")]
    DuplicateHeader(&'static str),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the timestamp is older than the allowed window")]
    StaleTimestamp,
    #[error("the timestamp is further ahead than the allowed window")]
    FutureTimestamp,
    #[error("no webhook secret is configured")]
    NoSecret,
    #[error("unsupported signature version {0}")]
    UnsupportedVersion(String),
    /// A scheme this endpoint does not take, such as HubSpot's v1 and v2 (no timestamp)
    /// where the pair did not opt in.
    #[error("{0}")]
    NotAccepted(&'static str),
}

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 of `message` under each key, computed once per key however many
/// candidate signatures a request offers.
fn hmacs(keys: &[&[u8]], message: &[&[u8]]) -> Vec<[u8; 32]> {
    keys.iter()
        .filter_map(|key| {
            let mut mac = HmacSha256::new_from_slice(key).ok()?;
            for part in message {
                mac.update(part);
            }
            Some(mac.finalize().into_bytes().into())
        })
        .collect()
}

/// Whether `candidate` equals any of `expected`, each compared in constant time.
fn matches_any(expected: &[[u8; 32]], candidate: &[u8]) -> bool {
    expected
        .iter()
        .fold(false, |found, mac| found | bool::from(mac.ct_eq(candidate)))
}

/// A value from a request, shortened and escaped for an error message or a log line:
/// whatever a sender puts there cannot break a log line or grow an answer.
pub(crate) fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut shown: String = value.chars().take(MAX_CHARS).collect();
    if value.chars().nth(MAX_CHARS).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}
