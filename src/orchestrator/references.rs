//! Cross-record references between the two sides. An invoice names its customer by
//! that side's own id; the decision needs one value both sides agree on, so the
//! orchestrator's connectors translate: what is read carries the customer's CRM id
//! (a finance customer not linked yet reads as `finance:<id>`), and what is written
//! carries the id of the written side's own customer. An invoice whose customer is
//! not linked yet is retried, not written with a dangling reference.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::connectors::{ChangePage, Connector, ConnectorError, ExternalRecord, ReadAt, Written};
use crate::domain::{EntityType, FieldMap, PairId, System};
use crate::store::Store;

/// The invoice field that names a customer.
const CUSTOMER: &str = "customer";
const UNLINKED_FINANCE: &str = "finance:";

pub struct LinkedReferences {
    inner: Arc<dyn Connector>,
    store: Arc<dyn Store>,
    pair: PairId,
}

impl LinkedReferences {
    pub fn wrap(
        inner: Arc<dyn Connector>,
        store: Arc<dyn Store>,
        pair: PairId,
    ) -> Arc<dyn Connector> {
        Arc::new(Self { inner, store, pair })
    }

    fn side(&self) -> System {
        self.inner.system()
    }

    fn store_error(&self, err: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Connection {
            system: self.side(),
            message: format!("cannot read the customer's link: {err}"),
        }
    }

    /// This side's customer id as the canonical reference.
    async fn canonical(&self, native: &str) -> Result<String, ConnectorError> {
        if self.side() == System::Crm {
            return Ok(native.to_string());
        }
        let link = self
            .store
            .find_link(&self.pair, EntityType::Customer, System::Finance, native)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(match link.and_then(|l| l.crm_id) {
            Some(crm) => crm,
            None => format!("{UNLINKED_FINANCE}{native}"),
        })
    }

    /// The canonical reference as this side's customer id.
    async fn native(&self, canonical: &str) -> Result<String, ConnectorError> {
        let side = self.side();
        let not_ready = |detail: String| ConnectorError::NotReady {
            system: side,
            message: format!(
                "the invoice's customer {detail} is not synced to {side} yet; trying again"
            ),
        };
        match (side, canonical.strip_prefix(UNLINKED_FINANCE)) {
            (System::Finance, Some(finance_id)) => Ok(finance_id.to_string()),
            (System::Crm, Some(finance_id)) => Err(not_ready(format!("(finance {finance_id})"))),
            (System::Crm, None) => Ok(canonical.to_string()),
            (System::Finance, None) => {
                let link = self
                    .store
                    .find_link(&self.pair, EntityType::Customer, System::Crm, canonical)
                    .await
                    .map_err(|e| self.store_error(e))?;
                link.and_then(|l| l.finance_id)
                    .ok_or_else(|| not_ready(format!("(crm {canonical})")))
            }
        }
    }

    async fn read_fields(
        &self,
        entity: EntityType,
        fields: &mut FieldMap,
    ) -> Result<(), ConnectorError> {
        if entity != EntityType::Invoice {
            return Ok(());
        }
        if let Some(Value::String(native)) = fields.get(CUSTOMER) {
            let canonical = self.canonical(native).await?;
            fields.insert(CUSTOMER.into(), json!(canonical));
        }
        Ok(())
    }

    async fn read(
        &self,
        entity: EntityType,
        mut record: ExternalRecord,
    ) -> Result<ExternalRecord, ConnectorError> {
        if let Some(fields) = record.fields.as_mut() {
            self.read_fields(entity, fields).await?;
        }
        Ok(record)
    }

    async fn read_option(
        &self,
        entity: EntityType,
        record: Option<ExternalRecord>,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        match record {
            Some(record) => Ok(Some(self.read(entity, record).await?)),
            None => Ok(None),
        }
    }

    async fn read_written(
        &self,
        entity: EntityType,
        mut written: Written,
    ) -> Result<Written, ConnectorError> {
        written.record = self.read(entity, written.record).await?;
        Ok(written)
    }

    async fn write_fields(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<FieldMap, ConnectorError> {
        let mut out = fields.clone();
        if entity == EntityType::Invoice {
            if let Some(Value::String(canonical)) = fields.get(CUSTOMER) {
                out.insert(CUSTOMER.into(), json!(self.native(canonical).await?));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Connector for LinkedReferences {
    fn system(&self) -> System {
        self.side()
    }

    async fn probe(&self) -> crate::connectors::health::ProbeReport {
        self.inner.probe().await
    }

    async fn get(
        &self,
        entity: EntityType,
        id: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let record = self.inner.get(entity, id).await?;
        self.read_option(entity, record).await
    }

    async fn list_changed(
        &self,
        entity: EntityType,
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
    ) -> Result<ChangePage, ConnectorError> {
        self.inner.list_changed(entity, since, page).await
    }

    async fn create(
        &self,
        entity: EntityType,
        fields: &FieldMap,
        stamp: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let fields = self.write_fields(entity, fields).await?;
        let written = self
            .inner
            .create(entity, &fields, stamp, idempotency_key)
            .await?;
        self.read_written(entity, written).await
    }

    async fn update(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let fields = self.write_fields(entity, fields).await?;
        let written = self
            .inner
            .update(entity, id, &fields, idempotency_key)
            .await?;
        self.read_written(entity, written).await
    }

    async fn update_unless_changed(
        &self,
        entity: EntityType,
        id: &str,
        fields: &FieldMap,
        idempotency_key: &str,
        read: &ReadAt,
    ) -> Result<Written, ConnectorError> {
        let fields = self.write_fields(entity, fields).await?;
        let written = self
            .inner
            .update_unless_changed(entity, id, &fields, idempotency_key, read)
            .await?;
        self.read_written(entity, written).await
    }

    async fn archive(
        &self,
        entity: EntityType,
        id: &str,
        idempotency_key: &str,
    ) -> Result<Written, ConnectorError> {
        let written = self.inner.archive(entity, id, idempotency_key).await?;
        self.read_written(entity, written).await
    }

    async fn find_by_stamp(
        &self,
        entity: EntityType,
        stamp: &str,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let record = self.inner.find_by_stamp(entity, stamp).await?;
        self.read_option(entity, record).await
    }

    async fn find_by_natural_key(
        &self,
        entity: EntityType,
        fields: &FieldMap,
    ) -> Result<Option<ExternalRecord>, ConnectorError> {
        let record = self.inner.find_by_natural_key(entity, fields).await?;
        self.read_option(entity, record).await
    }
}
