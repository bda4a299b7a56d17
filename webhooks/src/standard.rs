//! Standard Webhooks: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (space-separated `v1,<base64 HMAC-SHA256>` entries over
//! `id.timestamp.body`), with `whsec_` base64 secrets and a 5-minute tolerance either
//! way.
//!
//! Tandem takes it from a relay that sits between HubSpot or Xero and Tandem (a
//! webhook gateway that fans one app's deliveries out to several consumers) and
//! re-signs the body it forwards unchanged; see `Signing::Standard` in [`crate::endpoint`].

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

use super::{freshness, hmacs, matches_any, VerifyError};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
pub const TOLERANCE_SECS: u64 = 300;

/// A `whsec_…` secret (the prefix is optional), base64 with or without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct StandardSecret(Vec<u8>);

impl StandardSecret {
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        if encoded.is_empty() {
            return Err("the secret is empty".into());
        }
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')))
            .map_err(|_| "the secret is not base64 after `whsec_`".to_string())?;
        if bytes.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Self(bytes))
    }
}

impl std::fmt::Debug for StandardSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// `now_secs` is the current Unix time in seconds.
pub fn verify(
    body: &[u8],
    headers: Headers<'_>,
    secrets: &[StandardSecret],
    now_secs: i64,
) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let id = headers.id.ok_or(VerifyError::MissingHeader(ID_HEADER))?;
    if id.trim().is_empty() {
        return Err(VerifyError::MalformedHeader(ID_HEADER));
    }
    let timestamp = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signatures = headers
        .signature
        .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let sent_at = freshness::parse(timestamp, TIMESTAMP_HEADER)?;
    freshness::check(sent_at, now_secs, TOLERANCE_SECS)?;
    let keys: Vec<&[u8]> = secrets.iter().map(|s| s.0.as_slice()).collect();
    let message = [id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body];
    // One MAC per secret, whatever the number of entries offered: a header of
    // thousands of entries costs a base64 decode each, not a pass over the body each.
    let expected = hmacs(&keys, &message);
    let matched = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .fold(false, |found, offered| {
            found | matches_any(&expected, &offered)
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
