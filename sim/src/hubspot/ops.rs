//! The writes both API clients and simulated people make (create, update, archive),
//! each raising the webhook events HubSpot would raise for it and noting the edit for
//! the journal.

use serde_json::Value;

use super::state::{apply, initial_props, now_ms, ItemError, Kind, PropertyWrite, State};
use super::webhooks::{Action, EventMaker, Source};
use crate::journal::{Edit, RecordView};

/// Collects the events and journal edits of the writes made under one hold of the
/// state lock.
pub(crate) struct Events<'a> {
    maker: &'a EventMaker,
    source: Source,
    /// Which kind holds customers, so the journal knows which objects are customers.
    customer_kind: Kind,
    pub(crate) raised: Vec<Value>,
    pub(crate) edits: Vec<Edit>,
}

impl<'a> Events<'a> {
    pub(crate) fn new(maker: &'a EventMaker, source: Source, customer_kind: Kind) -> Self {
        Self {
            maker,
            source,
            customer_kind,
            raised: Vec::new(),
            edits: Vec::new(),
        }
    }

    /// Object `id` in its canonical view now, to compare with after a write.
    pub(crate) fn snapshot(&self, state: &State, id: u64) -> Option<RecordView> {
        state.view(id, self.customer_kind)
    }

    /// Notes for the journal what a write did to object `id`, given its view before.
    pub(crate) fn note_edit(&mut self, state: &State, id: u64, before: Option<RecordView>) {
        let after = self.snapshot(state, id);
        self.edits
            .extend(Edit::between(before.as_ref(), after.as_ref()));
    }

    pub(crate) fn raise_creation(&mut self, kind: Kind, id: u64) {
        self.raise(kind, id, Action::Creation, None);
    }

    pub(crate) fn raise_change(&mut self, kind: Kind, id: u64, name: &str, value: &str) {
        self.raise(kind, id, Action::PropertyChange, Some((name, value)));
    }

    fn raise(&mut self, kind: Kind, id: u64, action: Action, property: Option<(&str, &str)>) {
        self.raised
            .extend(self.maker.event(kind, id, action, property, self.source));
    }
}

/// An association a create input asks for: the other object's kind and id.
pub(crate) type Link = (Kind, u64);

/// Creates an object after checking its properties and associations.
pub(crate) fn create(
    state: &mut State,
    events: &mut Events<'_>,
    kind: Kind,
    writes: &[PropertyWrite],
    links: &[Link],
) -> Result<u64, ItemError> {
    state.check_write(kind, writes, None)?;
    for (other_kind, other_id) in links {
        let live = state
            .get(*other_kind, &other_id.to_string())
            .is_some_and(|r| !r.archived());
        if !live {
            return Err(ItemError::new(
                400,
                "VALIDATION_ERROR",
                format!(
                    "One or more associations are invalid: {} {other_id} does not exist",
                    other_kind.upper()
                ),
            ));
        }
    }
    let id = state.insert(kind, initial_props(writes), events.source);
    for (_, other_id) in links {
        state.link(id, *other_id);
    }
    events.raise(kind, id, Action::Creation, None);
    events.note_edit(state, id, None);
    Ok(id)
}

/// Updates a live object; returns whether anything changed. Only a real change moves
/// `hs_lastmodifieddate` and raises one `propertyChange` per changed property.
pub(crate) fn update(
    state: &mut State,
    events: &mut Events<'_>,
    kind: Kind,
    id: &str,
    writes: &[PropertyWrite],
) -> Result<bool, ItemError> {
    let own_id = match state.get(kind, id) {
        Some(record) if !record.archived() => record.id,
        _ => return Err(ItemError::not_found()),
    };
    state.check_write(kind, writes, Some(own_id))?;
    let before = events.snapshot(state, own_id);
    let Some(record) = state.get_mut(kind, id) else {
        return Err(ItemError::not_found());
    };
    let changed = apply(record, writes);
    if changed.is_empty() {
        return Ok(false);
    }
    record.touch();
    record.remember(&changed, events.source);
    for (name, value) in &changed {
        events.raise(kind, own_id, Action::PropertyChange, Some((name, value)));
    }
    events.note_edit(state, own_id, before);
    Ok(true)
}

/// Moves a live object to the recycle bin.
pub(crate) fn archive(
    state: &mut State,
    events: &mut Events<'_>,
    kind: Kind,
    id: &str,
) -> Result<(), ItemError> {
    let Some(object_id) = state.get(kind, id).filter(|r| !r.archived()).map(|r| r.id) else {
        return Err(ItemError::not_found());
    };
    let before = events.snapshot(state, object_id);
    if let Some(record) = state.get_mut(kind, id) {
        record.touch();
        record.archived_ms = Some(now_ms().max(record.updated_ms));
    }
    events.raise(kind, object_id, Action::Deletion, None);
    events.note_edit(state, object_id, before);
    Ok(())
}
