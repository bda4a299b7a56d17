//! Connectors: each system's API behind one trait, speaking canonical records.
//!
//! [`memory`] is an in-memory system for tests and the demo, able to inject the
//! failures real APIs produce. The HubSpot and Xero connectors implement the same trait.
//! [`health`] keeps each connection's state from its probes and its calls.

pub mod health;
pub mod http;
pub mod hubspot;
pub mod memory;
pub mod unread;
pub mod xero;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{EntityType, FieldMap, System};

/// A record as a connector returns it, in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRecord {
    pub id: String,
    /// `None` when the record is archived or deleted in its system.
    pub fields: Option<FieldMap>,
    /// The system's own updated-at, RFC 3339.
    pub version: Option<String>,
    /// The origin stamp the record carries, if Tandem created it.
    pub stamp: Option<String>,
    /// When each canonical field last changed, RFC 3339, for systems that report
    /// per-field times (HubSpot's property history). A field not listed changed at
    /// `version` at the latest: the record-level time is all a last-write-wins clash
    /// can go on for it.
    pub field_versions: BTreeMap<String, String>,
}

/// One HTTP exchange, secrets redacted, kept in the sync log for a person to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub status: Option<u16>,
}

/// The result of a write: the record as the system now holds it, and the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub record: ExternalRecord,
    pub exchange: Exchange,
}

/// A page of changed records, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangePage {
    pub records: Vec<ExternalRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConnectorError {
    #[error("no answer from {system} within the timeout")]
    Timeout { system: System },
    #[error("{system} is unavailable (HTTP {status})")]
    Unavailable {
        system: System,
        status: u16,
        exchange: Exchange,
    },
    #[error("{system} rate limit reached; retry after {retry_after:?}")]
    RateLimited {
        system: System,
        retry_after: Duration,
        exchange: Exchange,
    },
    #[error("{system} refused the request (HTTP {status}): {message}")]
    Rejected {
        system: System,
        status: u16,
        message: String,
        exchange: Exchange,
    },
    #[error("cannot reach {system}: {message}")]
    Connection { system: System, message: String },
    /// The change needs another record synced first (an invoice's customer); it is
    /// retried, by which time that record has usually been synced.
    #[error("{message}")]
    NotReady { system: System, message: String },
    /// A value the system would refuse or misread (too long, not a number, not one of
    /// its codes), found before any call: nothing was sent. Like a refusal it is not
    /// retried, since only a change to the record can make it fit.
    #[error("not sent to {system}: {message}")]
    Unsendable { system: System, message: String },
    /// The record changed after it was read, before the write went out: nothing was
    /// written, and the change is decided again from a fresh read.
    #[error("{system} record {id} changed after it was read; nothing was written")]
    Changed { system: System, id: String },
    /// Not called: the connection is out of service (down, unauthorised,
    /// misconfigured, or not probed yet) and stayed so while the call waited. The
    /// change did nothing wrong, so it waits again without using up an attempt.
    #[error("{message}")]
    OutOfService {
        system: System,
        message: String,
        /// How long the connection has been out of service.
        out_for: Duration,
    },
    /// Not called, or refused for it: the account's budget with the service is spent
    /// for a long while (Xero's daily limit). The change waits, without using up an
    /// attempt, until the budget is back.
    #[error("{system}'s API limit is spent (the {limit} limit): calls wait until {until}")]
    OverBudget {
        system: System,
        /// Which limit: `daily`, as the service named it.
        limit: String,
        until: chrono::DateTime<chrono::Utc>,
        /// How long from now.
        retry_after: Duration,
    },
}

/// When a write's record was read, and at which version: a write of a record read
/// longer than [`RECHECK_AFTER`] ago is checked against the system first.
#[derive(Debug, Clone)]
pub struct ReadAt {
    pub version: Option<String>,
    pub at: Instant,
}

/// A write whose record was read longer ago than this (it waited for a rate budget, a
/// batch, a retry) reads the record again just before it goes out, in the same batch:
/// a person's edit that landed in between is not overwritten. Sooner writes go out as
/// they are: the window left is this long at most, plus one call.
pub const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl ReadAt {
    /// Whether the write must check the record before it goes out.
    pub fn needs_check(&self) -> bool {
        self.version.is_some() && self.at.elapsed() >= RECHECK_AFTER
    }

    /// Whether `current` (the version read just now) is still the one read before.
    pub fn unchanged(&self, current: Option<&str>) -> bool {
        self.version.as_deref() == current
    }
}

impl ConnectorError {
    /// Passing failures are retried with backoff; the others need a person.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ConnectorError::Rejected { .. } | ConnectorError::Unsendable { .. }
        )
    }

    /// The system refused the credentials (after a refresh, where one was possible):
    /// the connection needs a person to connect it again, not the change a retry.
    pub fn credentials_refused(&self) -> bool {
        matches!(
            self,
            ConnectorError::Rejected {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The least time to wait before calling again, as the system asked.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::RateLimited { retry_after, .. }
            | ConnectorError::OverBudget { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn system(&self) -> System {
        match self {
            ConnectorError::Timeout { system }
            | ConnectorError::Unavailable { system, .. }
            | ConnectorError::RateLimited { system, .. }
            | ConnectorError::Rejected { system, .. }
            | ConnectorError::Connection { system, .. }
            | ConnectorError::NotReady { system, .. }
            | ConnectorError::Unsendable { system, .. }
            | ConnectorError::Changed { system, .. }
            | ConnectorError::OutOfService { system, .. }
            | ConnectorError::OverBudget { system, .. } => *system,
        }
    }

    pub fn exchange(&self) -> Option<&Exchange> {
        match self {
            ConnectorError::Unavailable { exchange, .. }
            | ConnectorError::RateLimited { exchange, .. }
            | ConnectorError::Rejected { exchange, .. } => Some(exchange),
            _ => None,
        }
    }
}

/// One system's API, as the orchestrator and the poller use it.
#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> System;

    /// Why `id` cannot name a record of this system (Xero's ids are UUIDs), checked
    /// before a person's request sends it anywhere; any id by default.
    fn check_id(&self, _entity: EntityType, _id: &str) -> Result<(), String> {
        Ok(())
    }
    /// A cheap authenticated read of a known endpoint: whether the connection works
    /// and, when it does not, why (down, credentials refused, a wrong base URL). It
    /// spends the rate budget like any call, and is made even while the connection's
    /// other calls are held.
    async fn probe(&self) -> health::ProbeReport;

    /// The current record, or `None` if the system has no such record.
    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError>;

    /// Records changed at or after `since`, a page at a time, oldest change first (the
    /// poller moves its cursor page by page on that order).
    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError>;

    /// Creates a record carrying the origin `stamp`. The same `idempotency_key` on a
    /// retry must not create a second record.
    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError>;

    /// Writes the given fields (a `null` clears one).
    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError>;

    /// [`Connector::update`], unless the record changed since `read`: then nothing is
    /// written and the answer is [`ConnectorError::Changed`]. The systems have no
    /// conditional write, so a write read long ago ([`ReadAt::needs_check`]) reads the
    /// record again just before it goes out. The default checks nothing.
    async fn update_unless_changed(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
        read: &ReadAt,
    ) -> Result<Written, ConnectorError> {
        let _ = read;
        self.update(entity, id, fields, idempotency_key).await
    }

    /// Archives (never deletes) a record.
    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError>;

    /// The record Tandem created from `stamp`, if any.
    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError>;

    /// Both look-ups of a first sight at once: the record created from `stamp` (when
    /// one may exist), and one with the same natural key. Systems that batch look-ups
    /// answer both in one call.
    async fn find_match(
        &self,
        entity: EntityType,
        stamp: Option<&str>,
        fields: Option<&FieldMap>,
    ) -> Result<(Option<ExternalRecord>, Option<ExternalRecord>), ConnectorError> {
        let by_natural_key = async {
            match fields {
                Some(fields) => self.find_by_natural_key(entity, fields).await,
                None => Ok(None),
            }
        };
        let by_stamp = async {
            match stamp {
                Some(stamp) => self.find_by_stamp(entity, stamp).await,
                None => Ok(None),
            }
        };
        let (by_stamp, by_natural_key) = futures::join!(by_stamp, by_natural_key);
        Ok((by_stamp?, by_natural_key?))
    }

    /// A record with the same natural key (customer: e-mail, then tax number;
    /// invoice: number), if any.
    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError>;
}

/// The natural keys of an entity, most specific first.
pub fn natural_keys(entity: EntityType) -> &'static [&'static str] {
    match entity {
        EntityType::Customer => &["email", "tax_number"],
        EntityType::Invoice => &["number"],
    }
}
