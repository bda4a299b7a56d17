//! Webhook signature schemes and payload parsing for Tandem, free of I/O.
//!
//! Verifies Xero, HubSpot (v1, v2, v3), Standard Webhooks and generic HMAC-SHA256
//! signatures in constant time, and turns deliveries into change hints.
