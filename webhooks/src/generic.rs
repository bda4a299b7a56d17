//! A generic HMAC-SHA256 hex signature in one header, as in-house systems and many
//! SaaS tools send it: `X-Hub-Signature-256: sha256=<hex>` (the prefix is optional).

use super::{any_hmac_matches, VerifyError, WebhookSecret};

pub fn verify(
    body: &[u8],
    header_name: &'static str,
    header: Option<&str>,
    secrets: &[WebhookSecret],
) -> Result<(), VerifyError> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.bytes().to_vec())
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let header = header.ok_or(VerifyError::MissingHeader(header_name))?;
    let encoded = header
        .trim()
        .strip_prefix("sha256=")
        .unwrap_or(header.trim());
    let expected = hex::decode(encoded).map_err(|_| VerifyError::MalformedHeader(header_name))?;
    if any_hmac_matches(&keys, &[body], &expected) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
