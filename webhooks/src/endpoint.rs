//! How the deliveries to one endpoint (one pair's CRM or finance side) are signed,
//! judged from the request as it came: its method, path, every header and the raw
//! body. Every header a scheme reads must appear at most once.

use super::headers::{single, values_of};
use super::hubspot::{self, SignatureHeaders, SignedRequest, Versions};
use super::standard::{self, StandardSecret};
use super::{xero, VerifyError, WebhookSecret};

/// A request as received, before anything is believed about it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query as requested (`/webhooks/acme/crm?x=1`).
    pub path_and_query: &'a str,
    /// Every header line, names in any case, repeated names kept.
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// Who signs an endpoint's deliveries, with the secrets to check them.
#[derive(Debug, Clone)]
pub enum Signing {
    /// Xero itself: `x-xero-signature` under the app's webhook key.
    Xero { keys: Vec<WebhookSecret> },
    /// HubSpot itself, under the app's client secret, in the versions accepted.
    Hubspot {
        secrets: Vec<WebhookSecret>,
        versions: Versions,
        /// Where senders reach Tandem (`https://sync.example.com`): v2 and v3 sign
        /// the full URL called, which is rebuilt from this and the requested path.
        public_base_url: Option<String>,
    },
    /// A relay in front of Tandem that forwards HubSpot's or Xero's body unchanged and
    /// signs it with Standard Webhooks.
    Standard { secrets: Vec<StandardSecret> },
}

impl Signing {
    /// HubSpot's own signatures. Without a public base URL, v2 and v3 cannot be
    /// checked (the `Host` header is the sender's to choose), so they are not taken.
    pub fn hubspot(
        secrets: Vec<WebhookSecret>,
        versions: Versions,
        public_base_url: Option<&str>,
    ) -> Self {
        let versions = match public_base_url {
            Some(_) => versions,
            None => Versions {
                v2: false,
                v3: false,
                ..versions
            },
        };
        Self::Hubspot {
            secrets,
            versions,
            public_base_url: public_base_url.map(|base| base.trim_end_matches('/').to_string()),
        }
    }

    /// `now_ms` is the current Unix time in milliseconds.
    pub fn verify(&self, request: &Request<'_>, now_ms: i64) -> Result<(), VerifyError> {
        let header = |name: &'static str| single(name, values_of(request.headers, name));
        match self {
            Self::Xero { keys } => {
                let signature = header(xero::SIGNATURE_HEADER)?;
                xero::verify(request.body, signature, keys)
            }
            Self::Hubspot {
                secrets,
                versions,
                public_base_url,
            } => {
                let headers = SignatureHeaders {
                    v3_signature: header(hubspot::SIGNATURE_V3_HEADER)?,
                    v3_timestamp: header(hubspot::TIMESTAMP_HEADER)?,
                    signature: header(hubspot::SIGNATURE_HEADER)?,
                    version: header(hubspot::VERSION_HEADER)?,
                };
                let url = format!(
                    "{}{}",
                    public_base_url.as_deref().unwrap_or_default(),
                    request.path_and_query
                );
                let signed = SignedRequest {
                    method: request.method,
                    uri: &url,
                    body: request.body,
                };
                hubspot::verify_accepting(signed, headers, secrets, now_ms, *versions)
            }
            Self::Standard { secrets } => {
                let headers = standard::Headers {
                    id: header(standard::ID_HEADER)?,
                    timestamp: header(standard::TIMESTAMP_HEADER)?,
                    signature: header(standard::SIGNATURE_HEADER)?,
                };
                standard::verify(request.body, headers, secrets, now_ms.div_euclid(1000))
            }
        }
    }
}
