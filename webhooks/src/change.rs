//! What a webhook delivery says: "this record may have changed".

use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Upsert,
    Delete,
}

/// One change announced by a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChange {
    /// Xero: `CONTACT`, `INVOICE`, …; HubSpot: `company`, `contact`, `deal`, …
    pub object_type: String,
    pub object_id: String,
    pub kind: ChangeKind,
    /// Unix milliseconds.
    pub occurred_at: i64,
    /// Unique per announced change and the same on every redelivery of it.
    pub delivery_key: String,
    /// The Xero organisation or HubSpot portal.
    pub tenant: Option<String>,
    /// The system says the app receiving the delivery made this change itself
    /// (HubSpot: `changeSource` of an integration and `sourceId` equal to `appId`).
    pub by_this_app: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|err| ParseError::Malformed(err.to_string()))
}
