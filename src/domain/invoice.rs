//! The canonical invoice: a HubSpot deal (or invoice) with its line items, a Xero
//! ACCREC invoice.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::record::{clean, to_fields, FieldMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Submitted,
    Authorised,
    Paid,
    Voided,
}

impl InvoiceStatus {
    /// A finance document in these states is never overwritten (accounting rules): it
    /// can only be credited or voided by a person in the finance system.
    pub fn is_locked(self) -> bool {
        matches!(
            self,
            InvoiceStatus::Authorised | InvoiceStatus::Paid | InvoiceStatus::Voided
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_amount: Decimal,
    pub tax_amount: Option<Decimal>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub number: Option<String>,
    /// The customer's id on the same side as this invoice.
    pub customer: Option<String>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub currency: Option<String>,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    pub subtotal: Option<Decimal>,
    pub tax_total: Option<Decimal>,
    pub total: Option<Decimal>,
    pub amount_paid: Option<Decimal>,
    pub amount_due: Option<Decimal>,
    pub status: Option<InvoiceStatus>,
    pub reference: Option<String>,
}

/// 10, 10.0 and 10.00 are the same amount and must checksum the same.
fn money(value: Option<Decimal>) -> Option<Decimal> {
    value.map(|v| v.normalize())
}

impl Invoice {
    pub fn normalise(self) -> Self {
        Self {
            number: clean(self.number),
            customer: clean(self.customer),
            issue_date: self.issue_date,
            due_date: self.due_date,
            currency: clean(self.currency).map(|c| c.to_uppercase()),
            line_items: self
                .line_items
                .into_iter()
                .map(|item| LineItem {
                    description: clean(item.description),
                    quantity: item.quantity.normalize(),
                    unit_amount: item.unit_amount.normalize(),
                    tax_amount: money(item.tax_amount),
                })
                .collect(),
            subtotal: money(self.subtotal),
            tax_total: money(self.tax_total),
            total: money(self.total),
            amount_paid: money(self.amount_paid),
            amount_due: money(self.amount_due),
            status: self.status,
            reference: clean(self.reference),
        }
    }

    pub fn fields(&self) -> FieldMap {
        to_fields(&self.clone().normalise())
    }

    pub fn from_fields(fields: &FieldMap) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::Value::Object(
            fields.clone().into_iter().collect(),
        ))
    }

    /// Whether a field map is a locked finance document.
    pub fn fields_locked(fields: &FieldMap) -> bool {
        fields
            .get("status")
            .and_then(|s| serde_json::from_value::<InvoiceStatus>(s.clone()).ok())
            .is_some_and(InvoiceStatus::is_locked)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn money_normalises_so_checksums_agree() {
        let a = Invoice {
            total: Some(dec("10.00")),
            currency: Some("nzd".into()),
            ..Default::default()
        };
        let b = Invoice {
            total: Some(dec("10")),
            currency: Some("NZD".into()),
            ..Default::default()
        };
        assert_eq!(a.fields(), b.fields());
    }

    #[test]
    fn locked_statuses() {
        for (status, locked) in [
            (InvoiceStatus::Draft, false),
            (InvoiceStatus::Submitted, false),
            (InvoiceStatus::Authorised, true),
            (InvoiceStatus::Paid, true),
            (InvoiceStatus::Voided, true),
        ] {
            let invoice = Invoice {
                status: Some(status),
                ..Default::default()
            };
            assert_eq!(
                Invoice::fields_locked(&invoice.fields()),
                locked,
                "{status:?}"
            );
        }
    }

    #[test]
    fn fields_round_trip() {
        let invoice = Invoice {
            number: Some("INV-1".into()),
            issue_date: NaiveDate::from_ymd_opt(2026, 11, 23),
            line_items: vec![LineItem {
                description: Some("Consulting".into()),
                quantity: dec("2"),
                unit_amount: dec("150.5"),
                tax_amount: None,
            }],
            status: Some(InvoiceStatus::Draft),
            ..Default::default()
        };
        assert_eq!(
            Invoice::from_fields(&invoice.fields()).expect("round trip"),
            invoice
        );
    }
}
