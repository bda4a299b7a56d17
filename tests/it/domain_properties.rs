//! Property tests of the sync decision against a small model of two systems: random
//! edits on both sides, events delivered, duplicated, reordered or dropped (and found
//! later by a poll). Once edits stop, both sides agree on every synced field, nothing
//! more is written, and edits to different fields are never lost.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;
use tandem::domain::{
    apply, decide, settle, DecisionInput, EntityType, FieldMap, LinkSnapshot, SourceRecord,
    SyncDecision, SyncPolicy, System, TargetFound, TargetRecord,
};

const FIELDS: [&str; 4] = ["name", "email", "phone", "tax_number"];

#[derive(Debug, Clone)]
struct Record {
    id: String,
    fields: FieldMap,
    version: String,
    stamp: Option<String>,
}

/// Two systems holding one customer between them, and Tandem's link.
struct World {
    policy: SyncPolicy,
    crm: Option<Record>,
    finance: Option<Record>,
    link: Option<LinkSnapshot>,
    clock: i64,
    writes: usize,
}

impl World {
    fn new() -> Self {
        let mut world = Self {
            policy: SyncPolicy::defaults(EntityType::Customer),
            crm: None,
            finance: None,
            link: None,
            clock: 0,
            writes: 0,
        };
        let version = world.tick();
        let fields = FIELDS
            .iter()
            .map(|f| (f.to_string(), json!(format!("{f}-0"))))
            .collect();
        world.crm = Some(Record {
            id: "c1".into(),
            fields,
            version,
            stamp: None,
        });
        world
    }

    fn tick(&mut self) -> String {
        self.clock += 1;
        (Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .single()
            .expect("time")
            + Duration::seconds(self.clock))
        .to_rfc3339()
    }

    fn side(&mut self, system: System) -> &mut Option<Record> {
        match system {
            System::Crm => &mut self.crm,
            System::Finance => &mut self.finance,
        }
    }

    /// A person edits one field on one side (if the record exists there yet).
    fn edit(&mut self, system: System, field: usize, value: u8) {
        let version = self.tick();
        if let Some(record) = self.side(system).as_mut() {
            record.fields.insert(
                FIELDS[field % FIELDS.len()].to_string(),
                json!(format!("v{value}")),
            );
            record.version = version;
        }
    }

    fn write(&mut self, system: System, changes: &FieldMap) {
        if changes.is_empty() {
            return;
        }
        let version = self.tick();
        if let Some(record) = self.side(system).as_mut() {
            record.fields = apply(&record.fields, changes);
            record.version = version;
            self.writes += 1;
        }
    }

    fn settle_link(&mut self) {
        if let (Some(crm), Some(finance)) = (&self.crm, &self.finance) {
            self.link = Some(settle(
                &self.policy,
                (&crm.id, &crm.fields, Some(&crm.version)),
                (&finance.id, &finance.fields, Some(&finance.version)),
            ));
        }
    }

    /// What the orchestrator does for an event from `system`: fetch, decide, perform,
    /// record. Returns whether anything was written.
    fn handle(&mut self, system: System) -> bool {
        let Some(record) = self.side(system).clone() else {
            return false;
        };
        let source = SourceRecord {
            system,
            id: record.id.clone(),
            fields: Some(record.fields.clone()),
            version: Some(record.version.clone()),
            stamp: record.stamp.clone(),
        };
        let other = self.side(system.opposite()).clone();
        let target = other.as_ref().map(|r| TargetRecord {
            id: r.id.clone(),
            fields: r.fields.clone(),
            version: Some(r.version.clone()),
        });
        let found = match (&self.link, &target) {
            (Some(link), Some(_)) if link.id_on(system.opposite()).is_some() => {
                Some(TargetFound::Linked)
            }
            (_, Some(_)) => Some(TargetFound::ByStamp),
            _ => None,
        };
        let decision = decide(DecisionInput {
            source: &source,
            link: self.link.as_ref(),
            target: target.as_ref().zip(found),
            policy: &self.policy,
        });
        let writes_before = self.writes;
        match decision {
            SyncDecision::Create { fields, stamp } => {
                let version = self.tick();
                let id = match system {
                    System::Crm => "f1",
                    System::Finance => "c1",
                };
                *self.side(system.opposite()) = Some(Record {
                    id: id.into(),
                    fields,
                    version,
                    stamp: Some(stamp),
                });
                self.writes += 1;
                self.settle_link();
            }
            SyncDecision::Update { changes } | SyncDecision::Link { changes, .. } => {
                self.write(system.opposite(), &changes.to_target);
                self.write(system, &changes.to_source);
                self.settle_link();
            }
            SyncDecision::Skip(tandem::domain::SkipReason::NothingToSync) => self.settle_link(),
            SyncDecision::Skip(_) => {}
            other => panic!("unexpected decision for a customer under last_write_wins: {other:?}"),
        }
        self.writes > writes_before
    }

    /// Polls both sides until a whole round writes nothing (the poller finds whatever
    /// events were dropped).
    fn poll_until_quiet(&mut self) {
        for _ in 0..10 {
            let crm = self.handle(System::Crm);
            let finance = self.handle(System::Finance);
            if !crm && !finance {
                return;
            }
        }
        panic!(
            "no quiescence after 10 polling rounds: crm {:?} finance {:?}",
            self.crm, self.finance
        );
    }

    fn synced_values(&self, system: System) -> Vec<Option<serde_json::Value>> {
        let record = match system {
            System::Crm => &self.crm,
            System::Finance => &self.finance,
        };
        let record = record.as_ref().expect("record exists");
        FIELDS
            .iter()
            .map(|f| record.fields.get(*f).cloned())
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Step {
    Edit(System, usize, u8),
    /// An event for a side is delivered (perhaps for the second time, or late).
    Deliver(System),
    /// An event for a side is lost; only a later poll finds the change.
    Drop,
}

fn system() -> impl Strategy<Value = System> {
    prop_oneof![Just(System::Crm), Just(System::Finance)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (system(), 0..FIELDS.len(), any::<u8>()).prop_map(|(s, f, v)| Step::Edit(s, f, v)),
        system().prop_map(Step::Deliver),
        system().prop_map(|_| Step::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random interleavings converge, and once converged every event is a no-op.
    #[test]
    fn both_sides_converge_once_edits_stop(steps in prop::collection::vec(step(), 0..40)) {
        let mut world = World::new();
        world.handle(System::Crm);
        for step in steps {
            match step {
                Step::Edit(side, field, value) => world.edit(side, field, value),
                Step::Deliver(side) => { world.handle(side); }
                Step::Drop => {}
            }
        }
        world.poll_until_quiet();
        prop_assert_eq!(world.synced_values(System::Crm), world.synced_values(System::Finance));
        // Every echo and duplicate of the final state is skipped: zero writes.
        let writes = world.writes;
        world.handle(System::Finance);
        world.handle(System::Crm);
        world.handle(System::Crm);
        prop_assert_eq!(world.writes, writes);
    }

    /// Edits to different fields on the two sides, delivered in either order (or one
    /// dropped and polled), both survive.
    #[test]
    fn edits_to_different_fields_are_never_lost(
        crm_field in 0..FIELDS.len(),
        shift in 1..FIELDS.len(),
        crm_value in any::<u8>(),
        finance_value in any::<u8>(),
        finance_first in any::<bool>(),
        drop_one in any::<bool>(),
    ) {
        let finance_field = (crm_field + shift) % FIELDS.len();
        let mut world = World::new();
        world.handle(System::Crm);
        world.poll_until_quiet();
        world.edit(System::Crm, crm_field, crm_value);
        world.edit(System::Finance, finance_field, finance_value);
        let order = if finance_first { [System::Finance, System::Crm] } else { [System::Crm, System::Finance] };
        for (i, side) in order.into_iter().enumerate() {
            if !(drop_one && i == 0) {
                world.handle(side);
            }
        }
        world.poll_until_quiet();
        for side in [System::Crm, System::Finance] {
            let values = world.synced_values(side);
            prop_assert_eq!(&values[crm_field], &Some(json!(format!("v{crm_value}"))));
            prop_assert_eq!(&values[finance_field], &Some(json!(format!("v{finance_value}"))));
        }
    }

    /// The same change handled again after being applied writes nothing.
    #[test]
    fn deciding_again_after_applying_writes_nothing(edits in prop::collection::vec((system(), 0..FIELDS.len(), any::<u8>()), 1..6)) {
        let mut world = World::new();
        world.handle(System::Crm);
        for (side, field, value) in edits {
            world.edit(side, field, value);
            world.handle(side);
            let writes = world.writes;
            world.handle(side);
            world.handle(side.opposite());
            world.handle(side);
            prop_assert_eq!(world.writes, writes, "a repeated event wrote again");
        }
    }
}
