//! Property tests of the sync decision against a small model of two systems and of the
//! orchestrator's bookkeeping (the link, and the conflicts it holds or that a person
//! decided): random edits on both sides, clashes again and again on the same fields,
//! events delivered, duplicated, reordered or dropped (and found later by a poll), and
//! under `manual` a person deciding held clashes while edits keep coming.
//!
//! The checks are by value, not by agreement: once edits stop, every field holds the
//! value the documented rule says must win (`docs/conflicts.md`), on both sides.
//! - `last_write_wins`: the newest person's edit of the field, by its change time;
//! - `manual`: a clash still held for a person shows both sides' values as they are;
//!   otherwise the newest of the people's edits and decisions of the field.
//!
//! Every edit writes a value never written before, so an edit cannot look like no
//! change (a field put back to the value it had at the last sync).

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use tandem::domain::{
    apply, decide, decide_without_target, settle, Changes, Choice, ClashResolution, ConflictPolicy,
    DecisionInput, EntityType, FieldMap, Held, HeldClash, LinkSnapshot, PersonDecision, SkipReason,
    SourceRecord, SyncDecision, SyncPolicy, System, TargetFound, TargetRecord,
};

const FIELDS: [&str; 4] = ["name", "email", "phone", "tax_number"];

#[derive(Debug, Clone)]
struct Record {
    id: String,
    fields: FieldMap,
    version: String,
    /// Per-field change times, kept only by a system that reports them.
    field_times: BTreeMap<String, String>,
    stamp: Option<String>,
}

/// A conflict row as the store keeps it.
#[derive(Debug, Clone)]
struct Row {
    crm_value: Option<Value>,
    finance_value: Option<Value>,
    /// `None` while held; a person's choice once decided.
    choice: Option<Choice>,
}

/// Two systems holding one customer between them, and what Tandem keeps about them.
struct World {
    policy: SyncPolicy,
    crm: Option<Record>,
    finance: Option<Record>,
    /// Whether each system reports per-field change times (HubSpot does, Xero does not).
    per_field: [bool; 2],
    link: Option<LinkSnapshot>,
    /// Held and decided conflicts, by field.
    active: BTreeMap<String, Row>,
    clock: i64,
    next_value: u32,
    writes: usize,
    /// The value the people's newest edit or decision of each field left (acts come in
    /// time order, so the last one kept is the newest), for the oracle.
    acts: BTreeMap<String, Option<Value>>,
}

fn index(system: System) -> usize {
    match system {
        System::Crm => 0,
        System::Finance => 1,
    }
}

impl World {
    fn new(conflicts: ConflictPolicy, per_field: [bool; 2]) -> Self {
        let mut policy = SyncPolicy::defaults(EntityType::Customer);
        policy.conflicts = conflicts;
        let mut world = Self {
            policy,
            crm: None,
            finance: None,
            per_field,
            link: None,
            active: BTreeMap::new(),
            clock: 0,
            next_value: 0,
            writes: 0,
            acts: BTreeMap::new(),
        };
        let version = time(world.tick());
        let fields: FieldMap = FIELDS
            .iter()
            .map(|f| (f.to_string(), json!(format!("{f}-0"))))
            .collect();
        for field in FIELDS {
            world
                .acts
                .insert(field.to_string(), fields.get(field).cloned());
        }
        world.crm = Some(Record {
            id: "c1".into(),
            field_times: fields
                .keys()
                .map(|f| (f.clone(), version.clone()))
                .collect(),
            fields,
            version,
            stamp: None,
        });
        world
    }

    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    fn side(&mut self, system: System) -> &mut Option<Record> {
        match system {
            System::Crm => &mut self.crm,
            System::Finance => &mut self.finance,
        }
    }

    /// A person edits one field on one side (if the record exists there yet), to a
    /// value never seen before.
    fn edit(&mut self, system: System, field: usize) {
        if self.side(system).is_none() {
            return;
        }
        let at = self.tick();
        self.next_value += 1;
        let field = FIELDS[field % FIELDS.len()];
        let value = json!(format!("{system}-{}", self.next_value));
        let record = self.side(system).as_mut().expect("checked");
        record.fields.insert(field.to_string(), value.clone());
        record.version = time(at);
        record.field_times.insert(field.to_string(), time(at));
        self.acts.insert(field.to_string(), Some(value));
    }

    /// A person decides the held clash of a field, if one is held.
    fn decide(&mut self, field: usize, choice: PersonChoice) {
        let field = FIELDS[field % FIELDS.len()];
        self.tick();
        let Some(row) = self.active.get_mut(field).filter(|r| r.choice.is_none()) else {
            return;
        };
        let (choice, value) = match choice {
            PersonChoice::Keep(side) => (
                Choice::Keep(side),
                match side {
                    System::Crm => row.crm_value.clone(),
                    System::Finance => row.finance_value.clone(),
                },
            ),
            PersonChoice::Own => {
                self.next_value += 1;
                let value = Some(json!(format!("person-{}", self.next_value)));
                (Choice::Value(value.clone()), value)
            }
        };
        row.choice = Some(choice);
        self.acts.insert(field.to_string(), value);
    }

    /// Tandem writes `changes` to a side: a new version, and for a system that reports
    /// them, new change times of the fields written.
    fn write(&mut self, system: System, changes: &FieldMap) {
        if changes.is_empty() {
            return;
        }
        let at = time(self.tick());
        if let Some(record) = self.side(system).as_mut() {
            record.fields = apply(&record.fields, changes);
            record.version = at.clone();
            for field in changes.keys() {
                record.field_times.insert(field.clone(), at.clone());
            }
            self.writes += 1;
        }
    }

    fn settle_link(&mut self, held: &[&str]) {
        let before = self.link.as_ref().and_then(|l| l.base.clone());
        if let (Some(crm), Some(finance)) = (&self.crm, &self.finance) {
            self.link = Some(settle(
                &self.policy,
                (&crm.id, &crm.fields, Some(&crm.version)),
                (&finance.id, &finance.fields, Some(&finance.version)),
                Held {
                    fields: held,
                    base: before.as_ref(),
                },
            ));
        }
    }

    /// The link as a sync loads it: its row, and the held and decided conflicts.
    fn snapshot(&self) -> Option<LinkSnapshot> {
        let mut snapshot = self.link.clone()?;
        for (field, row) in &self.active {
            match &row.choice {
                Some(choice) => {
                    snapshot.decided.insert(
                        field.clone(),
                        PersonDecision {
                            crm_value: row.crm_value.clone(),
                            finance_value: row.finance_value.clone(),
                            choice: choice.clone(),
                        },
                    );
                }
                None => {
                    snapshot.held.insert(
                        field.clone(),
                        HeldClash {
                            crm_value: row.crm_value.clone(),
                            finance_value: row.finance_value.clone(),
                        },
                    );
                }
            }
        }
        Some(snapshot)
    }

    /// What the sync commits about clashes, as the store does it.
    fn record_clashes(&mut self, changes: &Changes) {
        for field in &changes.withdrawn {
            self.active.remove(field);
        }
        for clash in &changes.conflicts {
            match &clash.resolution {
                ClashResolution::Held => {
                    let row = self.active.entry(clash.field.clone()).or_insert(Row {
                        crm_value: None,
                        finance_value: None,
                        choice: None,
                    });
                    // A decision made meanwhile is not overwritten by a refresh.
                    if row.choice.is_none() {
                        row.crm_value = clash.crm_value.clone();
                        row.finance_value = clash.finance_value.clone();
                    }
                }
                ClashResolution::Policy(_) | ClashResolution::Person(_) => {
                    self.active.remove(&clash.field);
                }
            }
        }
    }

    fn record_of(&self, system: System) -> Option<(SourceRecord, Record)> {
        let record = match system {
            System::Crm => self.crm.clone(),
            System::Finance => self.finance.clone(),
        }?;
        let field_versions = if self.per_field[index(system)] {
            record.field_times.clone()
        } else {
            BTreeMap::new()
        };
        Some((
            SourceRecord {
                system,
                id: record.id.clone(),
                fields: Some(record.fields.clone()),
                version: Some(record.version.clone()),
                stamp: record.stamp.clone(),
                field_versions,
            },
            record,
        ))
    }

    /// What the orchestrator does for an event from `system`: fetch, decide, perform,
    /// record. Returns whether anything was written.
    fn handle(&mut self, system: System) -> bool {
        let Some((source, _)) = self.record_of(system) else {
            return false;
        };
        let snapshot = self.snapshot();
        if let Some(early) = decide_without_target(&source, snapshot.as_ref(), &self.policy) {
            assert!(
                matches!(early, SyncDecision::Skip(_)),
                "only skips are decided early here: {early:?}"
            );
            return false;
        }
        let target = self
            .record_of(system.opposite())
            .map(|(t, _)| TargetRecord {
                id: t.id,
                fields: t.fields.unwrap_or_default(),
                version: t.version,
                field_versions: t.field_versions,
            });
        let found = match (&snapshot, &target) {
            (Some(link), Some(_)) if link.id_on(system.opposite()).is_some() => {
                Some(TargetFound::Linked)
            }
            (_, Some(_)) => Some(TargetFound::ByStamp),
            _ => None,
        };
        let decision = decide(DecisionInput {
            source: &source,
            link: snapshot.as_ref(),
            target: target.as_ref().zip(found),
            policy: &self.policy,
        });
        let writes_before = self.writes;
        match decision {
            SyncDecision::Create { fields, stamp } => {
                let at = time(self.tick());
                let id = match system {
                    System::Crm => "f1",
                    System::Finance => "c1",
                };
                *self.side(system.opposite()) = Some(Record {
                    id: id.into(),
                    field_times: fields.keys().map(|f| (f.clone(), at.clone())).collect(),
                    fields,
                    version: at,
                    stamp: Some(stamp),
                });
                self.writes += 1;
                self.settle_link(&[]);
            }
            SyncDecision::Update { changes }
            | SyncDecision::Link { changes, .. }
            | SyncDecision::Conflict { changes } => {
                self.write(system.opposite(), &changes.to_target);
                self.write(system, &changes.to_source);
                let held: Vec<&str> = changes.held().collect();
                self.settle_link(&held);
                self.record_clashes(&changes);
            }
            SyncDecision::Skip(SkipReason::NothingToSync) => self.settle_link(&[]),
            SyncDecision::Skip(_) => {}
            other => panic!("unexpected decision for a customer: {other:?}"),
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

    fn value(&self, system: System, field: &str) -> Option<Value> {
        let record = match system {
            System::Crm => &self.crm,
            System::Finance => &self.finance,
        };
        record
            .as_ref()
            .expect("record exists")
            .fields
            .get(field)
            .cloned()
    }

    /// The oracle: every field holds the value the rule says must win, or, under
    /// `manual`, is held with both sides' values as they are. Returns the lost edits,
    /// each as `field: expected …, crm …, finance …`.
    fn lost_edits(&self) -> Vec<String> {
        let mut lost = Vec::new();
        for field in FIELDS {
            let (crm, finance) = (
                self.value(System::Crm, field),
                self.value(System::Finance, field),
            );
            if let Some(row) = self.active.get(field) {
                if row.choice.is_none() && row.crm_value == crm && row.finance_value == finance {
                    continue;
                }
                lost.push(format!(
                    "{field}: held as crm {:?} / finance {:?} but the sides hold {crm:?} / {finance:?}",
                    row.crm_value, row.finance_value
                ));
                continue;
            }
            let expected = self.acts.get(field).cloned().flatten();
            if crm != expected || finance != expected {
                lost.push(format!(
                    "{field}: expected {expected:?}, crm {crm:?}, finance {finance:?}"
                ));
            }
        }
        lost
    }
}

fn time(at: i64) -> String {
    (Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("time")
        + Duration::seconds(at))
    .to_rfc3339()
}

#[derive(Debug, Clone, Copy)]
enum PersonChoice {
    Keep(System),
    Own,
}

#[derive(Debug, Clone)]
enum Step {
    Edit(System, usize),
    /// An event for a side is delivered (perhaps for the second time, or late).
    Deliver(System),
    /// An event for a side is lost; only a later poll finds the change.
    Drop,
    /// A person decides a held clash (under `manual`; nothing otherwise).
    Decide(usize, PersonChoice),
}

fn system() -> impl Strategy<Value = System> {
    prop_oneof![Just(System::Crm), Just(System::Finance)]
}

fn choice() -> impl Strategy<Value = PersonChoice> {
    prop_oneof![
        system().prop_map(PersonChoice::Keep),
        Just(PersonChoice::Own)
    ]
}

/// Steps over `fields` fields, edits weighted so the same fields clash again and again.
fn steps(fields: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => (system(), 0..fields).prop_map(|(s, f)| Step::Edit(s, f)),
        3 => system().prop_map(Step::Deliver),
        1 => Just(Step::Drop),
        2 => (0..fields, choice()).prop_map(|(f, c)| Step::Decide(f, c)),
    ];
    prop::collection::vec(step, 0..60)
}

/// Two edits of one field, one on each side and in either order, then one side's
/// event: the smallest clash. `rounds` of it on the same link, all else quiet.
fn clash_rounds() -> impl Strategy<Value = Vec<(System, System)>> {
    prop::collection::vec((system(), system()), 2..6)
}

fn run(world: &mut World, steps: Vec<Step>) {
    world.handle(System::Crm);
    for step in steps {
        match step {
            Step::Edit(side, field) => world.edit(side, field),
            Step::Deliver(side) => {
                world.handle(side);
            }
            Step::Drop => {}
            Step::Decide(field, choice) => world.decide(field, choice),
        }
    }
    world.poll_until_quiet();
}

/// A person decides every clash still held, so that a run under `manual` can end with
/// nothing held.
fn decide_all_held(world: &mut World) {
    for _ in 0..4 {
        let held: Vec<usize> = FIELDS
            .iter()
            .enumerate()
            .filter(|(_, f)| world.active.get(**f).is_some_and(|r| r.choice.is_none()))
            .map(|(i, _)| i)
            .collect();
        if held.is_empty() {
            return;
        }
        for field in held {
            world.decide(field, PersonChoice::Keep(System::Crm));
        }
        world.handle(System::Crm);
        world.poll_until_quiet();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With per-field change times on both sides, random interleavings of edits end
    /// with every field holding the newest person's edit, on both sides.
    #[test]
    fn last_write_wins_keeps_the_newest_edit_of_every_field(steps in steps(FIELDS.len())) {
        let mut world = World::new(ConflictPolicy::LastWriteWins, [true, true]);
        run(&mut world, steps);
        let lost = world.lost_edits();
        prop_assert!(lost.is_empty(), "lost edits: {lost:?}");
        // Every echo and duplicate of the final state is skipped: zero writes.
        let writes = world.writes;
        world.handle(System::Finance);
        world.handle(System::Crm);
        world.handle(System::Crm);
        prop_assert_eq!(world.writes, writes);
    }

    /// With a record-level time on finance (as Xero gives) and per-field times on the
    /// CRM (as HubSpot gives), one field clashing round after round keeps the newest
    /// edit each time, whichever side announces the clash.
    #[test]
    fn repeated_clashes_of_one_field_keep_the_newest_edit(
        rounds in clash_rounds(),
        per_field_crm in any::<bool>(),
    ) {
        let mut world = World::new(ConflictPolicy::LastWriteWins, [per_field_crm, false]);
        world.handle(System::Crm);
        world.poll_until_quiet();
        for (round, (newer, announcer)) in rounds.into_iter().enumerate() {
            world.edit(newer.opposite(), 2);
            world.edit(newer, 2);
            world.handle(announcer);
            world.poll_until_quiet();
            let lost = world.lost_edits();
            prop_assert!(lost.is_empty(), "round {}: lost edits: {:?}", round, lost);
        }
    }

    /// Under `manual`, clashes are held however many there were before; a person's
    /// decision applies to the clash it was made for and nothing else; every field ends
    /// with the newest of the people's edits and decisions, or held with both values.
    #[test]
    fn manual_holds_every_clash_and_applies_each_decision_once(
        steps in steps(2),
        per_field in any::<[bool; 2]>(),
    ) {
        let mut world = World::new(ConflictPolicy::Manual, per_field);
        run(&mut world, steps);
        let lost = world.lost_edits();
        prop_assert!(lost.is_empty(), "lost edits: {:?}", lost);
        decide_all_held(&mut world);
        prop_assert!(world.active.is_empty(), "still held: {:?}", world.active);
        let lost = world.lost_edits();
        prop_assert!(lost.is_empty(), "after deciding: lost edits: {:?}", lost);
    }

    /// Edits to different fields on the two sides, delivered in either order (or one
    /// dropped and polled), both survive, under every policy.
    #[test]
    fn edits_to_different_fields_are_never_lost(
        crm_field in 0..FIELDS.len(),
        shift in 1..FIELDS.len(),
        finance_first in any::<bool>(),
        drop_one in any::<bool>(),
        policy in prop_oneof![
            Just(ConflictPolicy::LastWriteWins),
            Just(ConflictPolicy::CrmWins),
            Just(ConflictPolicy::FinanceWins),
            Just(ConflictPolicy::Manual),
        ],
    ) {
        let finance_field = (crm_field + shift) % FIELDS.len();
        let mut world = World::new(policy, [false, false]);
        world.handle(System::Crm);
        world.poll_until_quiet();
        world.edit(System::Crm, crm_field);
        world.edit(System::Finance, finance_field);
        let order = if finance_first { [System::Finance, System::Crm] } else { [System::Crm, System::Finance] };
        for (i, side) in order.into_iter().enumerate() {
            if !(drop_one && i == 0) {
                world.handle(side);
            }
        }
        world.poll_until_quiet();
        let lost = world.lost_edits();
        prop_assert!(lost.is_empty(), "lost edits: {:?}", lost);
    }

    /// The same change handled again after being applied writes nothing.
    #[test]
    fn deciding_again_after_applying_writes_nothing(edits in prop::collection::vec((system(), 0..FIELDS.len()), 1..6)) {
        let mut world = World::new(ConflictPolicy::LastWriteWins, [false, false]);
        world.handle(System::Crm);
        for (side, field) in edits {
            world.edit(side, field);
            world.handle(side);
            let writes = world.writes;
            world.handle(side);
            world.handle(side.opposite());
            world.handle(side);
            prop_assert_eq!(world.writes, writes, "a repeated event wrote again");
        }
    }
}

/// The oracle sees a lost edit: a world whose CRM value was overwritten by an older
/// finance value is reported, so the properties above can fail.
#[test]
fn the_oracle_reports_an_older_value_that_won() {
    let mut world = World::new(ConflictPolicy::LastWriteWins, [true, true]);
    world.handle(System::Crm);
    world.poll_until_quiet();
    world.edit(System::Finance, 2);
    let older = world.value(System::Finance, "phone");
    world.edit(System::Crm, 2);
    // Plant the loss: the CRM's newer value replaced by finance's older one.
    world.write(
        System::Crm,
        &FieldMap::from([("phone".to_string(), older.clone().expect("value"))]),
    );
    let lost = world.lost_edits();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].starts_with("phone: expected"), "{lost:?}");
}
