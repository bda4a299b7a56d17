//! The edit journal: every edit a simulator applied to a customer or an invoice, by a
//! simulated person or through the API, with the canonical fields it changed and the
//! record's version after it. A convergence checker replays it to say what the end
//! state should be; benchmarks measure from [`JournalEntry::at`] how long an edit took
//! to reach the other side.
//!
//! Each simulator snapshots the canonical view of the record an edit touches before and
//! after it, and [`Edit::between`] turns the two into what is journaled, so the journal
//! speaks the same field names as [`CustomerView`] and [`InvoiceView`]. Fields outside
//! the views (line items, addresses, deal names) are not journaled; an edit that changes
//! nothing in the view is not journaled at all.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::view::{CustomerView, InvoiceView};

/// Who made an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A simulated person (the `person_*` methods, `people.rs`).
    Person,
    /// An API call (Tandem).
    Api,
}

/// Which simulator applied an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The HubSpot simulator.
    Crm,
    /// The Xero simulator.
    Finance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Archive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Order within one simulator's journal.
    pub seq: u64,
    pub side: Side,
    /// `customer` or `invoice`.
    pub entity: String,
    /// The record's id on that side (the id its `CustomerView`/`InvoiceView` carries).
    pub id: String,
    pub actor: Actor,
    pub action: Action,
    /// Only the canonical view fields this edit actually changed, with their new values
    /// (None = cleared). Canonical names as in `view.rs`: customers name, email, phone,
    /// stamp; invoices number, customer, status, total, amount_paid, stamp.
    pub changed: BTreeMap<String, Option<String>>,
    /// The record's updated_ms (its version, as the API reports it) after this edit.
    pub version_ms: i64,
    /// Wall-clock unix milliseconds when the simulator applied the edit.
    pub at_ms: i64,
    /// Some when recorded in-process, for latency measurement.
    #[serde(skip)]
    pub at: Option<Instant>,
}

/// A record's canonical view, as a simulator sees it before or after an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordView {
    Customer(CustomerView),
    Invoice(InvoiceView),
}

impl RecordView {
    fn entity(&self) -> &'static str {
        match self {
            Self::Customer(_) => "customer",
            Self::Invoice(_) => "invoice",
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Customer(c) => &c.id,
            Self::Invoice(i) => &i.id,
        }
    }

    fn archived(&self) -> bool {
        match self {
            Self::Customer(c) => c.archived,
            Self::Invoice(i) => i.archived,
        }
    }

    fn updated_ms(&self) -> i64 {
        match self {
            Self::Customer(c) => c.updated_ms,
            Self::Invoice(i) => i.updated_ms,
        }
    }

    /// The journaled fields, by canonical name.
    fn fields(&self) -> Vec<(&'static str, &Option<String>)> {
        match self {
            Self::Customer(c) => vec![
                ("name", &c.name),
                ("email", &c.email),
                ("phone", &c.phone),
                ("stamp", &c.stamp),
            ],
            Self::Invoice(i) => vec![
                ("number", &i.number),
                ("customer", &i.customer),
                ("status", &i.status),
                ("total", &i.total),
                ("amount_paid", &i.amount_paid),
                ("stamp", &i.stamp),
            ],
        }
    }
}

/// What one edit did to one record, ready to journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub entity: &'static str,
    pub id: String,
    pub action: Action,
    pub changed: BTreeMap<String, Option<String>>,
    pub version_ms: i64,
}

impl Edit {
    /// What an edit did, from the record's view before and after it (`None`: the record
    /// was not there, or is not a customer or an invoice, such as a deal not won);
    /// `None` when the view did not change.
    ///
    /// A record that appears is created, with its fields that have a value; one that
    /// becomes archived, or stops being an invoice, is archived; anything else that
    /// changed (unarchiving included) is an update.
    pub fn between(before: Option<&RecordView>, after: Option<&RecordView>) -> Option<Edit> {
        let (action, latest) = match (before, after) {
            (None, None) => return None,
            (None, Some(after)) => (Action::Create, after),
            (Some(before), None) => (Action::Archive, before),
            (Some(before), Some(after)) if before == after => return None,
            (Some(before), Some(after)) if after.archived() && !before.archived() => {
                (Action::Archive, after)
            }
            (Some(_), Some(after)) => (Action::Update, after),
        };
        let old: BTreeMap<&str, &Option<String>> = before
            .filter(|_| after.is_some())
            .map(|b| b.fields().into_iter().collect())
            .unwrap_or_default();
        let changed = after
            .map(RecordView::fields)
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, value)| match old.get(name) {
                Some(was) => was != value,
                None => value.is_some(),
            })
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        Some(Edit {
            entity: latest.entity(),
            id: latest.id().to_string(),
            action,
            changed,
            version_ms: latest.updated_ms(),
        })
    }
}

/// One simulator's journal.
#[derive(Debug)]
pub struct Journal {
    side: Side,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Never reset, so a `seq` stays unique across a `clear`.
    next_seq: u64,
    entries: Vec<JournalEntry>,
}

impl Journal {
    pub fn new(side: Side) -> Self {
        Self {
            side,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one edit, stamped now; answers its `seq`. Simulators call it under their
    /// state lock, so `seq` follows the order the edits were applied in.
    pub fn record(&self, actor: Actor, edit: Edit) -> u64 {
        let mut inner = self.inner();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.push(JournalEntry {
            seq,
            side: self.side,
            entity: edit.entity.to_string(),
            id: edit.id,
            actor,
            action: edit.action,
            changed: edit.changed,
            version_ms: edit.version_ms,
            at_ms: chrono::Utc::now().timestamp_millis(),
            at: Some(Instant::now()),
        });
        seq
    }

    /// Every entry so far, in `seq` order.
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.inner().entries.clone()
    }

    pub fn len(&self) -> usize {
        self.inner().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the entries so far (a trial starting after its seeding, say).
    pub fn clear(&self) {
        self.inner().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str, phone: Option<&str>, updated_ms: i64) -> RecordView {
        RecordView::Customer(CustomerView {
            id: "c1".into(),
            name: Some(name.into()),
            email: Some("a@example.com".into()),
            phone: phone.map(str::to_string),
            updated_ms,
            ..CustomerView::default()
        })
    }

    #[test]
    fn an_update_names_only_what_changed() {
        let before = customer("Ada", Some("1"), 10);
        let after = customer("Ada L", None, 11);
        let edit = Edit::between(Some(&before), Some(&after)).expect("an edit");
        assert_eq!(edit.action, Action::Update);
        assert_eq!(
            edit.changed,
            BTreeMap::from([
                ("name".to_string(), Some("Ada L".to_string())),
                ("phone".to_string(), None),
            ])
        );
        assert_eq!(edit.version_ms, 11);
    }

    #[test]
    fn a_create_names_what_has_a_value_and_nothing_is_no_edit() {
        let after = customer("Ada", None, 5);
        let edit = Edit::between(None, Some(&after)).expect("an edit");
        assert_eq!(edit.action, Action::Create);
        assert_eq!(
            edit.changed.keys().collect::<Vec<_>>(),
            vec!["email", "name"]
        );
        assert_eq!(Edit::between(Some(&after), Some(&after)), None);
        assert_eq!(Edit::between(None, None), None);
    }

    #[test]
    fn archiving_is_an_archive() {
        let before = customer("Ada", None, 5);
        let RecordView::Customer(mut view) = before.clone() else {
            unreachable!()
        };
        view.archived = true;
        view.updated_ms = 6;
        let edit =
            Edit::between(Some(&before), Some(&RecordView::Customer(view))).expect("an edit");
        assert_eq!(edit.action, Action::Archive);
        assert!(edit.changed.is_empty());
    }

    #[test]
    fn seq_survives_clear() {
        let journal = Journal::new(Side::Crm);
        let edit = Edit::between(None, Some(&customer("Ada", None, 1))).expect("an edit");
        assert_eq!(journal.record(Actor::Person, edit.clone()), 0);
        journal.clear();
        assert!(journal.is_empty());
        assert_eq!(journal.record(Actor::Api, edit), 1);
        assert_eq!(journal.entries()[0].side, Side::Crm);
    }
}
