//! What the simulated organisation holds: contacts and invoices in creation order,
//! the changes a write made (for webhooks), and list queries over them.

use super::contacts::Contact;
use super::invoices::{Invoice, Status};
use super::query::{matches, ListQuery};
use crate::journal::RecordView;

pub(crate) const CONTACT_FIELDS: &[&str] = &[
    "ContactID",
    "ContactNumber",
    "EmailAddress",
    "Name",
    "ContactStatus",
    "TaxNumber",
    "DefaultCurrency",
];

pub(crate) const INVOICE_FIELDS: &[&str] = &[
    "InvoiceID",
    "Reference",
    "InvoiceNumber",
    "Status",
    "Contact.ContactID",
    "Type",
    "CurrencyCode",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    Contact,
    Invoice,
}

/// One change to one record, raised as one webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub category: Category,
    pub id: String,
    pub created: bool,
    pub at_ms: i64,
}

impl Change {
    pub(crate) fn new(category: Category, id: &str, created: bool, at_ms: i64) -> Self {
        Self {
            category,
            id: id.to_string(),
            created,
            at_ms,
        }
    }
}

/// Cloned for a batch write, so a batch refused as a whole changes nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    pub contacts: Vec<Contact>,
    pub invoices: Vec<Invoice>,
    invoice_counter: u64,
}

impl Store {
    pub(crate) fn contact_index(&self, id: &str) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn invoice_index(&self, id: &str) -> Option<usize> {
        self.invoices
            .iter()
            .position(|i| i.id.eq_ignore_ascii_case(id))
    }

    /// Record `id` of `category` in its canonical view, if there is one; what the
    /// journal compares before and after an edit.
    pub(crate) fn view(&self, category: Category, id: &str) -> Option<RecordView> {
        match category {
            Category::Contact => self
                .contact_index(id)
                .map(|i| RecordView::Customer(self.contacts[i].view())),
            Category::Invoice => self
                .invoice_index(id)
                .map(|i| RecordView::Invoice(self.invoices[i].view())),
        }
    }

    pub(crate) fn contact_name(&self, id: &str) -> Option<&str> {
        self.contact_index(id)
            .map(|i| self.contacts[i].name.as_str())
    }

    pub(crate) fn invoice_json(&self, index: usize) -> serde_json::Value {
        let invoice = &self.invoices[index];
        invoice.to_json(self.contact_name(&invoice.contact_id))
    }

    /// `INV-0001`, `INV-0002`, … skipping numbers already taken.
    pub(crate) fn next_invoice_number(&mut self) -> String {
        loop {
            self.invoice_counter += 1;
            let candidate = format!("INV-{:04}", self.invoice_counter);
            if !self
                .invoices
                .iter()
                .any(|i| i.number.eq_ignore_ascii_case(&candidate))
            {
                return candidate;
            }
        }
    }

    /// Indices of the contacts the query selects, in its order (all pages).
    pub(crate) fn select_contacts(&self, q: &ListQuery) -> Vec<usize> {
        select(
            &self.contacts,
            q,
            |c| c.archived,
            |c| &c.id,
            |c| c.updated_ms,
            contact_field,
        )
    }

    pub(crate) fn select_invoices(&self, q: &ListQuery) -> Vec<usize> {
        select(
            &self.invoices,
            q,
            |i| i.status == Status::Deleted,
            |i| &i.id,
            |i| i.updated_ms,
            invoice_field,
        )
    }
}

fn contact_field(c: &Contact, field: &str) -> Option<String> {
    match field {
        "ContactID" => Some(c.id.clone()),
        "ContactNumber" => c.number.clone(),
        "EmailAddress" => c.email.clone(),
        "Name" => Some(c.name.clone()),
        "ContactStatus" => Some(c.status().to_string()),
        "TaxNumber" => c.tax_number.clone(),
        "DefaultCurrency" => c.currency.clone(),
        _ => None,
    }
}

fn invoice_field(i: &Invoice, field: &str) -> Option<String> {
    match field {
        "InvoiceID" => Some(i.id.clone()),
        "Reference" => i.reference.clone(),
        "InvoiceNumber" => Some(i.number.clone()),
        "Status" => Some(i.status.as_str().to_string()),
        "Contact.ContactID" => Some(i.contact_id.clone()),
        "Type" => Some("ACCREC".to_string()),
        "CurrencyCode" => Some(i.currency.clone()),
        _ => None,
    }
}

fn select<T>(
    records: &[T],
    q: &ListQuery,
    hidden: impl Fn(&T) -> bool,
    id: impl Fn(&T) -> &String,
    updated: impl Fn(&T) -> i64,
    field: impl Fn(&T, &str) -> Option<String>,
) -> Vec<usize> {
    let mut chosen: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| q.include_archived || !hidden(r))
        .filter(|(_, r)| {
            q.ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|want| want.eq_ignore_ascii_case(id(r))))
        })
        .filter(|(_, r)| q.since_ms.is_none_or(|since| updated(r) >= since))
        .filter(|(_, r)| {
            q.filter
                .as_ref()
                .is_none_or(|f| matches(f, |name| field(r, name)))
        })
        .map(|(i, _)| i)
        .collect();
    if let Some((by, descending)) = &q.order {
        // Stable, so records that tie stay in creation order.
        if by == "UpdatedDateUTC" {
            chosen.sort_by_key(|&i| updated(&records[i]));
        } else {
            chosen.sort_by_key(|&i| {
                field(&records[i], by)
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            });
        }
        if *descending {
            chosen.reverse();
        }
    }
    chosen
}
