//! Which canonical fields sync, and which way: settings, not code.
//!
//! ```toml
//! [pairs.acme.fields.customer]
//! phone = "crm_to_finance"
//! tax_number = "both"
//! ```
//! Fields named in settings replace the default for that field; a field mapped to
//! `none` does not sync.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{EntityType, System};

/// The direction a field flows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    Both,
    CrmToFinance,
    FinanceToCrm,
    None,
}

impl Flow {
    /// The name settings use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Both => "both",
            Flow::CrmToFinance => "crm_to_finance",
            Flow::FinanceToCrm => "finance_to_crm",
            Flow::None => "none",
        }
    }

    /// Whether a change on `from` is written to the other side.
    pub fn flows_from(self, from: System) -> bool {
        matches!(
            (self, from),
            (Flow::Both, _)
                | (Flow::CrmToFinance, System::Crm)
                | (Flow::FinanceToCrm, System::Finance)
        )
    }
}

/// The mapping of one entity type: field name to direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    fields: BTreeMap<String, Flow>,
}

pub const CUSTOMER_FIELDS: &[&str] = &[
    "name",
    "email",
    "phone",
    "tax_number",
    "address",
    "currency",
];

/// Invoice content is written in the CRM and booked in finance; status and payments
/// happen in finance and flow back.
const INVOICE_DEFAULTS: &[(&str, Flow)] = &[
    ("number", Flow::CrmToFinance),
    ("customer", Flow::CrmToFinance),
    ("issue_date", Flow::CrmToFinance),
    ("due_date", Flow::CrmToFinance),
    ("currency", Flow::CrmToFinance),
    ("line_items", Flow::CrmToFinance),
    ("reference", Flow::CrmToFinance),
    ("subtotal", Flow::FinanceToCrm),
    ("tax_total", Flow::FinanceToCrm),
    ("total", Flow::FinanceToCrm),
    ("status", Flow::FinanceToCrm),
    ("amount_paid", Flow::FinanceToCrm),
    ("amount_due", Flow::FinanceToCrm),
];

impl FieldMapping {
    pub fn defaults(entity: EntityType) -> Self {
        let fields = match entity {
            EntityType::Customer => CUSTOMER_FIELDS
                .iter()
                .map(|f| (f.to_string(), Flow::Both))
                .collect(),
            EntityType::Invoice => INVOICE_DEFAULTS
                .iter()
                .map(|(f, flow)| (f.to_string(), *flow))
                .collect(),
        };
        Self { fields }
    }

    /// The defaults with the settings' overrides on top; an unknown field name is an
    /// error that names it.
    pub fn with_overrides(
        entity: EntityType,
        overrides: &BTreeMap<String, Flow>,
    ) -> Result<Self, String> {
        let mut mapping = Self::defaults(entity);
        for (field, flow) in overrides {
            if !mapping.fields.contains_key(field) {
                let known: Vec<_> = mapping.fields.keys().map(String::as_str).collect();
                return Err(format!(
                    "`{field}` is not a {entity} field (known: {})",
                    known.join(", ")
                ));
            }
            mapping.fields.insert(field.clone(), *flow);
        }
        Ok(mapping)
    }

    pub fn flow(&self, field: &str) -> Flow {
        self.fields.get(field).copied().unwrap_or(Flow::None)
    }

    /// Fields that a change on `from` writes to the other side.
    pub fn fields_from(&self, from: System) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |(_, flow)| flow.flows_from(from))
            .map(|(field, _)| field.as_str())
    }

    /// Every field that syncs in some direction.
    pub fn synced_fields(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(_, flow)| **flow != Flow::None)
            .map(|(f, _)| f.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_sync_customers_both_ways_and_invoices_by_owner() {
        let customers = FieldMapping::defaults(EntityType::Customer);
        assert!(CUSTOMER_FIELDS
            .iter()
            .all(|f| customers.flow(f) == Flow::Both));
        let invoices = FieldMapping::defaults(EntityType::Invoice);
        assert_eq!(invoices.flow("line_items"), Flow::CrmToFinance);
        assert_eq!(invoices.flow("status"), Flow::FinanceToCrm);
        assert_eq!(invoices.flow("amount_paid"), Flow::FinanceToCrm);
        assert!(invoices
            .fields_from(System::Finance)
            .all(|f| f != "line_items"));
    }

    #[test]
    fn overrides_replace_defaults_and_unknown_fields_are_named() {
        let overrides = BTreeMap::from([("phone".to_string(), Flow::CrmToFinance)]);
        let mapping =
            FieldMapping::with_overrides(EntityType::Customer, &overrides).expect("valid");
        assert_eq!(mapping.flow("phone"), Flow::CrmToFinance);
        assert!(!mapping.fields_from(System::Finance).any(|f| f == "phone"));
        let bad = BTreeMap::from([("fax".to_string(), Flow::Both)]);
        let err = FieldMapping::with_overrides(EntityType::Customer, &bad).expect_err("unknown");
        assert!(err.contains("`fax`"), "{err}");
    }
}
