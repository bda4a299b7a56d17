//! HubSpot objects in the canonical views: contacts or companies as customers, won
//! deals as invoices; for the inspection, the tests and the edit journal.

use super::non_empty;
use super::state::{Kind, Record, State, KINDS};
use crate::journal::RecordView;
use crate::view::{CustomerView, InvoiceView};

impl State {
    /// A contact or company as a customer: a contact's name is its first and last
    /// names joined.
    pub(crate) fn customer_view(record: &Record) -> CustomerView {
        let (name, email) = match record.kind {
            Kind::Company => (record.value("name"), record.value("tandem_email")),
            _ => {
                let full = [record.value("firstname"), record.value("lastname")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                (non_empty(&full), record.value("email"))
            }
        };
        CustomerView {
            id: record.id.to_string(),
            stamp: record.value("tandem_origin_id"),
            name,
            email,
            phone: record.value("phone"),
            archived: record.archived(),
            updated_ms: record.updated_ms,
        }
    }

    /// A deal as an invoice, if it is one (stage `closedwon`). Its customer is the
    /// first live associated object of `customer_kind`, else of the other kind.
    pub(crate) fn invoice_view(&self, record: &Record, customer_kind: Kind) -> Option<InvoiceView> {
        if record.kind != Kind::Deal || record.value("dealstage").as_deref() != Some("closedwon") {
            return None;
        }
        let other = if customer_kind == Kind::Contact {
            Kind::Company
        } else {
            Kind::Contact
        };
        let customer = self
            .linked(record.id, customer_kind)
            .into_iter()
            .chain(self.linked(record.id, other))
            .next()
            .map(|id| id.to_string());
        Some(InvoiceView {
            id: record.id.to_string(),
            stamp: record.value("tandem_origin_id"),
            number: record.value("tandem_invoice_number"),
            customer,
            status: record.value("tandem_invoice_status"),
            total: record.value("amount"),
            amount_paid: record.value("tandem_amount_paid"),
            archived: record.archived(),
            updated_ms: record.updated_ms,
        })
    }

    /// Object `id` in its canonical view, if it is a customer (of `customer_kind`) or
    /// an invoice; what the journal compares before and after an edit.
    pub(crate) fn view(&self, id: u64, customer_kind: Kind) -> Option<RecordView> {
        let record = KINDS.iter().find_map(|kind| self.records(*kind).get(&id))?;
        if record.kind == customer_kind {
            Some(RecordView::Customer(Self::customer_view(record)))
        } else {
            self.invoice_view(record, customer_kind)
                .map(RecordView::Invoice)
        }
    }
}
