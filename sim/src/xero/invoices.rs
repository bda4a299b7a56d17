//! Sales invoices (ACCREC): the record, totals computed from its lines, and its JSON
//! (`invoice_writes.rs` creates, updates and pays them).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::dates;
use super::fields::{number, put_opt};
use crate::view::InvoiceView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Draft,
    Submitted,
    Authorised,
    Paid,
    Voided,
    Deleted,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Submitted => "SUBMITTED",
            Status::Authorised => "AUTHORISED",
            Status::Paid => "PAID",
            Status::Voided => "VOIDED",
            Status::Deleted => "DELETED",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "DRAFT" => Status::Draft,
            "SUBMITTED" => Status::Submitted,
            "AUTHORISED" | "AUTHORIZED" => Status::Authorised,
            "PAID" => Status::Paid,
            "VOIDED" => Status::Voided,
            "DELETED" => Status::Deleted,
            _ => return None,
        })
    }

    /// Approved (and deleted) invoices are locked against content edits.
    pub(super) fn locked(self) -> bool {
        matches!(
            self,
            Status::Authorised | Status::Paid | Status::Voided | Status::Deleted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amounts {
    Exclusive,
    Inclusive,
    NoTax,
}

impl Amounts {
    fn as_str(self) -> &'static str {
        match self {
            Amounts::Exclusive => "Exclusive",
            Amounts::Inclusive => "Inclusive",
            Amounts::NoTax => "NoTax",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "exclusive" => Amounts::Exclusive,
            "inclusive" => Amounts::Inclusive,
            "notax" => Amounts::NoTax,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub id: String,
    pub description: Option<String>,
    pub quantity: Decimal,
    pub unit_amount: Decimal,
    pub tax_amount: Decimal,
    pub account_code: Option<String>,
}

impl Line {
    fn amount(&self) -> Decimal {
        (self.quantity * self.unit_amount).round_dp(2)
    }

    /// The line without its id, to tell whether a write changes content.
    pub(super) fn content(&self) -> (Option<&str>, Decimal, Decimal, Decimal, Option<&str>) {
        (
            self.description.as_deref(),
            self.quantity.normalize(),
            self.unit_amount.normalize(),
            self.tax_amount.normalize(),
            self.account_code.as_deref(),
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invoice {
    pub id: String,
    pub number: String,
    pub reference: Option<String>,
    pub contact_id: String,
    pub date: NaiveDate,
    pub due_date: Option<NaiveDate>,
    pub currency: String,
    pub status: Status,
    pub amounts: Amounts,
    pub lines: Vec<Line>,
    pub amount_paid: Decimal,
    pub updated_ms: i64,
}

pub(crate) struct Totals {
    pub sub_total: Decimal,
    pub total_tax: Decimal,
    pub total: Decimal,
}

impl Invoice {
    pub(crate) fn totals(&self) -> Totals {
        let lines: Decimal = self.lines.iter().map(Line::amount).sum();
        let tax: Decimal = match self.amounts {
            Amounts::NoTax => Decimal::ZERO,
            _ => self.lines.iter().map(|l| l.tax_amount).sum(),
        };
        let (sub_total, total) = match self.amounts {
            Amounts::Inclusive => (lines - tax, lines),
            Amounts::Exclusive | Amounts::NoTax => (lines, lines + tax),
        };
        Totals {
            sub_total,
            total_tax: tax,
            total,
        }
    }

    pub(crate) fn amount_due(&self) -> Decimal {
        self.totals().total - self.amount_paid
    }

    /// The invoice in the canonical view; the stamp is its Reference, and a deleted
    /// one is archived.
    pub(crate) fn view(&self) -> InvoiceView {
        InvoiceView {
            id: self.id.clone(),
            stamp: self.reference.clone(),
            number: Some(self.number.clone()),
            customer: Some(self.contact_id.clone()),
            status: Some(self.status.as_str().to_ascii_lowercase()),
            total: Some(self.totals().total.normalize().to_string()),
            amount_paid: Some(self.amount_paid.normalize().to_string()),
            archived: self.status == Status::Deleted,
            updated_ms: self.updated_ms,
        }
    }

    pub(crate) fn to_json(&self, contact_name: Option<&str>) -> Value {
        let totals = self.totals();
        let mut o = Map::new();
        o.insert("InvoiceID".into(), self.id.clone().into());
        o.insert("Type".into(), "ACCREC".into());
        o.insert("InvoiceNumber".into(), self.number.clone().into());
        put_opt(&mut o, "Reference", &self.reference);
        let mut contact = Map::new();
        contact.insert("ContactID".into(), self.contact_id.clone().into());
        if let Some(name) = contact_name {
            contact.insert("Name".into(), name.into());
        }
        o.insert("Contact".into(), Value::Object(contact));
        o.insert("Date".into(), dates::day(self.date).into());
        if let Some(due) = self.due_date {
            o.insert("DueDate".into(), dates::day(due).into());
        }
        o.insert("CurrencyCode".into(), self.currency.clone().into());
        o.insert("Status".into(), self.status.as_str().into());
        o.insert("LineAmountTypes".into(), self.amounts.as_str().into());
        let lines = self
            .lines
            .iter()
            .map(|l| {
                let mut line = Map::new();
                line.insert("LineItemID".into(), l.id.clone().into());
                put_opt(&mut line, "Description", &l.description);
                line.insert("Quantity".into(), number(l.quantity));
                line.insert("UnitAmount".into(), number(l.unit_amount));
                line.insert("TaxAmount".into(), number(l.tax_amount));
                line.insert("LineAmount".into(), number(l.amount()));
                put_opt(&mut line, "AccountCode", &l.account_code);
                Value::Object(line)
            })
            .collect();
        o.insert("LineItems".into(), Value::Array(lines));
        o.insert("SubTotal".into(), number(totals.sub_total));
        o.insert("TotalTax".into(), number(totals.total_tax));
        o.insert("Total".into(), number(totals.total));
        o.insert("AmountPaid".into(), number(self.amount_paid));
        o.insert("AmountDue".into(), number(totals.total - self.amount_paid));
        o.insert(
            "UpdatedDateUTC".into(),
            dates::xero_timestamp(self.updated_ms).into(),
        );
        Value::Object(o)
    }
}
