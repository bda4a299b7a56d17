//! What the HTTP connectors share: the rate gate, access tokens, the API client and
//! batching.

pub mod auth;
pub mod bulk;
pub mod client;
pub mod coalesce;
mod failure;
pub mod gate;
pub mod turns;

pub use auth::{ClientAuth, OAuthSettings, OAuthTokens, StaticToken, TokenSource};
pub use bulk::{BulkChange, Stage};
pub use client::{
    ApiClient, ApiClientParts, ApiRequest, ApiResponse, RequestRecorder, SentRequest,
};
pub use coalesce::Coalescer;
pub use gate::{current_priority, with_priority, Pace, Priority, RateGate, Window};
